"""Segmentation models, one module per capability (re-exported here for Django)."""

from .predictions import *  # noqa: F403
from .segments import *  # noqa: F403
