"""Browser tests: Playwright driving Debian's Chromium against pytest-django's
live server (installed by `make test-browser`, see scripts/browser-deps.sh)."""

from __future__ import annotations

import os
import re
from urllib.parse import urlparse

import pytest

# Playwright's sync API runs an event loop in this thread; Django's ORM calls made
# by the test body are still synchronous, so allow them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"


def pytest_configure(config):
    # Screenshots of every open page go to test-results/ when a test fails.
    if config.getoption("--screenshot", default=None) == "off":
        config.option.screenshot = "only-on-failure"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: run `bash scripts/browser-deps.sh`")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def site(live_server, settings):
    """The live server's base URL; links in emails point at it."""
    settings.SITE_URL = live_server.url
    return live_server.url


@pytest.fixture
def link_in():
    def find(message, marker: str) -> str:
        for url in re.findall(r"https?://\S+", message.body):
            if marker in url:
                return urlparse(url).path
        raise AssertionError(f"No link with {marker!r} in: {message.body}")

    return find
