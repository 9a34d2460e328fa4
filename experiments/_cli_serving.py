"""``overblik`` commands for serving: serve, profiles, keys, auditlog."""

from __future__ import annotations

from overblik.experiments._cli_common import app

__all__ = ["app"]
