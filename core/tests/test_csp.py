"""Content-Security-Policy: every page forbids inline script, so markup that slips
into a page (a stored value, a template mistake) cannot run. The pages themselves
carry no inline script or event-handler attribute; plotly, htmx, Swagger UI and the
admin load theirs from files (the browser tests check they still work)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.template import engines

from accounts.tenancy import tenant_context
from customers.models import Product

pytestmark = pytest.mark.django_db

# Data islands (`json_script`) are not executed, so CSP does not apply to them.
DATA_TYPES = {"application/json", "application/ld+json"}


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inline, self.handlers, self._open = [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.handlers += [f"<{tag} {k}=…>" for k in a if k.startswith("on")]
        if tag == "script" and "src" not in a and a.get("type") not in DATA_TYPES:
            self._open = a
        for k in ("href", "action", "formaction", "src"):
            if (a.get(k) or "").strip().lower().startswith("javascript:"):
                self.handlers.append(f"<{tag} {k}=javascript:…>")

    def handle_data(self, data):
        if self._open is not None and data.strip():
            self.inline.append(data.strip()[:80])

    def handle_endtag(self, tag):
        if tag == "script":
            self._open = None


def _script_src(response) -> list[str]:
    header = response.headers.get("Content-Security-Policy", "")
    for part in header.split(";"):
        words = part.split()
        if words and words[0] == "script-src":
            return words[1:]
    return []


def _assert_safe(response, url):
    assert response.status_code == 200, url
    sources = _script_src(response)
    assert sources, f"{url}: no script-src in {response.headers.get('Content-Security-Policy')!r}"
    assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources, url
    assert "*" not in sources and "data:" not in sources, url
    if "text/html" in response.headers.get("Content-Type", ""):
        parser = _Scripts()
        parser.feed(response.content.decode())
        assert parser.inline == [], f"{url}: inline script {parser.inline}"
        assert parser.handlers == [], f"{url}: {parser.handlers}"


@pytest.fixture
def rich_org(org):
    """An organisation with segments, personas, predictions and sales, so every
    chart page renders its charts."""
    from segmentation.tests.factories import planted_run

    planted_run(org)
    with tenant_context(org):
        product = Product.objects.create(sku="CSP-1", name="Lamp", url="https://shop.example/l")
    return org, product


def test_every_site_page_forbids_inline_script(owner_client, owner, rich_org):
    org, product = rich_org
    with tenant_context(org):
        from segmentation.models import Persona, Segment

        segment = Segment.objects.order_by("pk").first()
        persona = Persona.objects.order_by("pk").first()
    urls = [
        "/",
        "/jobs/",
        "/customers/",
        "/customers/products/",
        f"/customers/products/{product.pk}/",
        "/customers/imports/",
        "/segments/",
        f"/segments/{segment.pk}/",
        "/segments/personas/",
        f"/segments/personas/{persona.pk}/edit/",
        "/segments/predictions/",
        "/accounts/profile/",
        "/accounts/settings/",
        "/accounts/settings/members/",
        "/accounts/settings/api-keys/",
        "/accounts/two-factor/",
        "/api/docs/",
    ]
    for url in urls:
        _assert_safe(owner_client.get(url), url)


def test_signed_out_pages_forbid_inline_script(client):
    for url in ("/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"):
        _assert_safe(client.get(url), url)


def test_admin_forbids_inline_script(client, owner):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    client.force_login(owner)
    for url in ("/admin/", "/admin/customers/product/", f"/admin/accounts/user/{owner.pk}/change/"):
        _assert_safe(client.get(url), url)
    client.logout()
    _assert_safe(client.get("/admin/login/"), "/admin/login/")


def test_swagger_ui_initialises_from_a_file(owner_client):
    page = owner_client.get("/api/docs/").content.decode()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page)
    init = [s for s in scripts if "script" in s.split("?", 1)[-1]]
    assert init, scripts
    js = owner_client.get(init[0].replace("&amp;", "&"))
    assert js.status_code == 200 and "SwaggerUIBundle" in js.content.decode()


def _template_files() -> list[Path]:
    dirs = [Path(d) for d in settings.TEMPLATES[0]["DIRS"]]
    dirs += [
        p / "templates" for p in Path(settings.BASE_DIR).iterdir() if (p / "templates").is_dir()
    ]
    return [f for d in dirs for f in d.rglob("*.html")]


def test_no_template_has_inline_script_or_event_handlers():
    """Catches templates the page list above does not visit (fragments, emails)."""
    engines["django"]  # templates exist and load
    found = []
    for path in _template_files():
        text = path.read_text()
        for m in re.finditer(r"<script\b([^>]*)>", text):
            attrs = m.group(1)
            if "src=" not in attrs and "application/json" not in attrs:
                found.append(f"{path.name}: inline <script>")
        for m in re.finditer(r"<[a-zA-Z][^>]*\son[a-z]+\s*=", text):
            found.append(f"{path.name}: {m.group(0)[:60]}")
    assert found == []
