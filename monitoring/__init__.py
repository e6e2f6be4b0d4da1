"""Drift and data-quality monitoring; the only package that imports Evidently (step 4)."""
