"""The embedded broker survives a half-written queue file (issue 8, item 5): kombu's
filesystem transport raised JSONDecodeError on one and the worker died ("Unrecoverable
error"), leaving every later job queued. Only meaningful without Redis."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from celery import current_app
from django.conf import settings

from accounts.tenancy import tenant_context
from accounts.tests.factories import OrganizationFactory
from core.jobs import job_start
from core.models import JobStatus
from core.tasks import demo_countdown
from tests.test_worker import _wait, worker  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("REDIS_URL")), reason="the embedded broker is used without REDIS_URL"
)
HALF_WRITTEN = b'{"body": "eyJ0YXNrIjog", "content-encoding": "utf-8", "headers": {"lang": "p'


def _queue() -> Path:
    return Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])


def _drop_half_written_file() -> Path:
    # Named as kombu names messages, and sorted first so it is read first.
    path = _queue() / "0000000000001_00000000-0000-0000-0000-000000000000.celery.msg"
    path.write_bytes(HALF_WRITTEN)
    old = time.time() - 60  # not one being written right now
    os.utime(path, (old, old))
    return path


def test_a_half_written_queue_file_is_set_aside_and_the_next_message_is_read():
    bad = _drop_half_written_file()
    with current_app.connection_for_write() as conn:
        channel = conn.default_channel
        channel._put("celery", {"body": "ok", "headers": {}, "properties": {}})
        message = channel._get("celery")
    assert message["body"] == "ok"
    assert not bad.exists()
    assert any(_queue().parent.glob("broken/*.celery.msg"))  # kept for a look, not lost


def test_messages_are_written_whole_before_they_appear_in_the_queue(monkeypatch):
    seen: list[list[str]] = []
    real_replace = os.replace
    before = sorted(p.name for p in _queue().glob("*.msg"))

    def watch(src, dst):
        seen.append(sorted(p.name for p in _queue().glob("*.msg")))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watch)
    with current_app.connection_for_write() as conn:
        conn.default_channel._put("probe", {"body": "x" * 100_000, "headers": {}})
        assert seen == [before]  # no new .msg file existed while the bytes were written
        assert conn.default_channel._get("probe")["body"] == "x" * 100_000


def test_worker_keeps_running_jobs_after_a_half_written_queue_file(worker):  # noqa: F811
    _drop_half_written_file()
    org = OrganizationFactory()
    with tenant_context(org):
        job = job_start(
            organization=org, kind="demo", task=demo_countdown, params={"steps": 2, "delay": 0}
        )
    done = _wait(job.pk, lambda j: j.is_finished, timeout=30)
    assert done.status == JobStatus.SUCCEEDED
