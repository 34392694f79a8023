"""The tenant isolation sweep.

Enumerates every site URL pattern and API route that takes an object id, and
proves that the owner of organisation B gets 404 for every object of
organisation A — with GET and with every write method — while A's own owner
can reach them. Routes are found from the URL resolver, so new routes are
covered without being listed here.

The world is built once for the module (in a transaction rolled back at its
end); every test runs in its own transaction inside it, rolled back after the
test, so a write that got through cannot reach the next test.

Designed exceptions: routes addressed by an unguessable, expiring, single-use
token rather than an object id (invitation acceptance, email confirmation,
password reset) and the back office under /admin/ (platform staff only).
"""

from __future__ import annotations

import importlib
import re

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management.color import no_style
from django.db import connection, transaction
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter

from accounts.models import Membership, Role
from accounts.tenancy import TenantModel, unscoped_context
from accounts.tests.factories import OrganizationFactory, UserFactory
from core import capabilities

TOKEN_ROUTES = {
    "accounts:invitation_accept",  # unguessable, expiring, single-use token
    "accounts:verify_email",  # signed, expiring token
    "accounts:password_reset_confirm",  # Django's signed reset token
}
# Each capability names a module whose build_world(organization) creates one of each
# of its tenant objects (core/capabilities.py); none is listed here.
WORLD_MODULES = capabilities.world_modules()
ID_NAME = re.compile(r"^(pk|id|.*_pk|.*_id)$")
WRITE_METHODS = ["post", "put", "patch", "delete"]


