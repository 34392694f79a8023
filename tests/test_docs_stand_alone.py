"""The README and docs/ stand on their own (issue 9: the README sent readers to
`../shared/…`, which a clone does not have), and docs/contract.md names every
command and API endpoint the code has."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

ROOT = Path(settings.BASE_DIR)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_no_page_points_outside_the_repository():
    for page in PAGES:
        text = page.read_text()
        for outside in ("../shared", "/work/", "DESIGN.md", "CONTRACT.md"):
            assert outside not in text, f"{page.name} refers to {outside}"


def test_every_page_the_readme_names_exists():
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`(docs/[\w.-]+\.md)`", readme))
    assert "docs/contract.md" in named
    for path in named:
        assert (ROOT / path).is_file(), f"README names {path}, which does not exist"


def _api_paths():
    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern)

    for path in walk(get_resolver().url_patterns):
        if not path.startswith("api/v1/") or "(?P<format>" in path:
            continue
        path = path.removeprefix("api/v1/").lstrip("^").rstrip("$")
        # router regex groups and path converters (<int:pk>) both read as {id}
        path = re.sub(r"\(\?P<\w+>[^)]+\)", "{id}", path)
        yield re.sub(r"<(?:\w+:)?\w+>", "{id}", path)


def test_contract_names_every_api_endpoint_and_command():
    contract = (ROOT / "docs" / "contract.md").read_text()
    missing = sorted({p for p in _api_paths() if p and p not in contract})
    assert not missing, f"docs/contract.md does not describe: {missing}"
    commands = {
        p.stem
        for app in ("accounts", "customers", "segmentation", "core")
        for p in (ROOT / app / "management" / "commands").glob("*.py")
        if not p.stem.startswith("_")
    }
    for command in commands:
        assert f"`{command}" in contract, f"docs/contract.md does not describe {command}"
