"""`run_pipeline --org SLUG [--as-of YYYY-MM-DD] [--steps S1,S2] [--sync]` (CONTRACT.md).

Starts each pipeline step as a job of the organisation (or, with `--sync`, runs
it here). Logs go to stderr; the last line on stdout is one JSON object:
`{"runs": {step: run_id}, "jobs": {step: job_id}, "status", "seconds"}`.
Exits non-zero with a one-line reason on stderr when it cannot do what was
asked: an unknown organisation, step or date, a step that is not built yet, or
(with `--sync`) a step that failed — then the JSON is still printed first.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

from django.core.management.base import CommandError

from accounts.tenancy import tenant_context
from core.management.base import JsonCommand
from core.models import Job, JobStatus

log = logging.getLogger("segmenta.pipeline")


class Command(JsonCommand):
    help = "Run the analysis pipeline (segments, predictions, …) for one organisation."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="The organisation's slug.")
        parser.add_argument(
            "--as-of",
            dest="as_of",
            help="Use data up to and including this day (YYYY-MM-DD); "
            "default: the organisation's latest order or event.",
        )
        parser.add_argument(
            "--steps", help="Comma-separated steps to run (default: every step that exists)."
        )
        parser.add_argument(
            "--sync", action="store_true", help="Run here and wait, instead of in a worker."
        )

    def handle(self, *args, **options):
        self._failures: list[str] = []
        super().handle(*args, **options)
        if self._failures:
            # the JSON line is out; the reason goes to stderr and the exit is non-zero
            sys.stderr.write("; ".join(self._failures).replace("\n", " ") + "\n")
            sys.stderr.flush()
            raise SystemExit(1)

    def run(self, *args, **options) -> dict:
        org = self.organization(options["org"])
        as_of = None
        if options.get("as_of"):
            try:
                as_of = dt.date.fromisoformat(options["as_of"])
            except ValueError:
                raise CommandError(
                    f"--as-of must be a date as YYYY-MM-DD, not '{options['as_of']}'."
                ) from None
        steps = None
        if options.get("steps") is not None:
            steps = [s.strip() for s in options["steps"].split(",") if s.strip()]
            if not steps:
                raise CommandError("--steps names no step.")

        from segmentation.pipeline import pipeline_start

        with tenant_context(org):
            result = pipeline_start(
                organization=org, steps=steps, as_of=as_of, sync=options["sync"], reason="command"
            )
            if result["status"] == "failed":
                for step, job_id in result["jobs"].items():
                    job = Job.objects.filter(pk=job_id).first()
                    if job is not None and job.status != JobStatus.SUCCEEDED:
                        self._failures.append(f"{step} failed: {job.message or job.status}")
        log.info(
            "pipeline.command org=%s status=%s jobs=%s",
            org.slug,
            result["status"],
            json.dumps(result["jobs"]),
        )
        return result
