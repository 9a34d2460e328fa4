"""Prometheus metrics of the scoring service, labelled by route, never by request path.

BentoML's own HTTP metrics label every request with its raw path, so ``GET /<anything>``
would put whatever a client typed (a CPR number, say) into ``/metrics`` and grow the label
set without bound. The service turns them off and counts here instead: the route from the
route table (``(unknown)`` for any other path), the status and the latency. Under
``bentoml serve`` (``PROMETHEUS_MULTIPROC_DIR`` set) the numbers of all workers are summed.
"""

from __future__ import annotations

import functools
import os
from typing import Any

__all__ = ["CONTENT_TYPE", "observe", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@functools.cache
def _instruments() -> tuple[Any, Any]:
    from prometheus_client import Counter, Histogram

    requests = Counter("overblik_requests", "Requests answered, by route and status.",
                       ["endpoint", "status"])
    latency = Histogram("overblik_request_duration_seconds",
                        "Time to answer (audit log append included), by route.", ["endpoint"],
                        buckets=_BUCKETS)
    return requests, latency


def observe(endpoint: str, status: int, seconds: float) -> None:
    """Count one answered request (``endpoint`` is a route of the table or ``(unknown)``)."""
    requests, latency = _instruments()
    requests.labels(endpoint=endpoint, status=str(status)).inc()
    latency.labels(endpoint=endpoint).observe(seconds)


def render() -> bytes:
    """The metrics in Prometheus' text format (all workers' under ``bentoml serve``)."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    _instruments()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return bytes(generate_latest(registry))
    return bytes(generate_latest(REGISTRY))
