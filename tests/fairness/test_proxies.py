"""Proxy diagnostics find a planted proxy and see nothing in noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from overblik.fairness import ProxyReport, proxy_diagnostics
from overblik.features import InputError


@pytest.fixture(scope="module")
def report() -> ProxyReport:
    rng = np.random.default_rng(0)
    n = 3000
    origin = rng.choice(["danish", "immigrant", "descendant"], n, p=[0.7, 0.2, 0.1])
    sex = rng.choice(["F", "M"], n)
    X = pd.DataFrame({
        "benefit_days": rng.gamma(2.0, 50.0, n),
        "gp_contacts": rng.poisson(3.0, n).astype(float),
        # The planted proxy: the attribute plus noise.
        "district_share": (origin != "danish") * 1.0 + rng.normal(scale=0.4, size=n),
        "school": rng.choice(["a", "b", "c"], n),  # text: becomes a category
        "absence": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
    })
    sensitive = pd.DataFrame({"origin": origin, "sex": sex,
                              "random": rng.choice(["u", "v"], n)})
    sensitive.loc[:49, "sex"] = None  # missing values are left out, not a class
    return proxy_diagnostics(X, sensitive, seed=1, max_rows=2500)


def test_planted_proxy_is_found_and_named_first(report: ProxyReport) -> None:
    origin = report.result("origin")
    assert origin.auc > 0.8
    assert origin.top_features[0].feature == "district_share"
    assert origin.top_features[0].importance > 0.4
    assert set(origin.classes) == {"danish", "immigrant", "descendant"}
    assert origin.n == 2500  # max_rows sample


def test_attributes_nothing_carries_have_auc_near_half(report: ProxyReport) -> None:
    for attribute in ("sex", "random"):
        assert 0.42 < report.result(attribute).auc < 0.58
    assert report.result("sex").classes == ("F", "M")
    assert report.result("sex").n < 2500  # rows with sex missing left out


def test_tables(report: ProxyReport) -> None:
    table = report.table()
    assert list(table.columns) == ["attribute", "n", "auc", "classes", "top_features"]
    assert list(table["attribute"]) == ["origin", "sex", "random"]
    features = report.feature_table()
    first = features[(features["attribute"] == "origin") & (features["rank"] == 1)]
    assert first["feature"].item() == "district_share"
    shares = features.groupby("attribute")["importance"].sum()
    assert (shares <= 1 + 1e-9).all()


def test_one_group_has_no_auc() -> None:
    X = pd.DataFrame({"x": np.arange(40.0)})
    res = proxy_diagnostics(X, pd.DataFrame({"g": ["a"] * 40}))
    assert np.isnan(res.result("g").auc) and res.result("g").top_features == ()


def test_bad_input_names_the_problem() -> None:
    X = pd.DataFrame({"x": np.arange(10.0)})
    with pytest.raises(InputError, match="X has 10 rows but sensitive has 9"):
        proxy_diagnostics(X, pd.DataFrame({"g": ["a"] * 9}))
    with pytest.raises(InputError, match="sensitive column 'g' is missing for every row"):
        proxy_diagnostics(X, pd.DataFrame({"g": [None] * 10}))


def test_a_continuous_attribute_is_refused() -> None:
    # Before, each age was a class, classes rarer than the folds were dropped and the AUC
    # came from a few dozen rows, silently.
    rng = np.random.default_rng(1)
    age = rng.uniform(18, 80, 300).round(1)
    X = pd.DataFrame({"x": age + rng.normal(0, 1, 300)})
    with pytest.raises(InputError, match=r"sensitive column 'age' has .* distinct values"):
        proxy_diagnostics(X, pd.DataFrame({"age": age}))
