"""import_data --org SLUG --kind KIND FILE [--map SRC=DST]... [--date-format FMT]
[--delimiter D] [--encoding E] [--allow-deleted] [--rate CUR=RATE]...

Imports a CSV (or .csv.gz) file in this process. Progress goes to stderr; the last
stdout line is one JSON object with the counts and the first errors. Exits 1 with a
one-line reason when the file cannot be read as the kind (nothing is stored then).
"""

from __future__ import annotations

import json
import sys
import time

from django.core.management.base import BaseCommand

from accounts.models import Organization
from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError

from ...services.importing import import_from_path
from ...services.imports import KINDS

ERRORS_SHOWN = 100


class Command(BaseCommand):
    help = "Import customers, products, orders, events or feedback from a CSV file."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="The organisation's slug.")
        parser.add_argument("--kind", required=True, choices=KINDS)
        parser.add_argument("file", help="A .csv or .csv.gz file.")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="SRC=DST",
            help="Read the file's column SRC as DST (repeatable; DST empty ignores the column).",
        )
        parser.add_argument(
            "--date-format", default=None, help="As in strptime, e.g. %%d/%%m/%%Y %%H:%%M"
        )
        parser.add_argument(
            "--delimiter", default=None, help="',', ';', 'tab' or '|' (detected if not given)"
        )
        parser.add_argument(
            "--encoding", default=None, help="e.g. utf-8, cp1252 (detected if not given)"
        )
        parser.add_argument(
            "--allow-deleted",
            action="store_true",
            help="Re-create orders a person deleted (they are skipped and reported otherwise).",
        )
        parser.add_argument(
            "--rate",
            action="append",
            default=[],
            metavar="CUR=RATE",
            help="Convert orders in CUR at RATE (one CUR in the organisation's currency, "
            "e.g. ZAR=0.055; repeatable). Without it they keep their own currency.",
        )

    def fail(self, message: str):
        self.stderr.write(" ".join(str(message).split()))
        sys.exit(1)

    def handle(self, *args, **options):
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            self.fail(f"No organisation with the slug '{options['org']}'.")
        mapping = {}
        for item in options["map"]:
            src, sep, dst = item.partition("=")
            if not sep or not src.strip():
                self.fail(f"--map takes SRC=DST (got '{item}').")
            mapping[src.strip()] = dst.strip()
        last = [0.0]

        def progress(percent: float, message: str) -> None:
            now = time.monotonic()
            if now - last[0] >= 1 or percent >= 99:
                last[0] = now
                self.stderr.write(f"{int(percent):3d}% {message}")

        with tenant_context(org):
            try:
                imp, _ = import_from_path(
                    organization=org,
                    path=options["file"],
                    kind=options["kind"],
                    mapping=mapping or None,
                    options={
                        "date_format": options["date_format"],
                        "delimiter": options["delimiter"],
                        "encoding": options["encoding"],
                        "allow_deleted": options["allow_deleted"],
                        "rates": ",".join(options["rate"]),
                    },
                    progress=progress,
                )
            except ApplicationError as exc:
                hint = ""
                if exc.message.startswith("This file cannot be read as"):
                    hint = " Give it with --map 'Your Column=field'."
                self.fail(exc.message + hint)
        errors = [
            {k: e[k] for k in ("row", "field", "message", "value") if k in e}
            for e in imp.errors[:ERRORS_SHOWN]
        ]
        self.stdout.write(
            json.dumps(
                {
                    "rows": imp.rows,
                    "created": imp.created,
                    "updated": imp.updated,
                    "unchanged": imp.unchanged,
                    "rejected": imp.rejected,
                    "errors": errors,
                    "import_id": imp.pk,
                }
            )
        )
