"""overblik.models."""