def _walk(patterns, namespace=None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace
            full_ns = f"{namespace}:{ns}" if namespace and ns else (ns or namespace)
            yield from _walk(entry.url_patterns, full_ns)
        elif isinstance(entry, URLPattern):
            yield namespace, entry


def _id_params(pattern: URLPattern) -> tuple[list[str], list[str]]:
    """(object-id parameters, other parameters) of a pattern."""
    converters = getattr(pattern.pattern, "converters", {})
    names = list(pattern.pattern.regex.groupindex)
    ids, others = [], []
    for name in names:
        if isinstance(converters.get(name), IntConverter) or ID_NAME.match(name):
            ids.append(name)
        else:
            others.append(name)
    return ids, others


def id_routes() -> list[str]:
    routes = []
    for namespace, pattern in _walk(get_resolver().url_patterns):
        if namespace == "admin" or (namespace or "").startswith("admin"):
            continue
        ids, others = _id_params(pattern)
        if not ids:
            continue
        full = f"{namespace}:{pattern.name}" if namespace else pattern.name
        if full in TOKEN_ROUTES or "format" in others:
            continue
        assert pattern.name, (
            f"An id-taking route has no name, so the sweep cannot build it: {pattern.pattern}"
        )
        assert not others, f"{full} takes non-id parameters {others}: add them to the sweep"
        routes.append((full, ids))
    return sorted(set((name, tuple(ids)) for name, ids in routes))


def build_worlds(organization) -> None:
    for name in WORLD_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        builder = getattr(module, "build_world", None)
        if builder is not None:
            builder(organization)


def _organisation_models() -> list:
    return [
        model
        for model in apps.get_models()
        if issubclass(model, TenantModel)
        or model in (Membership,)
        or model._meta.label in ("accounts.Invitation", "accounts.ApiKey")
    ]


def _restart_id_sequences() -> None:
    """On PostgreSQL each table's ids go on from wherever earlier tests and runs
    left its sequence (a rolled-back insert does not give its id back), so A's
    objects would carry ids scattered over many values and every route would be
    requested with each of them. Restarting each sequence just past its table's
    highest id gives A's objects small, shared ids, as on SQLite: every object of
    A is still among the candidates, there are just fewer distinct numbers.
    (setval outlives the rollback; it never goes below a row that exists.)"""
    models = [m for m in apps.get_models() if m._meta.managed and not m._meta.proxy]
    with unscoped_context():
        statements = connection.ops.sequence_reset_sql(no_style(), models)
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


def _build_shared_world() -> dict:
    _restart_id_sequences()
    org_a = OrganizationFactory(name="Organisation A", slug="org-a")
    owner_a = UserFactory(email="owner-a@example.com")
    Membership.objects.create(organization=org_a, user=owner_a, role=Role.OWNER)
    owner_a.current_organization = org_a
    owner_a.save()
    build_worlds(org_a)

    # B has nothing but its owner, whose membership id is far from A's ids.
    org_b = OrganizationFactory(name="Organisation B", slug="org-b")
    owner_b = UserFactory(email="owner-b@example.com")
    Membership.objects.create(pk=10**7, organization=org_b, user=owner_b, role=Role.OWNER)
    owner_b.current_organization = org_b
    owner_b.save()

    candidates: set[int] = set()
    counts = {}
    with unscoped_context():
        for model in _organisation_models():
            pks = list(
                model._default_manager.filter(organization=org_a).values_list("pk", flat=True)
            )
            counts[model._meta.label] = len(pks)
            candidates.update(pks)
    return {
        "a": owner_a,
        "b": owner_b,
        "org_a": org_a,
        "org_b": org_b,
        "candidates": sorted(candidates),
        "counts": counts,
    }


@pytest.fixture(scope="module")
def shared_world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Organisation A with every capability's world, and an empty organisation B,
    built once for this module inside a transaction that is rolled back when the
    module ends. Each test still runs in its own transaction (the `db` fixture,
    a savepoint inside this one) that is rolled back after it, so a write that
    got through in one test cannot reach the next: only the world is shared."""
    from celery import current_app

    media = tmp_path_factory.mktemp("isolation-media")
    current_app.conf.task_always_eager = True
    with (
        django_db_blocker.unblock(),
        override_settings(MEDIA_ROOT=media, CELERY_TASK_ALWAYS_EAGER=True),
    ):
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            world = _build_shared_world()
            world["media"] = media
            yield world
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@pytest.fixture
def world(shared_world, db, settings):
    """The shared world, for one test: its files are where the world wrote them,
    and the users are fresh from the database (a test may have changed them)."""
    settings.MEDIA_ROOT = shared_world["media"]
    world = dict(shared_world)
    for key in ("a", "b", "org_a", "org_b"):
        world[key] = type(world[key])._base_manager.get(pk=world[key].pk)
    return world


def test_every_tenant_model_is_in_the_world(world):
    missing = [label for label, n in world["counts"].items() if n == 0]
    assert not missing, (
        f"build_world() creates no {missing}: add them so the sweep covers their routes"
    )
    # The module's tests share the world, each test rolled back after it: whenever
    # this one runs (in random order too), the world is as it was built.
    with unscoped_context():
        now = {
            m._meta.label: m._default_manager.filter(organization=world["org_a"]).count()
            for m in _organisation_models()
        }
    assert now == world["counts"], "an earlier test's writes outlived it"


def test_sweep_finds_routes():
    names = {name for name, _ in id_routes()}
    # The sweep must see the API and the site, or it proves nothing.
    assert "core:job_detail" in names
    assert "job-detail" in names


@pytest.mark.parametrize("route", [r[0] for r in id_routes()])
def test_other_organisation_gets_404(route, world, client):
    params = dict(id_routes())[route]
    urls = [reverse(route, kwargs=dict.fromkeys(params, pk)) for pk in world["candidates"]]

    client.force_login(world["a"])
    # any() stops at A's first object this route finds; that is all it asserts.
    assert any(client.get(url).status_code != 404 for url in urls), (
        f"{route}: organisation A's owner found none of A's objects — add the object to a build_world()"
    )
    with unscoped_context():
        before = {
            m._meta.label: m._default_manager.filter(organization=world["org_a"]).count()
            for m in apps.get_models()
            if issubclass(m, TenantModel)
        }

    client.force_login(world["b"])
    for url in urls:
        codes = {"get": client.get(url).status_code}
        for method in WRITE_METHODS:
            codes[method] = getattr(client, method)(
                url, data={}, content_type="application/json"
            ).status_code
        # 405 (method not allowed) reveals nothing; every method the route allows must 404.
        assert set(codes.values()) <= {404, 405}, f"{url} as another organisation: {codes}"
        assert 404 in codes.values(), f"{url}: no method reached the object lookup: {codes}"

    with unscoped_context():
        after = {
            m._meta.label: m._default_manager.filter(organization=world["org_a"]).count()
            for m in apps.get_models()
            if issubclass(m, TenantModel)
        }
    assert before == after, "another organisation's requests changed organisation A's data"


@pytest.mark.parametrize(
    "route", [r[0] for r in id_routes() if "-" in r[0] or r[0].startswith("api")]
)
def test_other_organisation_api_key_gets_404(route, world):
    from rest_framework.test import APIClient

    from accounts.services import api_key_create

    _, raw = api_key_create(
        organization=world["b"].current_organization, name="b key", scope="write"
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    params = dict(id_routes())[route]
    for pk in world["candidates"]:
        url = reverse(route, kwargs=dict.fromkeys(params, pk))
        codes = {"get": api.get(url).status_code}
        for method in WRITE_METHODS:
            codes[method] = getattr(api, method)(url, data={}, format="json").status_code
        assert set(codes.values()) <= {404, 405}, f"{url} with another organisation's key: {codes}"
        assert 404 in codes.values(), f"{url}: no method reached the object lookup: {codes}"


def test_settings_sanity():
    assert settings.AUTH_USER_MODEL == "accounts.User"


def test_signed_link_routes_act_on_nothing_of_another_organisation(world, client):
    """Routes addressed by a signed value instead of an id (campaigns/links.py:
    unsubscribe, preferences, open pixel, click) carry their organisation. A value
    naming organisation B with A's delivery, or a tampered one, acts on nothing, for
    whoever sends it (here B's owner, signed in). Every route of the namespace is
    found from the resolver, so a new one is covered."""
    from campaigns import links
    from campaigns.models import Delivery, TrackedLink

    routes = sorted(
        f"{ns}:{p.name}" for ns, p in _walk(get_resolver().url_patterns) if ns == "campaigns_public"
    )
    assert routes, "the signed-link routes are not mounted"
    org_a, org_b = world["org_a"], world["b"].current_organization
    with unscoped_context():
        delivery = Delivery.all_objects.filter(organization=org_a).first()
        link = TrackedLink.all_objects.filter(organization=org_a).first()

    def snapshot():
        with unscoped_context():
            return {
                m._meta.label: sorted(
                    map(str, m._default_manager.filter(organization=org_a).values_list())
                )
                for m in apps.get_models()
                if issubclass(m, TenantModel)
            }

    before = snapshot()
    client.force_login(world["b"])
    for route in routes:
        purpose = route.split(":")[1]
        extra = link.pk if purpose == links.CLICK else None
        crossed = links.make_token(
            purpose, organization_id=org_b.pk, delivery_token=delivery.token, extra=extra
        )
        genuine = links.make_token(
            purpose, organization_id=org_a.pk, delivery_token=delivery.token, extra=extra
        )
        tampered = genuine[:2] + ("x" if genuine[2] != "x" else "y") + genuine[3:]
        for value, expected in ((crossed, 404), (tampered, 400), (delivery.token, 400)):
            url = reverse(route, kwargs={"token": value})
            for method in ("get", "post"):
                response = getattr(client, method)(url)
                if purpose == links.OPEN:  # the pixel answers its image whatever happens
                    assert response.status_code in (200, 405), f"{method} {url}"
                else:
                    assert response.status_code in (expected, 405), (
                        f"{method} {url}: {response.status_code}"
                    )
    assert snapshot() == before, "a signed link naming organisation B changed organisation A"


def test_survey_links_answer_nothing_of_another_organisation(world, client):
    """Survey links (research/links.py) carry their organisation, signed. A value
    naming organisation B with A's survey (public key or customer), or a tampered
    one, shows and records nothing, for whoever sends it; A's genuine links still
    work. Every route of the namespace is found from the resolver."""
    from django.core import signing

    from research import links
    from research.models import Survey, SurveyResponse

    routes = sorted(
        f"{ns}:{p.name}" for ns, p in _walk(get_resolver().url_patterns) if ns == "research_public"
    )
    assert routes, "the survey-link routes are not mounted"
    org_a, org_b = world["org_a"], world["b"].current_organization
    with unscoped_context():
        survey = Survey.all_objects.filter(organization=org_a).first()
        response = SurveyResponse.all_objects.filter(organization=org_a).first()
        answers_before = SurveyResponse.all_objects.filter(organization=org_a).count()
    signer = signing.Signer(salt=links.SALT)
    crossed_public = signer.sign(f"{org_b.pk}.{survey.pk}.p{survey.public_key}")
    crossed_personal = signer.sign(f"{org_b.pk}.{survey.pk}.c{response.customer_id}")
    genuine = links.public_value(survey)
    tampered = genuine[:-3] + ("xyz" if genuine[-3:] != "xyz" else "abc")
    client.force_login(world["b"])
    answers = {"q0": "9", "q1": "fine"}
    for route in routes:
        for value, expected in (
            (crossed_public, 404),
            (crossed_personal, 404),
            (tampered, 400),
            (str(survey.pk), 400),
        ):
            url = reverse(route, kwargs={"token": value})
            for method in ("get", "post"):
                got = getattr(client, method)(url, data=answers if method == "post" else None)
                assert got.status_code == expected, f"{method} {url}: {got.status_code}"
        # A's own link is found (so the refusals above are not a broken route)
        assert client.get(reverse(route, kwargs={"token": genuine})).status_code == 200
    with unscoped_context():
        assert SurveyResponse.all_objects.filter(organization=org_a).count() == answers_before
        assert not SurveyResponse.all_objects.filter(organization=org_b).exists()
