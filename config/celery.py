"""The Celery app. `celery -A config worker` starts a worker with either broker."""

import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import celeryd_after_setup, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("segmenta")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _configure(sender, **kwargs):
    # Every periodic task below is sent once per slot of its schedule, however many
    # schedulers run (a second `celery beat` or `worker --beat` started by mistake, on
    # this host or another): core/scheduling.py. `celery beat -S …` would bypass it.
    sender.conf.beat_scheduler = "core.scheduling:OnceScheduler"
    # How long the Redis broker waits before handing a taken but unacknowledged
    # message (its worker was lost) to another worker: settings, 3 hours. Redelivery
    # of a job that was recovered meanwhile does nothing (core.jobs.TenantTask). Tests
    # shorten it, and then look for such messages every tenth of it (kombu's own
    # sweep runs every 100 s).
    timeout = int(os.environ.get("BROKER_VISIBILITY_TIMEOUT") or 0)
    if timeout > 0 and str(sender.conf.broker_url or "").startswith("redis"):
        sender.conf.broker_transport_options = {
            **(sender.conf.broker_transport_options or {}),
            "visibility_timeout": timeout,
            "unacked_restore_interval": max(1, min(10, timeout // 10)),
            "unacked_restore_throttle": 1,
        }


@app.on_after_finalize.connect
def _nightly_schedule(sender, **kwargs):
    from django.conf import settings

    from core.scheduling import recovery_interval

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
    # Scheduled campaigns, and deliveries waiting for a best hour or the end of quiet
    # hours, start within a minute (each start is claimed once: campaigns.services).
    sender.add_periodic_task(
        60.0,
        sender.signature("campaigns.tasks.send_due"),
        name="start campaign sends that are due",
    )
    # Automations: new occurrences of their triggers are found and sent every 15
    # minutes (a job per organisation; campaigns.automations).
    sender.add_periodic_task(
        15 * 60.0,
        sender.signature("campaigns.tasks.automations_due"),
        name="evaluate automations",
    )
    # Conversions: orders attributed to the messages before them every 15 minutes
    # (what changed lately), and in full nightly (campaigns.tracking).
    sender.add_periodic_task(
        15 * 60.0,
        sender.signature("campaigns.tasks.conversions_due"),
        name="attribute recent conversions",
    )
    sender.add_periodic_task(
        crontab(hour=(settings.NIGHTLY_PIPELINE_HOUR + 3) % 24, minute=40),
        sender.signature("campaigns.tasks.conversions_due", kwargs={"full": True}),
        name="attribute every conversion (nightly)",
    )
    # Organisations whose scheduled deletion is due are deleted (accounts.suspension),
    # through the owners' own deletion path.
    sender.add_periodic_task(
        crontab(minute=23),
        sender.signature("accounts.tasks.organizations_delete_due"),
        name="delete organisations whose deletion is due",
    )
    # Jobs whose worker died are requeued (or failed) within a minute or so of going
    # stale (sooner when JOB_STALE_AFTER_SECONDS is under two minutes).
    sender.add_periodic_task(
        recovery_interval(settings.JOB_STALE_AFTER_SECONDS),
        sender.signature("core.tasks.jobs_recover_stale"),
        name="recover jobs whose worker died",
    )


@worker_ready.connect
def _worker_ready(sender=None, **kwargs):
    """A starting worker reports that it is alive (the jobs page warns when none is) and
    picks up jobs a dead worker left running."""
    from core.jobs import jobs_recover_stale, worker_heartbeat_start

    worker_heartbeat_start()
    try:
        jobs_recover_stale()
    except Exception:  # the periodic task tries again; never stop a worker starting
        import logging

        logging.getLogger("segmenta.jobs").exception("job.recover_at_start_failed")


@celeryd_after_setup.connect
def _heavy_worker_priority(sender=None, instance=None, **kwargs):
    """A worker that consumes only the heavy queue runs at a lower CPU priority
    (`HEAVY_WORKER_NICE`, default 10; 0 leaves it as started), set before its pool
    processes start so they inherit it. On a machine the web shares with pipeline
    steps, a request then takes a core from a step at once instead of waiting for
    the scheduler's fair share (bench/loadtest: docs/performance.md). A worker that
    also consumes the interactive queue keeps its priority, since its small jobs
    must start within seconds."""
    from core.worker_priority import lower_heavy_worker_priority

    if instance is not None:
        queues = [q.name for q in instance.app.amqp.queues.consume_from.values()]
        lower_heavy_worker_priority(queues)
