from django.contrib.auth import get_user_model
from django.db import transaction

from accounts import services
from accounts.models import Membership, Role
from core.management.base import JsonCommand

User = get_user_model()


class Command(JsonCommand):
    help = "Create an organisation and its owner (or add an existing user as owner)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner", required=True, help="Owner's email address.")
        parser.add_argument("--password", help="Password for a new owner (else they reset it).")
        parser.add_argument("--time-zone", default="UTC")
        parser.add_argument("--currency", default="USD")
        parser.add_argument("--slug", help="Slug (derived from the name if not given).")

    @transaction.atomic
    def run(self, *args, **o):
        email = o["owner"].strip().lower()
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(
                email=email, password=o["password"], email_verified=True
            )
            if not o["password"]:
                user.set_unusable_password()
                user.save(update_fields=["password"])
        org = services.organization_create(
            name=o["name"],
            owner=user,
            time_zone=o["time_zone"],
            currency=o["currency"],
            slug=o.get("slug"),
        )
        assert Membership.objects.filter(organization=org, user=user, role=Role.OWNER).exists()
        return {"id": org.pk, "slug": org.slug}
