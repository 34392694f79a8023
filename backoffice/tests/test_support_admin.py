"""The back office gate on customer-level data (backoffice/support_admin.py): staff,
superusers included, open an organisation's customers, orders, activity, consent,
feedback, imports and segment members only through an active support grant, and
every view lands in that organisation's audit log."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from accounts import support
from accounts.models import AuditLogEntry, Role, SupportGrant
from accounts.tenancy import tenant_context
from accounts.tests.factories import UserFactory
from backoffice.support_admin import ORG_PARAM, SupportGatedAdmin
from customers.models import (
    ConsentChange,
    Customer,
    Event,
    Feedback,
    Import,
    Order,
)
from customers.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

REASON = "The owner reports wrong totals on their customers page"
SECRET_EMAIL = "alice.secret@shop-a.test"
SECRET_ID = "A-ALICE-7781"


def _gated_models():
    from segmentation.models import SegmentMembership

    return [Customer, Order, Event, ConsentChange, Feedback, Import, SegmentMembership]


def _url(model, view, *args):
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def _first_pk(model, org):
    return model.all_objects.filter(organization=org).values_list("pk", flat=True).first()


def _viewed(org):
    with tenant_context(org):
        return list(
            AuditLogEntry.objects.filter(action="support_viewed").values_list("target", flat=True)
        )


@pytest.fixture
def world(org, other_org, owner, make_member):
    from segmentation.tests.factories import build_world

    build_world(org)
    with tenant_context(org):
        CustomerFactory(email=SECRET_EMAIL, external_id=SECRET_ID)
    with tenant_context(other_org):
        CustomerFactory(email="bob@shop-b.test", external_id="B-BOB-1")
    make_member(other_org, Role.OWNER, "owner@rival.test")
    return org


@pytest.fixture
def superuser():
    """Superusers are gated too."""
    return UserFactory(email="root@segmenta.test", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(client, superuser):
    client.force_login(superuser)
    return client


def _grant(org, staff, owner, hours=2):
    grant = support.grant_request(organization=org, staff=staff, reason=REASON, hours=hours)
    return support.grant_approve(grant=grant, actor=owner)


def test_every_admin_of_customer_level_rows_is_gated():
    """A future admin of a model that points at a customer must use the gate."""
    from customers.models import Customer as CustomerModel

    gated = {m for m, a in admin.site._registry.items() if isinstance(a, SupportGatedAdmin)}
    assert set(_gated_models()) <= gated
    for model, model_admin in admin.site._registry.items():
        points_at_customer = model is CustomerModel or any(
            getattr(f, "related_model", None) is CustomerModel for f in model._meta.fields
        )
        if points_at_customer:
            assert isinstance(model_admin, SupportGatedAdmin), model


# --- Without a grant: nothing -------------------------------------------------------------


def test_list_without_an_organisation_offers_grants_not_rows(world, staff_client):
    page = staff_client.get(_url(Customer, "changelist"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "You have no open support access" in body
    assert reverse("admin:accounts_supportgrant_request") in body
    assert SECRET_EMAIL not in body and SECRET_ID not in body and "bob@shop-b" not in body


@pytest.mark.parametrize("model", _gated_models(), ids=lambda m: m.__name__)
def test_staff_without_a_grant_cannot_open_list_or_record(world, staff_client, model):
    list_page = staff_client.get(_url(model, "changelist"), {ORG_PARAM: world.pk})
    assert list_page.status_code == 403
    assert b"no support access to Acme Gifts" in list_page.content
    assert b"Ask the owner" in list_page.content
    pk = _first_pk(model, world)
    assert pk is not None, f"build_world made no {model.__name__}"
    record = staff_client.get(_url(model, "change", pk))
    assert record.status_code == 403
    for body in (list_page.content, record.content):
        assert SECRET_EMAIL.encode() not in body and SECRET_ID.encode() not in body
    assert _viewed(world) == []


def test_a_waiting_request_is_named_instead_of_asking_again(world, staff_client, superuser):
    support.grant_request(organization=world, staff=superuser, reason=REASON, hours=3)
    page = staff_client.get(_url(Customer, "changelist"), {ORG_PARAM: world.pk})
    assert page.status_code == 403
    body = page.content.decode()
    assert "the owners have not answered yet" in body and "3 hours" in body
    assert "Ask the owner for access" not in body
    assert SECRET_EMAIL not in body and SECRET_ID not in body


def test_no_customer_data_in_the_body_without_a_grant(world, staff_client):
    with tenant_context(world):
        alice = Customer.objects.get(external_id=SECRET_ID)
    for url in (
        _url(Customer, "change", alice.pk),
        _url(Customer, "history", alice.pk),
        _url(Customer, "delete", alice.pk),
        _url(Customer, "changelist") + f"?{ORG_PARAM}={world.pk}&q=alice",
    ):
        response = staff_client.get(url)
        assert response.status_code in (403, 404), url
        assert SECRET_EMAIL.encode() not in response.content, url
    # The admin's autocomplete searches a gated admin's rows: none without a grant.
    found = staff_client.get(
        reverse("admin:autocomplete"),
        {
            "app_label": "customers",
            "model_name": "order",
            "field_name": "customer",
            "term": "alice",
        },
    )
    assert found.json()["results"] == []


@pytest.mark.parametrize("state", ["pending", "declined", "revoked", "expired"])
def test_grants_that_are_not_active_give_no_access(world, owner, superuser, staff_client, state):
    grant = support.grant_request(organization=world, staff=superuser, reason=REASON, hours=2)
    if state == "declined":
        support.grant_decline(grant=grant, actor=owner)
    elif state == "revoked":
        support.grant_revoke(grant=support.grant_approve(grant=grant, actor=owner), actor=owner)
    elif state == "expired":
        support.grant_approve(grant=grant, actor=owner)
        with tenant_context(world):
            SupportGrant.objects.filter(pk=grant.pk).update(
                expires_at=timezone.now() - timedelta(minutes=1)
            )
    with tenant_context(world):
        alice = Customer.objects.get(external_id=SECRET_ID)
    assert staff_client.get(_url(Customer, "changelist"), {ORG_PARAM: world.pk}).status_code == 403
    record = staff_client.get(_url(Customer, "change", alice.pk))
    assert record.status_code == 403 and SECRET_EMAIL.encode() not in record.content


# --- With a grant: that organisation only, read-only, every view audited -----------------------


def test_granted_list_shows_that_organisation_and_is_audited(world, owner, superuser, staff_client):
    _grant(world, superuser, owner)
    page = staff_client.get(_url(Customer, "changelist"), {ORG_PARAM: world.pk})
    assert page.status_code == 200
    assert SECRET_EMAIL.encode() in page.content
    assert b"bob@shop-b" not in page.content
    assert _viewed(world) == ["customers list"]


def test_granted_record_is_audited_by_kind_and_id(world, owner, superuser, staff_client):
    _grant(world, superuser, owner)
    with tenant_context(world):
        alice = Customer.objects.get(external_id=SECRET_ID)
    page = staff_client.get(_url(Customer, "change", alice.pk))
    assert page.status_code == 200 and SECRET_EMAIL.encode() in page.content
    assert _viewed(world) == [f"customer #{alice.pk}"]


@pytest.mark.parametrize("model", _gated_models(), ids=lambda m: m.__name__)
def test_every_gated_admin_opens_with_a_grant(world, owner, superuser, staff_client, model):
    _grant(world, superuser, owner)
    assert staff_client.get(_url(model, "changelist"), {ORG_PARAM: world.pk}).status_code == 200
    pk = _first_pk(model, world)
    assert staff_client.get(_url(model, "change", pk)).status_code == 200
    record = str(model._meta.verbose_name).lower()
    assert f"{record} #{pk}" in _viewed(world)


def test_a_search_term_never_reaches_the_audit_log(world, owner, superuser, staff_client):
    _grant(world, superuser, owner)
    page = staff_client.get(_url(Customer, "changelist"), {ORG_PARAM: world.pk, "q": SECRET_EMAIL})
    assert page.status_code == 200 and SECRET_ID.encode() in page.content
    assert _viewed(world) == ["customers list (searched)"]
    with tenant_context(world):
        for entry in AuditLogEntry.objects.all():
            text = f"{entry.target} {entry.details}"
            assert "alice" not in text and SECRET_ID not in text


def test_a_grant_for_one_organisation_gives_nothing_of_another(
    world, other_org, owner, superuser, staff_client
):
    _grant(world, superuser, owner)
    with tenant_context(other_org):
        bob = Customer.objects.get()
    listing = staff_client.get(_url(Customer, "changelist"), {ORG_PARAM: other_org.pk})
    assert listing.status_code == 403 and b"bob@shop-b" not in listing.content
    record = staff_client.get(_url(Customer, "change", bob.pk))
    assert record.status_code == 403 and b"bob@shop-b" not in record.content
    assert _viewed(other_org) == []


def test_list_without_an_organisation_links_the_granted_one(world, owner, superuser, staff_client):
    _grant(world, superuser, owner)
    page = staff_client.get(_url(Customer, "changelist")).content.decode()
    assert "Acme Gifts" in page and f"?{ORG_PARAM}={world.pk}" in page
    assert SECRET_EMAIL not in page
    assert _viewed(world) == []  # a list of grants shows no customer data


def test_granted_data_is_read_only(world, owner, superuser, staff_client):
    _grant(world, superuser, owner)
    with tenant_context(world):
        alice = Customer.objects.get(external_id=SECRET_ID)
    page = staff_client.get(_url(Customer, "change", alice.pk))
    assert b'name="_save"' not in page.content
    changed = staff_client.post(_url(Customer, "change", alice.pk), {"email": "x@y.test"})
    assert changed.status_code == 403
    assert staff_client.get(_url(Customer, "add")).status_code == 403
    assert staff_client.post(_url(Customer, "delete", alice.pk), {"post": "yes"}).status_code == 403
    with tenant_context(world):
        assert Customer.objects.get(pk=alice.pk).email == SECRET_EMAIL


def test_a_granted_view_appears_in_the_owners_audit_log(world, owner, superuser, client):
    _grant(world, superuser, owner)
    with tenant_context(world):
        alice = Customer.objects.get(external_id=SECRET_ID)
    client.force_login(superuser)
    assert client.get(_url(Customer, "change", alice.pk)).status_code == 200
    client.force_login(owner)
    page = client.get(reverse("accounts:audit")).content.decode()
    assert "Viewed by Segmenta support" in page
    assert f"customer #{alice.pk}" in page
    assert "Segmenta support (root@segmenta.test)" in page


# --- Asking for access, emergency, ending ---------------------------------------------------


def _staff_with(*perms, email):
    user = UserFactory(email=email, is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def test_request_form_asks_the_owners(
    world, client, mailoutbox, django_capture_on_commit_callbacks
):
    staff = _staff_with(support.REQUEST_PERMISSION, email="helper@segmenta.test")
    client.force_login(staff)
    url = reverse("admin:accounts_supportgrant_request")
    form = client.get(url, {"organization": world.pk})
    assert form.status_code == 200 and b"Reason" in form.content
    short = client.post(url, {"organization": world.pk, "reason": "help", "hours": 2})
    assert short.status_code == 200 and b"at least 10 characters" in short.content
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(url, {"organization": world.pk, "reason": REASON, "hours": 2})
    assert done.status_code == 302
    with tenant_context(world):
        grant = SupportGrant.objects.get()
    assert grant.staff == staff and grant.status == "pending" and grant.hours == 2
    assert [m.to for m in mailoutbox] == [["owner@acme.test"]]
    listing = client.get(reverse("admin:accounts_supportgrant_changelist"))
    assert listing.status_code == 200 and b"Acme Gifts" in listing.content


def test_emergency_form_needs_the_permission_and_a_reason(world, client):
    staff = _staff_with(support.REQUEST_PERMISSION, email="helper@segmenta.test")
    client.force_login(staff)
    url = reverse("admin:accounts_supportgrant_emergency")
    assert client.get(url).status_code == 403
    assert client.post(url, {"organization": world.pk, "reason": REASON}).status_code == 403
    with tenant_context(world):
        assert not SupportGrant.objects.exists()

    oncall = _staff_with(
        support.REQUEST_PERMISSION, support.EMERGENCY_PERMISSION, email="oncall@segmenta.test"
    )
    client.force_login(oncall)
    missing = client.post(url, {"organization": world.pk, "reason": "", "hours": 4})
    assert missing.status_code == 200 and b"This field is required" in missing.content
    too_long = client.post(url, {"organization": world.pk, "reason": REASON, "hours": 5})
    assert too_long.status_code == 200
    with tenant_context(world):
        assert not SupportGrant.objects.exists()
    assert (
        client.post(url, {"organization": world.pk, "reason": REASON, "hours": 4}).status_code
        == 302
    )
    assert support.grant_active_for(staff=oncall, organization_id=world.pk) is not None
    with tenant_context(world):
        alice = Customer.objects.get(external_id=SECRET_ID)
    assert client.get(_url(Customer, "change", alice.pk)).status_code == 200


def test_staff_see_only_their_own_grants_and_can_end_them(world, owner, superuser, client):
    other = _staff_with(support.REQUEST_PERMISSION, email="other@segmenta.test")
    mine = _grant(world, superuser, owner)
    theirs = _grant(world, other, owner)
    client.force_login(other)
    listing = client.get(reverse("admin:accounts_supportgrant_changelist")).content.decode()
    assert reverse("admin:accounts_supportgrant_end", args=[theirs.pk]) in listing
    assert reverse("admin:accounts_supportgrant_end", args=[mine.pk]) not in listing
    assert (
        client.post(reverse("admin:accounts_supportgrant_end", args=[mine.pk])).status_code == 404
    )
    confirm = client.get(reverse("admin:accounts_supportgrant_end", args=[theirs.pk]))
    assert confirm.status_code == 200 and b"End access" in confirm.content
    client.post(reverse("admin:accounts_supportgrant_end", args=[theirs.pk]))
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.status == "ended" and mine.status == "active"
    with tenant_context(world):
        alice = Customer.objects.get(external_id=SECRET_ID)
    assert client.get(_url(Customer, "change", alice.pk)).status_code == 403


# --- PostgreSQL: as in production, the list reads through the platform login --------------


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql"),
    reason="PostgreSQL only",
)
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_granted_list_reads_through_the_platform_role_and_audits_through_the_app_role(
    client, settings
):
    """The admin runs in the escape hatch (the platform login, which sees every
    organisation's rows); the gate still shows only the granted organisation, and
    the audit entry is written as that organisation (row-level security admits it)."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    from accounts.tests.factories import MembershipFactory, OrganizationFactory

    settings.PLATFORM_DATABASE_ALIAS = "platform"
    a, b = OrganizationFactory(), OrganizationFactory()
    for org, external_id in ((a, "A-ONE"), (b, "B-ONE")):
        with tenant_context(org):
            CustomerFactory(external_id=external_id)
    owner = MembershipFactory(organization=a, role=Role.OWNER).user
    staff = UserFactory(email="root-pg@segmenta.test", is_staff=True, is_superuser=True)
    _grant(a, staff, owner)
    client.force_login(staff)
    with CaptureQueriesContext(connections["platform"]) as platform:
        page = client.get(_url(Customer, "changelist"), {ORG_PARAM: a.pk})
        refused = client.get(_url(Customer, "changelist"), {ORG_PARAM: b.pk})
    assert page.status_code == 200 and refused.status_code == 403
    assert b"A-ONE" in page.content and b"B-ONE" not in page.content
    assert b"B-ONE" not in refused.content
    assert any('FROM "customers_customer"' in q["sql"] for q in platform.captured_queries)
    assert _viewed(a) == ["customers list"] and _viewed(b) == []


@pytest.mark.parametrize("method", ["post", "options", "put"])
def test_no_method_shows_granted_data_without_an_audit_entry(
    world, owner, superuser, staff_client, method
):
    """The gate audits what it shows: a POST (no actions, nothing editable) or an
    OPTIONS/PUT to the list or a record rendered the rows with no audit entry."""
    _grant(world, superuser, owner)
    with tenant_context(world):
        alice = Customer.objects.get(external_id=SECRET_ID)
    send = getattr(staff_client, method)
    for url in (
        _url(Customer, "changelist") + f"?{ORG_PARAM}={world.pk}",
        _url(Customer, "change", alice.pk),
    ):
        response = send(url)
        assert response.status_code in (403, 405), (method, url)
        assert SECRET_EMAIL.encode() not in response.content, (method, url)
    assert _viewed(world) == []
