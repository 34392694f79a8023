"""The preview of a big organisation's audience is an estimate from a sample, and says
so; a small organisation's is exact; the sample never reaches another organisation.

Planted worlds: every customer gets a random number of orders (3 for a random 30%,
1 for the others), a random half of those consent to email, and a random half of
everyone is "F" (the others "M"), all from a seeded generator and unrelated to the
customer's id, so the true figures are known and the sample's id hash cannot line
up with them. The tolerance is 4.5 standard errors of a share in a sample drawn
without replacement, so a test fails for a wrong estimate, not for bad luck.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from audiences import services
from audiences.services import audience_create, audience_preview
from customers.models import Customer
from customers.sampling import CustomerSample

N = 4_000
SHARE = 0.3
SAMPLE = 1_000
RULE = {
    "kind": "rules",
    "rule": {"op": "and", "conditions": [{"field": "orders_count", "operator": "gte", "value": 3}]},
}


def _plant(org, *, n: int = N, seed: int = 7, gender_of_rest: str | None = None) -> dict:
    """`n` customers of `org` as the module docstring says; returns the true figures."""
    rng = np.random.default_rng(seed)
    matching = np.zeros(n, dtype=bool)
    matching[rng.permutation(n)[: round(SHARE * n)]] = True
    email = rng.random(n) < 0.5
    female = rng.random(n) < 0.5
    rows = [
        Customer(
            organization=org,
            external_id=f"{org.slug}-{i:05d}",
            email=f"c{i}@{org.slug}.test",
            accepts_email=bool(email[i]),
            orders_count=3 if matching[i] else 1,
            gender=gender_of_rest or ("F" if female[i] else "M"),
        )
        for i in range(n)
    ]
    with tenant_context(org):
        Customer.objects.bulk_create(rows, batch_size=1000)
    return {
        "size": int(matching.sum()),
        "email": int((matching & email).sum()),
        "female_share": float(female.mean()),
    }


def _tolerance(share: float, population: int, sample: int) -> float:
    """4.5 standard errors of a count estimated from a sample drawn without replacement."""
    se = math.sqrt(share * (1 - share) / sample * (population - sample) / (population - 1))
    return 4.5 * se * population


@pytest.fixture
def big(settings, monkeypatch):
    """Organisations of more than 500 customers are previewed from 1,000 of them."""
    settings.AUDIENCE_PREVIEW_SAMPLE_ABOVE = 500
    monkeypatch.setattr(services, "PREVIEW_SAMPLE_SIZE", SAMPLE, raising=False)


def test_a_big_organisation_is_estimated_from_a_sample(org, big):
    truth = _plant(org)
    with tenant_context(org):
        figures = audience_preview(organization=org, definition=RULE)
    assert figures["estimated"] is True
    assert 0.8 * SAMPLE <= figures["sample_size"] <= 1.2 * SAMPLE
    assert abs(figures["size"] - truth["size"]) <= _tolerance(SHARE, N, SAMPLE)
    email_share = truth["email"] / N
    assert abs(figures["reachable"]["email"] - truth["email"]) <= _tolerance(email_share, N, SAMPLE)
    assert figures["candidates"] == figures["size"]
    estimate = figures["estimate"]
    assert estimate["customers"] == N and estimate["sample_size"] == figures["sample_size"]
    assert {"size", "candidates", "reachable"} <= set(estimate["scaled"])
    assert "fairness" in estimate["from_sample"]
    # the fairness check is proportions of the sample: still the organisation's shares
    shares = {r["group"]: r["share_in_base"] for r in figures["fairness"]}
    assert shares["F"] == pytest.approx(truth["female_share"], abs=0.08)
    assert shares["M"] == pytest.approx(1 - truth["female_share"], abs=0.08)
    assert all(r["warning"] is None for r in figures["fairness"])  # picked at random


def test_the_saved_audience_counts_everyone(org, owner, big):
    truth = _plant(org)
    with tenant_context(org):
        audience = audience_create(
            organization=org, name="Regulars", definition=RULE, user=owner, sync=True
        )
    assert audience.size == truth["size"]
    assert audience.reachable_email == truth["email"]


def test_a_small_organisation_is_counted_exactly(org, settings, monkeypatch):
    settings.AUDIENCE_PREVIEW_SAMPLE_ABOVE = N  # not above: exact
    monkeypatch.setattr(services, "PREVIEW_SAMPLE_SIZE", SAMPLE, raising=False)
    truth = _plant(org)
    with tenant_context(org):
        figures = audience_preview(organization=org, definition=RULE)
    assert figures["estimated"] is False
    assert figures["sample_size"] is None and figures["estimate"] is None
    assert figures["size"] == truth["size"]
    assert figures["reachable"]["email"] == truth["email"]


def test_the_sample_never_holds_another_organisations_customers(org, other_org, big):
    # the other organisation's customers all match, and have a gender of their own
    truth = _plant(org)
    _plant(other_org, seed=8, gender_of_rest="X")
    Customer.all_objects.filter(organization=other_org).update(orders_count=5)
    with tenant_context(org):
        mine = set(Customer.objects.values_list("pk", flat=True))
        sample = services.preview_sample(organization=org)
        assert sample is not None and sample.population == N
        from audiences.definitions import definition_clean
        from audiences.kinds import evaluate

        chosen = set(evaluate(definition_clean(RULE), organization=org, sample=sample).scores)
        figures = audience_preview(organization=org, definition=RULE)
    assert chosen and chosen <= mine
    assert chosen == {pk for pk in mine if sample.mask([pk])[0]} & chosen
    assert abs(figures["size"] - truth["size"]) <= _tolerance(SHARE, N, SAMPLE)
    assert "X" not in {r["group"] for r in figures["fairness"]}
    assert set(figures["sample"]) <= mine


def test_the_sample_is_the_same_in_sql_and_numpy_and_each_time(org):
    _plant(org, n=2_000)
    sample = CustomerSample.of_rate(0.25, seed=3)
    with tenant_context(org):
        ids = np.array(sorted(Customer.objects.values_list("pk", flat=True)))
        picked = set(Customer.objects.filter(sample.lookup("pk")).values_list("pk", flat=True))
        again = set(Customer.objects.filter(sample.lookup("pk")).values_list("pk", flat=True))
    assert picked == again == set(ids[sample.mask(ids)].tolist())
    assert 0.2 * len(ids) <= len(picked) <= 0.3 * len(ids)
    # another seed, other customers
    other = set(ids[CustomerSample.of_rate(0.25, seed=4).mask(ids)].tolist())
    assert len(other & picked) < 0.5 * len(picked)


def test_not_enough_data_in_the_sample_says_it_is_the_sample(org, big):
    _plant(org)
    from core.exceptions import ApplicationError

    with tenant_context(org), pytest.raises(ApplicationError) as caught:
        audience_preview(
            organization=org,
            definition={"kind": "response", "event": "order", "exposure_event": "newsletter"},
        )
    assert caught.value.message.startswith("In the preview's sample of")
    assert "built from all of them" in caught.value.message


def test_the_api_marks_the_estimate(api, org, big):
    truth = _plant(org)
    answer = api.post("/api/v1/audiences/preview/", {"definition": RULE}, format="json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["estimated"] is True and body["sample_size"] > 0
    assert abs(body["size"] - truth["size"]) <= _tolerance(SHARE, N, SAMPLE)
    assert {"reachable", "fairness", "best_channel", "expected_conversions"} <= set(body)


def test_the_builder_says_the_preview_is_an_estimate(client, marketer, org, big):
    _plant(org)
    client.force_login(marketer)
    data = {
        "kind": "rules",
        "groups": "1",
        "op": "and",
        "g0-op": "and",
        "g0-n": "1",
        "g0-c0-field": "orders_count",
        "g0-c0-operator": "gte",
        "g0-c0-value": "3",
    }
    response = client.post(reverse("audiences:preview"), data)
    assert response.context.get("error") is None, response.context.get("error")
    fig = response.context["fig"]
    page = response.content.decode()
    assert (
        f"About {fig['size']:,} customers (estimated from a sample of {fig['sample_size']:,}; "
        "the saved audience counts everyone)"
    ) in page


def test_the_readers_keep_the_customers_of_the_sample(org, other_org):
    """What the model kinds and the location kind read (History, customers_load) is
    the sample's customers' rows, all of them, and nothing of another organisation."""
    import datetime as dt

    from customers.history import History
    from customers.tests.factories import (
        CustomerFactory,
        EventFactory,
        OrderFactory,
        OrderLineFactory,
        ProductFactory,
    )
    from stores.geo import customers_load

    when = dt.datetime(2024, 3, 5, 12, tzinfo=dt.UTC)
    for organization in (other_org, org):
        with tenant_context(organization):
            product = ProductFactory()
            for _ in range(60):
                customer = CustomerFactory()
                OrderLineFactory(
                    order=OrderFactory(customer=customer, ordered_at=when), product=product
                )
                EventFactory(customer=customer, occurred_at=when)
    sample = CustomerSample.of_rate(0.5, seed=1)
    with tenant_context(org):
        mine = np.array(sorted(Customer.objects.values_list("pk", flat=True)))
        wanted = set(mine[sample.mask(mine)].tolist())
        assert 10 < len(wanted) < 50
        everyone = History(org, dt.date(2024, 3, 31))
        sampled = History(org, dt.date(2024, 3, 31), sample=sample)
        assert set(sampled.customers()["customer_id"].tolist()) == wanted
        lines = everyone.order_lines()
        kept = lines[lines["customer_id"].isin(wanted)].reset_index(drop=True)
        assert sampled.order_lines().equals(kept)
        assert set(sampled.events(days=3650)["customer_id"].tolist()) == wanted
        assert set(customers_load(sample=sample).ids.tolist()) == wanted


def test_reach_on_the_sample_counts_its_members_consents(org, big):
    _plant(org)
    with tenant_context(org):
        sample = services.preview_sample(organization=org)
        ids = np.array(sorted(Customer.objects.values_list("pk", flat=True)))
        inside = ids[sample.mask(ids)][::2]
        outside = ids[~sample.mask(ids)][:50]  # not the sample's: never counted
        exact = services.reach(inside.tolist())
        assert services.reach([*inside.tolist(), *outside.tolist()], sample=sample) == exact
    assert exact["email"] > 0


def test_an_erasure_makes_the_kept_sample_details_unreachable(org, big, monkeypatch):
    """The sample's customer details are kept a few minutes for the next preview; the
    keys carry the customers' newest change, so after an erasure they are read again
    (the erased person's details are never answered from the cache)."""
    from audiences import fairness
    from customers.sampling import customers_version
    from customers.services.privacy import customer_erase

    reads = []
    real = fairness._customer_columns
    monkeypatch.setattr(
        fairness, "_customer_columns", lambda *a, **k: reads.append(1) or real(*a, **k)
    )
    _plant(org)
    with tenant_context(org):
        before = customers_version(org.pk)
        audience_preview(organization=org, definition=RULE)
        audience_preview(organization=org, definition=RULE)
        assert len(reads) == 1  # the second preview is answered from the cache
        customer_erase(customer=Customer.objects.order_by("pk").first())
        assert customers_version(org.pk) != before
        audience_preview(organization=org, definition=RULE)
    assert len(reads) == 2
