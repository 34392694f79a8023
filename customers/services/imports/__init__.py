"""The import engine: reading messy CSV files and API records into customer data."""

from . import file_limits
from .columns import FIELDS, KINDS, auto_map, build_plan
from .engine import Outcome, dry_run, run_file, run_records
from .reader import Unreadable, inspect, preview

__all__ = [
    "FIELDS",
    "KINDS",
    "Outcome",
    "Unreadable",
    "auto_map",
    "build_plan",
    "dry_run",
    "file_limits",
    "inspect",
    "preview",
    "run_file",
    "run_records",
]
