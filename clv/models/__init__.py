"""Models that predict customer lifetime value: probabilistic (BTYD) and machine-learned."""
