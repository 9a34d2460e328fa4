"""Pseudonyms: stable per key, different across keys; keys load only when real or asked."""

from __future__ import annotations

import json
import re

import pandas as pd
import pyarrow.parquet as pq
import pytest

from overblik.features._errors import InputError
from overblik.features._ingest import ingest
from overblik.features._pseudonym import (
    KEY_ENV,
    MIN_KEY_BYTES,
    MissingKeyError,
    PseudonymKey,
    load_key,
    pseudonymise,
    pseudonymise_one,
)
from tests.features.raw_factory import TODAY, make_raw

CPRS = pd.Series(["010190-1234", "0101901234", "311299-4001", None, "010190-1234"],
                 dtype="string")


def test_stable_for_one_key_and_blind_to_the_dash(key):
    first = pseudonymise(CPRS, key)
    again = pseudonymise(CPRS.copy(), key)
    assert first.tolist() == again.tolist()
    assert first[0] == first[1] == first[4] == pseudonymise_one("010190-1234", key)
    assert first[0] != first[2]
    assert pd.isna(first[3])
    assert first.name == "person_id"


def test_different_keys_give_unrelated_pseudonyms(key):
    other = PseudonymKey(b"another-key-entirely-0123456789", is_demo=False)
    ours, theirs = pseudonymise(CPRS, key), pseudonymise(CPRS, other)
    assert all(a != b for a, b in zip(ours.dropna(), theirs.dropna(), strict=True))
    assert key.fingerprint != other.fingerprint


def test_pseudonym_never_looks_like_a_cpr(key):
    ids = pseudonymise(pd.Series([f"{d:02d}0190-{s:04d}" for d in range(1, 29)
                                  for s in range(0, 9000, 700)]), key)
    assert ids.str.fullmatch(r"[a-p]{32}").all()
    assert not ids.str.contains(r"\d").any()


def test_no_key_is_refused_with_the_ways_to_give_one(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(MissingKeyError) as err:
        load_key()
    assert KEY_ENV in str(err.value) and "--key-file" in str(err.value)
    assert isinstance(err.value, InputError)


def test_short_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    path = tmp_path / "key"
    path.write_bytes(b"x" * (MIN_KEY_BYTES - 1) + b"\n")
    with pytest.raises(MissingKeyError, match=f"at least {MIN_KEY_BYTES}"):
        load_key(path)
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(MissingKeyError, match=KEY_ENV):
        load_key()


def test_unreadable_key_file_is_refused(tmp_path):
    with pytest.raises(MissingKeyError, match="cannot read key file"):
        load_key(tmp_path / "absent")


def test_key_file_and_environment_work(tmp_path, monkeypatch):
    secret = "a-perfectly-long-secret-0123456789"
    monkeypatch.setenv(KEY_ENV, secret)
    from_env = load_key()
    assert from_env.secret == secret.encode() and not from_env.is_demo
    path = tmp_path / "key"
    path.write_text("another-long-secret-abcdefghij\n")
    from_file = load_key(path)  # the file wins over the environment
    assert from_file.secret == b"another-long-secret-abcdefghij"
    assert pseudonymise_one("010190-1234", from_env) != pseudonymise_one("010190-1234", from_file)


def test_demo_key_only_when_asked_and_real_key_wins(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert load_key(demo=True).is_demo
    monkeypatch.setenv(KEY_ENV, "a-perfectly-long-secret-0123456789")
    assert not load_key(demo=True).is_demo


@pytest.mark.parametrize("use_demo", [True, False])
def test_outputs_are_marked_demo_exactly_when_the_demo_key_is_used(tmp_path, key, demo,
                                                                    use_demo):
    raw_set = make_raw(persons=20, events=10, sources=("health",))
    raw_set.set("health", 0, "event_type", "?")  # so the quarantine file has rows too
    raw = raw_set.write(tmp_path / "raw")
    chosen = demo if use_demo else key
    report = ingest(raw, tmp_path / "out", chosen, today=TODAY)
    assert report.demo_data is use_demo
    on_disk = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert on_disk["demo_data"] is use_demo
    assert on_disk["key_fingerprint"] == chosen.fingerprint
    files = sorted((tmp_path / "out").rglob("*.parquet"))
    assert len(files) == 4
    for path in files:
        meta = pq.read_schema(path).metadata
        assert meta[b"overblik.demo_data"] == (b"true" if use_demo else b"false"), path
        assert meta[b"overblik.key_fingerprint"] == chosen.fingerprint.encode()
    ids = pd.read_parquet(tmp_path / "out" / "population.parquet")["person_id"]
    cprs = raw_set.frames["population"]["cpr"]
    assert ids.tolist() == [pseudonymise_one(c, chosen) for c in cprs]
    assert all(re.fullmatch(r"[a-p]{32}", i) for i in ids)
