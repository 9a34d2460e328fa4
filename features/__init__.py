"""overblik.features."""
