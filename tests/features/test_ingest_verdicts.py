"""Ingest: no name or address passes, and a source that is (almost) wholly rejected is said so.

A wholly rejected source (or a population register with no row) fails the run with one
error naming the file, the most common reason and the fix, after writing everything; more
than half of a source quarantined is a warning in the report.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from overblik.features._contracts import SOURCE_BY_NAME, SOURCES
from overblik.features._errors import InputError
from overblik.features._ingest import REPORT_NAME, ingest
from overblik.features._pseudonym import PseudonymKey, pseudonymise_identifier
from overblik.features._tables import EventTables
from overblik.features._validation import RARE_MARK
from tests.features.raw_factory import TODAY, RawSet
from tests.features.test_ingest import accepted, dashed, no_event_person, quarantine, run

NAME = "Jens Hansen"
ADDRESS = "Nørregade 12, 2. th, 1165 København K"
# Any of these words in an output file means a name or an address got through.
TELLTALES = ("Jens", "Hansen", "Nørregade", "København")


def output_texts(folder: Path) -> list[tuple[str, str]]:
    """(file, text) of every Parquet cell, column name and metadata value, and every other file."""
    texts: list[tuple[str, str]] = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            cells = [*frame.columns, *frame.astype(str).to_numpy().ravel()]
            cells += [v.decode() for v in (pq.read_schema(path).metadata or {}).values()]
            texts += [(path.name, str(c)) for c in cells]
        elif path.is_file():
            texts.append((path.name, path.read_text()))
    return texts


def plant_everywhere(raw_set: RawSet) -> dict[str, list[int]]:
    """A name in one row and an address in the next, for every column of every source."""
    planted: dict[str, list[int]] = {}
    for source in SOURCES:
        rows = []
        for i, column in enumerate(source.columns):
            for j, value in enumerate((NAME, ADDRESS)):
                row = 2 * i + j
                raw_set.set(source.name, row, column, value)
                rows.append(row)
        planted[source.name] = rows
    return planted


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_no_name_or_address_in_any_output(tmp_path, raw_set, key, fmt):
    planted = plant_everywhere(raw_set)
    report = run(raw_set, tmp_path, key, fmt)

    leaks = [(f, t) for f, t in output_texts(tmp_path / "out") if any(w in t for w in TELLTALES)]
    assert leaks == []
    # the scan is meaningful: the planted rows are in the output, accepted or quarantined
    for name, rows in planted.items():
        written = [*accepted(tmp_path, name)["source_row"],
                   *quarantine(tmp_path, name)["source_row"]]
        assert {r + 1 for r in rows} <= set(written)
    # free text in a household id is still an id (its pseudonym); anywhere else it fails a rule
    pop = accepted(tmp_path, "population").set_index("source_row")
    column = SOURCE_BY_NAME["population"].columns.index("household_id")
    assert pop.loc[2 * column + 1, "household_id"] == pseudonymise_identifier(NAME, key)
    assert report.sources["population"].quarantined == 2 * 9  # every other column: 2 rows


def test_free_text_in_a_quarantined_code_is_removed_but_codes_stay_readable(tmp_path, raw_set,
                                                                            key):
    raw_set.set("children_families", 1, "reporter", NAME)
    # A code the silo sends for many persons stays readable (a mapping to fix); a word only
    # a few hold may be a one-word name, street or e-mail address and is removed.
    held = raw_set.frames["children_families"]["cpr"]
    many = [i for i in range(2, len(held)) if held[i] not in set(held[:2])]
    many = [i for i in many if held[i] not in {held[j] for j in many if j < i}][:5]
    for i in many:
        raw_set.set("children_families", i, "reporter", "neighbour")
    rare = {"Hansen", "Ærøvej", "jens.hansen@mail.dk", "Nørregade12,2200", "12345678"}
    other = [i for i in range(2, len(held)) if i not in many][:len(rare)]
    for i, value in zip(other, sorted(rare), strict=True):
        raw_set.set("children_families", i, "reporter", value)
    raw_set.set("health", 3, "event_time", "2020-01-01 25:00")  # a bad time, not free text
    run(raw_set, tmp_path, key)
    q = quarantine(tmp_path, "children_families").set_index("source_row")
    assert q.loc[2, "reporter"] == "<free text removed>"
    assert q.loc[2, "reason"] == "bad_code:reporter"
    assert {q.loc[i + 1, "reporter"] for i in many} == {"neighbour"}
    assert {q.loc[i + 1, "reporter"] for i in other} == {RARE_MARK}
    assert not rare & set(q["reporter"])
    assert quarantine(tmp_path, "health")["event_time"].tolist() == ["2020-01-01 25:00"]


def test_a_cpr_number_written_another_way_does_not_pass_the_quarantine(tmp_path, raw_set,
                                                                         key):
    """Dots, an en dash, a slash, spaces between the digits: each is still a CPR number (they
    passed into the quarantine as written)."""
    cpr = dashed(str(raw_set.frames["population"]["cpr"][0]))
    d = cpr.replace("-", "")
    spellings = [f"{d[:2]}.{d[2:4]}.{d[4:6]}\u2013{d[6:]}", f"{d[:6]}/{d[6:]}",
                 " ".join(d), f"{d[:6]}\u2212{d[6:]}"]
    for row, text in enumerate(spellings, start=1):
        raw_set.set("children_families", row, "reporter", text)
    run(raw_set, tmp_path, key)
    q = quarantine(tmp_path, "children_families")
    assert len(q) == len(spellings)
    leaks = [(f, t) for f, t in output_texts(tmp_path / "out")
             if d in "".join(ch for ch in t if ch.isdigit())]
    assert leaks == []


def test_household_ids_are_pseudonyms_that_keep_households_together(tmp_path, raw_set, key):
    raw = raw_set.frames["population"]["household_id"]
    raw_set.set("population", 0, "household_id", f" {raw[0]} ")  # layout, not another household
    raw_set.set("population", no_event_person(raw_set), "sex", "?")  # quarantined
    run(raw_set, tmp_path, key)

    pop = accepted(tmp_path, "population")
    original = raw.str.strip().iloc[pop["source_row"] - 1].to_numpy()
    assert pop["household_id"].tolist() == [pseudonymise_identifier(h, key) for h in original]
    assert not set(pop["household_id"]) & set(raw)
    # same household in, same household out, and no two households merged
    pairs = set(zip(original, pop["household_id"], strict=True))
    assert len(pairs) == len({h for h, _ in pairs}) == len({p for _, p in pairs})
    other = PseudonymKey(b"another-key-0123456789abcdef", is_demo=False)
    assert pseudonymise_identifier(original[0], other) != pop["household_id"].iloc[0]
    assert pseudonymise_identifier("H-1", key) != pseudonymise_identifier("H1", key)
    q = quarantine(tmp_path, "population")
    assert q["household_id"].tolist() == [pseudonymise_identifier(raw.iloc[-1], key)]


def test_a_folder_of_an_older_ingest_is_refused_until_ingested_again(tmp_path, raw_set, key):
    # Format /1 wrote raw household ids: such a folder must not be read as if it were clean.
    run(raw_set, tmp_path, key)
    report = tmp_path / "out" / REPORT_NAME
    doc = json.loads(report.read_text())
    assert doc["format"] == "overblik-ingest-report/2"
    EventTables.load(tmp_path / "out")  # the current format reads
    report.write_text(json.dumps({**doc, "format": "overblik-ingest-report/1"}))
    with pytest.raises(InputError) as err:
        EventTables.load(tmp_path / "out")
    assert "'overblik-ingest-report/1'" in str(err.value)
    assert "older folders hold raw household ids" in str(err.value)
    assert "run `overblik ingest` again" in str(err.value)
    # ingest may replace the older folder, as it replaces its own output
    again = ingest(tmp_path / "raw", tmp_path / "out", key, today=TODAY)
    assert not again.errors
    EventTables.load(tmp_path / "out")


# --- a wholly rejected source fails the run, after writing everything ------------------------


def _birth_date_as_number(raw_set: RawSet, raw: Path) -> None:
    table = pq.read_table(raw / "population.parquet")
    seconds = table.column("birth_date").cast(pa.int64())
    pq.write_table(table.set_column(1, "birth_date", seconds), raw / "population.parquet")


def _header_only_register(raw_set: RawSet, raw: Path) -> None:
    (raw / "population.parquet").unlink()
    (raw / "population.csv").write_text(",".join(SOURCE_BY_NAME["population"].columns) + "\n")


def _no_valid_hours(raw_set: RawSet, raw: Path) -> None:
    frame = raw_set.frames["health"].assign(hours="lots")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), raw / "health.parquet")


REJECTED = {
    "birth_date stored as a number": (
        _birth_date_as_number, TODAY,
        "population.parquet: all 120 rows quarantined (bad_type:birth_date): store birth_date "
        "as a date (YYYY-MM-DD), not a number; without an accepted register every event is "
        "quarantined as unknown_cpr"),
    "header-only register": (
        _header_only_register, TODAY,
        "population.csv holds no rows (only a header): the population register must list"),
    "one event source wholly bad": (
        _no_valid_hours, TODAY,
        "health.parquet: all 60 rows quarantined (bad_type:hours): write hours as a number "
        "with '.' as the decimal point"),
    "reference date before every event": (
        lambda raw_set, raw: None, date(2000, 1, 1),
        "children_families.parquet, employment.parquet, health.parquet, schools.parquet, "
        "economy.parquet, digital.parquet: all rows quarantined (future_date:event_time): "
        "event_time is after the reference date 2000-01-01: check the reference date"),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_wholly_rejected_source_fails_the_run_but_loses_nothing(tmp_path, raw_set, key, case):
    spoil, today, expected = REJECTED[case]
    raw = raw_set.write(tmp_path / "raw", "parquet", typed=True)
    spoil(raw_set, raw)
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        ingest(raw, out, key, today=today)

    message = str(err.value)
    assert message.startswith(expected), message
    assert message.count("quarantined (") <= 1  # one cause, not one sentence per source
    assert f"are in {out}" in message
    report = json.loads((out / REPORT_NAME).read_text())
    assert message.startswith("; ".join(report["errors"]))
    for name, s in report["sources"].items():
        assert s["rows_in"] == s["accepted"] + s["quarantined"]
        assert len(quarantine(tmp_path, name)) == s["quarantined"]
        assert len(accepted(tmp_path, name)) == s["accepted"]
    with pytest.raises(InputError, match="the ingest of this folder failed"):
        EventTables.load(out)  # kept so nothing is lost, but not data to train or score on


def test_most_rows_quarantined_is_a_warning_not_an_error(tmp_path, raw_set, key):
    for row in range(31):
        raw_set.set("economy", row, "amount_dkk", "-5")
    raw_set.set("population", no_event_person(raw_set), "cpr", "101902357")  # lost its zero
    report = run(raw_set, tmp_path, key)

    assert report.errors == []
    assert report.warnings == [
        "population.csv: 1 row(s) hold a 9-digit cpr, a CPR number that lost its leading zero "
        "on the way through a number: export cpr as text",
        "economy.csv: 31 of 60 rows (52%) quarantined, most as bad_code:amount_dkk: use the "
        "values the economy contract allows for amount_dkk (`overblik contracts` lists them)",
    ]
    on_disk = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert on_disk["warnings"] == report.warnings
    assert on_disk["errors"] == []


def test_half_quarantined_is_no_warning(tmp_path, raw_set, key):
    for row in range(30):
        raw_set.set("economy", row, "amount_dkk", "-5")
    assert run(raw_set, tmp_path, key).warnings == []


# --- a clean folder damaged after ingest --------------------------------------------------
def test_a_deleted_or_damaged_clean_file_is_refused(tmp_path, raw_set, key):
    """Without its health file every health feature read as 0 (no events) and the summary
    counted fewer siloes, silently; a damaged file gave a pyarrow traceback."""
    from typer.testing import CliRunner

    from overblik.experiments._cli import app

    raw = raw_set.write(tmp_path / "raw", "parquet", typed=True)
    clean = tmp_path / "clean"
    ingest(raw, clean, key, today=TODAY)
    intact = CliRunner().invoke(app, ["summary", "--clean", str(clean)])
    assert intact.exit_code == 0, intact.output
    report = json.loads((clean / REPORT_NAME).read_text())
    assert report["sources"]["health"]["accepted"] > 0
    (clean / "health.parquet").unlink()
    for run_it in (lambda: EventTables.load(clean),
                   lambda: CliRunner().invoke(app, ["summary", "--clean", str(clean)])):
        try:
            result = run_it()
        except InputError as exc:
            message = str(exc)
        else:
            assert result.exit_code == 2, result.output
            message = result.output
        assert "health.parquetismissing" in "".join(message.split())  # wrapped by the console
    (clean / "health.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"health\.parquet cannot be read as Parquet"):
        EventTables.load(clean)


def test_a_swapped_file_or_broken_report_is_refused(tmp_path, raw_set, key):
    """A file replaced by another (here: half the health events) read as if it were what
    the ingest wrote; a report without per-source counts, or a folder in its place, was a
    traceback in `overblik summary`."""
    import shutil

    from typer.testing import CliRunner

    from overblik.experiments._cli import app

    raw = raw_set.write(tmp_path / "raw", "parquet", typed=True)
    clean = tmp_path / "clean"
    ingest(raw, clean, key, today=TODAY)
    report = json.loads((clean / REPORT_NAME).read_text())

    def refused(folder: Path, words: str) -> None:
        with pytest.raises(InputError, match=words):
            EventTables.load(folder)
        result = CliRunner().invoke(app, ["summary", "--clean", str(folder)])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output

    swapped = tmp_path / "swapped"
    shutil.copytree(clean, swapped)
    health = pd.read_parquet(clean / "health.parquet")
    health.iloc[: len(health) // 2].to_parquet(swapped / "health.parquet", index=False)
    refused(swapped, rf"health\.parquet holds {len(health) // 2:,} rows but the ingest wrote "
                     rf"{len(health):,}")
    for damage in ({"sources": None}, {"sources": {"population": "x"}}, {"today": None}):
        broken = tmp_path / f"broken{len(list(tmp_path.iterdir()))}"
        shutil.copytree(clean, broken)
        (broken / REPORT_NAME).write_text(json.dumps({**report, **damage}))
        refused(broken, "is not an ingest report")
    folder = tmp_path / "folder"
    shutil.copytree(clean, folder)
    (folder / REPORT_NAME).unlink()
    (folder / REPORT_NAME).mkdir()
    refused(folder, "is a folder, not an ingest report")
