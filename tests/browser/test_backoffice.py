"""The back office as platform staff use it (issue 17): a member of the Operations
group (staff, not a superuser) finds an organisation in the overview, suspends it
with a reason (its owner lands on the suspended page, another member's sign-in is
refused, its API key gets 403 organization_suspended), reactivates it (everything
works again) and re-runs one of its failed jobs. Then support access: staff ask,
the owner approves on their settings page, staff open the customers list, and the
owner's audit log says "Viewed by Segmenta support"."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from accounts.models import AuditLogEntry, Role
from accounts.tenancy import tenant_context
from accounts.tests.factories import UserFactory, make_api_key
from backoffice.groups import OPERATIONS, staff_groups_sync
from core.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery"
JOB_TITLE = "Count down for the back office test"


@pytest.fixture
def operations_staff(db):
    staff_groups_sync()
    user = UserFactory(email="ops@segmenta.test", is_staff=True, is_superuser=False)
    user.groups.add(Group.objects.get(name=OPERATIONS))
    return user


def _page(new_context):
    page = new_context().new_page()
    page.set_default_timeout(20_000)
    return page


def _sign_in_site(page, site, email):
    page.goto(f"{site}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _sign_in_admin(page, site, email):
    page.goto(f"{site}/admin/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def _api_customers(page, site, raw_key):
    return page.request.get(
        f"{site}/api/v1/customers/", headers={"Authorization": f"Api-Key {raw_key}"}
    )


def _open_organisation(staff, site, name):
    """From the admin index to the organisation's page through the overview's search."""
    staff.goto(f"{site}/admin/")
    staff.get_by_role("link", name="Organisations", exact=True).first.click()
    staff.locator("#searchbar").fill(name)
    staff.get_by_role("button", name="Search").click()
    staff.locator("#result_list").get_by_role("link", name=name, exact=True).click()
    expect(staff.locator("#usage")).to_contain_text("Usage and limits")


def test_staff_suspend_reactivate_and_rerun_a_failed_job(
    site, org, owner, make_member, operations_staff, new_context
):
    viewer = make_member(org, Role.VIEWER, "viewer@acme.test")
    _, raw_key = make_api_key(org, "read")
    with tenant_context(org):
        failed = Job.objects.create(
            kind="demo",
            title=JOB_TITLE,
            status="failed",
            message="Count down stopped: something went wrong.",
            params={"_task": "core.tasks.demo_countdown", "steps": 1, "delay": 0},
            attempts=1,
        )

    shop = _page(new_context)
    _sign_in_site(shop, site, owner.email)
    expect(shop).not_to_have_url(f"{site}/accounts/login/")
    assert _api_customers(shop, site, raw_key).status == 200

    staff = _page(new_context)
    _sign_in_admin(staff, site, operations_staff.email)
    _open_organisation(staff, site, "Acme Gifts")

    # --- suspend, with a reason ---
    staff.get_by_role("link", name="Suspend", exact=True).click()
    staff.get_by_role("button", name="Suspend").click()  # no reason: named, nothing done
    expect(staff.locator(".errorlist")).to_contain_text("Write the reason")
    staff.get_by_label("Reason").fill("Unpaid invoices since October")
    staff.get_by_role("button", name="Suspend").click()
    expect(staff.locator(".messagelist")).to_contain_text("Acme Gifts is suspended.")
    expect(staff.get_by_role("link", name="Reactivate", exact=True)).to_be_visible()

    # the owner, already signed in, can only see the suspended page
    shop.goto(f"{site}/")
    expect(shop.get_by_role("heading", name="Acme Gifts is suspended")).to_be_visible()
    expect(shop.get_by_text("Unpaid invoices since October")).to_be_visible()
    assert shop.url.endswith("/accounts/suspended/")
    # another member cannot sign in, and is told why
    refused = _page(new_context)
    _sign_in_site(refused, site, viewer.email)
    expect(refused.get_by_text("You cannot sign in")).to_be_visible()
    expect(refused.get_by_text("Unpaid invoices since October")).to_be_visible()
    assert refused.url.startswith(f"{site}/accounts/login/")
    # the organisation's API key is refused
    answer = _api_customers(shop, site, raw_key)
    assert answer.status == 403
    assert answer.json()["error"]["code"] == "organization_suspended"

    # --- reactivate ---
    staff.get_by_role("link", name="Reactivate", exact=True).click()
    staff.get_by_role("button", name="Reactivate").click()
    expect(staff.locator(".messagelist")).to_contain_text("Acme Gifts is active again.")
    expect(staff.get_by_role("link", name="Suspend", exact=True)).to_be_visible()

    shop.goto(f"{site}/")
    expect(shop.get_by_role("heading", name="Acme Gifts is suspended")).to_have_count(0)
    assert not shop.url.endswith("/accounts/suspended/")
    assert _api_customers(shop, site, raw_key).status == 200
    _sign_in_site(refused, site, viewer.email)
    expect(refused).not_to_have_url(f"{site}/accounts/login/")

    # --- re-run the failed job from the failing jobs page ---
    staff.goto(f"{site}/admin/")
    staff.get_by_role("link", name="Failing jobs").first.click()
    row = staff.locator("tr.job-row", has_text=JOB_TITLE).filter(has_text="Acme Gifts")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("something went wrong")
    row.get_by_role("button", name="Re-run").click()
    expect(staff.locator(".messagelist")).to_contain_text("of Acme Gifts runs again as job")
    with tenant_context(org):
        again = Job.objects.exclude(pk=failed.pk).get(title=JOB_TITLE)
        assert again.kind == "demo" and again.organization_id == org.pk
        assert AuditLogEntry.objects.filter(action="job_rerun").count() == 1
        actions = set(AuditLogEntry.objects.values_list("action", flat=True))
    assert {"org_suspended", "org_reactivated"} <= actions


def test_owner_approves_support_access_and_sees_the_views_in_the_audit_log(
    site, org, owner, operations_staff, new_context
):
    from customers.tests.factories import CustomerFactory

    with tenant_context(org):
        CustomerFactory(organization=org, email="ann@example.com", external_id="C-ANN")

    staff = _page(new_context)
    _sign_in_admin(staff, site, operations_staff.email)
    # without access, the customers list offers none of Acme's rows
    staff.goto(f"{site}/admin/customers/customer/")
    expect(staff.get_by_text("You have no open support access")).to_be_visible()
    staff.get_by_role("link", name="Ask an owner for access").click()
    staff.get_by_label("Organisation").select_option(label="Acme Gifts")
    staff.get_by_label("Reason").fill("The owner reports a wrong total on one customer")
    staff.get_by_label("Hours of access").fill("2")
    staff.get_by_role("button", name="Ask for access").click()
    expect(staff.locator(".messagelist")).to_contain_text("Asked Acme Gifts's owners")

    shop = _page(new_context)
    _sign_in_site(shop, site, owner.email)
    shop.goto(f"{site}/accounts/settings/support/")
    waiting = shop.locator("table", has_text="The owner reports a wrong total")
    expect(waiting).to_contain_text(operations_staff.email)
    waiting.get_by_role("button", name="Approve").click()
    expect(shop.get_by_text(f"Approved: {operations_staff.email} can look until")).to_be_visible()
    expect(shop.get_by_role("button", name="End access now")).to_be_visible()

    staff.goto(f"{site}/admin/customers/customer/")
    staff.get_by_role("link", name="Open customers").click()
    expect(staff.locator("#result_list")).to_contain_text("C-ANN")

    shop.goto(f"{site}/accounts/settings/audit/")
    viewed = shop.locator("tr", has_text="Viewed by Segmenta support")
    expect(viewed.first).to_be_visible()
    expect(viewed.first).to_contain_text("customers list")
    expect(viewed.first).to_contain_text(operations_staff.email)
