"""One Actor for audit entries and permissions: a member, an API key or the system."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.actor import Actor
from accounts.models import ApiKey, AuditLogEntry, Role
from accounts.tenancy import tenant_context
from accounts.tests.factories import make_api_key
from core.exceptions import PermissionDenied
from core.jobs import job_kind, job_kind_authorize
from customers.models import Customer
from customers.services import customer_erase, import_create, import_start
from customers.tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db


def _entry(org, action) -> AuditLogEntry:
    with tenant_context(org):
        return AuditLogEntry.objects.get(action=action)


def test_audit_entry_from_the_site_records_the_member(owner_client, org, owner):
    with tenant_context(org):
        customer = CustomerFactory()
    r = owner_client.post(reverse("customers:erase", args=[customer.pk]), {"confirm": "on"})
    assert r.status_code in (200, 302)
    entry = _entry(org, "data_erased")
    assert (entry.actor_kind, entry.actor_id, entry.api_key_id) == ("user", owner.pk, None)
    assert entry.actor_label == owner.email


def test_audit_entry_from_an_api_key_records_the_key(org):
    key, raw = make_api_key(org, "write")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    with tenant_context(org):
        order = OrderFactory()
    assert client.delete(f"/api/v1/orders/{order.pk}/").status_code == 204
    entry = _entry(org, "order.deleted")
    assert (entry.actor_kind, entry.actor_id, entry.api_key_id) == ("api_key", None, key.pk)
    assert entry.actor_label == f"API key {key.name} ({key.prefix})"


def test_audit_entry_from_a_background_job_records_the_system(in_org, owner, settings):
    content = "order_id,customer_id,ordered_at,sku,amount\nA1,GONE1,2024-03-01T10:00:00Z,S1,5\n"
    imp = import_create(
        organization=in_org,
        kind="orders",
        uploaded_file=SimpleUploadedFile("orders.csv", content.encode()),
        user=owner,
    )
    import_start(imp=imp, user=owner, sync=True)
    customer_erase(customer=Customer.objects.get(external_id="GONE1"), actor=owner, sync_files=True)
    imp.refresh_from_db()
    assert "GONE1" not in Path(settings.MEDIA_ROOT, imp.file).read_text()
    entry = AuditLogEntry.objects.get(action="erasure_cleaned")
    job_id = entry.target.removeprefix("job #")
    assert (entry.actor_kind, entry.actor_id, entry.api_key_id) == ("system", None, None)
    assert entry.actor_label == f"job #{job_id}" and entry.details["rows_removed"] == 1
    # The erasure itself was the member's.
    assert AuditLogEntry.objects.get(action="data_erased").actor_id == owner.pk


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VIEWER, {Role.VIEWER}),
        (Role.MARKETER, {Role.VIEWER, Role.MARKETER}),
        (Role.ADMIN, {Role.VIEWER, Role.MARKETER, Role.ADMIN}),
        (Role.OWNER, {Role.VIEWER, Role.MARKETER, Role.ADMIN, Role.OWNER}),
    ],
)
def test_a_member_may_do_what_their_role_allows(org, make_member, role, allowed):
    actor = Actor.for_user(make_member(org, role), org)
    assert {r for r in Role if actor.can(r)} == allowed
    for r in set(Role) - allowed:
        with pytest.raises(PermissionDenied):
            actor.require(r)


def test_a_member_of_another_organisation_may_do_nothing_here(org, other_org, make_member):
    actor = Actor.for_user(make_member(other_org, Role.OWNER), org)
    assert actor.role is None and not actor.can(Role.VIEWER)


def test_api_keys_act_as_marketer_or_viewer_and_the_system_may_do_anything(org):
    write, _ = make_api_key(org, "write")
    read, _ = make_api_key(org, "read")
    assert {r for r in Role if Actor.for_api_key(write).can(r)} == {Role.VIEWER, Role.MARKETER}
    assert {r for r in Role if Actor.for_api_key(read).can(r)} == {Role.VIEWER}
    assert all(Actor.system("nightly").can(r) for r in Role)


def test_job_permissions_go_by_the_actor(org, make_member):
    write, _ = make_api_key(org, "write")
    read, _ = make_api_key(org, "read")
    imports, export = job_kind("import"), job_kind("org_export")
    job_kind_authorize(kind=imports, organization=org, user=Actor.for_api_key(write))
    with pytest.raises(PermissionDenied):
        job_kind_authorize(kind=imports, organization=org, user=Actor.for_api_key(read))
    with pytest.raises(PermissionDenied, match="API key cannot"):
        job_kind_authorize(kind=export, organization=org, user=Actor.for_api_key(write))
    admin = make_member(org, Role.ADMIN)
    with pytest.raises(PermissionDenied, match="owner role"):
        job_kind_authorize(kind=export, organization=org, user=admin)
    job_kind_authorize(kind=export, organization=org, user=make_member(org, Role.OWNER))
    job_kind_authorize(kind=export, organization=org, user=Actor.system("schedule"))


def test_from_request_reads_the_key_before_the_session(rf, org, owner):
    key, _ = make_api_key(org, "read")
    request = rf.get("/")
    request.user, request.api_key, request.membership = owner, key, None
    actor = Actor.from_request(request)
    assert actor.kind == "api_key" and actor.api_key == key and actor.role == Role.VIEWER
    del request.api_key
    request.membership = owner.memberships.get(organization=org)
    actor = Actor.from_request(request)
    assert (actor.kind, actor.user, actor.role) == ("user", owner, Role.OWNER)
    assert isinstance(key, ApiKey)


def test_the_person_behind_an_actor_is_kept_as_created_by(org, owner):
    write, _ = make_api_key(org, "write")
    assert Actor.person(Actor.for_user(owner, org)) == owner
    assert Actor.person(owner) == owner
    assert Actor.person(Actor.for_api_key(write)) is None
    assert Actor.person(Actor.system("nightly")) is None
    assert Actor.person(None) is None


def test_migration_gives_earlier_entries_their_actor_kind(org, owner):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("accounts.migrations.0002_audit_actor")
    with tenant_context(org):
        for actor, label in ((owner, owner.email), (None, "api-key:ab12"), (None, "command line")):
            AuditLogEntry.objects.create(action="sign_in", actor=actor, actor_label=label)
    migration.actor_kinds(apps, None)
    with tenant_context(org):
        kinds = dict(AuditLogEntry.objects.values_list("actor_label", "actor_kind"))
    assert kinds == {owner.email: "user", "api-key:ab12": "api_key", "command line": ""}
