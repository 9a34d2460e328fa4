"""The fairness report: verdict against thresholds, suppression, both languages, one file."""

from __future__ import annotations

import html as htmllib
import re
import string
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from overblik.fairness import (
    METRICS,
    AuditResult,
    CalibrationCurve,
    Disparity,
    FairnessThresholds,
    GroupResult,
    Interval,
    audit,
    render_report,
    write_report,
)
from overblik.fairness._wording import _TEXT, format_number, text

SUPPRESSED = "undertrykt / suppressed (n < 20)"
# Exact counts chosen so a leak is recognisable: none may appear in a rendered report.
N_DANISH, N_IMMIGRANT, N_DESCENDANT = 3004, 806, 13


def iv(value: float, half: float = 0.02) -> Interval:
    return Interval(value, value - half, value + half)


def hand_audit(*, gap: float = 0.0, half: float = 0.02, min_count: int = 20,
               extra_disparities: tuple[Disparity, ...] = ()) -> AuditResult:
    """An audit built by hand: origin (descendants tiny), sex and their intersection.

    The selection rate of immigrants is ``gap`` above that of the reference (Danish origin),
    with an interval of ± ``half``; every other difference is 0.01.
    """
    base = {m: iv(0.3) for m in METRICS}
    layout = {
        "origin": [("danish", N_DANISH, 0.0), ("immigrant", N_IMMIGRANT, gap),
                   ("descendant", N_DESCENDANT, 0.0)],
        "sex": [("F", 1912, 0.0), ("M", 1911, 0.0)],
        "origin&sex": [("danish&F", 1502, 0.0), ("danish&M", 1502, 0.0),
                       ("immigrant&F", 403, gap), ("immigrant&M", 403, gap),
                       ("descendant&F", 7, 0.0), ("descendant&M", 6, 0.0)],
    }
    references = {"origin": "danish", "sex": "F", "origin&sex": "danish&F"}
    groups, disparities, curves = [], list(extra_disparities), []
    for attribute, rows in layout.items():
        for group, n, shift in rows:
            suppressed = n < min_count
            metrics = {} if suppressed else {
                **base, "selection_rate": iv(0.30 + shift, half), "ece": iv(0.02, 0.01)}
            groups.append(GroupResult(attribute=attribute, group=group, n=n,
                                      suppressed=suppressed, metrics=metrics))
            if suppressed:
                continue
            if group != references[attribute]:
                for metric in ("selection_rate", "tpr", "fpr", "ece"):
                    diff = shift if metric == "selection_rate" else 0.01
                    width = half if metric == "selection_rate" else 0.02
                    disparities.append(Disparity(
                        attribute=attribute, group=group, reference=references[attribute],
                        metric=metric, difference=iv(diff, width), ratio=iv(1.0 + diff, 0.1)))
            if "&" not in attribute:
                p = np.linspace(0.05, 0.6, 8)
                curves.append(CalibrationCurve(attribute=attribute, group=group,
                                               mean_predicted=tuple(p), observed=tuple(p),
                                               n=(n // 8,) * 8))
    return AuditResult(
        n=N_DANISH + N_IMMIGRANT + N_DESCENDANT, decision="top_k", threshold=None, top_k=380,
        references=references, overall=dict(base), groups=tuple(groups),
        disparities=tuple(disparities), calibration=tuple(curves), min_count=min_count,
        n_boot=200, confidence=0.95, seed=0)


@cache
def rendered(gap: float = 0.0, half: float = 0.02) -> str:
    """The report of :func:`hand_audit` (rendered once per module run: figures are slow)."""
    return render_report(hand_audit(gap=gap, half=half))


def table_rows(html: str) -> list[str]:
    """The visible text of every table row."""
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    return [" ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", r)).split()) for r in rows]


def visible_text(html: str) -> str:
    """The page's text without tags and embedded images."""
    html = re.sub(r'src="data:[^"]*"', "", html)
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def article(html: str, language: str) -> str:
    match = re.search(rf'<article class="page page-{language}" lang="{language}".*?</article>',
                      html, flags=re.S)
    assert match, f"no {language} article"
    return match.group(0)


# -- the verdict -----------------------------------------------------------------------------

