"""The fairness report in a real browser: no errors, no network, both languages readable.

Screenshots are kept in ``data/screenshots/`` (git-ignored) so people can look at them.
"""

from __future__ import annotations

from pathlib import Path

from overblik.fairness import FairnessThresholds, audit, write_report
from tests.browser import open_local_page, require_chromium, screenshot_is_blank
from tests.fairness.test_card import card
from tests.fairness.test_report import synthetic_scores

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "data" / "screenshots"

HEADINGS = {
    "da": ("Konklusion", "Grupper og krydsgrupper", "Forskelle mellem grupper",
           "Kalibrering pr. gruppe", "Modelkort"),
    "en": ("Verdict", "Groups and intersections", "Differences between groups",
           "Calibration by group", "Model card"),
}


def test_report_opens_cleanly_in_both_languages(tmp_path: Path) -> None:
    require_chromium()  # before the audit: skip fast where there is no browser
    y, score, sensitive = synthetic_scores(4000, gap=0.25, seed=1)
    result = audit(y, score, sensitive, top_k=600, reference={"origin": "danish"},
                   n_boot=60, seed=0)
    verdict = FairnessThresholds().evaluate(result)
    assert not verdict.passed
    report = write_report(tmp_path / "report.html", result, card=card(fairness=verdict))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with open_local_page(report) as (page, problems):
        for heading in HEADINGS["da"]:
            assert page.get_by_role("heading", name=heading, exact=True).is_visible(), heading
        assert not page.get_by_role("heading", name="Verdict", exact=True).is_visible()
        assert page.locator(".page-da .verdict.fail").is_visible()
        assert page.locator(".page-da td.suppressed").first.is_visible()
        # Every embedded figure decoded (a broken data URI has no natural width).
        widths = page.eval_on_selector_all(".page-da img", "els => els.map(e => e.naturalWidth)")
        assert len(widths) >= 2 and all(w > 300 for w in widths)
        danish = page.screenshot(full_page=True, path=str(SCREENSHOTS / "fairness_report.png"))

        page.get_by_text("English", exact=True).click()
        for heading in HEADINGS["en"]:
            assert page.get_by_role("heading", name=heading, exact=True).is_visible(), heading
        assert not page.get_by_role("heading", name="Konklusion", exact=True).is_visible()
        assert page.locator(".page-en .verdict.fail").is_visible()
        english = page.screenshot(full_page=True,
                                  path=str(SCREENSHOTS / "fairness_report_en.png"))
        assert problems.all() == []
        # The blank check can fail: an empty page is blank.
        page.set_content("<html><body></body></html>")
        empty = page.screenshot()

    assert screenshot_is_blank(empty)

    for png in (danish, english):
        assert len(png) > 50_000 and not screenshot_is_blank(png)
