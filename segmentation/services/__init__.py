"""Segmentation services: segments, rule segments and personas (predictions live in the predictions app)."""
