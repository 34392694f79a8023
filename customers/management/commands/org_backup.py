"""org_backup --org SLUG --out FILE

Writes one organisation's archive (the owner's export with what a restore needs:
docs/backups.md) to FILE, here and now. The last stdout line is one JSON object:
`{"file", "bytes", "files": {name: rows}}`. Exits 1 with a one-line reason on
stderr when it cannot (an unknown organisation, a file that cannot be written).
"""

from __future__ import annotations

import sys
import time

from django.core.management.base import CommandError

from core.management.base import JsonCommand


class Command(JsonCommand):
    help = "Back up one organisation to a zip archive (restore it with org_restore)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="The organisation's slug.")
        parser.add_argument("--out", required=True, help="The archive to write (.zip).")

    def run(self, *args, **options) -> dict:
        from customers.services.backup import organization_backup

        org = self.organization(options["org"])
        last = [0.0]

        def progress(percent: float, message: str) -> None:
            now = time.monotonic()
            if now - last[0] >= 1 or percent >= 99:
                last[0] = now
                sys.stderr.write(f"{int(percent):3d}% {message}\n")

        try:
            return organization_backup(organization=org, path=options["out"], progress=progress)
        except OSError as exc:
            raise CommandError(f"Cannot write {options['out']}: {exc.strerror or exc}") from None
