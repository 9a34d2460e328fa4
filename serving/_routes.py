"""Every route of the scoring service and who may call it: the one table to extend.

A new endpoint (``/recommend``, ``/allocate``) is one ``@bentoml.api`` method (or one GET
handler) plus one row here; a route missing from this table answers 404 to everyone, so
nothing is ever public by omission (a test checks the table against the service's routes).
Public rows (``roles=None``) are the probes and the API documentation: they carry no citizen
data and are not written to the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from overblik.serving._keys import ROLES, Role

__all__ = ["PUBLIC_PREFIXES", "ROUTES", "RouteRule", "match_route"]


@dataclass(frozen=True)
class RouteRule:
    """One endpoint: its method, the roles that may call it, and what it is for.

    ``identify`` are the roles that may name a citizen by CPR number on this endpoint; the
    other allowed roles may only send feature payloads. ``bulk`` endpoints take one large
    body that cannot be split into pages (``max_bulk_body_bytes`` instead of
    ``max_body_bytes``). ``uses_model``: the answer comes from the served model, so it is
    withheld (503) while the ethics board's approval of the version is withdrawn.
    """

    path: str
    method: Literal["GET", "POST"]
    roles: frozenset[Role] | None
    summary: str
    identify: frozenset[Role] = frozenset()
    bulk: bool = False
    uses_model: bool = False

    @property
    def public(self) -> bool:
        return self.roles is None


def _roles(*roles: Role) -> frozenset[Role]:
    return frozenset(roles)


CASEWORKER: Role = "caseworker-system"
ROUTES: tuple[RouteRule, ...] = (
    RouteRule("/score", "POST", _roles(CASEWORKER),
              "Score one citizen (CPR number or features) with reasons.",
              identify=_roles(CASEWORKER), uses_model=True),
    RouteRule("/score/batch", "POST", _roles(CASEWORKER),
              "Score up to 1,000 citizens (the nightly list); feature payloads also count "
              "against the body limit (2 MB by default: about 300 payloads).",
              identify=_roles(CASEWORKER), uses_model=True),
    RouteRule("/explain", "POST", _roles(CASEWORKER, "analyst"),
              "Every feature's contribution (analysts: feature payloads only).",
              identify=_roles(CASEWORKER), uses_model=True),
    RouteRule("/recommend", "POST", _roles(CASEWORKER, "analyst"),
              "Each programme's estimated effect for one citizen, with interval and reasons "
              "(analysts: feature payloads only).", identify=_roles(CASEWORKER), uses_model=True),
    RouteRule("/allocate", "POST", _roles("analyst"),
              "Places of each programme for up to 20,000 citizens (feature payloads), within "
              "places and budget.", bulk=True, uses_model=True),
    RouteRule("/feedback", "POST", _roles(CASEWORKER),
              "The caseworker's decision on a scored or recommended request."),
    RouteRule("/metadata", "GET", frozenset(ROLES), "Model card summary, version, approval."),
    RouteRule("/audit/verify", "GET", _roles("auditor", "admin"),
              "Check the audit log's hash chain."),
    RouteRule("/metrics", "GET", _roles("admin"), "Prometheus metrics."),
    RouteRule("/healthz", "GET", None, "Liveness probe."),
    RouteRule("/livez", "GET", None, "Liveness probe."),
    RouteRule("/readyz", "GET", None, "Readiness probe."),
    RouteRule("/docs", "GET", None, "Swagger UI."),
    RouteRule("/docs.json", "GET", None, "OpenAPI document."),
    RouteRule("/", "GET", None, "Redirect to /docs."),
)
PUBLIC_PREFIXES = ("/static_content/",)
_BY_PATH = {r.path: r for r in ROUTES}
_STATIC = RouteRule("/static_content/", "GET", None, "Swagger UI assets.")


def match_route(path: str) -> RouteRule | None:
    """The rule of a request path (exact match), or None for an unknown path."""
    rule = _BY_PATH.get(path)
    if rule is None and path.startswith(PUBLIC_PREFIXES):
        return _STATIC
    return rule
