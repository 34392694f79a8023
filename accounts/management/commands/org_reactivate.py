from accounts.suspension import organization_reactivate
from core.management.base import JsonCommand


class Command(JsonCommand):
    help = (
        "Reactivate a suspended organisation (and cancel its scheduled deletion); its "
        "paused jobs start again. Its owners are emailed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organisation slug.")

    def run(self, *args, **o):
        org = self.organization(o["org"])
        organization_reactivate(organization=org, actor=None)
        return {"org": org.slug, "status": org.status}
