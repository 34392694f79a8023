"""Site shell: jobs pages and the progress fragment, error pages, assets served locally."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.http import HttpResponse
from django.urls import include, path, reverse

from accounts.tenancy import tenant_context
from core.models import Job, JobStatus

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("secret internal detail")


def _ok(request):
    return HttpResponse("ok")


# Used as ROOT_URLCONF by the 500 test: the real site plus a view that fails.
urlpatterns = [path("boom/", _boom), path("", include("config.urls"))]
handler404 = "core.views.error_404"
handler500 = "core.views.error_500"


@pytest.fixture
def job(org):
    with tenant_context(org):
        return Job.objects.create(
            kind="demo", title="Import customers", status=JobStatus.RUNNING, progress=42
        )


class TestJobPages:
    def test_list_and_detail(self, owner_client, job):
        page = owner_client.get(reverse("core:jobs")).content.decode()
        assert "Import customers" in page
        assert "42%" in page
        detail = owner_client.get(reverse("core:job_detail", args=[job.pk])).content.decode()
        assert 'role="progressbar"' in detail
        assert 'aria-valuenow="42"' in detail

    def test_progress_fragment_polls_while_running(self, owner_client, job):
        response = owner_client.get(reverse("core:job_progress", args=[job.pk]))
        html = response.content.decode()
        assert not html.lstrip().startswith("<!doctype")  # a fragment, not a page
        assert 'role="progressbar"' in html
        assert 'aria-valuenow="42"' in html
        assert "width: 42%" in html
        assert f'hx-get="{reverse("core:job_progress", args=[job.pk])}"' in html
        assert 'hx-trigger="every 1s"' in html

    def test_progress_fragment_stops_polling_when_finished(self, owner_client, job):
        Job.all_objects.filter(pk=job.pk).update(
            status=JobStatus.SUCCEEDED, progress=100, message="Imported 120 customers."
        )
        html = owner_client.get(reverse("core:job_progress", args=[job.pk])).content.decode()
        assert "hx-get" not in html
        assert "hx-trigger" not in html
        assert 'aria-valuenow="100"' in html
        assert "Imported 120 customers." in html
        assert "Cancel" not in html

    def test_progress_as_json(self, owner_client, job):
        response = owner_client.get(
            reverse("core:job_progress", args=[job.pk]), HTTP_ACCEPT="application/json"
        )
        assert response.json() == {
            "id": job.pk,
            "status": "running",
            "progress": 42,
            "message": "",
            "result": {},
        }

    def test_failed_job_shows_its_reason(self, owner_client, job):
        Job.all_objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED, message="Row 7: the email is not valid."
        )
        page = owner_client.get(reverse("core:job_detail", args=[job.pk])).content.decode()
        assert "Row 7: the email is not valid." in page
        assert "Run it again" in page

    def test_cancel_through_htmx_returns_the_fragment(self, owner_client, job):
        response = owner_client.post(
            reverse("core:job_cancel", args=[job.pk]), HTTP_HX_REQUEST="true"
        )
        assert response.status_code == 200
        assert "Cancelling" in response.content.decode()
        job.refresh_from_db()
        assert job.cancel_requested

    def test_viewer_cannot_cancel_or_start_jobs(self, client, viewer, job):
        client.force_login(viewer)
        html = client.get(reverse("core:job_progress", args=[job.pk])).content.decode()
        assert "Cancel" not in html
        assert client.post(reverse("core:job_cancel", args=[job.pk])).status_code == 403
        assert client.post(reverse("core:job_rerun", args=[job.pk])).status_code == 403
        assert client.post(reverse("core:job_demo")).status_code == 403
        job.refresh_from_db()
        assert not job.cancel_requested

    def test_demo_job_runs(self, owner_client, org):
        response = owner_client.post(reverse("core:job_demo"))
        with tenant_context(org):
            job = Job.objects.get()
        assert response.url == reverse("core:job_detail", args=[job.pk])


class TestErrorPages:
    @pytest.fixture(autouse=True)
    def _no_debug(self, settings):
        settings.DEBUG = False

    def test_404_is_friendly(self, owner_client):
        response = owner_client.get("/no/such/page/")
        assert response.status_code == 404
        html = response.content.decode()
        assert "We couldn&#x27;t find that page" in html
        assert "Go to the dashboard" in html
        assert "Page not found at" not in html  # Django's debug page
        assert "URLconf" not in html

    def test_404_for_another_organisations_job(self, owner_client, other_org):
        with tenant_context(other_org):
            theirs = Job.objects.create(kind="demo", title="Rival secret")
        response = owner_client.get(reverse("core:job_detail", args=[theirs.pk]))
        assert response.status_code == 404
        assert "Rival secret" not in response.content.decode()

    def test_403_is_friendly_and_says_why(self, client, viewer, org):
        client.force_login(viewer)
        response = client.post(reverse("accounts:settings"), {"name": "x"})
        assert response.status_code == 403
        html = response.content.decode()
        assert "You don&#x27;t have access to this" in html
        assert "Viewers cannot change anything." in html
        assert "Traceback" not in html

    def test_500_is_friendly_without_a_traceback(self, client, settings):
        settings.ROOT_URLCONF = __name__
        client.raise_request_exception = False
        response = client.get("/boom/")
        assert response.status_code == 500
        html = response.content.decode()
        assert "Something went wrong on our side" in html
        assert "secret internal detail" not in html
        assert "Traceback" not in html

    def test_500_page_needs_no_database(self, rf, monkeypatch, owner):
        """The error page must render even when the failure was the database."""
        from core import views

        def broken(**kwargs):
            raise RuntimeError("database is down")

        monkeypatch.setattr("accounts.context_processors.memberships_of_user", broken)
        request = rf.get("/")
        request.user = owner
        response = views.error_500(request)
        assert response.status_code == 500
        assert "Something went wrong on our side" in response.content.decode()

    def test_api_404_has_the_error_shape(self, api):
        for url in ("/api/v1/jobs/987654/", "/api/v1/no-such-endpoint/"):
            response = api.get(url)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
            assert set(response.json()["error"]) == {"code", "message", "fields"}


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.urls.append(attrs["src"])


def _assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


def _get_asset(client, url: str):
    response = client.get(url)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


class TestAssets:
    @pytest.mark.parametrize("signed_in", [False, True], ids=["signed-out", "signed-in"])
    def test_every_asset_of_the_base_layout_is_served_by_the_app(self, client, owner, signed_in):
        if signed_in:
            client.force_login(owner)
        page = client.get(reverse("core:dashboard" if signed_in else "accounts:login"))
        assert page.status_code == 200
        urls = _assets(page.content.decode())
        assert any(u.endswith(".css") for u in urls)
        assert any(u.endswith(".js") for u in urls)  # htmx
        for url in urls:
            assert url.startswith("/"), f"{url} is not served by the app"
            assert not url.startswith("//")
            response, body = _get_asset(client, url)
            assert response.status_code == 200, url
            assert body, url

    def test_no_external_urls_in_pages(self, owner_client):
        html = owner_client.get(reverse("core:dashboard")).content.decode()
        assert not re.findall(r"(?:src|href)=\"(?:https?:)?//", html)


class TestApiDocs:
    def test_schema_is_valid_openapi(self, client):
        from drf_spectacular.validation import validate_schema

        response = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
        assert response.status_code == 200
        schema = response.json()
        validate_schema(schema)
        assert "/api/v1/jobs/{id}/" in schema["paths"]
        assert "/api/v1/jobs/{id}/cancel/" in schema["paths"]
        assert "ApiKeyAuth" in schema["components"]["securitySchemes"]

    def test_docs_are_served_with_local_assets(self, client):
        response = client.get(reverse("api-docs"))
        assert response.status_code == 200
        html = response.content.decode()
        external = [
            u
            for u in re.findall(r"https?://[^\s\"'<>)]+", html)
            if not u.startswith(("http://testserver", "https://testserver"))
        ]
        assert external == [], external
        urls = _assets(html)
        assert urls, "the docs page loads Swagger UI from somewhere"
        for url in urls:
            assert url.startswith("/"), url
            response, body = _get_asset(client, url)
            assert response.status_code == 200, url
            assert body, url
