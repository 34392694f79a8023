"""Heavy-only workers run at a lower CPU priority (config/celery.py, core.worker_priority).

`os.nice` is recorded rather than applied: the test process keeps its priority (and a
forked child could hang on a lock another thread held when it forked)."""

from __future__ import annotations

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


@pytest.fixture
def nice_calls(monkeypatch):
    calls: list[int] = []

    def nice(step):
        calls.append(step)
        return sum(calls)

    monkeypatch.setattr(os, "nice", nice)
    return calls


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


@pytest.mark.parametrize(
    ("queues", "raised"),
    [(["heavy"], [7]), (["interactive"], []), (["interactive", "heavy"], [])],
)
def test_worker_setup_lowers_priority_of_heavy_only_workers(queues, raised, nice_calls):
    _heavy_worker_priority(sender="w@host", instance=_worker(queues))
    assert [c for c in nice_calls if c] == raised


def test_zero_leaves_priority_alone(settings, nice_calls):
    settings.HEAVY_WORKER_NICE = 0
    _heavy_worker_priority(sender="w@host", instance=_worker(["heavy"]))
    assert [c for c in nice_calls if c] == []


def test_a_platform_without_nice_keeps_the_worker_running(monkeypatch):
    def refuse(step):
        raise OSError("not here")

    monkeypatch.setattr(os, "nice", refuse)
    _heavy_worker_priority(sender="w@host", instance=_worker(["heavy"]))  # no error
