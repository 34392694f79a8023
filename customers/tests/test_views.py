"""Site pages: lists, the customer and product pages, the import wizard, the dashboard."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tenancy import tenant_context
from customers import registry
from customers.models import ConsentChange, Customer, Import, ImportStatus, Order, Product
from customers.services.importing import import_from_path

from .factories import DATA, CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def retail(org):
    with tenant_context(org):
        import_from_path(
            organization=org,
            path=str(DATA / "orders_returns_guests.csv"),
            kind="orders",
            run_pipeline=False,
        )
    return org


def test_dashboard_empty_state_links_to_import(owner_client):
    r = owner_client.get("/")
    assert r.status_code == 200
    assert b"/customers/imports/new/" in r.content


def test_dashboard_figures(owner_client, retail):
    r = owner_client.get("/")
    assert r.status_code == 200
    ctx = r.context
    assert ctx["customers_count"] == 3
    assert ctx["orders_count"] == 3  # two cancellations are not purchases
    assert ctx["returns_count"] == 2
    assert ctx["active_customers"] == 2  # ordered in the 90 days up to 13 Dec 2010
    assert ctx["repeat_rate"] == 0.0
    assert ctx["chart"]["months"] == ["2010-12"]
    assert b"revenue-chart" in r.content and b"vendor/plotly.min.js" in r.content


def test_customer_list_search_filters_and_keyset_pages(owner_client, org):
    with tenant_context(org):
        for i in range(120):
            CustomerFactory(
                external_id=f"k{i:03d}", last_name=f"Name{i:03d}", country="FR" if i % 2 else "GB"
            )
    r = owner_client.get("/customers/?sort=id")
    assert r.status_code == 200
    page1 = [c.external_id for c in r.context["customers"]]
    assert page1 == [f"k{i:03d}" for i in range(50)]
    assert r.context["count"] == 120
    next_query = r.context["next_query"]
    r2 = owner_client.get("/customers/?" + next_query)
    assert [c.external_id for c in r2.context["customers"]][0] == "k050"
    r3 = owner_client.get("/customers/?" + r2.context["next_query"])
    assert len(r3.context["customers"]) == 20 and r3.context["next_query"] == ""
    r = owner_client.get("/customers/?country=FR&search=Name00")
    assert {c.external_id for c in r.context["customers"]} == {
        "k001",
        "k003",
        "k005",
        "k007",
        "k009",
    }
    # Labels for every filter, a caption on the table.
    html = r.content.decode()
    for field_id in re.findall(r'<(?:input|select) id="([^"]+)"', html):
        assert f'for="{field_id}"' in html
    assert "<caption" in html


def test_customer_list_sorts_with_nulls_across_pages(owner_client, retail):
    with tenant_context(retail):
        for i in range(60):
            CustomerFactory(external_id=f"n{i}")
    seen = []
    query = "sort=recent"
    while True:
        r = owner_client.get("/customers/?" + query)
        seen += [c.external_id for c in r.context["customers"]]
        if not r.context["next_query"]:
            break
        query = r.context["next_query"]
    assert len(seen) == len(set(seen)) == 63
    assert seen[0] == "15311"  # the most recent order first, never-ordered last


def test_customer_page_shows_orders_consent_and_panels(owner_client, retail):
    with tenant_context(retail):
        customer = Customer.objects.get(external_id="17850")
        ConsentChange.objects.create(
            customer=customer, channel="email", granted=True, source="signup form"
        )
    registry.register_customer_panel(
        "segment", lambda *, request, customer: {"template": "customers/_tabs.html", "context": {}}
    )
    r = owner_client.get(f"/customers/{customer.pk}/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "signup form" in html
    with tenant_context(retail):
        order = Order.objects.filter(customer=customer, lines__product_name="WHITE METAL LANTERN")[
            0
        ]
    assert f'href="/customers/orders/{order.pk}/"' in html
    assert (
        "WHITE METAL LANTERN" in owner_client.get(f"/customers/orders/{order.pk}/").content.decode()
    )
    assert 'id="panel-segment"' in html and 'id="panel-predictions"' in html
    assert 'id="panel-recommendations"' in html
    assert "Lifetime value and churn risk appear here" in html


def test_customer_edit_records_consent(owner_client, retail, owner):
    with tenant_context(retail):
        customer = Customer.objects.get(external_id="17850")
    r = owner_client.post(
        f"/customers/{customer.pk}/edit/",
        {"first_name": "Jo", "last_name": "", "email": "jo@example.com", "accepts_email": "on"},
    )
    assert r.status_code == 302
    with tenant_context(retail):
        customer.refresh_from_db()
        assert customer.first_name == "Jo" and customer.accepts_email
        assert ConsentChange.objects.get(customer=customer).source == f"edited by {owner.email}"


def test_viewer_cannot_edit_or_erase(client, viewer, retail):
    client.force_login(viewer)
    with tenant_context(retail):
        customer = Customer.objects.get(external_id="17850")
    assert client.get(f"/customers/{customer.pk}/").status_code == 200
    assert client.post(f"/customers/{customer.pk}/erase/").status_code == 403
    assert client.post(f"/customers/{customer.pk}/edit/", {"first_name": "x"}).status_code == 403


def test_erase_from_the_site(owner_client, retail, django_capture_on_commit_callbacks):
    with tenant_context(retail):
        customer = Customer.objects.get(external_id="17850")
    assert owner_client.get(f"/customers/{customer.pk}/erase/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        r = owner_client.post(f"/customers/{customer.pk}/erase/")
    assert r.status_code == 302
    assert owner_client.get(f"/customers/{customer.pk}/").status_code == 404


def test_customer_json_export_download(owner_client, retail):
    with tenant_context(retail):
        customer = Customer.objects.get(external_id="17850")
    r = owner_client.get(f"/customers/{customer.pk}/export/")
    assert r.status_code == 200 and r["Content-Type"].startswith("application/json")
    assert r.json()["customer"]["external_id"] == "17850"


def test_products_and_product_page_with_chart(owner_client, retail):
    r = owner_client.get("/customers/products/?search=lantern")
    assert [p.sku for p in r.context["products"]] == ["71053"]
    with tenant_context(retail):
        product = Product.objects.get(sku="71053")
    r = owner_client.get(f"/customers/products/{product.pk}/")
    assert r.status_code == 200
    assert r.context["sales"]["total_units"] == 12
    assert r.context["chart"]["months"] == ["2010-12"]
    assert b"sales-data" in r.content and b"vendor/plotly.min.js" in r.content


def test_import_wizard_end_to_end(owner_client, org, django_capture_on_commit_callbacks):
    content = (DATA / "orders_cp1252_semicolon.csv").read_bytes()
    r = owner_client.post(
        "/customers/imports/new/",
        {"kind": "orders", "file": SimpleUploadedFile("kasse.csv", content)},
    )
    assert r.status_code == 302
    with tenant_context(org):
        imp = Import.objects.get()
    r = owner_client.get(r["Location"])
    html = r.content.decode()
    assert "cp1252" in html and "Rechnung" in html
    mapping = {
        "map_0": "order_id",
        "map_1": "customer_id",
        "map_2": "ordered_at",
        "map_3": "sku",
        "map_4": "product_name",
        "map_5": "quantity",
        "map_6": "unit_price",
    }
    r = owner_client.post(f"/customers/imports/{imp.pk}/map/", {**mapping, "action": "check"})
    assert r.status_code == 200
    check = r.context["check"]
    assert check.counts.created == 4 and check.counts.rejected == 0
    with tenant_context(org):
        assert not Order.objects.exists()  # a check stores nothing
    with django_capture_on_commit_callbacks(execute=True):
        r = owner_client.post(f"/customers/imports/{imp.pk}/map/", {**mapping, "action": "start"})
    assert r.status_code == 302
    with tenant_context(org):
        imp.refresh_from_db()
        assert imp.status == ImportStatus.SUCCEEDED and imp.created == 4
        assert Order.objects.count() == 3
    r = owner_client.get(f"/customers/imports/{imp.pk}/")
    assert b"Rows read" in r.content
    assert owner_client.get("/customers/imports/").status_code == 200


def test_import_wizard_date_format_choice_and_rejected_rows(
    owner_client, org, django_capture_on_commit_callbacks
):
    r = owner_client.post(
        "/customers/imports/new/",
        {
            "kind": "orders",
            "file": SimpleUploadedFile("a.csv", (DATA / "orders_ambiguous_dates.csv").read_bytes()),
        },
    )
    with tenant_context(org):
        imp = Import.objects.get()
    fields = {
        f"map_{i}": v
        for i, v in enumerate(
            ["order_id", "customer_id", "ordered_at", "sku", "quantity", "unit_price"]
        )
    }
    r = owner_client.post(f"/customers/imports/{imp.pk}/map/", {**fields, "action": "check"})
    assert r.status_code == 400 and "--date-format" in r.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            f"/customers/imports/{imp.pk}/map/",
            {**fields, "action": "start", "date_format": "%d/%m/%Y %H:%M"},
        )
    with tenant_context(org):
        imp.refresh_from_db()
        assert imp.status == ImportStatus.SUCCEEDED and imp.created == 3

    r = owner_client.post(
        "/customers/imports/new/",
        {
            "kind": "orders",
            "file": SimpleUploadedFile("b.csv", (DATA / "orders_bad_rows.csv").read_bytes()),
        },
    )
    with tenant_context(org):
        bad = Import.objects.order_by("-pk").first()
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            f"/customers/imports/{bad.pk}/map/",
            {
                f"map_{i}": v
                for i, v in enumerate(
                    [
                        "order_id",
                        "customer_id",
                        "ordered_at",
                        "sku",
                        "quantity",
                        "unit_price",
                        "amount",
                    ]
                )
            }
            | {"action": "start"},
        )
    r = owner_client.get(f"/customers/imports/{bad.pk}/")
    assert "does not match quantity × unit_price" in r.content.decode()
    r = owner_client.get(f"/customers/imports/{bad.pk}/rejected.csv")
    assert r.status_code == 200
    assert b"".join(r.streaming_content).decode().count("\n") == 5


def test_upload_refusals_are_shown_on_the_form(owner_client, settings):
    r = owner_client.post(
        "/customers/imports/new/",
        {"kind": "orders", "file": SimpleUploadedFile("x.xlsx", b"PK\x03\x04....")},
    )
    assert r.status_code == 200 and "Excel" in r.content.decode()
    settings.UPLOAD_MAX_BYTES = 5
    r = owner_client.post(
        "/customers/imports/new/",
        {"kind": "orders", "file": SimpleUploadedFile("x.csv", b"a,b\n1,2\n")},
    )
    assert "larger than the limit" in r.content.decode()


def test_other_organisation_gets_404(client, other_org, make_member, retail):
    from accounts.models import Role

    stranger = make_member(other_org, Role.OWNER)
    client.force_login(stranger)
    with tenant_context(retail):
        customer = Customer.objects.first()
        product = Product.objects.first()
    for url in (
        f"/customers/{customer.pk}/",
        f"/customers/{customer.pk}/export/",
        f"/customers/products/{product.pk}/",
    ):
        assert client.get(url).status_code == 404
    assert client.post(f"/customers/{customer.pk}/erase/").status_code == 404


def test_customer_page_lists_orders_one_row_each(owner_client, retail):
    """A customer with 34 orders made a page 22,000 px tall: every line of every order.
    The page lists each order once (date, what, status, total); its lines are on the
    order's own page."""
    with tenant_context(retail):
        customer = Customer.objects.get(external_id="17850")
        orders = list(Order.objects.filter(customer=customer))
    html = owner_client.get(f"/customers/{customer.pk}/").content.decode()
    table = html[html.index('id="customer-orders"') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == len(orders) + 1  # a row per order and the header
    assert "and " in table and " more" in table  # several lines read as one row
    for order in orders:
        assert f'href="/customers/orders/{order.pk}/"' in table
