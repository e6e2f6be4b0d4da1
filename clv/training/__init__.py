"""Training as a library: time windows, cached features, Optuna studies, bundles and scoring.

The Prefect flow in ``flows/training.py`` is thin glue around these functions; everything here runs
without Prefect or MLflow (the registry lives in :mod:`clv.tracking`).
"""
