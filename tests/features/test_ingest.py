"""Ingest: real files in tmp_path, every reason, reconciliation, privacy, malformed input."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overblik.features._contracts import SOURCE_BY_NAME, SOURCES
from overblik.features._errors import InputError
from overblik.features._ingest import REPORT_NAME, IngestReport, ingest
from overblik.features._pseudonym import PseudonymKey, pseudonymise_one
from overblik.features._validation import (
    RARE_MARK,
    REASON_KINDS,
    REASONS,
    Encoded,
    duplicated_rows,
    reason_codes,
)
from tests.features.raw_factory import CPR_SHAPED, TODAY, RawSet, cpr_for, make_raw

CPR_RE = re.compile(CPR_SHAPED)
Spoiler = Callable[[Path], str]  # spoils a raw folder, returns the culprit file's name


def run(raw_set: RawSet, tmp: Path, key: PseudonymKey, fmt: str = "csv",
        **kwargs: object) -> IngestReport:
    raw = raw_set.write(tmp / "raw", fmt, **kwargs)  # type: ignore[arg-type]
    return ingest(raw, tmp / "out", key, today=TODAY)


def quarantine(tmp: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(tmp / "out" / "quarantine" / f"{name}.parquet")


def accepted(tmp: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(tmp / "out" / f"{name}.parquet")


def dashed(cpr: str) -> str:
    return cpr if "-" in cpr else f"{cpr[:6]}-{cpr[6:]}"


def no_event_person(raw_set: RawSet) -> int:
    """A register row whose person has no events (the factory leaves the last 20% out)."""
    return raw_set.rows("population") - 1


# --- valid input ------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "typed"), [("csv", False), ("parquet", True),
                                            ("parquet", False)])
def test_valid_set_is_accepted_whole_and_typed(tmp_path, raw_set, key, fmt, typed):
    report = run(raw_set, tmp_path, key, fmt, typed=typed)

    assert report.absent_sources == []
    for source in SOURCES:
        s = report.sources[source.name]
        assert s.file == f"{source.name}.{fmt}"
        assert (s.rows_in, s.accepted, s.quarantined) == (raw_set.rows(source.name),) * 2 + (0,)
        assert s.reasons == {}
        out = accepted(tmp_path, source.name)
        schema = source.model.to_schema()
        assert list(out.columns) == ["person_id", *source.columns[1:], "source_row"]
        for name, col in schema.columns.items():
            if name != "cpr":
                assert out[name].dtype == col.dtype.type, (source.name, name, out[name].dtype)
        assert out["source_row"].tolist() == list(range(1, len(out) + 1))
        assert len(quarantine(tmp_path, source.name)) == 0
    totals = report.totals
    assert totals.rows_in == totals.accepted == sum(raw_set.rows(s.name) for s in SOURCES)


def test_accepted_values_round_trip(tmp_path, raw_set, key):
    run(raw_set, tmp_path, key)
    pop = accepted(tmp_path, "population")
    raw = raw_set.frames["population"]
    expected_ids = [pseudonymise_one(c, key) for c in raw["cpr"]]
    assert pop["person_id"].tolist() == expected_ids
    assert pop["birth_date"].tolist() == pd.to_datetime(raw["birth_date"]).tolist()
    assert pop["disability"].tolist() == raw["disability"].str.lower().isin(["true", "1"]).tolist()
    assert pop["move_out_date"].isna().tolist() == (raw["move_out_date"] == "").tolist()
    health = accepted(tmp_path, "health")
    hours = pd.to_numeric(raw_set.frames["health"]["hours"].replace("", None))
    np.testing.assert_allclose(health["hours"].to_numpy(float), hours.to_numpy(float))
    # every event person is a register person
    assert set(health["person_id"]) <= set(pop["person_id"])


def test_report_file_matches_the_returned_report(tmp_path, raw_set, key):
    report = run(raw_set, tmp_path, key)
    on_disk = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert on_disk == json.loads(json.dumps(report.to_json()))
    assert on_disk["demo_data"] is False
    assert on_disk["key_fingerprint"] == key.fingerprint
    assert on_disk["today"] == TODAY.isoformat()
    assert set(on_disk["sources"]) == {s.name for s in SOURCES}
    assert on_disk["totals"]["rows_in"] == sum(s["rows_in"] for s in on_disk["sources"].values())


def test_absent_event_sources_are_listed_and_not_written(tmp_path, key):
    raw_set = make_raw(sources=("health",))
    report = run(raw_set, tmp_path, key)
    assert report.absent_sources == ["children_families", "employment", "schools", "economy",
                                     "digital"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.parquet")) == [
        "health.parquet", "population.parquet"]


def test_header_only_event_file_gives_empty_typed_output_and_a_warning(tmp_path, key):
    raw = make_raw(persons=6, events=4, sources=("digital",)).write(tmp_path / "raw")
    (raw / "economy.csv").write_text(",".join(SOURCE_BY_NAME["economy"].columns) + "\n")
    report = ingest(raw, tmp_path / "out", key, today=TODAY)
    assert report.sources["economy"].rows_in == 0
    assert report.errors == []
    assert report.warnings == ["economy.csv holds no rows (only a header)"]
    eco = accepted(tmp_path, "economy")
    assert len(eco) == 0
    assert str(eco["event_time"].dtype) == "datetime64[ns]"
    assert str(eco["amount_dkk"].dtype) == "float64"
    assert list(quarantine(tmp_path, "economy").columns) == [
        "person_id", "event_time", "event_type", "amount_dkk", "source_row", "reason", "reasons"]


def test_layout_tolerances_bom_whitespace_column_order_and_crlf(tmp_path, key):
    raw_set = make_raw(persons=10, events=5, sources=("digital",))
    raw_set.set("population", 0, "sex", "  F ")
    raw_set.set("population", 1, "disability", "TRUE")
    raw = tmp_path / "raw"
    raw.mkdir()
    pop = raw_set.frames["population"]
    text = pop[list(reversed(pop.columns))].to_csv(index=False, lineterminator="\r\n")
    (raw / "population.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    raw_set.frames["digital"].to_csv(raw / "digital.csv", index=False)
    report = ingest(raw, tmp_path / "out", key, today=TODAY)
    assert report.sources["population"].accepted == 10
    out = accepted(tmp_path, "population")
    assert out["sex"].iloc[0] == "F"
    assert bool(out["disability"].iloc[1]) is True


def test_parquet_with_tz_timestamps_dictionary_text_and_nulls_is_read(tmp_path, key):
    raw_set = make_raw(persons=8, events=6, sources=("digital",), with_events=1.0)
    raw = raw_set.write(tmp_path / "raw", "parquet", typed=True)
    table = pq.read_table(raw / "digital.parquet")
    stamps = table.column("event_time").cast(pa.timestamp("us", tz="Europe/Copenhagen"))
    table = table.set_column(1, "event_time", stamps)
    table = table.set_column(2, "event_type", table.column("event_type").dictionary_encode())
    scores = np.full(6, np.nan)
    scores[:3] = [1.0, 2.5, 10.0]
    table = table.set_column(4, "score", pa.array(scores, from_pandas=False))  # real NaNs
    pq.write_table(table, raw / "digital.parquet")
    report = ingest(raw, tmp_path / "out", key)
    assert report.today == date.today()  # the default reference date
    assert report.sources["digital"].accepted == 6
    out = accepted(tmp_path, "digital")
    # Copenhagen wall-clock time: what the source system showed
    local = stamps.to_pandas().dt.tz_localize(None).astype("datetime64[ns]")
    assert out["event_time"].tolist() == local.tolist()
    assert out["app"].isna().tolist() == (raw_set.frames["digital"]["app"] == "").tolist()
    assert out["score"].tolist()[:3] == [1.0, 2.5, 10.0]
    assert out["score"].isna().tolist() == [False] * 3 + [True] * 3  # NaN is missing


def test_duplicates_are_found_when_the_codes_overflow_int64():
    # four columns of 2M distinct values each: 2M**4 needs the re-numbering step
    many = pa.nulls(2_000_000, pa.string())
    rows = np.array([[0, 1, 2, 3], [5, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 1_999_999],
                     [5, 1, 2, 3]], dtype=np.int32)
    columns = [Encoded(np.ascontiguousarray(rows[:, i]), many) for i in range(4)]
    assert duplicated_rows(columns).tolist() == [False, False, True, False, True]


def test_progress_is_reported_once_per_source(tmp_path, raw_set, key):
    calls: list[tuple[str, int, int]] = []
    raw = raw_set.write(tmp_path / "raw")
    ingest(raw, tmp_path / "out", key, progress=lambda d, n, t: calls.append((d, n, t)),
           today=TODAY)
    assert [(n, t) for _, n, t in calls] == [(i, len(SOURCES)) for i in range(1, 8)]
    assert calls[0][0].startswith("population")


# --- one bad row per reason --------------------------------------------------------------

UNKNOWN_CPR = cpr_for(date(1950, 3, 3), 777)  # the factory's serials are 100..219
# (source, column, value, expected first reason); register rows are people without events
CASES = [
    ("population", "cpr", "", "missing:cpr"),
    ("population", "sex", "", "missing:sex"),
    ("population", "household_id", "   ", "missing:household_id"),
    ("health", "event_time", "", "missing:event_time"),
    ("economy", "event_type", "", "missing:event_type"),
    ("population", "birth_date", "1990-02-30", "bad_type:birth_date"),
    ("population", "birth_date", "30-01-1990", "bad_type:birth_date"),
    ("population", "disability", "yes", "bad_type:disability"),
    ("population", "move_out_date", "soon", "bad_type:move_out_date"),
    ("health", "hours", "12,5", "bad_type:hours"),
    ("economy", "amount_dkk", "NaN", "bad_type:amount_dkk"),
    ("schools", "event_time", "2020-13-01", "bad_type:event_time"),
    ("population", "sex", "K", "bad_code:sex"),
    ("population", "district", "D13", "bad_code:district"),
    ("population", "origin", "Danish", "bad_code:origin"),
    ("schools", "grade", "5", "bad_code:grade"),
    ("schools", "days", "32", "bad_code:days"),
    ("health", "hours", "-1", "bad_code:hours"),
    ("employment", "job_readiness", "4", "bad_code:job_readiness"),
    ("employment", "benefit_type", "pension", "bad_code:benefit_type"),
    ("children_families", "reporter", "neighbour", "bad_code:reporter"),
    ("digital", "event_type", "tiktok", "bad_code:event_type"),
    ("digital", "score", "11", "bad_code:score"),
    ("economy", "amount_dkk", "1e8", "bad_code:amount_dkk"),
    ("population", "cpr", "320190-1234", "invalid_cpr"),
    ("population", "cpr", "290223-1234", "invalid_cpr"),  # 1923 was no leap year
    ("children_families", "cpr", "12345", "invalid_cpr"),
    ("children_families", "cpr", "0101901234x", "invalid_cpr"),
    ("health", "cpr", "01019O-1234", "invalid_cpr"),
    ("economy", "cpr", UNKNOWN_CPR, "unknown_cpr"),
    ("health", "event_time", (TODAY + timedelta(days=1)).isoformat(), "future_date:event_time"),
    ("population", "death_date", "2030-01-01", "future_date:death_date"),
    ("population", "birth_date", "2025-01-01", "future_date:birth_date"),
    ("schools", "event_time", "1930-01-01", "before_birth:event_time"),
    ("population", "move_in_date", "1900-01-01", "before_birth:move_in_date"),
]


# Bad values that read as a word and are neither a code in other letters ("Danish") nor a
# yes/no/missing word ("yes", "NaN"): one person holds each, so the quarantine hides it.
RARE_WORDS = {"soon", "pension", "neighbour", "tiktok"}


@pytest.mark.parametrize(("name", "column", "value", "reason"), CASES,
                         ids=[f"{c[3]}={c[2]!r}" for c in CASES])
def test_each_bad_row_is_quarantined_with_its_reason(tmp_path, raw_set, key, name, column,
                                                     value, reason):
    row = no_event_person(raw_set) if name == "population" else 7
    raw_set.set(name, row, column, value)
    report = run(raw_set, tmp_path, key)

    s = report.sources[name]
    assert (s.quarantined, s.accepted) == (1, s.rows_in - 1)
    assert s.reasons == {reason: 1}
    q = quarantine(tmp_path, name)
    assert q["source_row"].tolist() == [row + 1]
    assert q["reason"].iloc[0] == reason
    # a birth in the future also puts the move-in before birth; nothing else adds a reason
    assert q["reasons"].iloc[0] == reason + (";before_birth:move_in_date"
                                             if reason == "future_date:birth_date" else "")
    assert row + 1 not in set(accepted(tmp_path, name)["source_row"])
    if value in RARE_WORDS:  # a word one person holds may be a name: removed
        assert q[column].iloc[0] == RARE_MARK
    elif column != "cpr":
        assert q[column].iloc[0] == value  # the original text, untouched
    for other in SOURCES:
        if other.name != name:
            assert report.sources[other.name].quarantined == 0, other.name


def test_future_date_allows_later_the_same_day(tmp_path, raw_set, key):
    raw_set.set("health", 3, "event_time", f"{TODAY.isoformat()} 23:59:59")
    assert run(raw_set, tmp_path, key).sources["health"].quarantined == 0


def test_event_on_the_birth_day_is_not_before_birth(tmp_path, key):
    raw_set = make_raw(persons=5, events=3, sources=("health",), with_events=1.0)
    cpr = str(raw_set.frames["health"].loc[0, "cpr"])
    birth = raw_set.births[dashed(cpr)]
    raw_set.set("health", 0, "event_time", f"{birth.isoformat()} 00:00:00")
    raw_set.set("health", 1, "event_time", (birth - timedelta(days=1)).isoformat())
    raw_set.set("health", 1, "cpr", cpr)
    report = run(raw_set, tmp_path, key)
    assert report.sources["health"].reasons == {"before_birth:event_time": 1}
    assert quarantine(tmp_path, "health")["source_row"].tolist() == [2]


def test_register_move_out_or_death_before_move_in_is_quarantined(tmp_path, raw_set, key):
    rows = [no_event_person(raw_set) - i for i in range(4)]
    dates = [("2009-12-31", ""), ("", "2009-06-01"), ("2010-01-01", ""), ("", "2010-01-01")]
    for row, (move_out, death) in zip(rows, dates, strict=True):
        raw_set.set("population", row, "birth_date", "1980-05-05")
        raw_set.set("population", row, "move_in_date", "2010-01-01")
        raw_set.set("population", row, "move_out_date", move_out)
        raw_set.set("population", row, "death_date", death)
    report = run(raw_set, tmp_path, key)

    assert report.sources["population"].reasons == {"before_move_in:move_out_date": 1,
                                                    "before_move_in:death_date": 1}
    q = quarantine(tmp_path, "population").set_index("source_row")
    assert q.loc[rows[0] + 1, "reasons"] == "before_move_in:move_out_date"
    assert q.loc[rows[1] + 1, "reasons"] == "before_move_in:death_date"
    # leaving (or dying) on the day one moved in is possible
    assert {rows[2] + 1, rows[3] + 1} <= set(accepted(tmp_path, "population")["source_row"])


def test_exact_duplicate_event_keeps_the_first(tmp_path, raw_set, key):
    copy = raw_set.append_copy("economy", 4)
    report = run(raw_set, tmp_path, key)
    assert report.sources["economy"].reasons == {"duplicate": 1}
    assert quarantine(tmp_path, "economy")["source_row"].tolist() == [copy + 1]
    assert 5 in set(accepted(tmp_path, "economy")["source_row"])


def test_second_register_row_for_a_cpr_is_a_duplicate_in_either_spelling(tmp_path, raw_set,
                                                                         key):
    row = no_event_person(raw_set)
    cpr = str(raw_set.frames["population"].loc[row, "cpr"])
    other = cpr.replace("-", "") if "-" in cpr else f"{cpr[:6]}-{cpr[6:]}"
    copy = raw_set.append_copy("population", row)
    raw_set.set("population", copy, "cpr", other)
    raw_set.set("population", copy, "district", "D01")  # not an exact copy: same person
    report = run(raw_set, tmp_path, key)
    assert report.sources["population"].reasons == {"duplicate": 1}
    q = quarantine(tmp_path, "population")
    assert q["source_row"].tolist() == [copy + 1]
    assert q["person_id"].iloc[0] == pseudonymise_one(cpr, key)


def test_a_row_keeps_every_reason_in_fixed_order(tmp_path, raw_set, key):
    row = no_event_person(raw_set)
    raw_set.set("population", row, "sex", "X")
    raw_set.set("population", row, "birth_date", "2030-01-01")
    raw_set.set("population", row, "origin", "")
    raw_set.set("population", row, "disability", "maybe")
    copy = raw_set.append_copy("population", row)
    report = run(raw_set, tmp_path, key)
    q = quarantine(tmp_path, "population").set_index("source_row")
    first = ("missing:origin;bad_type:disability;bad_code:sex;future_date:birth_date;"
             "before_birth:move_in_date")
    assert q.loc[row + 1, "reasons"] == first
    assert q.loc[copy + 1, "reasons"] == first + ";duplicate"
    assert set(q["reason"]) == {"missing:origin"}
    s = report.sources["population"]
    assert s.reasons == {"missing:origin": 2}
    assert s.reasons_any["duplicate"] == 1
    assert s.reasons_any["bad_code:sex"] == 2


def test_quarantined_register_person_makes_their_events_unknown(tmp_path, key):
    raw_set = make_raw(persons=5, events=20, sources=("health",), with_events=1.0)
    cpr = dashed(str(raw_set.frames["population"].loc[0, "cpr"]))
    events_of_person = (raw_set.frames["health"]["cpr"] == cpr).sum()
    assert events_of_person > 0
    raw_set.set("population", 0, "sex", "?")
    report = run(raw_set, tmp_path, key)
    assert report.sources["health"].reasons == {"unknown_cpr": int(events_of_person)}
    q = quarantine(tmp_path, "health")
    assert set(q["person_id"]) == {pseudonymise_one(cpr, key)}


def test_unparseable_cpr_gets_no_person_id_well_formed_invalid_one_does(tmp_path, raw_set, key):
    raw_set.set("health", 1, "cpr", "not a cpr")
    raw_set.set("health", 2, "cpr", "320190-1234")
    run(raw_set, tmp_path, key)
    q = quarantine(tmp_path, "health").set_index("source_row")
    assert q["person_id"].isna().tolist() == [True, False]
    assert q.loc[3, "person_id"] == pseudonymise_one("320190-1234", key)


@pytest.mark.parametrize(("cpr", "valid"), [
    ("010137-4123", True),   # 4 with YY 37 > 36: 1937
    ("290200-4000", True),   # 2000 was a leap year
    ("290200-1000", False),  # 1900 was not
    ("290296-9000", True),   # 9 with YY 96 > 36: 1996, a leap year
    ("290297-9000", False),
    ("010158-5000", True),   # 5-8 with YY 58 > 57: 1858
    ("310457-8000", False),  # 2057-04-31 does not exist
    ("0101901234", True),
    ("011390-1234", False),
])
def test_cpr_calendar_and_century_rules(tmp_path, raw_set, key, cpr, valid):
    raw_set.set("population", no_event_person(raw_set), "cpr", cpr)
    report = run(raw_set, tmp_path, key)
    assert report.sources["population"].reasons == ({} if valid else {"invalid_cpr": 1})


def test_reason_codes_are_documented_and_ordered(raw_set):
    for source in SOURCES:
        codes = reason_codes(source)
        assert set(codes) <= set(REASONS)
        kinds = [c.split(":")[0] for c in codes]
        order = list(REASON_KINDS)
        assert kinds == sorted(kinds, key=order.index)
    assert all(REASONS[code] for code in REASONS)
    assert {c for _, _, _, c in CASES} <= set(REASONS)


# --- reconciliation under any mix of good and bad rows ----------------------------------

CORRUPTIONS = ["blank", "junk", "future", "bad_cpr", "undashed_cpr", "unknown_cpr", "duplicate",
               "ancient", "padded"]


def corrupt(raw_set: RawSet, name: str, row: int, column: str, how: str) -> None:
    frame = raw_set.frames[name]
    row %= len(frame)
    if how == "duplicate":
        raw_set.append_copy(name, row)
        return
    value = {
        "blank": "",
        "junk": "§%&/()",
        "future": "2099-01-01",
        "bad_cpr": "999999-9999",
        "undashed_cpr": str(frame.loc[row, "cpr"]).replace("-", ""),
        "unknown_cpr": UNKNOWN_CPR,
        "ancient": "1901-01-01",
        "padded": f" {frame.loc[row, column]!s} ",
    }[how]
    target = "cpr" if how.endswith("_cpr") else column
    raw_set.set(name, row, target, value)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), fmt=st.sampled_from(["csv", "parquet"]),
       edits=st.lists(st.tuples(st.sampled_from(["population", "health", "employment"]),
                                st.integers(0, 10_000), st.integers(0, 9),
                                st.sampled_from(CORRUPTIONS)), max_size=25))
def test_any_mix_of_rows_reconciles(key, seed, fmt, edits):
    raw_set = make_raw(persons=12, events=15, seed=seed, sources=("health", "employment"))
    for name, row, col, how in edits:
        columns = raw_set.frames[name].columns
        corrupt(raw_set, name, row, columns[col % len(columns)], how)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        report = run(raw_set, tmp, key, fmt)
        for name, s in report.sources.items():
            assert s.rows_in == raw_set.rows(name) == s.accepted + s.quarantined
            assert sum(s.reasons.values()) == s.quarantined
            rows = [*accepted(tmp, name)["source_row"], *quarantine(tmp, name)["source_row"]]
            assert sorted(rows) == list(range(1, s.rows_in + 1))
            q = quarantine(tmp, name)
            assert (q["reason"] == q["reasons"].str.split(";").str[0]).all()
        assert report.totals.rows_in == sum(raw_set.rows(n) for n in raw_set.frames)


# --- privacy: no CPR-shaped text anywhere in the output ---------------------------------


def cpr_shaped_cells(folder: Path) -> list[str]:
    hits: list[str] = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            texts = [*frame.columns, *frame.astype(str).to_numpy().ravel()]
            meta = pq.read_schema(path).metadata or {}
            texts += [v.decode() for v in meta.values()]
            hits += [f"{path.name}: {t}" for t in texts if CPR_RE.search(str(t))]
        elif path.is_file():
            hits += [f"{path.name}: {m}" for m in CPR_RE.findall(path.read_bytes().decode())]
    return hits


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_no_cpr_number_in_any_output(tmp_path, raw_set, key, fmt):
    member = str(raw_set.frames["population"].loc[0, "cpr"])
    raw_set.set("population", 3, "household_id", member)  # a household id that is a CPR
    raw_set.set("population", 4, "household_id", f"hh {member}")
    raw_set.set("population", no_event_person(raw_set), "cpr", "320190-1234")
    raw_set.set("health", 1, "event_type", member)  # CPR in the wrong column
    raw_set.set("health", 2, "cpr", f"x{member}")  # unparseable, but holds a CPR
    raw_set.set("economy", 3, "amount_dkk", member.replace("-", ""))  # out of range number
    raw_set.set("economy", 4, "event_time", member)
    raw_set.set("schools", 5, "cpr", UNKNOWN_CPR)
    raw_set.append_copy("digital", 6)
    report = run(raw_set, tmp_path, key, fmt)

    raw_text = "".join(f.to_csv() for f in raw_set.frames.values())
    assert len(CPR_RE.findall(raw_text)) > 400  # the scan below is meaningful
    assert report.totals.quarantined >= 7
    assert cpr_shaped_cells(tmp_path / "out") == []
    pop = accepted(tmp_path, "population").set_index("source_row")
    assert pop.loc[4, "household_id"] == pseudonymise_one(member, key)  # = the member's id
    assert str(pop.loc[4, "household_id"]) == str(pop.loc[1, "person_id"])
    assert report.sources["population"].text_pseudonymised == {"household_id": 2}


# --- malformed files: one clear error, nothing written -----------------------------------


def _latin1(raw: Path) -> str:
    text = (raw / "population.csv").read_text()
    (raw / "population.csv").write_bytes(text.replace("H00001", "Århus").encode("latin-1"))
    return "population.csv"


def _drop_column(raw: Path) -> str:
    frame = pd.read_csv(raw / "economy.csv", dtype=str, keep_default_na=False)
    frame.drop(columns=["amount_dkk"]).to_csv(raw / "economy.csv", index=False)
    return "economy.csv"


def _extra_column(raw: Path) -> str:
    frame = pd.read_csv(raw / "health.csv", dtype=str, keep_default_na=False)
    frame.assign(name="Jens").to_csv(raw / "health.csv", index=False)
    return "health.csv"


def _ragged(raw: Path) -> str:
    with (raw / "digital.csv").open("a") as fh:
        fh.write("010190-1234,2020-01-01\n")
    return "digital.csv"


def _empty(raw: Path) -> str:
    (raw / "schools.csv").write_bytes(b"")
    return "schools.csv"


def _junk_parquet(raw: Path) -> str:
    (raw / "economy.csv").unlink()
    (raw / "economy.parquet").write_bytes(b"PAR1 this is not really parquet " * 10)
    return "economy.parquet"


def _csv_named_parquet(raw: Path) -> str:
    (raw / "health.csv").rename(raw / "health.parquet")
    return "health.parquet"


def _binary_csv(raw: Path) -> str:
    (raw / "employment.csv").write_bytes(np.random.default_rng(0).bytes(5000))
    return "employment.csv"


def _parquet_named_csv(raw: Path) -> str:
    pq.write_table(pa.table({"cpr": ["x"]}), raw / "digital.csv")
    return "digital.csv"


def _truncated_parquet_named_csv(raw: Path) -> str:
    pq.write_table(pa.table({"cpr": ["x"] * 50}), raw / "whole.parquet")
    (raw / "digital.csv").write_bytes((raw / "whole.parquet").read_bytes()[:-30])
    (raw / "whole.parquet").unlink()
    return "digital.csv"


def _par1_column(raw: Path) -> str:
    """A CSV whose first column is named PAR1: text that starts like Parquet, no Parquet."""
    frame = pd.read_csv(raw / "health.csv", dtype=str, keep_default_na=False)
    frame.insert(0, "PAR1", "x")
    frame.to_csv(raw / "health.csv", index=False)
    return "health.csv"


def _unknown_name(raw: Path) -> str:
    (raw / "economy.csv").rename(raw / "econmy.csv")
    return "econmy.csv"


def _unknown_extension(raw: Path) -> str:
    (raw / "health.csv").rename(raw / "health.xlsx")
    return "health.xlsx"


def _two_files(raw: Path) -> str:
    pd.read_csv(raw / "health.csv").to_parquet(raw / "health.parquet")
    return "health"


def _no_register(raw: Path) -> str:
    (raw / "population.csv").unlink()
    return "population"


def _semicolons(raw: Path) -> str:
    frame = pd.read_csv(raw / "population.csv", dtype=str, keep_default_na=False)
    frame.to_csv(raw / "population.csv", index=False, sep=";")
    return "population.csv"


def _headerless(separator: str) -> Spoiler:
    # An export without its header line: the first row (a CPR number, a household id, a
    # date) was quoted as the "unexpected column(s)".
    def spoil(raw: Path) -> str:
        frame = pd.read_csv(raw / "population.csv", dtype=str, keep_default_na=False)
        frame.to_csv(raw / "population.csv", index=False, header=False, sep=separator)
        return "population.csv"
    return spoil


def _separated_by(separator: str) -> Spoiler:
    def spoil(raw: Path) -> str:
        frame = pd.read_csv(raw / "health.csv", dtype=str, keep_default_na=False)
        frame.to_csv(raw / "health.csv", index=False, sep=separator)
        return "health.csv"
    return spoil


def _numeric_cpr(kind: str) -> Spoiler:
    """The register as Parquet with the CPR number stored as an int64 or float64."""
    def spoil(raw: Path) -> str:
        frame = pd.read_csv(raw / "population.csv", dtype=str, keep_default_na=False)
        frame["cpr"] = frame["cpr"].str.replace("-", "").astype(kind)
        (raw / "population.csv").unlink()
        frame.to_parquet(raw / "population.parquet", index=False)
        return "population.parquet"
    return spoil


def _no_header(raw: Path) -> str:
    (raw / "economy.csv").write_text("\n\n")
    return "economy.csv"


def _list_column(raw: Path) -> str:
    frame = pd.read_csv(raw / "population.csv", dtype=str, keep_default_na=False)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(2, "sex", pa.array([[v] for v in frame["sex"]]))
    (raw / "population.csv").unlink()
    pq.write_table(table, raw / "population.parquet")
    return "population.parquet"


MALFORMED = {
    "list-typed Parquet column": (_list_column, "column sex has type list"),
    "latin-1 CSV": (_latin1, "not UTF-8"),
    "missing column": (_drop_column, "missing column(s) amount_dkk"),
    "extra column": (_extra_column, "unexpected column(s) name"),
    "ragged rows": (_ragged, "ragged"),
    "empty file": (_empty, "empty"),
    "junk parquet": (_junk_parquet, "not a readable Parquet file"),
    "CSV named .parquet": (_csv_named_parquet, "rename it to health.csv"),
    "binary .csv": (_binary_csv, "binary"),
    "Parquet named .csv": (_parquet_named_csv, "rename it to digital.parquet"),
    "truncated Parquet named .csv": (_truncated_parquet_named_csv,
                                     "rename it to digital.parquet"),
    "CSV with a column named PAR1": (_par1_column, "unexpected column(s) PAR1"),
    "unknown name": (_unknown_name, "did you mean economy.csv"),
    "unknown extension": (_unknown_extension, "population.csv|.parquet"),
    "two files for a source": (_two_files, "two files"),
    "no register": (_no_register, "population.csv or population.parquet"),
    "semicolon CSV": (_semicolons, "';'-separated"),
    "CSV without a header": (_headerless(","), "looks like data, not a header"),
    "';' CSV without a header": (_headerless(";"), "looks like data, not a header"),
    "tab-separated CSV": (_separated_by("\t"), "looks tab-separated"),
    "pipe-separated CSV": (_separated_by("|"), "looks '|'-separated"),
    "int64 CPR in Parquet": (_numeric_cpr("int64"), "cpr is stored as a number (int64), so "
                             "leading zeros are lost: store it as text"),
    "float CPR in Parquet": (_numeric_cpr("float64"), "cpr is stored as a number"),
    "no header": (_no_header, "no header"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_input_is_one_clear_error_and_writes_nothing(tmp_path, raw_set, key, case):
    spoil, phrase = MALFORMED[case]
    raw = raw_set.write(tmp_path / "raw")
    culprit = spoil(raw)
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        ingest(raw, out, key, today=TODAY)
    message = str(err.value)
    assert culprit in message
    assert phrase in message
    assert not CPR_RE.search(message), message
    households = set(raw_set.frames["population"]["household_id"])
    assert not any(h in message for h in households), message
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no temp folder left


def _parquet_bytes() -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"cpr": ["x"] * 50}), sink)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("a.csv", _parquet_bytes(), "parquet"),  # the content decides, not the name
    ("a.parquet", _parquet_bytes()[:-30], "parquet"),  # truncated: a broken Parquet file
    ("a.csv", _parquet_bytes()[:-30], "parquet"),  # binary after the magic: broken Parquet
    ("a.csv", b"PAR1,t,y\n1,0,2.5\n", "csv"),  # a first column named PAR1
    ("a.csv", "PAR1,t,y\n1,0,dansk\u00f8\n".encode("latin-1"), "csv"),  # CSV, not UTF-8
    ("a.parquet", b"PAR1,t,y\n1,0,2.5\n", "parquet"),  # named Parquet: a broken one
    ("a.parquet", b"PAR1" + b"x" * 100, "parquet"),
    ("a.csv", b"PAR1", "csv"),  # a header alone; too short to be Parquet
    ("a.csv", b"t,y\n1,2\n", "csv"),
    ("a.csv", b"t,y\n\x00\x01", "binary"),
])
def test_sniff_format_needs_the_magic_at_both_ends(tmp_path, name, content, expected):
    from overblik.features._readers import sniff_format

    path = tmp_path / name
    path.write_bytes(content)
    assert sniff_format(path) == expected


def test_ragged_row_error_names_the_line(tmp_path, raw_set, key):
    raw = raw_set.write(tmp_path / "raw")
    lines = (raw / "health.csv").read_text().splitlines()
    lines[5] += ",extra"
    (raw / "health.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="line 6 has 6 field"):
        ingest(raw, tmp_path / "out", key, today=TODAY)


def test_failed_run_leaves_the_previous_output_intact(tmp_path, raw_set, key):
    raw = raw_set.write(tmp_path / "raw")
    ingest(raw, tmp_path / "out", key, today=TODAY)
    before = (tmp_path / "out" / REPORT_NAME).read_text()
    _latin1(raw)
    with pytest.raises(InputError):
        ingest(raw, tmp_path / "out", key, today=TODAY)
    assert (tmp_path / "out" / REPORT_NAME).read_text() == before
    assert len(accepted(tmp_path, "population")) == raw_set.rows("population")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_previous_ingest_output_is_replaced(tmp_path, key):
    raw = make_raw(seed=1).write(tmp_path / "raw")
    ingest(raw, tmp_path / "out", key, today=TODAY)
    smaller = make_raw(persons=10, events=5, seed=2, sources=("digital",))
    for p in raw.iterdir():
        p.unlink()
    smaller.write(raw)
    report = ingest(raw, tmp_path / "out", key, today=TODAY)
    assert report.sources["population"].rows_in == 10
    assert sorted(p.name for p in (tmp_path / "out").glob("*.parquet")) == [
        "digital.parquet", "population.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


@pytest.mark.parametrize("content", ["foreign", "stray"])
def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path, raw_set, key, content):
    raw = raw_set.write(tmp_path / "raw")
    out = tmp_path / "out"
    if content == "stray":
        ingest(raw, out, key, today=TODAY)
    else:
        out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"notes\.txt|not written by ingest") as err:
        ingest(raw, out, key, today=TODAY)
    assert str(out) in str(err.value)
    assert (out / "notes.txt").read_text() == "mine"


def test_refuses_output_inside_the_raw_folder(tmp_path, raw_set, key):
    raw = raw_set.write(tmp_path / "raw")
    with pytest.raises(InputError, match="overlaps the raw folder"):
        ingest(raw, raw / "out", key, today=TODAY)


def test_missing_raw_folder_is_an_input_error(tmp_path, key):
    with pytest.raises(InputError, match="does not exist"):
        ingest(tmp_path / "nope", tmp_path / "out", key, today=TODAY)
