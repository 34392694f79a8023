"""`run_pipeline` (CONTRACT.md): one JSON object on the last stdout line, a
one-line reason on stderr and a non-zero exit when it cannot do what was asked."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from accounts.tenancy import tenant_context
from core.models import Job
from segmentation.models import SegmentationRun
from segmentation.tests.factories import planted_customers


def run(*args, capsys):
    code = 0
    try:
        call_command("run_pipeline", *args)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_sync_segments_run(org, capsys):
    planted_customers(org, n_customers=300)
    code, out, err = run("--org", org.slug, "--steps", "segments", "--sync", capsys=capsys)
    assert code == 0, err
    result = last_json(out)
    assert set(result) == {"runs", "jobs", "status", "seconds"}
    assert result["status"] == "succeeded"
    with tenant_context(org):
        live = SegmentationRun.objects.get(is_live=True)
        assert result["runs"] == {"segments": live.pk}
        assert Job.objects.get(pk=result["jobs"]["segments"]).status == "succeeded"
        assert str(live.as_of) == "2024-06-30"  # the latest data date, not today


def test_as_of_is_used_and_becomes_live(org, capsys):
    planted_customers(org, n_customers=300)
    code, out, _ = run(
        "--org", org.slug, "--steps", "segments", "--as-of", "2024-03-31", "--sync", capsys=capsys
    )
    assert code == 0
    with tenant_context(org):
        live = SegmentationRun.objects.get(is_live=True)
    assert str(live.as_of) == "2024-03-31"
    assert last_json(out)["runs"]["segments"] == live.pk


def test_without_sync_the_job_is_queued(org, capsys):
    planted_customers(org, n_customers=60)
    code, out, _ = run("--org", org.slug, "--steps", "segments", capsys=capsys)
    assert code == 0
    result = last_json(out)
    assert result["status"] == "queued"
    assert result["runs"] == {"segments": None}
    with tenant_context(org):
        assert Job.objects.get(pk=result["jobs"]["segments"]).kind == "segments"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--org", "nope"], "No organisation with the slug 'nope'"),
        (["--steps", "teleport"], "Unknown step 'teleport'"),
        (["--as-of", "31/12/2024"], "--as-of must be a date as YYYY-MM-DD"),
        (["--steps", ","], "--steps names no step"),
    ],
)
def test_refusals_exit_non_zero_with_one_line(org, capsys, args, reason):
    if "--org" not in args:
        args = ["--org", org.slug, *args]
    code, out, err = run(*args, capsys=capsys)
    assert code == 1
    assert out.strip() == ""
    assert reason in err
    assert len(err.strip().splitlines()) == 1
    with tenant_context(org):
        assert not Job.objects.exists()  # a refused step starts nothing


def test_a_failed_sync_step_prints_the_json_and_exits_non_zero(org, capsys):
    code, out, err = run("--org", org.slug, "--steps", "segments", "--sync", capsys=capsys)
    assert code == 1
    result = last_json(out)
    assert result["status"] == "failed"
    assert "segments failed: There is no data yet" in err
    assert len(err.strip().splitlines()) == 1
