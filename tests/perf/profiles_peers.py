"""Peers of the profile benchmark: the same features as a plan, as one DuckDB SQL query.

``feature_plan(spec)`` lists, per feature of the spec (in the column order of ``X``), what it
aggregates -- a plain JSON-able description that the DuckDB query below and the featuretools
script (``profiles_featuretools.py``, run in its own environment) both build from, so all
three compute the same features. Supported: event blocks without ``household`` (count, sum,
mean, max, days_since_last) and person-level ``cross_silo`` blocks: the benchmark's spec.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from overblik.features._contracts import SOURCE_BY_NAME
from overblik.features._feature_spec import (
    CrossSiloBlock,
    EventBlock,
    FeatureSpec,
    expand,
    no_event_days,
)


@dataclass(frozen=True)
class PlannedFeature:
    """One feature: an aggregation of one event type over a window, or a silo count."""

    name: str
    kind: str  # "event" or "cross_silo"
    window: int
    source: str = ""
    event_type: str = ""
    agg: str = ""  # count, sum, mean, max, days_since_last
    value: str = ""
    sources: tuple[str, ...] = ()

    @property
    def empty(self) -> float:
        """The value when no event is in the window."""
        return no_event_days(self.window) if self.agg == "days_since_last" else 0.0


def feature_plan(spec: FeatureSpec) -> list[PlannedFeature]:
    """The spec's features as plain descriptions, in the column order of ``X``."""
    plan: list[PlannedFeature] = []
    for block in spec.blocks:
        if isinstance(block, EventBlock) and not block.household:
            for code in block.types:
                for w in block.windows_days:
                    for agg in block.aggregations:
                        if agg == "distinct_event_types":
                            raise ValueError("the peers do not implement distinct_event_types")
                        value = block.value if agg in ("sum", "mean", "max") else ""
                        name = (f"{block.source}__{code}__{value}_{agg}_{w}d" if value
                                else f"{block.source}__{code}__{agg}_{w}d")
                        plan.append(PlannedFeature(name, "event", w, block.source, code, agg,
                                                   value or ""))
        elif isinstance(block, CrossSiloBlock) and not block.household:
            suffix = "" if len(block.sources) == 6 else "_of_" + "_".join(block.sources)
            plan.extend(PlannedFeature(f"cross_silo__silos_known{suffix}_{w}d", "cross_silo", w,
                                       sources=block.sources) for w in block.windows_days)
        else:
            raise ValueError(f"the peers do not implement {type(block).__name__} blocks "
                             "(household, spells, population)")
    names = [f.name for f in expand(spec)]
    if [p.name for p in plan] != names:
        raise AssertionError("the plan's names drifted from expand(spec)")
    return plan


def plan_json(plan: list[PlannedFeature]) -> list[dict[str, object]]:
    return [asdict(p) for p in plan]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def profile_sql(plan: list[PlannedFeature], clean: Path, dates: list[str]) -> str:
    """One DuckDB query: every (person, as_of) of the register x dates, the plan's columns."""
    sources: dict[str, list[PlannedFeature]] = {}
    cross_windows: dict[str, set[int]] = {}
    for f in plan:
        if f.kind == "event":
            sources.setdefault(f.source, []).append(f)
        else:
            for s in f.sources:
                sources.setdefault(s, [])
                cross_windows.setdefault(s, set()).add(f.window)
    ctes = ["dates(as_of) AS (VALUES " + ", ".join(f"(TIMESTAMP '{d}')" for d in dates) + ")",
            f"persons AS (SELECT person_id FROM read_parquet('{clean / 'population.parquet'}'))"]
    joins, selects = [], []
    for source, feats in sources.items():
        if source not in SOURCE_BY_NAME:
            raise ValueError(source)
        windows = {f.window for f in feats} | cross_windows.get(source, set())
        exprs = []
        for f in feats:
            cond = (f"e.event_type = '{f.event_type}' AND "
                    f"e.event_time >= a.as_of - INTERVAL {f.window} DAY")
            if f.agg == "count":
                exprs.append(f"count(*) FILTER (WHERE {cond}) AS {_q(f.name)}")
            elif f.agg == "days_since_last":
                exprs.append(f"date_diff('microsecond', max(e.event_time) FILTER (WHERE {cond}), "
                             f"a.as_of) / 86400e6 AS {_q(f.name)}")
            else:
                fn = {"sum": "sum", "mean": "avg", "max": "max"}[f.agg]
                exprs.append(f"{fn}(e.{f.value}) FILTER (WHERE {cond}) AS {_q(f.name)}")
            selects.append(f"coalesce(s_{source}.{_q(f.name)}, {f.empty}) AS {_q(f.name)}")
        exprs.extend(f"count(*) FILTER (WHERE e.event_time >= a.as_of - INTERVAL {w} DAY) > 0 "
                     f"AS known_{w}" for w in sorted(cross_windows.get(source, ())))
        path = clean / f"{source}.parquet"
        ctes.append(
            f"s_{source} AS (SELECT e.person_id, a.as_of, {', '.join(exprs)} "
            f"FROM read_parquet('{path}') e JOIN dates a ON e.event_time < a.as_of "
            f"AND e.event_time >= a.as_of - INTERVAL {max(windows)} DAY "
            "GROUP BY e.person_id, a.as_of)")
        joins.append(f"LEFT JOIN s_{source} ON s_{source}.person_id = p.person_id "
                     f"AND s_{source}.as_of = a.as_of")
    ordered = []
    for f in plan:
        if f.kind == "event":
            ordered.append(next(s for s in selects if s.endswith(f"AS {_q(f.name)}")))
        else:
            known = " + ".join(f"coalesce(s_{s}.known_{f.window}::INT, 0)" for s in f.sources)
            ordered.append(f"({known})::DOUBLE AS {_q(f.name)}")
    return (f"WITH {', '.join(ctes)} SELECT p.person_id, a.as_of, {', '.join(ordered)} "
            f"FROM persons p CROSS JOIN dates a {' '.join(joins)}")
