"""The fairness step of ``overblik train``: audit the registered model before anyone may
promote it.

Inside the training run, after the model is logged: the LightGBM model is audited on the
last split's test rows (by default the top ``capacity_k`` scores are "selected", as the
municipality would act on them) by every sensitive attribute and pair of attributes;
proxies of the sensitive attributes in the test features are measured; mitigations are
compared on one attribute (train rows of the last split, capped); the verdict against the
experiment's thresholds tags the run and the model version ``overblik.fairness_passed``.
The report, the model card (Danish and English), the audit numbers and plots are logged
under ``fairness/``. The oracle step (:mod:`overblik.experiments._oracle`) later adds the
label-bias section, from the truth that training never reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import joblib
import mlflow
import numpy as np
import pandas as pd

from overblik.experiments._approval import FAIRNESS_PASSED
from overblik.experiments._config import ExperimentConfig
from overblik.experiments._tracking import resume_run, run_artifact
from overblik.experiments._trainable import ShortHistory
from overblik.fairness._card import CardEffects
from overblik.features._errors import InputError

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

    from overblik.fairness import (
        AuditResult,
        FairnessThresholds,
        LabelBiasReport,
        MitigationReport,
        ModelCard,
        ProxyReport,
        Verdict,
    )
    from overblik.fairness._places import PlacesReport
    from overblik.fairness._wording import Bilingual

__all__ = [
    "FAIRNESS_ARTIFACTS",
    "FairnessRun",
    "ModelFacts",
    "audit_rule",
    "fairness_thresholds",
    "log_fairness",
    "log_label_bias",
    "model_card",
    "protected_inputs",
    "run_fairness",
]

ProgressFn = Callable[[str, int, int], None]
FAIRNESS_ARTIFACTS = "fairness"
# Everything the report is rendered from, so the oracle step can render it again with the
# label-bias section (a joblib file like the model's own estimator artifact).
REPORT_INPUTS = "report_inputs.joblib"
CHECKED_METRICS = ("selection_rate", "tpr", "fpr", "ece")


def fairness_thresholds(config: ExperimentConfig) -> FairnessThresholds:
    """The experiment's thresholds as the fairness package's policy object."""
    from overblik.fairness import FairnessThresholds

    return FairnessThresholds(**config.fairness.thresholds.model_dump(),
                              min_count=config.fairness.min_count)


def audit_rule(config: ExperimentConfig, rows: int) -> tuple[float | None, int | None]:
    """``(threshold, top_k)`` of the audit: the configured rule, else the top capacity_k
    (at most the number of test rows)."""
    rule = config.fairness.decision
    if rule.threshold is not None:
        return rule.threshold, None
    return None, min(rule.top_k or config.capacity_k, rows)


def protected_inputs(config: ExperimentConfig) -> tuple[str, ...]:
    """Protected attributes the experiment uses as model inputs (``sensitive: true``)."""
    from overblik.features._feature_spec import (
        SENSITIVE_ATTRIBUTES,
        PopulationBlock,
        parse_feature_spec,
    )

    spec = parse_feature_spec(config.features, section="features")
    return tuple(a for b in spec.blocks if isinstance(b, PopulationBlock) and b.sensitive
                 for a in b.attributes if a in SENSITIVE_ATTRIBUTES)


@dataclass(frozen=True)
class ModelFacts:
    """What the model card says about the run, besides the config."""

    name: str
    version: str
    run_id: str
    data_fingerprint: str
    demo_data: bool
    test_as_of: date
    metrics: Mapping[str, float]
    short_history: ShortHistory | None = None  # early as-of dates with less history
    # Empty when the version has no effect models.
    effects: CardEffects = field(default_factory=CardEffects)


def _short_history_limitation(found: ShortHistory) -> Bilingual:
    from overblik.fairness._wording import Bilingual

    begins = found.begins.date().isoformat()
    n, of, days = len(found.dates), found.of_dates, found.window_days
    accepted = (" Eksperimentet accepterer det (as_of.accept_short_history).",
                " The experiment accepts this (as_of.accept_short_history).") \
        if found.accepted else ("", "")
    return Bilingual(
        f"De {n} tidligste af {of} opgørelsesdatoer ({found.which('til')}) ser kortere "
        f"historik end modellens længste vindue ({days} dage), fordi data begynder {begins}: "
        "oplysningerne dækker mindre dér end ved senere datoer og ved scoring." + accepted[0],
        f"The earliest {n} of {of} as-of dates ({found.which()}) see less history than the "
        f"model's longest window ({days} days), because the data begin on {begins}: the "
        "features cover less there than at later dates and at scoring." + accepted[1])


def model_card(config: ExperimentConfig, facts: ModelFacts,
               verdict: Verdict | None = None) -> ModelCard:
    """The model card of a training run (Danish and English)."""
    from overblik.fairness import ModelCard
    from overblik.fairness._card import KNOWN_BIASES, LIMITATIONS
    from overblik.fairness._wording import Bilingual

    audit_caveat = Bilingual(
        "Fairness-auditten måler modellen mod de registrerede udfald. Hvis nogle grupper "
        "registreres oftere (mere opsyn), arver både modellen og auditten den skævhed; "
        "afsnittet om skævhed i udfaldet sammenligner med den sande risiko, hvor den kendes "
        "(kun syntetiske data).",
        "The fairness audit measures the model against the recorded outcomes. If some groups "
        "are recorded more often (more surveillance), both the model and the audit inherit "
        "that bias; the label-bias section compares with the true risk where it is known "
        "(synthetic data only).")
    period = Bilingual(
        f"Modellen er kun testet på opgørelsesdatoen {facts.test_as_of.isoformat()}; dens "
        "træfsikkerhed og fairness kan ændre sig over tid og skal overvåges.",
        f"The model was tested on the as-of date {facts.test_as_of.isoformat()} only; its "
        "accuracy and fairness can change over time and must be monitored.")
    return ModelCard(
        name=facts.name, version=facts.version, run_id=facts.run_id,
        description=Bilingual(
            config.description_da.strip() if config.description_da else
            f"(Beskrevet på engelsk i eksperimentfilen:) {config.description.strip()}",
            config.description.strip()),
        cohort=config.cohort, outcome=config.label.outcome,
        horizon_days=config.label.horizon_days,
        as_of_dates=tuple(d.date() for d in config.as_of.dates()),
        test_as_of=facts.test_as_of, data_fingerprint=facts.data_fingerprint,
        demo_data=facts.demo_data, config_hash=config.config_hash(),
        metrics=dict(facts.metrics),
        limitations=(*LIMITATIONS, period, *(
            () if facts.short_history is None
            else (_short_history_limitation(facts.short_history),))),
        known_biases=(*KNOWN_BIASES, audit_caveat), protected_inputs=protected_inputs(config),
        fairness=verdict, effects=facts.effects.effects, allocation=facts.effects.allocation,
        allocation_judged_by=facts.effects.judged_by, confidence=facts.effects.confidence)


@dataclass(frozen=True)
class FairnessRun:
    """The audit of one trained model, with what the report is rendered from."""

    audit: AuditResult
    verdict: Verdict
    thresholds: FairnessThresholds
    card: ModelCard
    proxies: ProxyReport | None
    mitigation: MitigationReport | None
    places: PlacesReport | None = None
    mitigation_skipped: str = ""  # why the mitigation comparison is missing, if it is

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    def render(self, label_bias: LabelBiasReport | None = None) -> str:
        """The fairness report (HTML, Danish and English)."""
        from overblik.fairness import render_report

        return render_report(self.audit, card=self.card, proxies=self.proxies,
                             label_bias=label_bias, mitigation=self.mitigation,
                             places=self.places, thresholds=self.thresholds,
                             title=f"{self.card.name} version {self.card.version}")

    def metrics(self) -> dict[str, float]:
        """``fairness_*`` metrics for MLflow: verdict, largest differences, proxies."""
        out = {"fairness_passed": float(self.passed),
               "fairness_failures": float(len(self.verdict.failures)),
               "fairness_unchecked": float(len(self.verdict.unchecked)),
               "fairness_warnings": float(len(self.verdict.warnings)),
               "fairness_suppressed_groups": float(sum(g.suppressed
                                                       for g in self.audit.groups)),
               "fairness_rows": float(self.audit.n)}
        for metric in CHECKED_METRICS:
            values = [abs(c.difference.value) for c in self.verdict.checks
                      if c.metric == metric and math.isfinite(c.difference.value)]
            if values:
                out[f"fairness_max_{metric}_difference"] = max(values)
        if self.proxies is not None:
            aucs = {r.attribute: r.auc for r in self.proxies.results if math.isfinite(r.auc)}
            out.update({f"fairness_proxy_auc_{a}": float(v) for a, v in aucs.items()})
            if aucs:
                out["fairness_proxy_max_auc"] = float(max(aucs.values()))
        return out


def run_fairness(config: ExperimentConfig, *, estimator: BaseEstimator,
                 X_train: pd.DataFrame, y_train: np.ndarray, A_train: pd.DataFrame,
                 X_test: pd.DataFrame, y_test: np.ndarray, scores: np.ndarray,
                 A_test: pd.DataFrame, facts: ModelFacts,
                 places: PlacesReport | None = None,
                 progress: ProgressFn | None = None) -> FairnessRun:
    """Audit, proxies, mitigation comparison, verdict and model card (nothing is logged).

    Parameters
    ----------
    config
        The experiment; its ``fairness`` section says how.
    estimator
        The fitted, registered model (for the mitigation comparison).
    X_train, y_train, A_train
        Training rows of the last split: features, labels, sensitive attributes.
    X_test, y_test, scores, A_test
        Test rows of the last split with the model's scores.
    facts
        The run's facts for the model card.
    places
        Who gets programme places per group (the effects step), shown in the report.
    progress
        ``progress(description, done, total)``, e.g. for the bootstrap.
    """
    from overblik.fairness import audit, compare_mitigations, decide, proxy_diagnostics

    section = config.fairness
    step = progress or (lambda *_: None)
    threshold, top_k = audit_rule(config, len(y_test))
    A_test = A_test.reset_index(drop=True)
    result = audit(np.asarray(y_test), np.asarray(scores), A_test, threshold=threshold,
                   top_k=top_k, reference=dict(section.reference) or None,
                   intersections=section.intersections, min_count=section.min_count,
                   n_boot=section.n_boot, confidence=section.confidence, seed=config.seed,
                   progress=lambda what, done, total: step(f"audit: {what}", done, total))
    proxies = None
    if section.proxies:
        step("proxies of the sensitive attributes", 0, 1)
        proxies = proxy_diagnostics(X_test.reset_index(drop=True), A_test, seed=config.seed)
    mitigation = None
    skipped = ""
    attribute = section.mitigation.attribute
    if attribute is not None:
        step(f"mitigation on {attribute}", 0, 1)
        try:
            mitigation = compare_mitigations(
                estimator, X_train.reset_index(drop=True), np.asarray(y_train),
                A_train[attribute].reset_index(drop=True), X_test.reset_index(drop=True),
                np.asarray(y_test), A_test[attribute], criteria=section.mitigation.criteria,
                methods=section.mitigation.methods, seed=config.seed,
                max_train_rows=section.mitigation.max_train_rows,
                audited=decide(np.asarray(scores, dtype=np.float64), threshold, top_k)[0])
        except InputError as exc:  # a comparison, not the audit: the audit stands without it
            skipped = f"mitigation on {attribute} not compared: {exc}"
    thresholds = fairness_thresholds(config)
    verdict = thresholds.evaluate(result)
    card = model_card(config, facts, verdict)
    return FairnessRun(audit=result, verdict=verdict, thresholds=thresholds, card=card,
                       proxies=proxies, mitigation=mitigation, places=places,
                       mitigation_skipped=skipped)


def _log_figure(fig: object, path: str) -> None:
    import matplotlib.pyplot as plt

    mlflow.log_figure(fig, path)
    plt.close(fig)  # type: ignore[arg-type]


def log_fairness(run: FairnessRun, *, model_name: str, model_version: str,
                 folder: Path) -> None:
    """Log the report, cards, numbers and plots to the active run; tag run and version.

    ``folder`` is a scratch folder for files that are logged as artifacts.
    """
    from overblik.fairness import plot_tradeoff
    from overblik.fairness._report_plots import plot_disparities

    base = FAIRNESS_ARTIFACTS
    mlflow.log_text(run.render(), f"{base}/report.html")
    mlflow.log_text(json.dumps(run.audit.to_json(), indent=1, ensure_ascii=False),
                    f"{base}/audit.json")
    mlflow.log_text(run.audit.group_table().to_csv(index=False), f"{base}/groups.csv")
    mlflow.log_text(run.audit.disparity_table().to_csv(index=False), f"{base}/disparities.csv")
    for language in ("da", "en"):
        mlflow.log_text(run.card.to_markdown(language), f"{base}/model_card_{language}.md")
    mlflow.log_dict(run.card.to_dict(), f"{base}/model_card.json")
    mlflow.log_text("\n".join(run.verdict.reasons) + "\n" if run.verdict.reasons else "",
                    f"{base}/failures.txt")
    if run.proxies is not None:
        table = run.proxies.table()
        table["top_features"] = table["top_features"].map("; ".join)
        mlflow.log_text(table.to_csv(index=False), f"{base}/proxies.csv")
        mlflow.log_text(run.proxies.feature_table().to_csv(index=False),
                        f"{base}/proxy_features.csv")
    if run.mitigation_skipped:
        mlflow.log_text(run.mitigation_skipped + "\n", f"{base}/mitigation_skipped.txt")
    if run.mitigation is not None:
        mlflow.log_text(run.mitigation.table().to_csv(index=False), f"{base}/mitigation.csv")
        figure = plot_tradeoff(run.mitigation)
        if figure is not None:
            _log_figure(figure, f"{base}/mitigation_tradeoff.png")
    for language in ("da", "en"):
        figure = plot_disparities(run.verdict.checks, language)
        if figure is not None:
            _log_figure(figure, f"{base}/disparities_{language}.png")
    inputs = folder / REPORT_INPUTS
    joblib.dump(run, inputs)
    mlflow.log_artifact(str(inputs), base)
    mlflow.log_metrics(run.metrics())
    passed = str(run.passed).lower()
    mlflow.set_tag(FAIRNESS_PASSED, passed)
    mlflow.MlflowClient().set_model_version_tag(model_name, model_version, FAIRNESS_PASSED,
                                                passed)


def log_label_bias(run_id: str, recorded: np.ndarray, true_probability: np.ndarray,
                   sensitive: pd.DataFrame, *, oracle_gap: float | None = None
                   ) -> LabelBiasReport | None:
    """Label-bias diagnostics into an existing run; its report and model cards are logged
    again with the label-bias section (and the oracle gap among the card's metrics).

    Returns None (and logs nothing) when the run had no fairness step.

    Raises
    ------
    InputError
        When the run's report inputs cannot be read back.
    """
    from overblik.fairness import label_bias_diagnostics

    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(run_id, FAIRNESS_ARTIFACTS)}
    if f"{FAIRNESS_ARTIFACTS}/{REPORT_INPUTS}" not in names:
        return None
    with run_artifact(run_id, f"{FAIRNESS_ARTIFACTS}/{REPORT_INPUTS}") as local:
        try:
            run = joblib.load(local)
        except Exception as exc:  # unpickling code from another version fails in many ways
            raise InputError(f"run {run_id}: its fairness report inputs cannot be read "
                             f"({type(exc).__name__}: {exc}); they were written by another "
                             "version of overblik: train again") from None
    if not isinstance(run, FairnessRun):
        raise InputError(f"run {run_id}: {REPORT_INPUTS} holds no fairness run: train again")
    if oracle_gap is not None and math.isfinite(oracle_gap):
        card = dataclasses.replace(run.card, metrics={**run.card.metrics,
                                                      "oracle_gap": oracle_gap})
        run = dataclasses.replace(run, card=card)
    report = label_bias_diagnostics(recorded, true_probability,
                                    sensitive.reset_index(drop=True),
                                    min_count=run.audit.min_count)
    table = report.table()
    base = FAIRNESS_ARTIFACTS
    with resume_run(run_id):
        mlflow.log_text(table.to_csv(index=False), f"{base}/label_bias.csv")
        mlflow.log_text(run.render(label_bias=report), f"{base}/report.html")
        for language in ("da", "en"):
            mlflow.log_text(run.card.to_markdown(language), f"{base}/model_card_{language}.md")
        mlflow.log_dict(run.card.to_dict(), f"{base}/model_card.json")
        ratios = pd.to_numeric(table["ratio"], errors="coerce").to_numpy(dtype=np.float64)
        finite = ratios[np.isfinite(ratios)]
        if finite.size:
            mlflow.log_metrics({"fairness_label_bias_max_ratio": float(finite.max()),
                                "fairness_label_bias_min_ratio": float(finite.min())})
    return report
