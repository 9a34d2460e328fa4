"""overblik.experiments."""
