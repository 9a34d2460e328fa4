"""Serving bench: `overblik serve` (score with reasons) against `mlflow models serve` (the same
registered model, probabilities only), same load on 127.0.0.1.

Trains the shipped child_placement settings (400 trees, early stopping) on a small
municipality, approves and promotes it, builds the profile store, then starts both servers as
subprocesses on free ports and drives them with the same bounded closed-loop load (a fixed
number of requests, ``concurrency`` connections with keep-alive, each sending its next
request when the previous answer arrived). The load generator is a minimal HTTP/1.1 client
on asyncio streams, so that it costs the shared machine less than the servers it measures.

Rows: our service by CPR number (profile store lookup, calibrated probability, five reasons
from SHAP, audit log entry synced to disk before the answer), our service by feature payload
(the same input mlflow gets), and mlflow's pyfunc by feature payload (``dataframe_split``).
The in-process floor is one call of the scoring engine (CPR, reasons; no HTTP, no audit log)
against one call of the registered pyfunc's ``predict`` on a one-row frame.

``BENCH_SERVING_REQUESTS`` (default 2000) and ``BENCH_SERVING_CONCURRENCY`` (default 1,8)
change the load, ``BENCH_SERVING_WORKERS`` (default 1) the service's worker processes.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.perf._measure import print_table
from tests.serving._setup import (
    Served,
    build_served,
    free_port,
    stop,
    subprocess_env,
    wait_ready,
)

REQUESTS = int(os.environ.get("BENCH_SERVING_REQUESTS", "2000"))
CONCURRENCY = tuple(int(c) for c in os.environ.get("BENCH_SERVING_CONCURRENCY",
                                                     "1,8").split(","))
WORKERS = int(os.environ.get("BENCH_SERVING_WORKERS", "1"))
WARMUP = 200
TARGET_RATIO, TARGET_P99_MS = 3.0, 50.0


@dataclass(frozen=True)
class Load:
    """Result of one load run."""

    requests: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    raw: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a kept-alive connection: (status, body)."""
    writer.write(raw)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    body = b""
    while True:  # chunked
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


def _raw(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
             "Content-Type: application/json", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _drive(port: int, requests: list[bytes], n: int, concurrency: int,
                 check: Callable[[int, bytes], None]) -> Load:
    """Send ``n`` requests (cycling through ``requests``) over ``concurrency`` connections."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                start = time.perf_counter()
                status, body = await _exchange(reader, writer, requests[i % len(requests)])
                latencies.append((time.perf_counter() - start) * 1000)
                check(status, body)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Load(requests=n, seconds=time.perf_counter() - start, latencies_ms=latencies)


def run_load(port: int, requests: list[bytes], n: int, concurrency: int,
             check: Callable[[int, bytes], None]) -> Load:
    """Warm up, then measure."""
    asyncio.run(_drive(port, requests, WARMUP, concurrency, check))
    return asyncio.run(_drive(port, requests, n, concurrency, check))


def _ours_ok(status: int, body: bytes) -> None:
    if status != 200 or b'"reasons":[{' not in body:
        raise AssertionError(f"overblik answered {status}: {body[:300]!r}")


def _mlflow_ok(status: int, body: bytes) -> None:
    if status != 200 or b"probability" not in body:
        raise AssertionError(f"mlflow answered {status}: {body[:300]!r}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    return build_served(tmp_path_factory.mktemp("bench-serving"), n_estimators=400)


@dataclass(frozen=True)
class Servers:
    ours: int
    mlflow: int


@pytest.fixture(scope="module")
def servers(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Both servers, started together, stopped at the end (by their process ids)."""
    folder = tmp_path_factory.mktemp("bench-servers")
    ours, peer = free_port(), free_port()
    cli = str(Path(sys.executable).parent / "overblik")
    logs = [(folder / "overblik.log").open("wb"), (folder / "mlflow.log").open("wb")]
    procs = [
        subprocess.Popen([cli, "serve", "--model", served.model_name, "--tracking-uri",
                          served.tracking_uri, "--profiles", str(served.profiles), "--store",
                          served.store_url, "--demo-key", "--port", str(ours),
                          "--workers", str(WORKERS)],
                         stdout=logs[0], stderr=subprocess.STDOUT, env=subprocess_env()),
        subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "models", "serve",
                          "-m", f"models:/{served.model_name}/{served.version}",
                          "--env-manager", "local", "--host", "127.0.0.1", "-p", str(peer)],
                         stdout=logs[1], stderr=subprocess.STDOUT,
                         env=subprocess_env(MLFLOW_TRACKING_URI=served.tracking_uri)),
    ]
    try:
        wait_ready(procs[0], f"http://127.0.0.1:{ours}/readyz")
        wait_ready(procs[1], f"http://127.0.0.1:{peer}/ping")
        yield Servers(ours=ours, mlflow=peer)
    finally:
        for proc in procs:
            stop(proc)
        for log in logs:
            log.close()


