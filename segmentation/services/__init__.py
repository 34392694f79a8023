"""Segmentation services: one module per capability (segments, personas, predictions)."""
