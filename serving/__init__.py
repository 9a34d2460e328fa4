"""overblik.serving."""