def _payloads(served: Served) -> tuple[list[str], list[str], np.ndarray, int]:
    """CPR numbers, feature names, their profile rows (same citizens, same order) and the
    model's number of trees."""
    from overblik.experiments._approval import CHAMPION
    from overblik.features import demo_key
    from overblik.features._pseudonym import pseudonymise_one
    from overblik.serving import ProfileStore, load_served_model

    model = load_served_model(served.model_name, CHAMPION, tracking_uri=served.tracking_uri)
    store = ProfileStore.load(served.profiles, features=model.feature_names,
                              key_fingerprint=demo_key().fingerprint)
    cprs = served.cprs[:500]
    rows = []
    for c in cprs:
        row = store.row(pseudonymise_one(c, demo_key()))
        assert row is not None
        rows.append(row)
    return cprs, model.feature_names, np.vstack(rows), model.estimator.booster_.num_trees()


def _json_row(row: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in row]


def _floor(served: Served, cprs: list[str], names: list[str], X: np.ndarray
           ) -> tuple[float, float]:
    """Microseconds per call: the scoring engine (CPR, reasons) and the pyfunc (one row)."""
    import mlflow
    import pandas as pd

    from overblik.serving import RequestRecord, ScoreRequest, ScoringEngine

    engine = ScoringEngine.start(served.settings(
        store_url=f"sqlite:///{served.root / 'floor.db'}"))
    requests = [ScoreRequest(cpr=c) for c in cprs]
    try:
        def one(i: int) -> None:
            record = RequestRecord(request_id=f"{i:032x}", endpoint="/score", method="POST")
            engine.score(requests[i % len(requests)], "da", record)

        ours = _per_call(one)
    finally:
        engine.close()
    mlflow.set_tracking_uri(served.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{served.model_name}/{served.version}")
    frames = [pd.DataFrame([row], columns=names) for row in X]
    peer = _per_call(lambda i: pyfunc.predict(frames[i % len(frames)]))
    return ours, peer


def _per_call(fn: Callable[[int], object], n: int = 1000) -> float:
    for i in range(50):
        fn(i)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


def test_serving_against_mlflow_models_serve(served: Served, servers: Servers) -> None:
    cprs, names, X, trees = _payloads(served)
    auth = {"Authorization": f"Bearer {served.tokens['caseworker-system']}"}
    by_cpr = [_raw(servers.ours, "/score", json.dumps({"cpr": c}).encode(), auth) for c in cprs]
    by_features = [_raw(servers.ours, "/score", json.dumps(
        {"features": dict(zip(names, _json_row(r), strict=True))}).encode(), auth) for r in X]
    peer = [_raw(servers.mlflow, "/invocations", json.dumps(
        {"dataframe_split": {"columns": names, "data": [_json_row(r)]}}).encode(), {})
        for r in X]

    rows: list[list[str]] = []
    verdict: list[str] = []
    for c in CONCURRENCY:
        results = {
            "overblik serve, by CPR (+5 reasons, audit)": run_load(
                servers.ours, by_cpr, REQUESTS, c, _ours_ok),
            "overblik serve, by features (+5 reasons, audit)": run_load(
                servers.ours, by_features, REQUESTS, c, _ours_ok),
            "mlflow models serve (probability only)": run_load(
                servers.mlflow, peer, REQUESTS, c, _mlflow_ok),
        }
        base = results["mlflow models serve (probability only)"].rps
        for name, load in results.items():
            rows.append([name, str(c), f"{load.requests:,}", f"{load.rps:,.0f}",
                         f"{load.quantile(0.5):.1f}", f"{load.quantile(0.99):.1f}",
                         f"{load.rps / base:.2f}x"])
        if c == 8:
            ours = results["overblik serve, by CPR (+5 reasons, audit)"]
            ok = ours.rps >= TARGET_RATIO * base and ours.quantile(0.99) < TARGET_P99_MS
            verdict.append(f"target at concurrency 8 (>= {TARGET_RATIO:.0f}x mlflow, p99 < "
                           f"{TARGET_P99_MS:.0f} ms): {'met' if ok else 'NOT met'} "
                           f"({ours.rps / base:.2f}x, p99 {ours.quantile(0.99):.1f} ms)")
    floor_ours, floor_peer = _floor(served, cprs, names, X)
    rows.append(["in process: engine.score (CPR, 5 reasons)", "-", "-",
                 f"{1e6 / floor_ours:,.0f}", f"{floor_ours / 1000:.2f}", "-",
                 f"{floor_peer / floor_ours:.2f}x"])
    rows.append(["in process: pyfunc.predict (one row)", "-", "-", f"{1e6 / floor_peer:,.0f}",
                 f"{floor_peer / 1000:.2f}", "-", "1.00x"])
    print_table(f"Scoring service against mlflow models serve ({served.model_name} "
                f"v{served.version}, {trees} trees, {len(names)} features; {os.cpu_count()} "
                f"cores, {WORKERS} overblik worker(s), 1 mlflow worker; ratio: requests/s "
                "against mlflow at the same concurrency)",
                ["server / path", "conc.", "requests", "req/s", "p50 ms", "p99 ms", "ratio"],
                rows)
    for line in verdict:
        print(line)
