"""Evaluation of CLV and churn predictions: metrics (normalised Gini, decile MAPE, ...), plots."""
