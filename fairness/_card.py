"""The model card: what a model is for, what it was trained on, how good and how fair it is.

The ethics board reads it next to the fairness report; MLflow stores :meth:`ModelCard.to_dict`
with the run. The same :meth:`ModelCard.sections` feed the Markdown and the HTML report, so
the two never say different things.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from pydantic import ConfigDict, TypeAdapter

from overblik.fairness._thresholds import Verdict
from overblik.fairness._wording import (
    Bilingual,
    Language,
    attribute_label,
    format_count,
    format_number,
    metric_label,
    text,
    value_label,
)

__all__ = ["CardEffects", "CardFact", "CardSection", "ModelCard", "PolicyBenefit",
           "ProgrammeEffect"]

B = Bilingual

INTENDED_USE = B(
    "Beslutningsstøtte til sagsbehandlere: scoren er ét input blandt flere, og en "
    "sagsbehandler træffer og begrunder altid beslutningen. Modellen må aldrig bruges til "
    "automatiske afgørelser.",
    "Decision support for caseworkers: the score is one input among several, and a caseworker "
    "always makes and records the decision. The model must never be used for automated "
    "decisions.",
)
OUT_OF_SCOPE = (
    B("Automatiske afgørelser med retsvirkning for borgeren (GDPR art. 22).",
      "Automated decisions with legal effect for the citizen (GDPR art. 22)."),
    B("Kontrol, sanktioner eller jagt på snyd.", "Control, sanctions or fraud detection."),
    B("Borgere uden for målgruppen, eller andre kommuner, uden en ny audit.",
      "Citizens outside the cohort, or other municipalities, without a new audit."),
    B("Sammenligning eller rangordning af befolkningsgrupper, fx efter herkomst.",
      "Comparing or ranking groups of citizens, for example by origin."),
)
LIMITATIONS = (
    B("Modellen er lært af fortiden: ændret praksis eller lovgivning kan gøre den forældet.",
      "The model learned from the past: changes in practice or law can make it outdated."),
    B("Scorer ændrer, hvem der får indsatser, og dermed fremtidens udfald (feedback-loop); "
      "overvåg modellen, og træn den igen på data, hvor det er taget højde for.",
      "Scores change who receives interventions and so future outcomes (a feedback loop); "
      "monitor the model and retrain it on data that accounts for this."),
    B("Høj risiko betyder ikke, at en indsats hjælper mest: risiko er ikke effekt.",
      "High risk does not mean an intervention helps most: risk is not benefit."),
)
KNOWN_BIASES = (
    B("Registrerede udfald afspejler, hvem der bliver set, lige så meget som hvem der er i "
      "risiko: grupper under mere opsyn ser mere udsatte ud.",
      "Recorded outcomes reflect who is watched as much as who is at risk: groups under more "
      "surveillance look riskier."),
)

_HEADINGS: dict[str, Bilingual] = {
    "intended_use": B("Tilsigtet brug", "Intended use"),
    "out_of_scope": B("Brug uden for formålet", "Out-of-scope uses"),
    "cohort_outcome": B("Målgruppe og udfald", "Cohort and outcome"),
    "data_period": B("Data og periode", "Data and period"),
    "metrics": B("Nøgletal", "Metrics"),
    "effects": B("Indsatsernes effekt (estimeret)", "Programme effects (estimated)"),
    "fairness": B("Fairness", "Fairness"),
    "limitations": B("Begrænsninger", "Limitations"),
    "known_biases": B("Kendte skævheder", "Known biases"),
    "provenance": B("Sporbarhed", "Provenance"),
}
_LABELS: dict[str, Bilingual] = {
    "cohort": B("Målgruppe", "Cohort"),
    "outcome": B("Udfald", "Outcome"),
    "horizon": B("Horisont", "Horizon"),
    "horizon_value": B("{days} dage efter opgørelsesdatoen", "{days} days after the as-of date"),
    "cohort_outcome_text": B("Modellen scorer {cohort} og forudsiger {outcome} inden for {days} "
                             "dage efter opgørelsesdatoen.",
                             "The model scores {cohort} and predicts {outcome} within {days} "
                             "days of the as-of date."),
    "as_of": B("Opgørelsesdatoer", "As-of dates"),
    "as_of_value": B("{count} datoer, {first} til {last}", "{count} dates, {first} to {last}"),
    "test_as_of": B("Testdato", "Test as-of date"),
    "fingerprint": B("Datafingeraftryk", "Data fingerprint"),
    "demo": B("Demodata (syntetiske borgere)", "Demo data (synthetic citizens)"),
    "verdict": B("Resultat mod tærsklerne", "Result against the thresholds"),
    "not_audited": B("ikke auditeret endnu", "not audited yet"),
    "protected_inputs": B("Beskyttede egenskaber brugt som input",
                          "Protected attributes used as inputs"),
    "none": B("ingen", "none"),
    "model": B("Model", "Model"),
    "version": B("Version", "Version"),
    "run_id": B("MLflow-kørsel", "MLflow run"),
    "config_hash": B("Konfigurations-hash", "Config hash"),
    "created": B("Oprettet", "Created"),
    "no_metrics": B("ingen nøgletal angivet", "no metrics given"),
    "effects_intro": B(
        "Versionen har effektmodeller, som /recommend og /allocate bruger: for hver indsats "
        "det estimerede fald i sandsynligheden for udfaldet ({outcome}), hvis borgeren får "
        "den, i gennemsnit over træningsrækkerne (ATE) med {confidence} %-interval. Et "
        "negativt tal betyder, at udfaldet bliver mere sandsynligt.",
        "The version has effect models, which /recommend and /allocate use: for each "
        "programme the estimated fall in the probability of the outcome ({outcome}) if the "
        "citizen gets it, on average over the training rows (ATE) with a {confidence}% "
        "interval. A negative number means the outcome becomes more likely."),
    "effect_value": B("{ate} [{low}; {high}]; {trimmed} af træningsrækkerne skåret fra; "
                      "{places} pladser à {cost}",
                      "{ate} [{low}; {high}]; {trimmed} of the training rows trimmed; "
                      "{places} places at {cost} each"),
    "effect_covers_zero": B(
        "{programme}: intervallet omfatter 0, så data viser ikke, at indsatsen virker; "
        "anbefalinger af den hviler på usikre tal.",
        "{programme}: the interval includes 0, so the data do not show that the programme "
        "works; recommending it rests on uncertain numbers."),
    "effect_trimmed": B(
        "{programme}: {trimmed} af træningsrækkerne er skåret fra, fordi de ikke ligner "
        "nogen med og nogen uden indsatsen (dårligt overlap); effekten er kun lært af resten.",
        "{programme}: {trimmed} of the training rows were trimmed because they resemble no "
        "one with and no one without the programme (poor overlap); the effect is learned "
        "from the rest only."),
    "allocation": B(
        "Fordeling af pladserne på testdatoen efter estimeret effekt: {effect_places} pladser, "
        "gevinst {effect} (efter risiko: {risk_places} pladser, {risk}; tilfældigt: {random}), "
        "bedømt ved {judged}. Gevinst er det samlede fald i antal forventede udfald.",
        "Places allocated on the test date by estimated effect: {effect_places} places, "
        "benefit {effect} (by risk: {risk_places} places, {risk}; at random: {random}), judged "
        "by {judged}. Benefit is the total fall in the expected number of outcomes."),
    "allocation_empty": B(
        "Ingen borger har en estimeret effekt over 0, så en fordeling efter effekt lader "
        "pladserne stå tomme.",
        "No citizen has an estimated effect above 0, so allocating by effect leaves the "
        "places empty."),
    "judged_truth": B("de sande effekter (syntetiske data)", "the true effects (synthetic data)"),
    "judged_doubly_robust": B(
        "dobbelt-robuste scorer på testrækkerne (forbehold: testdatoens få borgere med "
        "indsatsen giver en flad model af udfaldet med den, så fordeling efter risiko kan "
        "se bedre ud, end den er)",
        "doubly robust scores on the test rows (a caveat: the test date's few citizens with "
        "the programme give a flat model of the outcome with it, so allocating by risk can "
        "look better than it is)"),
    "judged_imputed": B(
        "testborgernes observerede udfald mod det, modellen af borgere med indsatsen "
        "forudsiger for dem (lært på træningsrækkerne)",
        "the test citizens' observed outcome against the one the model of citizens with "
        "the programme predicts for them (learnt on the training rows)"),
    "judged_estimates": B("modellens egne estimater", "the model's own estimates"),
}
# A trimmed share from which the card says the effect is learned from the rest only.
_TRIMMED_NOTE = 0.10


@dataclass(frozen=True)
class ProgrammeEffect:
    """A programme's estimated average effect (a fall in the outcome's probability), its
    interval, the share of training rows trimmed for poor overlap, and its places."""

    programme: str
    ate: float
    ci_low: float
    ci_high: float
    trimmed_share: float
    places: int
    cost: float


@dataclass(frozen=True)
class PolicyBenefit:
    """One allocation policy on the test date (``effect``, ``risk``, ``random``,
    ``oracle``): its places and total benefit."""

    policy: str
    benefit: float
    places: int


@dataclass(frozen=True)
class CardEffects:
    """A version's effect models as its card states them (see :class:`ModelCard`); empty
    for a version without them."""

    effects: tuple[ProgrammeEffect, ...] = ()
    allocation: tuple[PolicyBenefit, ...] = ()
    judged_by: str = ""
    confidence: float = 0.95


@dataclass(frozen=True)
class CardFact:
    """One labelled value; ``code`` values (hashes, ids) are shown verbatim in monospace."""

    label: str
    value: str
    code: bool = False


@dataclass(frozen=True)
class CardSection:
    """A heading with a paragraph, facts and bullets (any may be empty)."""

    key: str
    heading: str
    paragraph: str = ""
    facts: tuple[CardFact, ...] = ()
    bullets: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """A model card (after Mitchell et al. 2019), in Danish and English.

    Parameters
    ----------
    name, version, run_id : str
        The registered model, its version and the MLflow run that trained it.
    cohort, outcome : str
        Who is scored and what is predicted, e.g. ``children_in_families``,
        ``child_placement``; ``horizon_days`` after the as-of date.
    as_of_dates : tuple of date
        The as-of dates of the training and test data; ``test_as_of`` the one tested on.
    data_fingerprint, config_hash : str
        The data and config the run used (as tagged in MLflow).
    demo_data : bool
        True when the data are synthetic; the card then says so first.
    metrics : mapping of str to float
        e.g. ``test_auc``, ``test_ece``, ``precision_at_k``, ``oracle_gap``.
    intended_use, out_of_scope, limitations, known_biases
        Bilingual texts; the defaults hold for every overblik risk model.
    protected_inputs : tuple of str
        Protected attributes the model uses as inputs (e.g. age); empty means none.
    fairness : Verdict or None
        The audit's verdict against the thresholds; None before the audit.
    effects, allocation, allocation_judged_by, confidence
        A version with effect models: each programme's average effect with its
        ``confidence`` interval, and the allocation policies on the test date (judged by
        ``truth``, ``doubly_robust``, ``imputed`` or ``estimates``); empty without.
    """

    name: str
    version: str | None = None
    run_id: str | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    description: Bilingual | None = None
    cohort: str
    outcome: str
    horizon_days: int
    as_of_dates: tuple[date, ...] = ()
    test_as_of: date | None = None
    data_fingerprint: str = ""
    demo_data: bool = False
    config_hash: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    intended_use: Bilingual = INTENDED_USE
    out_of_scope: tuple[Bilingual, ...] = OUT_OF_SCOPE
    limitations: tuple[Bilingual, ...] = LIMITATIONS
    known_biases: tuple[Bilingual, ...] = KNOWN_BIASES
    protected_inputs: tuple[str, ...] = ()
    fairness: Verdict | None = None
    effects: tuple[ProgrammeEffect, ...] = ()
    allocation: tuple[PolicyBenefit, ...] = ()
    allocation_judged_by: str = ""
    confidence: float = 0.95

    # A difference without an interval has NaN bounds: "NaN" strings keep the dict strict
    # JSON (MLflow, json.dumps(allow_nan=False)) and read back as NaN.
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(ser_json_inf_nan="strings")

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict (dates as ISO strings); :meth:`from_dict` reads it back."""
        result: dict[str, Any] = json.loads(_ADAPTER.dump_json(self))
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Read a card written by :meth:`to_dict`; a wrong field raises ``ValueError``."""
        card: ModelCard = _ADAPTER.validate_python(dict(data))
        return card

    def sections(self, language: Language) -> tuple[CardSection, ...]:
        """The card's content in ``language``, in reading order."""

        def label(key: str, **values: object) -> str:
            template = _LABELS[key].pick(language)
            return template.format(**values) if values else template

        def heading(key: str) -> str:
            return _HEADINGS[key].pick(language)

        yes_no = text("yes" if self.demo_data else "no", language)
        period: list[CardFact] = []
        if self.as_of_dates:
            dates = sorted(self.as_of_dates)
            period.append(CardFact(label("as_of"), label(
                "as_of_value", count=len(dates), first=dates[0].isoformat(),
                last=dates[-1].isoformat())))
        if self.test_as_of is not None:
            period.append(CardFact(label("test_as_of"), self.test_as_of.isoformat()))
        period += [CardFact(label("fingerprint"), self.data_fingerprint or "–", code=True),
                   CardFact(label("demo"), yes_no)]
        metrics = tuple(CardFact(metric_label(k, language), _format_metric(v, language))
                        for k, v in self.metrics.items())
        return (
            CardSection("intended_use", heading("intended_use"),
                        paragraph=" ".join(t.pick(language) for t in
                                           (self.description, self.intended_use) if t)),
            CardSection("out_of_scope", heading("out_of_scope"),
                        bullets=tuple(t.pick(language) for t in self.out_of_scope)),
            CardSection("cohort_outcome", heading("cohort_outcome"),
                        paragraph=label("cohort_outcome_text",
                                        cohort=value_label(self.cohort, language),
                                        outcome=value_label(self.outcome, language),
                                        days=self.horizon_days), facts=(
                CardFact(label("cohort"), self.cohort, code=True),
                CardFact(label("outcome"), self.outcome, code=True),
                CardFact(label("horizon"), label("horizon_value", days=self.horizon_days)),
            )),
            CardSection("data_period", heading("data_period"), facts=tuple(period)),
            CardSection("metrics", heading("metrics"), facts=metrics,
                        paragraph="" if metrics else label("no_metrics")),
            *self._effects_section(language, heading("effects"), label),
            self._fairness_section(language, heading("fairness"), label),
            CardSection("limitations", heading("limitations"),
                        bullets=tuple(t.pick(language) for t in self.limitations)),
            CardSection("known_biases", heading("known_biases"),
                        bullets=tuple(t.pick(language) for t in self.known_biases)),
            CardSection("provenance", heading("provenance"), facts=(
                CardFact(label("model"), self.name, code=True),
                CardFact(label("version"), self.version or "–", code=True),
                CardFact(label("run_id"), self.run_id or "–", code=True),
                CardFact(label("config_hash"), self.config_hash or "–", code=True),
                CardFact(label("created"), self.created.isoformat(timespec="seconds")),
            )),
        )

    def _effects_section(self, language: Language, heading: str, label: Any
                         ) -> tuple[CardSection, ...]:
        """What the board approves along with the risk model when the version has effect
        models: the averages, whether they are told apart from 0, overlap, the places."""
        if not self.effects:
            return ()

        def num(v: float) -> str:
            return format_number(v, language, 4, sign=True)

        def pct(v: float) -> str:  # Danish puts a space before %, English does not
            space = "\u00a0" if language == "da" else ""
            return f"{format_number(100 * v, language, 0)}{space}%"

        facts, bullets = [], []
        for e in self.effects:
            name = value_label(e.programme, language)
            shown = e.programme if name == e.programme else f"{name} ({e.programme})"
            facts.append(CardFact(shown, label(
                "effect_value", ate=num(e.ate), low=num(e.ci_low), high=num(e.ci_high),
                trimmed=pct(e.trimmed_share), places=format_count(e.places, language),
                cost=format_number(e.cost, language, 0))))
            if e.ci_low <= 0.0 <= e.ci_high:
                bullets.append(label("effect_covers_zero", programme=name))
            if e.trimmed_share >= _TRIMMED_NOTE:
                bullets.append(label("effect_trimmed", programme=name,
                                     trimmed=pct(e.trimmed_share)))
        policies = {p.policy: p for p in self.allocation}
        if {"effect", "risk", "random"} <= set(policies):
            effect, risk = policies["effect"], policies["risk"]
            bullets.append(label(
                "allocation", effect_places=format_count(effect.places, language),
                effect=format_number(effect.benefit, language, 1),
                risk_places=format_count(risk.places, language),
                risk=format_number(risk.benefit, language, 1),
                random=format_number(policies["random"].benefit, language, 1),
                judged=label(f"judged_{self.allocation_judged_by or 'estimates'}")))
            if effect.places == 0:
                bullets.append(label("allocation_empty"))
        paragraph = label("effects_intro", outcome=self.outcome,
                          confidence=format_number(100 * self.confidence, language, 0))
        return (CardSection("effects", heading, paragraph=paragraph, facts=tuple(facts),
                            bullets=tuple(bullets)),)

    def _fairness_section(self, language: Language, heading: str, label: Any) -> CardSection:
        inputs = ", ".join(attribute_label(a, language) for a in self.protected_inputs)
        inputs = inputs or label("none")
        facts = [CardFact(label("protected_inputs"), inputs)]
        if self.fairness is None:
            facts.insert(0, CardFact(label("verdict"), label("not_audited")))
            return CardSection("fairness", heading, facts=tuple(facts))
        verdict = self.fairness
        status = "verdict_fail" if not verdict.passed else (
            "verdict_warn" if verdict.warnings else "verdict_pass")
        facts.insert(0, CardFact(label("verdict"), text(status, language)))
        bullets = [c.sentence(language) for c in verdict.checks if c.status == "fail"]
        bullets += [text("verdict_unchecked", language, items=u.sentence(language))
                    for u in verdict.unchecked]
        if verdict.audit_min_count < verdict.policy_min_count:
            bullets.insert(0, text("verdict_policy_breach", language,
                                   audit_min=verdict.audit_min_count,
                                   policy_min=verdict.policy_min_count))
        return CardSection("fairness", heading, facts=tuple(facts), bullets=tuple(bullets))

    def to_markdown(self, language: Language = "da") -> str:
        """The card as Markdown in ``language`` ("da" or "en")."""
        title = f"# {text('card', language)}: {self.name}"
        if self.version:
            title += f" (version {self.version})"
        lines = [title, ""]
        if self.demo_data:
            lines += [f"> **{text('demo_banner', language)}**", ""]
        for section in self.sections(language):
            lines += [f"## {section.heading}", ""]
            if section.paragraph:
                lines += [section.paragraph, ""]
            for fact in section.facts:
                value = f"`{fact.value}`" if fact.code else _escape(fact.value)
                lines.append(f"- **{fact.label}:** {value}")
            lines += [f"- {_escape(b)}" for b in section.bullets]
            if section.facts or section.bullets:
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def _format_metric(value: float, language: Language) -> str:
    return format_number(value, language, 4) if math.isfinite(value) else "–"


def _escape(s: str) -> str:
    # Only what would change the meaning of a list item: emphasis and links.
    for ch in ("\\", "*", "_", "[", "]", "`"):
        s = s.replace(ch, "\\" + ch)
    return s


_ADAPTER: TypeAdapter[ModelCard] = TypeAdapter(ModelCard)