def test_a_planted_gap_fails_and_no_gap_passes() -> None:
    failed = FairnessThresholds().evaluate(hand_audit(gap=0.20))
    assert not failed.passed
    assert any(f.startswith("selection_rate origin=immigrant vs danish") for f in failed.failures)
    # Only the planted selection-rate gaps fail (origin and both intersection groups).
    assert {(c.attribute, c.group) for c in failed.checks if c.status == "fail"} == {
        ("origin", "immigrant"), ("origin&sex", "immigrant&F"), ("origin&sex", "immigrant&M")}
    passed = FairnessThresholds().evaluate(hand_audit(gap=0.0))
    assert passed.passed and passed.failures == () and passed.warnings == ()

    html_fail = rendered(0.20)
    html_pass = rendered(0.0)
    assert html_fail.count('data-verdict="fail"') == 2 and 'data-verdict="pass"' not in html_fail
    assert html_pass.count('data-verdict="pass"') == 2 and 'data-verdict="fail"' not in html_pass
    for language in ("da", "en"):
        assert text("verdict_fail", language) in article(html_fail, language)
        assert text("verdict_pass", language) in article(html_pass, language)
    # The verdict names the biggest gap with its interval, in plain words.
    assert ("Udvælgelsesrate for indvandrere er 20,0 procentpoint højere end for dansk "
            "oprindelse (95 %-interval for forskellen: +18,0 til +22,0; grænse ±10,0 "
            "procentpoint). Hele intervallet ligger uden for grænsen.") in visible_text(html_fail)
    assert ("Selection rate for immigrants is 20.0 percentage points higher than for Danish "
            "origin (95% interval of the difference: +18.0 to +22.0; limit ±10.0 percentage "
            "points). The whole interval lies beyond the limit.") in visible_text(html_fail)


def test_the_point_estimate_decides_and_the_interval_is_reported() -> None:
    policy = FairnessThresholds()
    # Beyond the limit, but the interval reaches back inside: still a failure.
    straddling = policy.evaluate(hand_audit(gap=0.12, half=0.05))
    check = next(c for c in straddling.checks
                 if (c.attribute, c.group, c.metric) == ("origin", "immigrant", "selection_rate"))
    assert check.status == "fail" and not check.interval_beyond and check.interval_reaches
    assert not straddling.passed
    assert "interval reaches beyond the limit" in straddling.failures[0]
    assert "begge sider af grænsen" in check.sentence("da")
    # Within the limit, but the interval reaches beyond it: passes with a warning.
    uncertain = policy.evaluate(hand_audit(gap=0.08, half=0.05))
    assert uncertain.passed and len(uncertain.warnings) == 3
    html = rendered(0.08, 0.05)
    assert html.count('data-verdict="warn"') == 2
    assert "en forskel større end grænsen kan ikke udelukkes" in html
    # Both directions count: a group selected far less often fails too.
    lower = policy.evaluate(hand_audit(gap=-0.2))
    fail = next(c for c in lower.checks if c.status == "fail")
    assert not lower.passed and fail.difference.value < 0 and fail.interval_beyond
    assert " lavere end " in fail.sentence("da") and " lower than " in fail.sentence("en")


def test_policy_limits_and_minimum_count() -> None:
    assert FairnessThresholds(selection_rate=0.25).evaluate(hand_audit(gap=0.20)).passed
    with pytest.raises(ValidationError):
        FairnessThresholds(selection_rate=0.0)
    with pytest.raises(ValidationError):
        FairnessThresholds(selection_rat=0.1)  # type: ignore[call-arg]
    # An audit that suppressed less than the policy demands fails, whatever its numbers.
    lax = FairnessThresholds().evaluate(hand_audit(gap=0.0, min_count=5))
    assert not lax.passed
    assert lax.failures[0].startswith("the audit suppresses groups below 5 persons")
    # A disparity of a suppressed group (from a careless upstream) is never assessed.
    leak = Disparity(attribute="origin", group="descendant", reference="danish",
                     metric="selection_rate", difference=iv(0.5), ratio=iv(6.0))
    assert FairnessThresholds().evaluate(hand_audit(extra_disparities=(leak,))).passed


def test_ece_differences_come_from_group_metrics_when_the_audit_has_none() -> None:
    result = hand_audit(gap=0.0)
    without_ece = result.__class__(**{**result.__dict__, "disparities": tuple(
        d for d in result.disparities if d.metric != "ece")})
    groups = tuple(
        g.__class__(**{**g.__dict__, "metrics": {**g.metrics, "ece": iv(0.09)}})
        if g.group == "immigrant" else g for g in without_ece.groups)
    verdict = FairnessThresholds().evaluate(without_ece.__class__(
        **{**without_ece.__dict__, "groups": groups}))
    ece = next(c for c in verdict.checks
               if (c.attribute, c.group, c.metric) == ("origin", "immigrant", "ece"))
    assert ece.difference.value == pytest.approx(0.07) and not ece.has_interval
    assert not verdict.passed and "no interval" in verdict.failures[0]


