import datetime as dt

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from accounts.suspension import organization_schedule_deletion
from core.management.base import JsonCommand

MAX_DAYS = 3650  # ten years: a date any database can store


class Command(JsonCommand):
    help = (
        "Suspend an organisation, start an export of all its data for its owners, and "
        "delete it after --days days (default ORG_DELETION_GRACE_DAYS) through the "
        "owners' own deletion path. Its owners are emailed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organisation slug.")
        parser.add_argument("--reason", required=True, help="Why: the owners read it.")
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help=f"Days until the deletion (default {settings.ORG_DELETION_GRACE_DAYS}).",
        )

    def run(self, *args, **o):
        org = self.organization(o["org"])
        days = settings.ORG_DELETION_GRACE_DAYS if o["days"] is None else o["days"]
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--days must be from 1 to {MAX_DAYS:,} (got {days}).")
        when = timezone.now() + dt.timedelta(days=days)
        organization_schedule_deletion(organization=org, actor=None, reason=o["reason"], when=when)
        return {
            "org": org.slug,
            "status": org.status,
            "deletion_scheduled_for": org.deletion_scheduled_for.isoformat(),
        }
