"""org_restore ARCHIVE --owner EMAIL [--name NAME] [--slug SLUG]

Creates a new organisation from an archive written by `org_backup` or by an owner's
"export everything" (docs/backups.md), owned by EMAIL (a new user without a
password is made if there is none: they set one with "forgot password"), and loads
its customers, products, orders, events, feedback, consent history, segments,
personas and predictions. The last stdout line is one JSON object:
`{"organization": {"id", "slug", "name"}, "imported", "corrected", "restored",
"counts", "differences"}`. Exits 1 with a one-line reason on stderr when the file is
not such an archive, or when the rows restored differ from the archive's.
"""

from __future__ import annotations

import sys
import time

from core.management.base import JsonCommand


class Command(JsonCommand):
    help = "Restore one organisation from an org_backup archive, as a new organisation."

    def add_arguments(self, parser):
        parser.add_argument("archive", help="The .zip archive.")
        parser.add_argument("--owner", required=True, help="The new organisation's owner (email).")
        parser.add_argument("--name", help="Its name (default: the archived organisation's).")
        parser.add_argument("--slug", help="Its slug (default: derived from the name).")

    def run(self, *args, **options) -> dict:
        from customers.services.backup import organization_restore

        last = [0.0]

        def progress(percent: float, message: str) -> None:
            now = time.monotonic()
            if now - last[0] >= 1 or percent >= 99:
                last[0] = now
                sys.stderr.write(f"{int(percent):3d}% {message}\n")

        return organization_restore(
            path=options["archive"],
            owner_email=options["owner"],
            name=options.get("name"),
            slug=options.get("slug"),
            progress=progress,
        )
