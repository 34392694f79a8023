"""Operator commands `create_org` and `create_api_key` (CONTRACT.md)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.models import ApiKey, AuditLogEntry, Membership, Organization, Role, User
from accounts.tenancy import tenant_context

pytestmark = pytest.mark.django_db


def run(name: str, *args) -> dict:
    out = StringIO()
    call_command(name, *args, stdout=out)
    last = out.getvalue().strip().splitlines()[-1]
    return json.loads(last)


def run_failing(name: str, *args, capsys) -> str:
    out = StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command(name, *args, stdout=out)
    assert exc.value.code != 0
    assert out.getvalue() == ""
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err, f"expected one line on stderr, got {err!r}"
    return err


class TestCreateOrg:
    def test_creates_org_and_owner(self):
        result = run(
            "create_org",
            "--name",
            "Corner Bakery",
            "--owner",
            "Baker@Example.com",
            "--password",
            "flour-and-water-1",
            "--time-zone",
            "Europe/Berlin",
            "--currency",
            "eur",
        )
        assert set(result) == {"id", "slug"}
        org = Organization.objects.get(pk=result["id"])
        assert (org.slug, org.name, org.time_zone, org.currency) == (
            "corner-bakery",
            "Corner Bakery",
            "Europe/Berlin",
            "EUR",
        )
        user = User.objects.get(email="baker@example.com")
        assert user.check_password("flour-and-water-1")
        assert Membership.objects.get(user=user, organization=org).role == Role.OWNER

    def test_defaults_are_utc_and_usd(self):
        result = run("create_org", "--name", "Plain", "--owner", "plain@example.com")
        org = Organization.objects.get(pk=result["id"])
        assert (org.time_zone, org.currency) == ("UTC", "USD")
        # No password given: the owner sets one through a reset.
        assert not User.objects.get(email="plain@example.com").has_usable_password()

    def test_existing_user_is_added_as_owner(self, owner, org):
        result = run("create_org", "--name", "Second", "--owner", owner.email)
        assert User.objects.filter(email=owner.email).count() == 1
        assert Membership.objects.get(user=owner, organization_id=result["id"]).role == Role.OWNER
        assert Membership.objects.get(user=owner, organization=org).role == Role.OWNER

    def test_bad_time_zone_fails_with_one_line_and_stores_nothing(self, capsys):
        err = run_failing(
            "create_org",
            "--name",
            "Nowhere",
            "--owner",
            "x@example.com",
            "--time-zone",
            "Mars/Olympus_Mons",
            capsys=capsys,
        )
        assert "time zone" in err.lower()
        assert "Mars/Olympus_Mons" in err
        assert not Organization.objects.filter(name="Nowhere").exists()
        assert not User.objects.filter(email="x@example.com").exists()

    def test_taken_slug_fails_with_one_line(self, org, capsys):
        err = run_failing(
            "create_org", "--name", "Dup", "--owner", "d@example.com", "--slug", org.slug,
            capsys=capsys,
        )  # fmt: skip
        assert "taken" in err


class TestCreateApiKey:
    def test_key_is_printed_once_and_stored_as_a_hash(self, org):
        result = run("create_api_key", "--org", org.slug, "--name", "Warehouse")
        assert set(result) == {"key", "prefix", "scope"}
        assert result["scope"] == "read"
        assert result["key"].startswith(f"sk_{result['prefix']}_")
        api_key = ApiKey.objects.get(prefix=result["prefix"])
        assert api_key.organization == org
        assert api_key.key_hash == ApiKey.hash(result["key"])
        assert all(result["key"] not in str(v) for v in ApiKey.objects.values().get().values())
        with tenant_context(org):
            entry = AuditLogEntry.objects.get(action="key_created")
        assert entry.actor_label == "command line"

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {result['key']}")
        assert client.get("/api/v1/organization/").json()["slug"] == org.slug

    def test_write_scope(self, org):
        result = run("create_api_key", "--org", org.slug, "--name", "Sync", "--scope", "write")
        assert result["scope"] == "write"
        assert ApiKey.objects.get(prefix=result["prefix"]).scope == "write"

    def test_unknown_organisation_fails_with_one_line(self, capsys):
        err = run_failing("create_api_key", "--org", "nope", "--name", "x", capsys=capsys)
        assert "nope" in err
        assert not ApiKey.objects.exists()
