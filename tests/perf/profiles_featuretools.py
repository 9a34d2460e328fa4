"""Featuretools peer of the profile benchmark: Deep Feature Synthesis on the same features.

Runs in its own environment (featuretools 1.31 needs pandas<2.3 and numpy<2), so it imports
nothing from overblik: the features arrive as the JSON plan written by
``profiles_peers.feature_plan``. Usage::

    python profiles_featuretools.py CLEAN PLAN.json DATES(comma-separated) OUT_SAMPLE.parquet

One EntitySet (persons + one dataframe per silo, with the plan's event types as interesting
values); DFS (``ft.dfs(features_only=True)`` with count/sum/mean/max/time_since_last as
aggregation and where primitives) proposes the features, the plan's are kept, and
``calculate_feature_matrix`` computes them per window (``training_window``) for every person
at every as-of date (``cutoff_time``). Cross-silo counts are DFS counts per silo, then the
number of siloes with a count above 0. Writes the values of the first 500 persons (sorted)
for the comparison.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import featuretools as ft
import numpy as np
import pandas as pd

PRIMITIVE = {"count": "count", "sum": "sum", "mean": "mean", "max": "max",
             "days_since_last": "time_since_last"}


def dfs_name(f: dict[str, object]) -> str:
    """The name featuretools gives the planned feature."""
    where = f"WHERE event_type = {f['event_type']}"
    src, agg = f["source"], str(f["agg"])
    if agg == "count":
        return f"COUNT({src} {where})"
    if agg == "days_since_last":
        return f"TIME_SINCE_LAST({src}.event_time {where})"
    return f"{PRIMITIVE[agg].upper()}({src}.{f['value']} {where})"


def main(clean: Path, plan_path: Path, dates: list[str], out: Path) -> None:
    warnings.filterwarnings("ignore")
    plan: list[dict[str, object]] = json.loads(plan_path.read_text())
    pop = pd.read_parquet(clean / "population.parquet", columns=["person_id"])
    es = ft.EntitySet("municipality")
    es.add_dataframe(dataframe_name="persons", dataframe=pop, index="person_id")
    sources: dict[str, set[str]] = {}
    interesting: dict[str, set[str]] = {}
    for f in plan:
        if f["kind"] == "event":
            src = str(f["source"])
            sources.setdefault(src, set()).update([str(f["value"])] if f["value"] else [])
            interesting.setdefault(src, set()).add(str(f["event_type"]))
        else:
            for s in f["sources"]:  # type: ignore[attr-defined]
                sources.setdefault(str(s), set())
    for src, values in sources.items():
        cols = ["person_id", "event_time", "event_type", *sorted(values)]
        df = pd.read_parquet(clean / f"{src}.parquet", columns=cols)
        df.insert(0, "event_id", np.arange(len(df)))
        es.add_dataframe(dataframe_name=src, dataframe=df, index="event_id",
                         time_index="event_time", logical_types={"event_type": "Categorical"})
        es.add_relationship("persons", "person_id", src, "person_id")
        if src in interesting:
            es.add_interesting_values(dataframe_name=src,
                                      values={"event_type": sorted(interesting[src])})
    prims = sorted({PRIMITIVE[str(f["agg"])] for f in plan if f["kind"] == "event"} | {"count"})
    proposed = ft.dfs(entityset=es, target_dataframe_name="persons", agg_primitives=prims,
                      where_primitives=prims, trans_primitives=[], max_depth=1,
                      features_only=True)
    by_name = {feat.get_name(): feat for feat in proposed}
    stamps = pd.to_datetime(dates)
    ids = pop["person_id"].to_numpy()
    cutoff = pd.DataFrame({"person_id": np.tile(ids, len(stamps)),
                           "time": np.repeat(stamps, len(ids))})
    result = pd.DataFrame(index=pd.MultiIndex.from_arrays([cutoff["person_id"], cutoff["time"]],
                                                          names=["person_id", "as_of"]))
    for w in sorted({int(f["window"]) for f in plan}):  # type: ignore[call-overload]
        mine = [f for f in plan if f["window"] == w]
        wanted = {dfs_name(f): f for f in mine if f["kind"] == "event"}
        for f in mine:
            if f["kind"] != "event":
                wanted.update({f"COUNT({s})": {"kind": "silo"}
                               for s in f["sources"]})  # type: ignore[attr-defined]
        fm = ft.calculate_feature_matrix([by_name[n] for n in wanted], entityset=es,
                                         cutoff_time=cutoff, training_window=f"{w} days",
                                         cutoff_time_in_index=True)
        fm = fm.reindex(result.index)
        for n, f in wanted.items():
            if f["kind"] != "event":
                continue
            col = fm[n].astype(float)
            if f["agg"] == "days_since_last":
                col = (col / 86400.0).fillna(w + 3650.0)
            result[str(f["name"])] = col.fillna(0.0).to_numpy()
        for f in mine:
            if f["kind"] == "cross_silo":
                known = sum((fm[f"COUNT({s})"].fillna(0) > 0).astype(float)
                            for s in f["sources"])  # type: ignore[attr-defined]
                result[str(f["name"])] = np.asarray(known, dtype=float)
    result = result[[str(f["name"]) for f in plan]]
    sample = np.sort(ids)[:500]
    part = result[result.index.get_level_values("person_id").isin(sample)]
    part.reset_index().to_parquet(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(","), Path(sys.argv[4]))
