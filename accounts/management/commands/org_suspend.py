from accounts.suspension import organization_suspend
from core.management.base import JsonCommand


class Command(JsonCommand):
    help = (
        "Suspend an organisation: its members cannot sign in, its API keys get 403, its "
        "jobs and sends wait; its data is kept. Written to its audit log as Segmenta "
        "support; its owners are emailed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organisation slug.")
        parser.add_argument("--reason", required=True, help="Why: the owners read it.")

    def run(self, *args, **o):
        org = self.organization(o["org"])
        organization_suspend(organization=org, actor=None, reason=o["reason"])
        return {"org": org.slug, "status": org.status, "reason": org.status_reason}
