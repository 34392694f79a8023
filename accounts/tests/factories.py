import factory

from accounts.models import ApiKey, Membership, Organization, Role, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    email_verified = True
    password = factory.django.Password("correct-horse-battery")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Shop {n}")
    slug = factory.Sequence(lambda n: f"shop-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.OWNER


def make_api_key(organization, scope="write"):
    from accounts.services import api_key_create

    api_key, raw = api_key_create(organization=organization, name=f"test {scope}", scope=scope)
    return api_key, raw


__all__ = [
    "ApiKey",
    "MembershipFactory",
    "OrganizationFactory",
    "UserFactory",
    "build_world",
    "make_api_key",
]


def build_world(organization) -> None:
    """One of each accounts tenant object the isolation sweep needs beyond members,
    keys and the audit log: a day of API usage and a support access request."""
    from django.utils import timezone

    from accounts.models import ApiUsage, SupportGrant
    from accounts.tenancy import tenant_context

    staff = UserFactory(email="support-world@segmenta.test", is_staff=True)
    with tenant_context(organization):
        ApiUsage.objects.create(organization=organization, day=timezone.now().date(), requests=3)
        SupportGrant.objects.create(
            organization=organization,
            staff=staff,
            reason="World: checking an import that failed",
            hours=2,
        )
