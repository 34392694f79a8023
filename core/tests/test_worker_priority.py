"""Heavy-only workers run at a lower CPU priority (config/celery.py, core.worker_priority):
checked in forked children, so the test process keeps its own priority."""

from __future__ import annotations

import multiprocessing
import os
from types import SimpleNamespace

import pytest

from config.celery import _heavy_worker_priority
from core.worker_priority import heavy_only


@pytest.fixture(autouse=True)
def _queues(settings):
    settings.JOB_QUEUE_INTERACTIVE = "interactive"
    settings.JOB_QUEUE_HEAVY = "heavy"
    settings.HEAVY_WORKER_NICE = 7


def test_only_heavy_queue_counts_as_heavy_only():
    assert heavy_only(["heavy"])
    assert not heavy_only(["interactive"])
    assert not heavy_only(["interactive", "heavy"])
    assert not heavy_only([])


def test_heavy_only_is_false_when_both_queues_are_one(settings):
    settings.JOB_QUEUE_HEAVY = "interactive"
    assert not heavy_only(["interactive"])


def _worker(queues):
    return SimpleNamespace(
        app=SimpleNamespace(
            amqp=SimpleNamespace(
                queues=SimpleNamespace(consume_from={q: SimpleNamespace(name=q) for q in queues})
            )
        )
    )


def _niceness_after_setup(queues, conn):
    # what the worker's setup signal does, in a child process
    _heavy_worker_priority(sender="w@host", instance=_worker(queues))
    conn.send(os.nice(0))
    conn.close()


def _child_niceness(queues) -> int:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_niceness_after_setup, args=(queues, child))
    p.start()
    value = parent.recv()
    p.join(10)
    assert p.exitcode == 0
    return value


@pytest.mark.parametrize(
    ("queues", "raised"),
    [(["heavy"], 7), (["interactive"], 0), (["interactive", "heavy"], 0)],
)
def test_worker_setup_lowers_priority_of_heavy_only_workers(queues, raised):
    base = os.nice(0)
    assert _child_niceness(queues) == min(19, base + raised)


def test_zero_leaves_priority_alone(settings):
    settings.HEAVY_WORKER_NICE = 0
    assert _child_niceness(["heavy"]) == os.nice(0)
