"""API authentication and roles: API keys, the session, and the error shape."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiKey, Role
from accounts.tenancy import tenant_context
from core.models import Job, JobStatus

pytestmark = pytest.mark.django_db


def _key_client(raw: str | None = None, header: str | None = None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    elif raw is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def _assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["fields"], dict)
    assert "Traceback" not in response.content.decode()
    return body["error"]


@pytest.fixture
def running_job(org):
    with tenant_context(org):
        return Job.objects.create(kind="demo", title="Demo", status=JobStatus.RUNNING)


class TestApiKeys:
    def test_write_key_reads_and_writes(self, api, org, running_job):
        response = api.get("/api/v1/organization/")
        assert response.status_code == 200
        assert response.json()["slug"] == "acme"
        response = api.post(f"/api/v1/jobs/{running_job.pk}/cancel/")
        assert response.status_code == 200

    def test_read_key_cannot_write(self, api_read, running_job):
        assert api_read.get(f"/api/v1/jobs/{running_job.pk}/").status_code == 200
        error = _assert_error_shape(api_read.post(f"/api/v1/jobs/{running_job.pk}/cancel/"), 403)
        assert error["code"] == "permission_denied"
        running_job.refresh_from_db()
        assert not running_job.cancel_requested

    def test_revoked_key_is_401(self, org, owner):
        api_key, raw = services.api_key_create(organization=org, name="k", actor=owner)
        client = _key_client(raw)
        assert client.get("/api/v1/organization/").status_code == 200
        services.api_key_revoke(api_key=api_key, actor=owner)
        error = _assert_error_shape(client.get("/api/v1/organization/"), 401)
        assert error["code"] == "authentication_failed"

    @pytest.mark.parametrize(
        "header",
        [None, "Api-Key garbage", "Api-Key sk_deadbeef_nope", "Api-Key ", "Bearer abc"],
        ids=["missing", "garbage", "unknown", "empty", "other-scheme"],
    )
    def test_missing_or_garbage_key_is_401_with_the_error_shape(self, org, header):
        response = _key_client(header=header).get("/api/v1/jobs/")
        _assert_error_shape(response, 401)
        assert response.headers["WWW-Authenticate"] == "Api-Key"

    def test_key_acts_for_its_own_organisation(self, api, org, other_org):
        with tenant_context(org):
            mine = Job.objects.create(kind="demo", title="Mine")
        with tenant_context(other_org):
            theirs = Job.objects.create(kind="demo", title="Theirs")
        ids = [j["id"] for j in api.get("/api/v1/jobs/").json()["results"]]
        assert ids == [mine.pk]
        _assert_error_shape(api.get(f"/api/v1/jobs/{theirs.pk}/"), 404)

    def test_last_used_is_recorded(self, org):
        api_key, raw = services.api_key_create(organization=org, name="k")
        assert api_key.last_used_at is None
        _key_client(raw).get("/api/v1/organization/")
        api_key.refresh_from_db()
        assert api_key.last_used_at is not None

    def test_key_is_stored_hashed(self, org):
        api_key, raw = services.api_key_create(organization=org, name="k")
        assert ApiKey.objects.filter(key_hash=ApiKey.hash(raw)).get() == api_key
        assert not ApiKey.objects.filter(key_hash=raw).exists()


class TestSession:
    def test_viewer_reads_but_gets_403_on_write(self, viewer, running_job):
        client = APIClient()
        client.force_login(viewer)
        assert client.get(f"/api/v1/jobs/{running_job.pk}/").status_code == 200
        _assert_error_shape(client.post(f"/api/v1/jobs/{running_job.pk}/cancel/"), 403)
        running_job.refresh_from_db()
        assert not running_job.cancel_requested

    def test_marketer_can_write(self, marketer, running_job):
        client = APIClient()
        client.force_login(marketer)
        assert client.post(f"/api/v1/jobs/{running_job.pk}/cancel/").status_code == 200

    def test_session_acts_for_the_current_organisation(self, owner, org, other_org):
        from accounts.models import Membership

        Membership.objects.create(organization=other_org, user=owner, role=Role.VIEWER)
        client = APIClient()
        client.force_login(owner)
        assert client.get("/api/v1/organization/").json()["slug"] == org.slug
        services.user_switch_organization(user=owner, organization=other_org)
        assert client.get("/api/v1/organization/").json()["slug"] == other_org.slug

    def test_user_without_organisation_is_refused(self, django_user_model):
        user = django_user_model.objects.create_user("solo@example.com", "pw-123456789")
        client = APIClient()
        client.force_login(user)
        _assert_error_shape(client.get("/api/v1/jobs/"), 403)
