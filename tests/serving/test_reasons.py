"""Reasons in words: language from Accept-Language, values as caseworkers read them, SHAP
output shapes of every shap version."""

from __future__ import annotations

import numpy as np
import pytest

from overblik.features._feature_spec import FeatureDef
from overblik.serving import format_value, pick_language
from overblik.serving._reasons import positive_class, reasons_for


@pytest.mark.parametrize(("header", "lang"), [
    (None, "da"), ("", "da"), ("en", "en"), ("en-GB,en;q=0.9", "en"), ("da, en;q=0.8", "da"),
    ("de-DE, en;q=0.5", "en"), ("en;q=0.4, da;q=0.6", "da"), ("fr, de", "da"), ("*", "da"),
    ("en;q=0", "da"), ("en;q=abc", "da"), ("en-US;q=0.9,da;q=0.9", "en"),
])
def test_language(header: str | None, lang: str) -> None:
    assert pick_language(header) == lang


@pytest.mark.parametrize(("value", "unit", "da", "en"), [
    (3.0, "count", "3", "3"), (12345.0, "dkk", "12.345 kr.", "DKK 12,345"),
    (1.0, "flag", "ja", "yes"), (0.0, "flag", "nej", "no"), (97.5, "days", "97,5 dage",
                                                            "97.5 days"),
    (16.0, "years", "16 år", "16 years"), (float("nan"), "count", "ukendt", "unknown"),
    (2.345, "grade", "2,35", "2.35"),
])
def test_values_in_words(value: float, unit: str, da: str, en: str) -> None:
    assert format_value(value, unit, "da") == da
    assert format_value(value, unit, "en") == en


def test_every_shap_output_shape_gives_the_positive_class() -> None:
    pos = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(positive_class([-pos, pos], 2), pos)
    assert np.array_equal(positive_class(np.stack([-pos, pos], axis=-1), 2), pos)
    assert np.array_equal(positive_class(pos, 2), pos)


def test_reasons_are_ordered_by_size_and_skip_zero() -> None:
    features = [FeatureDef(f"f{i}", f"Beskrivelse {i}", f"Description {i}", "health", "need",
                           "count") for i in range(4)]
    values = np.array([1.0, 2.0, 3.0, 4.0])
    contrib = np.array([0.1, -0.5, 0.0, 0.3])
    top = reasons_for(features, values, contrib, "da", 5)
    assert [r.feature for r in top] == ["f1", "f3", "f0"]
    assert top[0].sentence == "Beskrivelse 1: 2 – trækker risikoen ned"
    assert top[1].direction == "raises"
    assert len(reasons_for(features, values, contrib, "en")) == 4
    assert reasons_for(features, values, contrib, "en", 1)[0].sentence.endswith(
        "lowers the risk")


def test_reasons_leave_out_contributions_below_the_minimum_size() -> None:
    features = [FeatureDef(f"f{i}", f"Beskrivelse {i}", f"Description {i}", "health", "need",
                           "count") for i in range(4)]
    values = np.array([1.0, 2.0, 3.0, 4.0])
    contrib = np.array([0.1, -0.5, 2e-7, 0.3])
    kept = reasons_for(features, values, contrib, "en", 5, of="effect", min_size=0.2)
    assert [r.feature for r in kept] == ["f1", "f3"]
    assert kept[0].sentence == "Description 1: 2 – lowers the expected effect"
    # The size is absolute: -0.5 counts as large; the boundary is kept.
    assert [r.feature for r in reasons_for(features, values, contrib, "en", None,
                                           min_size=0.1)] == ["f1", "f3", "f0"]
    assert reasons_for(features, values, contrib, "en", 5, min_size=1.0) == []
