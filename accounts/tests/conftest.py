from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from accounts.models import Role


@pytest.fixture
def admin(org, make_member):
    return make_member(org, Role.ADMIN, "admin@acme.test")


@pytest.fixture
def link_in():
    """The site path of the first link in an email body that contains `marker`."""

    def find(message, marker: str) -> str:
        for url in re.findall(r"https?://\S+", message.body):
            if marker in url:
                return urlparse(url).path
        raise AssertionError(f"No link with {marker!r} in: {message.body}")

    return find


@pytest.fixture
def client_factory():
    """Fresh browsers: `client_factory()` is a new, signed-out test client."""
    from django.test import Client

    return Client
