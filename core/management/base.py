"""Base for operator commands: one JSON object as the last stdout line; on failure a
one-line reason on stderr and a non-zero exit (CONTRACT.md)."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from core.exceptions import ApplicationError


class JsonCommand(BaseCommand):
    def handle(self, *args, **options):
        try:
            result = self.run(*args, **options)
        except (ApplicationError, CommandError) as exc:
            message = exc.message if isinstance(exc, ApplicationError) else str(exc)
            first_line = message.splitlines()[0] if message else "failed"
            sys.stderr.write(first_line + "\n")
            sys.stderr.flush()
            raise SystemExit(1) from exc
        self.stdout.write(json.dumps(result, default=str))

    def run(self, *args, **options) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def organization(slug: str):
        from accounts.models import Organization

        org = Organization.objects.filter(slug=slug).first()
        if org is None:
            raise CommandError(f"No organisation with the slug '{slug}'.")
        return org
