"""Segmentation models (segments, memberships, personas, settings)."""

from .segments import *  # noqa: F403
