"""Rule segments: conditions, AND/OR groups, validation, live preview, saving and
refreshing, and the builder page."""

from __future__ import annotations

import datetime as dt
import html
from decimal import Decimal

import pytest
from django.db.models import F

from core.exceptions import ApplicationError
from segmentation.models import Segment, SegmentationRun, SegmentKind, SegmentMembership
from segmentation.services.rules import (
    RuleContext,
    register_rule_field,
    related_value_field,
    rule_clean,
    rule_customers,
    rule_describe,
    rule_preview,
    rule_segment_create,
    rule_segment_update,
)

REF = dt.date(2024, 6, 30)


def at(days_ago: int) -> dt.datetime:
    return dt.datetime.combine(REF, dt.time(12), tzinfo=dt.UTC) - dt.timedelta(days=days_ago)


@pytest.fixture
def people(in_org):
    """Six hand-made customers whose answers to each rule can be read off."""
    from customers.models import Customer, Order

    specs = {
        "uk-loyal": dict(country="United Kingdom", accepts_email=True, orders_count=9, total_spent=900, last=5),
        "uk-lapsed": dict(country="United Kingdom", accepts_email=True, orders_count=2, total_spent=80, last=200),
        "de-loyal": dict(country="DE", accepts_email=False, orders_count=7, total_spent=700, last=20),
        "de-new": dict(country="DE", accepts_email=True, orders_count=1, total_spent=30, last=2),
        "fr-lapsed": dict(country="FR", accepts_email=False, orders_count=3, total_spent=150, last=400),
        "nobody": dict(country="", accepts_email=True, orders_count=0, total_spent=0, last=None),
    }  # fmt: skip
    out = {}
    for name, spec in specs.items():
        last = spec.pop("last")
        customer = Customer.objects.create(
            external_id=name,
            email=f"{name}@example.com",
            last_order_at=at(last) if last is not None else None,
            first_order_at=at(500) if last is not None else None,
            **spec,
        )
        if last is not None:
            Order.objects.create(external_id=f"o-{name}", customer=customer, ordered_at=at(last))
        out[name] = customer
    return out


def names(qs) -> set[str]:
    return set(qs.values_list("external_id", flat=True))


def match(rule, live_run_id=None) -> set[str]:
    context = RuleContext(reference_date=REF, live_run_id=live_run_id)
    return names(rule_customers(rule_clean(rule), context=context))


def cond(field, operator, value=None):
    return {"field": field, "operator": operator, "value": value}


def test_single_conditions(people):
    assert match({"op": "and", "conditions": [cond("country", "eq", "united kingdom")]}) == {
        "uk-loyal",
        "uk-lapsed",
    }
    assert match({"op": "and", "conditions": [cond("orders_count", "gte", 7)]}) == {
        "uk-loyal",
        "de-loyal",
    }
    assert match({"op": "and", "conditions": [cond("total_spent", "between", "100, 700")]}) == {
        "fr-lapsed",
        "de-loyal",
    }
    assert match({"op": "and", "conditions": [cond("accepts_email", "is", "no")]}) == {
        "de-loyal",
        "fr-lapsed",
    }
    assert match({"op": "and", "conditions": [cond("last_order", "more_than", 90)]}) == {
        "uk-lapsed",
        "fr-lapsed",
    }
    assert match({"op": "and", "conditions": [cond("last_order", "within", 7)]}) == {
        "uk-loyal",
        "de-new",
    }
    assert match({"op": "and", "conditions": [cond("last_order", "never")]}) == {"nobody"}
    assert match({"op": "and", "conditions": [cond("country", "in", "DE, FR")]}) == {
        "de-loyal",
        "de-new",
        "fr-lapsed",
    }
    assert match({"op": "and", "conditions": [cond("country", "not_in", ["DE", "FR"])]}) == {
        "uk-loyal",
        "uk-lapsed",
        "nobody",
    }


def test_and_or_and_nested_groups(people):
    loyal_and_consenting = {
        "op": "and",
        "conditions": [cond("orders_count", "gte", 5), cond("accepts_email", "is", True)],
    }
    assert match(loyal_and_consenting) == {"uk-loyal"}
    loyal_or_consenting = {**loyal_and_consenting, "op": "or"}
    assert match(loyal_or_consenting) == {"uk-loyal", "de-loyal", "uk-lapsed", "de-new", "nobody"}
    # lapsed customers who are either in the UK or spent over 100
    nested = {
        "op": "and",
        "conditions": [
            cond("last_order", "more_than", 90),
            {
                "op": "or",
                "conditions": [
                    cond("country", "eq", "United Kingdom"),
                    cond("total_spent", "gt", 100),
                ],
            },
        ],
    }
    assert match(nested) == {"uk-lapsed", "fr-lapsed"}


