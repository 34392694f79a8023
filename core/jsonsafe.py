"""Values for JSON columns: no NaN or infinity ever reaches the database.

JSON has no NaN or infinity. Python's encoder writes them anyway (`NaN`), and both
databases refuse the result (SQLite's JSON_VALID check, PostgreSQL's jsonb), so one
undefined model figure failed a whole run. Every summary, result and parameter dict
stored by a job goes through `json_safe` first: a number that is not finite becomes
null, which the pages and the API show as "not known".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (also numpy's) replaced by None, recursively;
    numpy scalars and arrays become plain Python values."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    return value
