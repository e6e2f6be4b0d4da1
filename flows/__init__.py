"""Prefect flows: thin orchestration over the ``clv`` library (training, scoring, monitoring).

The flows arrive with step 3 of the roadmap (training) and step 4 (monitoring and retraining).
"""
