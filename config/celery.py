"""The Celery app. `celery -A config worker` starts a worker with either broker."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("segmenta")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _nightly_schedule(sender, **kwargs):
    from django.conf import settings

    # One scheduler fans out one job per organisation (segmentation.tasks).
    sender.add_periodic_task(
        crontab(hour=settings.NIGHTLY_PIPELINE_HOUR, minute=0),
        sender.signature("segmentation.tasks.nightly_fanout"),
        name="nightly pipeline fan-out",
    )
    # Organisation export archives past ORG_EXPORT_EXPIRE_DAYS (or made before an
    # erasure) are deleted; the download already refuses them.
    sender.add_periodic_task(
        crontab(minute=17),
        sender.signature("customers.tasks.org_exports_expire"),
        name="expire organisation exports",
    )
