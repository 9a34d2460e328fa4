"""``overblik`` commands for fairness: audit, review, promote."""

from __future__ import annotations

from overblik.experiments._cli_common import app

__all__ = ["app"]
