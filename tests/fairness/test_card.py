"""The model card: required sections in Danish and English, a lossless dict form."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime

import pytest

from overblik.fairness import Bilingual, FairnessThresholds, ModelCard, render_report
from overblik.fairness._card import PolicyBenefit, ProgrammeEffect
from tests.fairness.test_report import article, hand_audit, visible_text

REQUIRED = {
    "da": ("Tilsigtet brug", "Brug uden for formålet", "Målgruppe og udfald", "Data og periode",
           "Nøgletal", "Fairness", "Begrænsninger", "Kendte skævheder", "Sporbarhed"),
    "en": ("Intended use", "Out-of-scope uses", "Cohort and outcome", "Data and period",
           "Metrics", "Fairness", "Limitations", "Known biases", "Provenance"),
}


def card(**changes: object) -> ModelCard:
    base = ModelCard(
        name="overblik-child-placement", version="4", run_id="0123abcd",
        created=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        cohort="children_in_families", outcome="child_placement", horizon_days=366,
        as_of_dates=(date(2023, 1, 1), date(2023, 4, 1), date(2024, 1, 1)),
        test_as_of=date(2024, 1, 1), data_fingerprint="9f8e7d6c5b4a", demo_data=True,
        config_hash="c0ffee1234567890",
        metrics={"test_auc": 0.8123, "test_ece": 0.0123, "precision_at_k": 0.41},
        protected_inputs=("age_years",),
        fairness=FairnessThresholds().evaluate(hand_audit(gap=0.2)),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("language", ["da", "en"])
def test_markdown_has_every_required_section(language: str) -> None:
    md = card().to_markdown(language).replace("\u00a0", " ")  # type: ignore[arg-type]
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert headings == list(REQUIRED[language])
    title = "# Modelkort" if language == "da" else "# Model card"
    assert md.startswith(f"{title}: overblik-child-placement (version 4)\n")
    for fact in ("`0123abcd`", "`c0ffee1234567890`", "`9f8e7d6c5b4a`", "2023-01-01",
                 "2024-01-01", "366"):
        assert fact in md, fact
    if language == "da":
        assert "aldrig bruges til automatiske afgørelser" in md
        assert "- **AUC (test):** 0,8123" in md and "Alder (år)" in md
        assert "Overholder IKKE tærsklerne" in md
        assert "Udvælgelsesrate for indvandrere er 20,0 procentpoint højere" in md
    else:
        assert "must never be used for automated decisions" in md
        assert "- **AUC (test):** 0.8123" in md and "Age (years)" in md
        assert "Does NOT meet the thresholds" in md
        assert "Selection rate for immigrants is 20.0 percentage points higher" in md


def test_demo_flag_and_missing_audit_are_said_plainly() -> None:
    demo = card().to_markdown("en")
    assert "> **DEMO DATA: synthetic citizens." in demo
    real = card(demo_data=False, fairness=None).to_markdown("da")
    assert "DEMODATA" not in real
    assert "- **Resultat mod tærsklerne:** ikke auditeret endnu" in real
    assert "- **Demodata (syntetiske borgere):** nej" in real
    passed = card(fairness=FairnessThresholds().evaluate(hand_audit(gap=0.0))).to_markdown("en")
    assert "- **Result against the thresholds:** Meets the thresholds" in passed


def test_own_texts_replace_the_defaults_and_are_escaped() -> None:
    own = card(limitations=(Bilingual("Kun *børn* i [kommunen]", "Children *only*"),),
               known_biases=())
    md_da, md_en = own.to_markdown("da"), own.to_markdown("en")
    assert "- Kun \\*børn\\* i \\[kommunen\\]" in md_da
    assert "- Children \\*only\\*" in md_en
    assert "feedback" not in md_en  # the default limitations were replaced


def test_dict_form_is_strict_json_and_reads_back() -> None:
    # A verdict whose ECE checks have no interval (NaN bounds) must survive the trip.
    result = hand_audit(gap=0.2)
    no_ece = dataclasses.replace(result, disparities=tuple(
        d for d in result.disparities if d.metric != "ece"))
    original = card(fairness=FairnessThresholds().evaluate(no_ece))
    assert any(not c.has_interval for c in original.fairness.checks)  # type: ignore[union-attr]
    data = original.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert data["created"] == "2025-03-01T12:00:00Z" and data["as_of_dates"][0] == "2023-01-01"
    again = ModelCard.from_dict(json.loads(text))
    assert again.to_dict() == data
    assert again.to_markdown("da") == original.to_markdown("da")
    assert again.fairness is not None and not again.fairness.passed


def test_effect_models_are_stated_with_what_their_numbers_mean() -> None:
    """A version with effect models: each programme's average with its interval; an
    interval over 0, poor overlap and an allocation that places no one are said in words;
    a version without has no such section."""
    effects = (ProgrammeEffect("family_support", ate=-0.0127, ci_low=-0.0572, ci_high=0.0318,
                               trimmed_share=0.48, places=100, cost=60.0),
               ProgrammeEffect("mentor", ate=0.031, ci_low=0.012, ci_high=0.05,
                               trimmed_share=0.02, places=30, cost=1500.0))
    allocation = (PolicyBenefit("effect", 0.0, 0), PolicyBenefit("risk", -10.34, 100),
                  PolicyBenefit("random", -13.29, 100))
    with_effects = card(effects=effects, allocation=allocation,
                        allocation_judged_by="doubly_robust")
    da = with_effects.to_markdown("da").replace("\u00a0", " ")
    en = with_effects.to_markdown("en").replace("\u00a0", " ")
    headings = [line[3:] for line in en.splitlines() if line.startswith("## ")]
    assert headings.index("Programme effects (estimated)") == headings.index("Metrics") + 1
    assert ("- **intensive family support (family_support):** −0.0127 \\[−0.0572; "
            "+0.0318\\]; 48% of the training rows trimmed; 100 places at 60 each") in en
    assert ("- **intensiv familiestøtte (family_support):** −0,0127 \\[−0,0572; +0,0318\\]; "
            "48 % af træningsrækkerne") in da
    assert "- intensive family support: the interval includes 0" in en
    assert "mentor programme: the interval includes 0" not in en
    assert "intensive family support: 48% of the training rows were trimmed" in en
    assert "mentor programme: 2%" not in en
    # Cohort and outcome in words, not only as codes.
    assert "The model scores children under 18 living in the municipality and predicts " \
           "out-of-home placement within 366 days" in en
    assert "Modellen scorer børn under 18 år, der bor i kommunen og forudsiger anbringelse " \
           "uden for hjemmet inden for 366 dage" in da
    assert "by risk: 100 places, −10.3" in en and "doubly robust scores" in en
    assert "leaves the places empty" in en and "lader pladserne stå tomme" in da
    assert "intervallet omfatter 0" in da
    imputed = dataclasses.replace(with_effects, allocation_judged_by="imputed")
    assert "the one the model of citizens with the programme predicts" in imputed.to_markdown(
        "en").replace("\u00a0", " ")
    again = ModelCard.from_dict(json.loads(json.dumps(with_effects.to_dict())))
    assert again.effects == effects and again.allocation == allocation
    assert "Programme effects" not in card().to_markdown("en")


def test_from_dict_names_the_bad_field() -> None:
    data = card().to_dict()
    data["horizon_days"] = "a year"
    with pytest.raises(ValueError, match="horizon_days"):
        ModelCard.from_dict(data)


def test_the_report_shows_the_card_in_both_languages() -> None:
    html = render_report(hand_audit(gap=0.2), card=card())
    for language, headings in REQUIRED.items():
        page = article(html, language)
        for heading in headings:
            assert f"<h3>{heading}</h3>" in page, heading
    shown = visible_text(html)
    assert "DEMODATA: syntetiske borgere." in shown and "DEMO DATA: synthetic citizens." in shown
    assert "overblik-child-placement (version 4)" in shown
