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


__all__ = ["ApiKey", "MembershipFactory", "OrganizationFactory", "UserFactory", "make_api_key"]