# -- suppression -----------------------------------------------------------------------------

def test_suppressed_groups_show_no_numbers() -> None:
    html = rendered(0.20)
    rows = table_rows(html)
    hidden = [r for r in rows if "efterkommere" in r or "descendants" in r]
    # origin, origin&sex (two groups) in each language; no disparity row for them.
    assert len(hidden) == 2 * 3
    for row in hidden:
        assert SUPPRESSED in row
        assert not re.search(r"\d", row.replace(SUPPRESSED, "").replace("< 20", ""))
    # Counts of the other origin groups are rounded so the hidden 13 cannot be derived.
    shown = visible_text(html)
    for exact in (N_DANISH, N_IMMIGRANT, 1502, 403):
        assert str(exact) not in shown and format_number(exact, "da", 0) not in shown
    assert "≈3 000" in shown.replace("\u00a0", " ") and "≈810" in shown
    # An attribute without suppressed groups shows exact counts.
    assert "1 912" in shown.replace("\u00a0", " ") or "1\u2009912" in shown


def test_a_stricter_policy_suppresses_what_the_audit_showed() -> None:
    html = render_report(hand_audit(min_count=5), thresholds=FairnessThresholds(min_count=20))
    descendant = [r for r in table_rows(html) if "efterkommere" in r or "descendants" in r]
    assert len(descendant) == 2 * 3 and all(SUPPRESSED in r for r in descendant)
    assert html.count('data-verdict="fail"') == 2
    assert "min_count=20" in visible_text(html)


# -- the page --------------------------------------------------------------------------------

def test_the_report_is_one_self_contained_file() -> None:
    html = rendered(0.20)
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "url(" not in html  # no CSS fetches either
    targets = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert targets and all(t.startswith(("data:image/png;base64,", "#")) for t in targets)
    assert sum(t.startswith("data:") for t in targets) >= 4  # disparity + calibration, ×2
    assert "default-src 'none'" in html


def test_both_languages_are_in_the_page() -> None:
    html = rendered(0.20)
    assert html.startswith("<!DOCTYPE html>") and '<html lang="da">' in html
    da, en = article(html, "da"), article(html, "en")
    for key in ("verdict", "overall", "groups", "disparities", "calibration", "method"):
        assert f">{text(key, 'da')}</h2>" in da, key
        assert f">{text(key, 'en')}</h2>" in en, key
    # Danish decimal comma, English point.
    assert "30,0\u00a0%" in da and "30.0%" in en
    assert "dansk oprindelse (ref.)" in da and "Danish origin (ref.)" in en


def test_placeholders_match_between_the_languages() -> None:
    def fields(s: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(s) if name}

    for key, wording in _TEXT.items():
        assert wording.da.strip() and wording.en.strip(), key
        assert fields(wording.da) == fields(wording.en), key


def test_write_report_creates_the_folder(tmp_path: Path) -> None:
    target = write_report(tmp_path / "a" / "b" / "report.html", hand_audit(),
                          title="Børn: audit ÆØÅ")
    assert target.is_file()
    page = target.read_text(encoding="utf-8")
    assert "<title>Børn: audit ÆØÅ</title>" in page
    assert page.count("<h1>Børn: audit ÆØÅ</h1>") == 2


# -- with the real audit ---------------------------------------------------------------------

def synthetic_scores(n: int, *, gap: float, seed: int) -> tuple[np.ndarray, np.ndarray,
                                                                pd.DataFrame]:
    """Outcomes, scores and sensitive attributes; immigrants' scores shifted by ``gap``."""
    rng = np.random.default_rng(seed)
    origin = rng.choice(["danish", "immigrant", "descendant"], size=n, p=[0.7, 0.297, 0.003])
    sex = rng.choice(["F", "M"], size=n)
    risk = rng.beta(2, 6, size=n)
    y = (rng.random(n) < risk).astype(int)
    score = np.clip(risk + np.where(origin == "immigrant", gap, 0.0), 0, 1)
    return y, score, pd.DataFrame({"origin": origin, "sex": sex})


