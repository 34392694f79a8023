"""Every app's tests run: pytest's `testpaths` (pyproject.toml) names every folder of
the project that holds tests, so a new app's tests cannot be left out of CI."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".venv", "node_modules", "var", "static", "templates", "docs", "bench", "scripts"}


def test_every_folder_with_tests_is_collected():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    testpaths = set(config["tool"]["pytest"]["ini_options"]["testpaths"])
    with_tests = {
        path.parent.name if path.name == "tests" else path.name
        for path in ROOT.glob("*/tests")
        if path.is_dir() and path.parent.name not in SKIP
    }
    if (ROOT / "tests").is_dir():
        with_tests.add("tests")
    with_tests.discard(ROOT.name)
    assert with_tests - testpaths == set()
