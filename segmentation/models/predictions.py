"""Prediction runs and per-customer predictions (issue 5)."""

__all__: list[str] = []