def test_real_audit_planted_gap_fails_and_fair_scores_pass() -> None:
    y, score, sensitive = synthetic_scores(4000, gap=0.25, seed=1)
    unfair = audit(y, score, sensitive, threshold=0.4, reference={"origin": "danish"},
                   n_boot=60, seed=0)
    verdict = FairnessThresholds().evaluate(unfair)
    assert not verdict.passed
    assert any("selection_rate origin=immigrant" in f for f in verdict.failures)
    html = render_report(unfair)
    assert html.count('data-verdict="fail"') == 2
    # The 12 or so descendants are suppressed everywhere in the page.
    assert [g.group for g in unfair.groups if g.suppressed and g.attribute == "origin"] == [
        "descendant"]
    assert all(SUPPRESSED in r for r in table_rows(html) if r.startswith("efterkommere"))

    y, score, sensitive = synthetic_scores(4000, gap=0.0, seed=2)
    fair = audit(y, score, sensitive, threshold=0.4, reference={"origin": "danish"},
                 intersections=False, n_boot=60, seed=0)
    assert FairnessThresholds().evaluate(fair).passed
    assert render_report(fair).count('data-verdict="fail"') == 0


def test_diagnostic_sections_appear_with_small_groups_suppressed() -> None:
    from sklearn.linear_model import LogisticRegression

    from overblik.fairness import compare_mitigations, label_bias_diagnostics, proxy_diagnostics

    rng = np.random.default_rng(3)
    n = 3000
    y, score, sensitive = synthetic_scores(n, gap=0.0, seed=3)
    # One feature is a proxy for origin (e.g. the share of immigrants on the street).
    X = pd.DataFrame({"street_mix": (sensitive["origin"] == "immigrant") + rng.normal(0, .5, n),
                      "noise": rng.normal(size=n)})
    proxies = proxy_diagnostics(X, sensitive[["origin"]], seed=0, folds=2)
    # Immigrants' outcomes are recorded twice as often as they happen (more surveillance).
    true_p = np.full(n, 0.1)
    recorded = rng.random(n) < np.where(sensitive["origin"] == "immigrant", 0.2, 0.1)
    label_bias = label_bias_diagnostics(recorded, true_p, sensitive[["origin"]])
    half = n // 2
    mitigation = compare_mitigations(
        LogisticRegression(), X.iloc[:half], y[:half], sensitive["origin"].iloc[:half],
        X.iloc[half:], y[half:], sensitive["origin"].iloc[half:],
        criteria=("demographic_parity",), methods=("threshold_optimizer",), seed=0)

    html = render_report(audit(y, score, sensitive, threshold=0.4, n_boot=30),
                         proxies=proxies, label_bias=label_bias, mitigation=mitigation)
    for key in ("mitigation", "proxies", "label_bias"):
        for language in ("da", "en"):
            assert f">{text(key, language)}</h2>" in article(html, language), key
    rows = table_rows(html)
    # Label bias: descendants (about 9 persons) suppressed, immigrants over-recorded.
    assert len([r for r in rows if "efterkommere" in r and SUPPRESSED in r]) >= 2
    immigrants = next(r for r in rows if r.startswith("Herkomst indvandrere ≈"))
    ratio = float(immigrants.split()[-3].replace(",", "."))
    assert 1.5 < ratio < 2.6
    proxy_row = next(r for r in rows if r.startswith("Herkomst") and "street_mix" in r)
    assert re.search(r" 0,[5-9]\d\d ", proxy_row)  # the AUC, with a decimal comma
    assert "tærskler pr. gruppe (ThresholdOptimizer)" in html
    assert "thresholds per group (ThresholdOptimizer)" in html
    assert sum(t.startswith("data:") for t in re.findall(r'src="([^"]*)"', html)) == 6


def test_every_group_of_a_calibration_panel_is_told_apart() -> None:
    """Twelve districts on a ten-colour cycle drew D01 and D11 (and D02 and D12) alike: each
    curve now has its own colour and marker combination."""
    from overblik.fairness import audit, plot_group_calibration

    rng = np.random.default_rng(2)
    n = 12_000
    districts = np.array([f"D{i:02d}" for i in range(1, 13)])[rng.integers(0, 12, n)]
    score = rng.uniform(size=n)
    y = (rng.uniform(size=n) < score).astype(int)
    result = audit(y, score, pd.DataFrame({"district": districts}), threshold=0.5, n_boot=0,
                   intersections=False)
    fig = plot_group_calibration(result, "en", min_count=20)
    assert fig is not None
    ax = fig.axes[0]
    curves = [line for line in ax.get_lines() if not line.get_label().startswith("perfect")]
    assert len(curves) == 12
    looks = {(line.get_color() if isinstance(line.get_color(), str)
              else tuple(line.get_color()), line.get_marker()) for line in curves}
    assert len(looks) == 12
    assert len({tuple(np.round(np.asarray(line.get_color()), 6)) for line in curves}) == 12
