"""overblik.fairness."""
