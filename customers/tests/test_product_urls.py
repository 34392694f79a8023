"""Product links are web addresses only: a `javascript:` or `data:` url would run
script in the owner's session when clicked (stored XSS). Refused on every way in;
values stored before the check are shown as text, never as a link."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from customers.models import Product
from customers.services.imports import run_file

pytestmark = pytest.mark.django_db

HOSTILE = [
    "javascript:alert(1)",
    " JavaScript:alert(document.cookie)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/x",
    "ftp://files.example/x",
]


def test_import_file_rejects_non_web_urls_by_row_and_field(in_org, tmp_path):
    path = tmp_path / "products.csv"
    path.write_text(
        "sku,name,url,image_url\n"
        "A1,Good,https://shop.example/a1,http://cdn.example/a1.png\n"
        "A2,Bad link,javascript:alert(1),\n"
        "A3,Bad image,,data:image/svg+xml;base64,PHN2Zz4=\n"
    )
    out = run_file(organization=in_org, path=str(path), kind="products")
    assert out.counts.created == 1 and out.counts.rejected == 2
    by_row = {e["row"]: e for e in out.errors}
    assert by_row[2]["field"] == "url" and "http" in by_row[2]["message"]
    assert by_row[3]["field"] == "image_url"
    assert list(Product.objects.values_list("sku", "url")) == [("A1", "https://shop.example/a1")]


@pytest.mark.parametrize("bad", HOSTILE)
def test_bulk_api_rejects_non_web_urls(api, org, bad):
    body = api.post(
        "/api/v1/products/bulk/",
        [{"sku": "B1", "url": "https://shop.example/b1"}, {"sku": "B2", "url": bad}],
        format="json",
    ).json()
    assert (body["created"], body["rejected"]) == (1, 1)
    assert body["errors"][0]["index"] == 1 and body["errors"][0]["field"] == "url"
    with tenant_context(org):
        assert not Product.objects.filter(sku="B2").exists()


def test_product_create_and_patch_reject_non_web_urls(api, org):
    r = api.post("/api/v1/products/", {"sku": "C1", "url": "javascript:alert(1)"}, format="json")
    assert r.status_code == 400 and "url" in str(r.json())
    r = api.post(
        "/api/v1/products/", {"sku": "C1", "url": "https://shop.example/c1"}, format="json"
    )
    assert r.status_code == 201
    pid = r.json()["id"]
    r = api.patch(f"/api/v1/products/{pid}/", {"image_url": "javascript:x"}, format="json")
    assert r.status_code == 400 and "image_url" in str(r.json())
    r = api.patch(f"/api/v1/products/{pid}/", {"url": ""}, format="json")
    assert r.status_code == 200 and r.json()["url"] == ""


def test_stored_bad_url_is_shown_as_text_not_a_link(owner_client, org):
    with tenant_context(org):
        bad = Product.objects.create(sku="OLD", name="Old", url="javascript:alert(1)")
        good = Product.objects.create(sku="NEW", name="New", url="https://shop.example/new")
    html = owner_client.get(f"/customers/products/{bad.pk}/").content.decode()
    assert 'href="javascript' not in html.lower()
    assert "javascript:alert(1)" in html  # still visible, as text
    html = owner_client.get(f"/customers/products/{good.pk}/").content.decode()
    assert 'href="https://shop.example/new"' in html
