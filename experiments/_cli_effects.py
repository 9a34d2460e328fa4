"""``overblik`` commands for effects: effects."""

from __future__ import annotations

from overblik.experiments._cli_common import app

__all__ = ["app"]