def test_erased_customers_never_match(people):
    people["uk-loyal"].erased_at = at(1)
    people["uk-loyal"].save()
    assert match({"op": "and", "conditions": [cond("country", "eq", "United Kingdom")]}) == {
        "uk-lapsed"
    }


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"op": "and", "conditions": []}, "at least one condition"),
        ({"op": "xor", "conditions": [cond("country", "eq", "DE")]}, "'xor' must be 'and' or 'or'"),
        ({"op": "and", "conditions": [cond("shoe_size", "eq", 42)]}, "unknown field 'shoe_size'"),
        (
            {"op": "and", "conditions": [cond("orders_count", "gte", "many")]},
            "'many' is not a number",
        ),
        (
            {"op": "and", "conditions": [cond("country", "gte", "DE")]},
            "cannot be used with country",
        ),
        ({"op": "and", "conditions": [cond("total_spent", "between", "90, 10")]}, "lowest first"),
        ({"op": "and", "conditions": [cond("last_order", "within", -3)]}, "whole number"),
        ({"op": "and", "conditions": [cond("segment", "in", [999999])]}, "no segment"),
        # Not a name at all: refused, not a TypeError (a list cannot be looked up).
        ({"op": "and", "conditions": [cond(["country"], "eq", "DE")]}, "unknown field"),
        ({"op": "and", "conditions": [cond("country", ["eq"], "DE")]}, "cannot be used with"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(in_org, rule, message):
    with pytest.raises(ApplicationError, match=message):
        rule_clean(rule)


def test_nested_groups_have_a_depth_limit(in_org):
    rule = {"op": "and", "conditions": [cond("orders_count", "gte", 1)]}
    for _ in range(4):
        rule = {"op": "and", "conditions": [rule]}
    with pytest.raises(ApplicationError, match="nested at most"):
        rule_clean(rule)


def test_preview_counts_and_shares(people):
    preview = rule_preview(rule={"op": "and", "conditions": [cond("country", "eq", "DE")]})
    assert preview["size"] == 2
    assert preview["total"] == 6
    assert preview["share"] == pytest.approx(2 / 6)
    # days count back from the newest order (de-new's, two days before REF), not today
    assert preview["reference_date"] == (REF - dt.timedelta(days=2)).isoformat()


def test_segment_membership_condition_uses_the_live_run(people, in_org):
    run = SegmentationRun.objects.create(as_of=REF, is_live=True)
    big = Segment.objects.create(kind=SegmentKind.CLUSTER, name="Big spenders", key="cluster-1")
    for key in ("uk-loyal", "de-loyal"):
        SegmentMembership.objects.create(run=run, segment=big, customer=people[key])
    rule = {
        "op": "and",
        "conditions": [cond("segment", "in", [big.pk]), cond("country", "eq", "DE")],
    }
    assert match(rule, live_run_id=run.pk) == {"de-loyal"}
    assert match({"op": "and", "conditions": [cond("segment", "not_in", [big.pk])]}, run.pk) == {
        "uk-lapsed",
        "de-new",
        "fr-lapsed",
        "nobody",
    }
    assert rule_describe(rule_clean(rule)) == (
        "In Big spenders (found by machine learning) and country is DE"
    )


def test_rules_cannot_refer_to_other_rule_segments(people, in_org):
    rule_segment = rule_segment_create(
        organization=in_org,
        name="Germans",
        rule={"op": "and", "conditions": [cond("country", "eq", "DE")]},
    )
    with pytest.raises(ApplicationError, match="cannot refer to other rules"):
        rule_clean({"op": "and", "conditions": [cond("segment", "in", [rule_segment.pk])]})


def test_saving_a_rule_segment_stores_its_size_and_members(people, in_org, owner):
    run = SegmentationRun.objects.create(as_of=REF, is_live=True)
    segment = rule_segment_create(
        organization=in_org,
        name="Lapsed, reachable by email",
        rule={
            "op": "and",
            "conditions": [cond("last_order", "more_than", 90), cond("accepts_email", "is", True)],
        },
        user=owner,
    )
    assert segment.kind == SegmentKind.RULE
    assert segment.key == "rule-lapsed-reachable-by-email"
    assert segment.size == 1
    members = SegmentMembership.objects.filter(run=run, segment=segment)
    assert [m.customer_id for m in members] == [people["uk-lapsed"].pk]
    assert segment.rule["conditions"][0] == {
        "field": "last_order",
        "operator": "more_than",
        "value": 90,
    }
    # data changes, the rule is saved again: size and members follow
    people["de-loyal"].accepts_email = True
    people["de-loyal"].last_order_at = at(120)
    people["de-loyal"].save()
    rule_segment_update(segment=segment, name="Lapsed emailable")
    segment.refresh_from_db()
    assert segment.size == 2
    assert SegmentMembership.objects.filter(run=run, segment=segment).count() == 2


def test_predictions_can_plug_in_a_field(people, in_org):
    """The hook the predictions layer uses: a field held in another table."""
    from customers.models import Customer

    register_rule_field(
        related_value_field(
            name="test_churn_risk",
            label="Churn risk (test)",
            type="choice",
            queryset=lambda: Customer.objects.filter(total_spent__lt=Decimal(100)).annotate(
                customer_id=F("pk")
            ),
            column="country",
            choices=lambda: [("DE", "DE"), ("United Kingdom", "UK")],
        )
    )
    rule = {"op": "and", "conditions": [cond("test_churn_risk", "in", ["DE", "United Kingdom"])]}
    assert match(rule) == {"uk-lapsed", "de-new"}
    with pytest.raises(ApplicationError, match="unknown value"):
        rule_clean({"op": "and", "conditions": [cond("test_churn_risk", "in", ["XX"])]})


# --- the builder page -------------------------------------------------------------
def builder_post(**extra):
    data = {
        "name": "Germans",
        "description": "",
        "op": "and",
        "groups": "1",
        "g0-op": "and",
        "g0-n": "1",
        "g0-c0-field": "country",
        "g0-c0-operator": "eq",
        "g0-c0-value": "DE",
    }
    data.update(extra)
    return data


def test_builder_preview_fragment_counts_live(people, owner_client):
    response = owner_client.post("/segments/rules/preview/", builder_post(), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b"Customers matching now" in response.content
    assert b">2<" in response.content
    response = owner_client.post(
        "/segments/rules/preview/", builder_post(**{"g0-c0-field": "nope"}), HTTP_HX_REQUEST="true"
    )
    assert b"unknown field" in response.content


def test_builder_adds_conditions_and_groups(people, owner_client):
    response = owner_client.post(
        "/segments/rules/new/", builder_post(action="add-condition-0"), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert b'name="g0-c1-field"' in response.content
    response = owner_client.post(
        "/segments/rules/new/", builder_post(action="add-group"), HTTP_HX_REQUEST="true"
    )
    assert b'name="g1-c0-field"' in response.content


def test_builder_saves_an_or_of_groups(people, owner_client, in_org):
    data = builder_post(
        action="save",
        name="Germans or big spenders",
        op="or",
        groups="2",
        **{
            "g1-op": "and",
            "g1-n": "1",
            "g1-c0-field": "total_spent",
            "g1-c0-operator": "gt",
            "g1-c0-value": "800",
        },
    )
    response = owner_client.post("/segments/rules/new/", data)
    assert response.status_code == 302
    segment = Segment.objects.get(kind=SegmentKind.RULE)
    assert segment.size == 3
    assert segment.rule["op"] == "or"
    detail = owner_client.get(response["Location"])
    assert detail.status_code == 200
    assert b"Germans or big spenders" in detail.content
    assert b"uk-loyal" in detail.content  # a member, listed
    edit = owner_client.get(f"/segments/rules/{segment.pk}/edit/")
    assert edit.status_code == 200
    assert b'value="800"' in edit.content


def test_builder_shows_the_error_and_keeps_the_input(people, owner_client):
    response = owner_client.post(
        "/segments/rules/new/",
        builder_post(
            action="save",
            **{"g0-c0-field": "orders_count", "g0-c0-operator": "gt", "g0-c0-value": "lots"},
        ),
    )
    assert response.status_code == 400
    assert b"is not a number" in response.content
    assert b'value="lots"' in response.content


def test_viewers_cannot_build_or_delete_rules(people, in_org, viewer, client):
    segment = rule_segment_create(
        organization=in_org,
        name="Germans",
        rule={"op": "and", "conditions": [cond("country", "eq", "DE")]},
    )
    client.force_login(viewer)
    assert client.get("/segments/rules/new/").status_code == 403
    assert client.post(f"/segments/rules/{segment.pk}/delete/").status_code == 403
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_deleting_a_rule_segment(people, in_org, owner_client):
    segment = rule_segment_create(
        organization=in_org,
        name="Germans",
        rule={"op": "and", "conditions": [cond("country", "eq", "DE")]},
    )
    response = owner_client.post(f"/segments/rules/{segment.pk}/delete/")
    assert response.status_code == 302
    assert not Segment.objects.filter(pk=segment.pk).exists()


def test_a_rule_whose_field_went_away_matches_nobody_and_breaks_nothing(
    people, in_org, owner_client
):
    from segmentation.services.rules import rule_segments_refresh_all

    segment = rule_segment_create(
        organization=in_org,
        name="Germans",
        rule={"op": "and", "conditions": [cond("country", "eq", "DE")]},
    )
    Segment.objects.filter(pk=segment.pk).update(
        rule={"op": "and", "conditions": [cond("retired_field", "eq", 1)]}
    )
    assert rule_segments_refresh_all(context=RuleContext(REF, None))[segment.pk] == []
    page = owner_client.get(f"/segments/{segment.pk}/")
    assert page.status_code == 200
    assert b"no longer available" in page.content
    assert b"No customers are in this segment" in page.content


# --- hostile input (issue 8, item 14) ------------------------------------------------
@pytest.mark.parametrize("operator", ["within", "more_than"])
@pytest.mark.parametrize("days", [10**9, 10**12, "1e400", 800_000])
def test_days_beyond_any_date_are_refused_naming_the_field(in_org, operator, days):
    rule = {"op": "and", "conditions": [cond("last_order", operator, days)]}
    with pytest.raises(ApplicationError, match=r"Condition 1\.1: last order: at most 36,500 days"):
        rule_preview(rule=rule)


def test_a_hundred_years_is_still_a_rule(people):
    rule = {"op": "and", "conditions": [cond("last_order", "within", 36_500)]}
    assert match(rule) == {"uk-loyal", "uk-lapsed", "de-loyal", "de-new", "fr-lapsed"}
    rule = {"op": "and", "conditions": [cond("last_order", "more_than", 36_500)]}
    assert match(rule) == set()


@pytest.mark.parametrize("value", ["1e400", "9" * 40, -(10**20)])
def test_numbers_too_large_to_compare_are_refused(in_org, value):
    rule = {"op": "and", "conditions": [cond("total_spent", "gt", value)]}
    with pytest.raises(ApplicationError, match=r"Condition 1\.1: total spent: .* too large"):
        rule_preview(rule=rule)


def test_segment_ids_beyond_any_id_are_unknown_segments(in_org):
    rule = {"op": "and", "conditions": [cond("segment", "in", [2**70])]}
    with pytest.raises(ApplicationError, match="no segment"):
        rule_preview(rule=rule)


@pytest.mark.parametrize("body", [[1, 2], "x", 5, [None, None], True])
def test_api_preview_with_a_body_that_is_not_an_object_is_a_400(api, in_org, body):
    response = api.post("/api/v1/segments/rules/preview/", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "JSON object" in error["message"]
    assert "body" in error["fields"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"groups": "many"}, "'groups' field ('many') is not a count"),
        ({"groups": "99999999999999999999999"}, "'groups' field"),
        ({"g0-n": "x"}, "'g0-n' field ('x') is not a count"),
        ({"g0-n": "-5"}, "'g0-n' field"),
        ({"action": "add-condition-x"}, "not one the builder sends"),
        ({"action": "remove-0"}, "not one the builder sends"),
        ({"action": "remove-a-b"}, "not one the builder sends"),
        ({"action": "remove-0-0-0"}, "not one the builder sends"),
        (
            {"g0-c0-value": "99999999999", "g0-c0-field": "last_order", "g0-c0-operator": "within"},
            "at most 36,500 days",
        ),
        (
            {"g0-c0-value": "1e999999", "g0-c0-field": "orders_count", "g0-c0-operator": "gt"},
            "is too large",
        ),
    ],
)
def test_malformed_builder_forms_get_a_form_error_not_a_crash(
    people, owner_client, in_org, extra, message
):
    for url in ("/segments/rules/new/", "/segments/rules/preview/"):
        data = builder_post(action="save")
        data.update(extra)
        response = owner_client.post(url, data)
        assert response.status_code in (200, 400), (url, response.status_code)
        assert message in html.unescape(response.content.decode()), url
    assert not Segment.objects.filter(kind=SegmentKind.RULE).exists()
