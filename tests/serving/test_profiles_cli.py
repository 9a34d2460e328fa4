"""`overblik profiles` writes the store the service reads (Parquet or CSV, same features as
training); `overblik example-request` prints a ready curl for the demo."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from overblik.experiments._cli import app
from overblik.features import demo_key
from overblik.features._tables import EventTables
from overblik.serving import ProfileStore
from tests.serving._setup import AS_OF, Served
from tests.serving.test_startup import _new_version

runner = CliRunner()


def _profiles(served: Served, out: Path, *extra: str) -> str:
    result = runner.invoke(app, ["profiles", "--as-of", AS_OF.isoformat(), "--clean",
                                 str(served.root / "clean"), "--model", served.model_name,
                                 "--tracking-uri", served.tracking_uri, "--out", str(out),
                                 *extra])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_profiles_cli_parquet_and_csv_match_the_served_store(served: Served,
                                                             tmp_path: Path) -> None:
    said = _profiles(served, tmp_path / "p.parquet")
    assert f"as of {AS_OF.isoformat()}" in said and f"version {served.version}" in said
    assert "may not serve" not in said
    reference = pd.read_parquet(served.profiles)
    written = pd.read_parquet(tmp_path / "p.parquet")
    pd.testing.assert_frame_equal(written, reference)
    _profiles(served, tmp_path / "p.csv", "--format", "csv")
    assert (tmp_path / "p.csv.meta.json").is_file()
    names = [c for c in reference.columns if c not in ("person_id", "as_of")]
    fingerprint = demo_key().fingerprint
    parquet = ProfileStore.load(tmp_path / "p.parquet", features=names,
                                key_fingerprint=fingerprint)
    csv = ProfileStore.load(tmp_path / "p.csv", features=names, key_fingerprint=fingerprint)
    assert len(csv) == len(parquet) == len(reference)
    np.testing.assert_allclose(csv.matrix, parquet.matrix, rtol=1e-12, equal_nan=True)
    assert csv.meta.as_of == parquet.meta.as_of == AS_OF.isoformat()


def test_profiles_of_a_version_that_may_not_serve_say_so(served: Served,
                                                          tmp_path: Path) -> None:
    """Built silently for a rejected version (profiles need no approval; serving does)."""
    _new_version(served, "rejected-for-profiles", decision="rejected")
    said = _profiles(served, tmp_path / "p.parquet", "--alias", "rejected-for-profiles")
    assert "this version may not serve" in said and "rejected it" in said


def test_profiles_whose_windows_reach_before_the_data_are_built_with_a_warning(
        served: Served, tmp_path: Path) -> None:
    """A date whose longest window reaches back before the data begins: the store is built
    (the operator may need it), the command warns, and the store keeps the warning for
    `serve` to repeat; a date with full history gives no warning."""
    tables = EventTables.load(served.root / "clean")
    span = tables.event_span()
    assert span is not None
    begins = span[0].normalize()
    early = (begins + pd.Timedelta(days=400)).date()  # features[0] looks back 730 days
    result = runner.invoke(app, ["profiles", "--as-of", early.isoformat(), "--clean",
                                 str(served.root / "clean"), "--model", served.model_name,
                                 "--tracking-uri", served.tracking_uri, "--out",
                                 str(tmp_path / "early.parquet")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    full = (begins + pd.Timedelta(days=730)).date()
    expected = (f"warning: profiles as of {early}: the experiment's features[0] looks back "
                f"730 days, before the data begins ({begins.date()})")
    assert expected in said and f"build the store as of {full} or later" in said
    names = [c for c in pd.read_parquet(served.profiles).columns
             if c not in ("person_id", "as_of")]
    store = ProfileStore.load(tmp_path / "early.parquet", features=names,
                              key_fingerprint=demo_key().fingerprint)
    assert len(store.meta.warnings) == 1 and expected[len("warning: "):] in " ".join(
        store.meta.warnings[0].split())
    check = runner.invoke(app, ["serve", "--check", "--model", served.model_name,
                                "--tracking-uri", served.tracking_uri, "--profiles",
                                str(tmp_path / "early.parquet"), "--store", served.store_url,
                                "--demo-key"])
    assert check.exit_code == 0, check.output
    assert expected in " ".join(check.output.split())  # serve repeats it at start-up
    assert "warning" not in _profiles(served, tmp_path / "full.parquet")
    assert ProfileStore.load(tmp_path / "full.parquet", features=names,
                             key_fingerprint=demo_key().fingerprint).meta.warnings == []


def test_profiles_cli_bad_input_exits_2(served: Served, tmp_path: Path) -> None:
    bad_date = runner.invoke(app, ["profiles", "--as-of", "01-06-2025", "--clean",
                                   str(served.root / "clean"), "--tracking-uri",
                                   served.tracking_uri])
    assert bad_date.exit_code == 2 and "YYYY-MM-DD" in bad_date.output
    no_day = runner.invoke(app, ["profiles", "--as-of", "2026-02-30", "--clean",
                                 str(served.root / "clean"), "--tracking-uri",
                                 served.tracking_uri])
    assert no_day.exit_code == 2 and "'2026-02-30' is not a date" in no_day.output
    no_data = runner.invoke(app, ["profiles", "--as-of", "2025-06-01", "--clean", str(tmp_path),
                                  "--model", served.model_name, "--tracking-uri",
                                  served.tracking_uri, "--out", str(tmp_path / "x.parquet")])
    assert no_data.exit_code == 2 and "overblik ingest" in " ".join(no_data.output.split())
    for day, words in (("2099-01-01", "the data ends on"), ("1990-01-01", "the data begins on")):
        outside = runner.invoke(app, ["profiles", "--as-of", day, "--clean",
                                      str(served.root / "clean"), "--model", served.model_name,
                                      "--tracking-uri", served.tracking_uri, "--out",
                                      str(tmp_path / "outside.parquet")])
        assert outside.exit_code == 2, outside.output
        assert words in " ".join(outside.output.split())
        assert not (tmp_path / "outside.parquet").exists()


def test_profiles_never_replace_what_is_not_a_profile_store(served: Served,
                                                          tmp_path: Path) -> None:
    """An --out that is a folder, lies in the ingested data, is another file, or names the
    other format is refused before any work, and nothing is changed (the ingested
    population register was replaced by a profile store, a folder was a traceback)."""
    import shutil

    clean = tmp_path / "clean"
    shutil.copytree(served.root / "clean", clean)
    register = clean / "population.parquet"
    before = register.read_bytes()
    other = tmp_path / "notes.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(other)
    cases = [(register, "parquet", "is inside the ingested data"),
             (tmp_path, "parquet", "is a folder: give a file name"),
             (other, "parquet", "exists and is not a profile store"),
             (tmp_path / "p.csv", "parquet", "names a csv file but --format is parquet"),
             (tmp_path / "p.parquet", "csv", "names a parquet file but --format is csv")]
    for out, fmt, words in cases:
        result = runner.invoke(app, ["profiles", "--as-of", AS_OF.isoformat(), "--clean",
                                     str(clean), "--model", served.model_name,
                                     "--tracking-uri", served.tracking_uri, "--out", str(out),
                                     "--format", fmt])
        assert result.exit_code == 2, (out, result.output)
        assert words in " ".join(result.output.split()), result.output
    assert register.read_bytes() == before
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "p.parquet").exists()
    _profiles(served, other.with_name("p.parquet"))  # a profile store is replaced freely
    _profiles(served, other.with_name("p.parquet"))


def test_example_request(served: Served, tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(served.tokens["caseworker-system"] + "\n")
    result = runner.invoke(app, ["example-request", "--raw", str(served.root / "m" / "raw"),
                                 "--api-key-file", str(key_file), "--profiles",
                                 str(served.profiles), "--port", "3123"])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith("curl -s -X POST http://127.0.0.1:3123/score")
    assert f"$(cat {key_file})" in line and served.tokens["caseworker-system"] not in line
    cpr = re.search(r'"cpr": "([0-9-]+)"', line)
    assert cpr is not None and cpr.group(1) in served.cprs
    recommend = runner.invoke(app, ["example-request", "--raw", str(served.root / "m" / "raw"),
                                    "--api-key-file", str(key_file), "--profiles",
                                    str(served.profiles), "--endpoint", "recommend"])
    assert recommend.exit_code == 0, recommend.output
    assert recommend.output.startswith("curl -s -X POST http://127.0.0.1:3000/recommend")
    wrong = runner.invoke(app, ["example-request", "--raw", str(served.root / "m" / "raw"),
                                "--api-key-file", str(key_file), "--profiles",
                                str(served.profiles), "--endpoint", "allocate"])
    assert wrong.exit_code == 2 and "score or recommend" in wrong.output
    # Not demo data (another key): refused, nothing printed but the reason.
    other = tmp_path / "other.parquet"
    table = pd.read_parquet(served.profiles)
    table.to_parquet(other)  # no overblik metadata
    refused = runner.invoke(app, ["example-request", "--raw", str(served.root / "m" / "raw"),
                                  "--api-key-file", str(key_file), "--profiles", str(other)])
    assert refused.exit_code == 2 and "demo" in refused.output
    # A clean folder for --raw, a store that is not Parquet, an empty key file: one message.
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for args, words in (
            (["--raw", str(served.root / "clean"), "--api-key-file", str(key_file)],
             "cannot be read"),
            (["--raw", str(served.root / "m" / "raw"), "--api-key-file", str(key_file),
              "--profiles", str(garbage)], "is not a profile store"),
            (["--raw", str(served.root / "m" / "raw"), "--api-key-file", str(empty)],
             "is empty")):
        defaults = [] if "--profiles" in args else ["--profiles", str(served.profiles)]
        bad = runner.invoke(app, ["example-request", *args, *defaults])
        assert bad.exit_code == 2, bad.output
        assert words in " ".join(bad.output.split()) and "Traceback" not in bad.output
    spaced = runner.invoke(app, ["example-request", "--raw", str(served.root / "m" / "raw"),
                                 "--api-key-file", str(key_file), "--profiles",
                                 str(served.profiles), "--host", "a b;rm -rf"])
    assert spaced.exit_code == 0 and "'http://a b;rm -rf:3000/score'" in spaced.output
