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
def browser_problems():
    """Content-Security-Policy violations and uncaught script errors seen by any
    page of the test; the test fails if there are any (see `new_context`)."""
    return []


@pytest.fixture
def new_context(new_context, browser_problems):
    """Every browser context of a test reports CSP violations and script errors:
    a blocked plotly, htmx or Swagger UI script shows up here, not as a blank chart."""

    def on_console(message):
        if message.type == "error" and "Content Security Policy" in message.text:
            browser_problems.append(f"CSP: {message.text}")

    def make(**kwargs):
        context = new_context(**kwargs)
        context.on("console", on_console)
        context.on("weberror", lambda error: browser_problems.append(f"error: {error.error}"))
        return context

    yield make
    assert browser_problems == [], "\n".join(browser_problems)


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
