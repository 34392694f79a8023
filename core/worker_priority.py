"""CPU priority of heavy-only workers (config/celery.py `_heavy_worker_priority`)."""

import logging
import os

from django.conf import settings

logger = logging.getLogger("segmenta.jobs")


def heavy_only(queues) -> bool:
    """True when a worker consuming `queues` takes heavy work and nothing else."""
    names = set(queues)
    return (
        bool(names)
        and names <= {settings.JOB_QUEUE_HEAVY}
        and (settings.JOB_QUEUE_HEAVY != settings.JOB_QUEUE_INTERACTIVE)
    )


def lower_heavy_worker_priority(queues, *, nice: int | None = None) -> int:
    """Raise this process's nice value by `nice` (default `HEAVY_WORKER_NICE`) when it
    consumes only the heavy queue. Returns the increment applied (0 when none)."""
    step = settings.HEAVY_WORKER_NICE if nice is None else nice
    if step <= 0 or not heavy_only(queues):
        return 0
    try:
        os.nice(step)
    except OSError:  # a platform without nice: run at the priority it was started with
        logger.warning("worker.nice_failed step=%s", step)
        return 0
    logger.info("worker.heavy_priority nice=%s", os.nice(0))
    return step
