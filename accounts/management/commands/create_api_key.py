from accounts import services
from core.management.base import JsonCommand


class Command(JsonCommand):
    help = "Create an API key for an organisation; the key is printed only here."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organisation slug.")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scope", choices=["read", "write"], default="read")

    def run(self, *args, **o):
        org = self.organization(o["org"])
        api_key, key = services.api_key_create(organization=org, name=o["name"], scope=o["scope"])
        return {"key": key, "prefix": api_key.prefix, "scope": api_key.scope}
