"""Audience pages: the empty list, the builder's preview and save, an audience's page
with its members, the formula-safe CSV, roles, other organisations, and kinds that
fail with a message instead of a stack trace."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from audiences.models import Audience, AudienceStatus


@pytest.fixture
def world(org):
    """20 customers: the first ten in segment "Loyal", the rest in "Fading"; even ones
    consent to email, every fourth to SMS; a rule segment of those with 3+ orders
    (every third). Customer 0 is named like a spreadsheet formula."""
    from customers.models import Customer
    from segmentation.models import Segment, SegmentationRun, SegmentKind, SegmentMembership

    with tenant_context(org):
        run = SegmentationRun.objects.create(
            organization=org, as_of=dt.date(2024, 6, 30), chosen_k=2, is_live=True
        )
        loyal = Segment.objects.create(
            organization=org, kind=SegmentKind.CLUSTER, name="Loyal", key="cluster-a",
            size=10, first_run=run, last_run=run,
        )  # fmt: skip
        fading = Segment.objects.create(
            organization=org, kind=SegmentKind.CLUSTER, name="Fading", key="cluster-b",
            size=10, first_run=run, last_run=run,
        )  # fmt: skip
        customers = []
        for i in range(20):
            c = Customer.objects.create(
                organization=org,
                external_id=f"C{i:03d}",
                first_name='=HYPERLINK("http://evil.example","x")' if i == 0 else f"Ann{i}",
                email=f"c{i}@example.com",
                phone=f"+4470000{i:05d}",
                accepts_email=i % 2 == 0,
                accepts_sms=i % 4 == 0,
                orders_count=3 if i % 3 == 0 else 1,
            )
            customers.append(c)
            SegmentMembership.objects.create(
                organization=org, run=run, segment=loyal if i < 10 else fading, customer=c
            )
        rule = Segment.objects.create(
            organization=org, kind=SegmentKind.RULE, name="Three or more orders", key="rule-3",
            rule={"op": "and", "conditions": [{"field": "orders_count", "operator": "gte",
                                               "value": 3}]},
        )  # fmt: skip
    return {"loyal": loyal, "fading": fading, "rule": rule, "customers": customers}


def _builder_post(world, **extra):
    data = {
        "name": "Loyal, not frequent",
        "kind": "segments",
        "include": [str(world["loyal"].pk)],
        "match": "any",
        "exclude": [str(world["rule"].pk)],
        "action": "save",
    }
    data.update(extra)
    return data


def test_empty_list_explains_audiences(client, marketer):
    client.force_login(marketer)
    response = client.get(reverse("audiences:list"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "No audiences yet" in page
    assert "saved list of the customers you want to reach" in page
    assert "Build your first audience" in page
    assert reverse("audiences:new") in page


def test_builder_offers_segments_with_sizes_and_preselects_one(client, marketer, world):
    client.force_login(marketer)
    response = client.get(reverse("audiences:new") + f"?segment={world['fading'].pk}")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Loyal · 10 customers" in page
    assert "Three or more orders" in page
    assert f'value="{world["fading"].pk}" id="id_include_' in page
    # the preselected segment is checked in "include", and only there
    form = response.context["form"]
    assert form["include"].value() == [str(world["fading"].pk)]
    assert 'aria-live="polite"' in page
    assert "<legend>What kind of audience?</legend>" in page


def test_preview_shows_size_and_reach(client, marketer, world):
    client.force_login(marketer)
    response = client.post(
        reverse("audiences:preview"), _builder_post(world), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    fig = response.context["fig"]
    # Loyal is customers 0-9; minus 0, 3, 6, 9 (3+ orders) leaves 1, 2, 4, 5, 7, 8
    assert fig["size"] == 6
    assert fig["reachable"] == {"email": 3, "sms": 2}  # email 2, 4, 8; SMS 4, 8
    page = response.content.decode()
    assert "Reachable by email" in page and "Reachable by SMS" in page
    assert "Traceback" not in page


def test_preview_of_a_rule_from_the_builder_rows(client, marketer, world):
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
    assert response.context["fig"]["size"] == 7  # 0, 3, 6, 9, 12, 15, 18


def test_failing_kind_shows_its_message(
    client, marketer, world, django_capture_on_commit_callbacks
):
    """Goal audiences need predictions: the preview says so; saved anyway, the
    audience fails its build with that reason on its page and in the list (it is
    rebuilt after the next run). No stack trace anywhere."""
    client.force_login(marketer)
    data = _builder_post(world, kind="goal", goal="order_soon", days="30", name="Soon")
    response = client.post(reverse("audiences:preview"), data)
    assert response.status_code == 200
    assert "Predictions have not run yet" in response.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("audiences:new"), data)
    assert response.status_code == 302
    with tenant_context(world["loyal"].organization):
        audience = Audience.objects.get()
    assert audience.status == AudienceStatus.FAILED
    for url in (response["Location"], reverse("audiences:list")):
        page = client.get(url).content.decode()
        assert "Predictions have not run yet" in page
        assert "Failed" in page or "could not be built" in page
        assert "Traceback" not in page


def test_bad_input_is_named_next_to_its_field(client, marketer, world):
    client.force_login(marketer)
    response = client.post(reverse("audiences:new"), _builder_post(world, include=[]))
    assert response.status_code == 400
    assert response.context["form"].errors["include"]
    response = client.post(
        reverse("audiences:preview"), _builder_post(world, kind="location", km="far")
    )
    assert "Enter a number" in response.content.decode()


def test_save_creates_builds_and_redirects(
    client, marketer, world, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("audiences:new"), _builder_post(world))
    with tenant_context(world["loyal"].organization):
        audience = Audience.objects.get()
        assert response.status_code == 302
        assert response["Location"] == reverse("audiences:detail", args=[audience.pk])
        assert audience.status == AudienceStatus.READY, audience.message
        assert audience.size == 6
        assert audience.definition["exclude"] == [world["rule"].pk]

    page = client.get(response["Location"]).content.decode()
    assert "Loyal, not frequent" in page
    assert "“Loyal”, except those in “Three or more orders”" in page
    assert "C001" in page and "C008" in page and "C003" not in page
    assert reverse("customers:detail", args=[world["customers"][1].pk]) in page
    assert "Download CSV" in page and "Rebuild now" in page

    listing = client.get(reverse("audiences:list")).content.decode()
    assert "Loyal, not frequent" in listing
    assert "Segments combined" in listing
    assert "refreshed" in listing


def _built(org, world, name="Everyone loyal"):
    from audiences.services import audience_create

    with tenant_context(org):
        return audience_create(
            organization=org,
            name=name,
            definition={"kind": "segments", "include": [world["loyal"].pk]},
            sync=True,
        )


def test_export_csv_is_formula_safe(client, marketer, org, world):
    audience = _built(org, world)
    client.force_login(marketer)
    response = client.get(reverse("audiences:export", args=[audience.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 10
    first = next(r for r in rows if r["customer_id"] == "C000")
    assert first["first_name"] == '\'=HYPERLINK("http://evil.example","x")'


def test_edit_rebuild_and_delete(client, marketer, org, world, django_capture_on_commit_callbacks):
    audience = _built(org, world)
    client.force_login(marketer)
    page = client.get(reverse("audiences:edit", args=[audience.pk]))
    assert page.context["form"]["include"].value() == [str(world["loyal"].pk)]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("audiences:edit", args=[audience.pk]),
            _builder_post(world, name="Loyal, fewer orders"),
        )
    assert response.status_code == 302
    with tenant_context(org):
        audience.refresh_from_db()
    assert (audience.name, audience.size) == ("Loyal, fewer orders", 6)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("audiences:rebuild", args=[audience.pk]))
    assert response.status_code == 302

    assert client.get(reverse("audiences:delete", args=[audience.pk])).status_code == 200
    response = client.post(reverse("audiences:delete", args=[audience.pk]))
    assert response["Location"] == reverse("audiences:list")
    with tenant_context(org):
        assert not Audience.objects.exists()


def test_viewer_can_look_but_not_save(client, viewer, org, world):
    audience = _built(org, world)
    client.force_login(viewer)
    assert client.get(reverse("audiences:detail", args=[audience.pk])).status_code == 200
    assert (
        "Rebuild now"
        not in client.get(reverse("audiences:detail", args=[audience.pk])).content.decode()
    )
    assert (
        client.post(reverse("audiences:new"), _builder_post(world, name="Nope")).status_code == 403
    )
    assert client.post(reverse("audiences:rebuild", args=[audience.pk])).status_code == 403
    assert client.post(reverse("audiences:delete", args=[audience.pk])).status_code == 403
    with tenant_context(org):
        assert list(Audience.objects.values_list("name", flat=True)) == ["Everyone loyal"]


def test_another_organisations_audience_is_404(client, org, other_org, world, make_member):
    from accounts.models import Role

    audience = _built(org, world)
    stranger = make_member(other_org, Role.OWNER, "owner@rival.test")
    client.force_login(stranger)
    for name in ("detail", "edit", "delete", "export"):
        assert client.get(reverse(f"audiences:{name}", args=[audience.pk])).status_code == 404
    assert client.post(reverse("audiences:rebuild", args=[audience.pk])).status_code == 404
    assert client.post(reverse("audiences:delete", args=[audience.pk])).status_code == 404


def test_sensitive_attributes_need_a_reason(client, marketer, world):
    client.force_login(marketer)
    response = client.post(reverse("audiences:new"), _builder_post(world, use_sensitive="on"))
    assert response.status_code == 400
    assert response.context["form"].errors["reason"] == ["“Why you need them” is required."]
    assert "recorded in the audit log" in response.content.decode()


def test_preview_hints_while_nothing_is_chosen(client, marketer, world):
    client.force_login(marketer)
    response = client.post(reverse("audiences:preview"), _builder_post(world, include=[]))
    assert response.context["hint"] == "Tick at least one segment to see who is in the audience."
    response = client.post(reverse("audiences:preview"), {"kind": "location"})
    assert "Choose a store and a distance" in response.content.decode()
    assert "msg-warning" not in response.content.decode()


def test_a_building_audience_shows_its_progress_and_polls(client, marketer, world):
    """Saved but not built yet (the job is still queued): progress on its page and in
    the list, both refreshing themselves until the build is done."""
    client.force_login(marketer)
    response = client.post(reverse("audiences:new"), _builder_post(world))
    with tenant_context(world["loyal"].organization):
        audience = Audience.objects.get()
    assert audience.status == AudienceStatus.BUILDING and audience.job_id
    page = client.get(response["Location"]).content.decode()
    assert 'role="progressbar"' in page
    assert 'hx-trigger="every 2s"' in page
    listing = client.get(reverse("audiences:list")).content.decode()
    assert "Building" in listing and "% done" in listing
    assert 'hx-trigger="every 2s"' in listing


def test_a_fault_in_a_preview_gives_a_sentence_not_a_stack(client, marketer, world, monkeypatch):
    """A kind answered in the request (the model kinds' jobs: test_preview_jobs.py)."""
    import audiences.kinds

    def broken(definition, *, organization, sample=None):
        raise ValueError("window shape cannot be larger than input array shape")

    monkeypatch.setitem(audiences.kinds._HANDLERS, "location", broken)
    client.force_login(marketer)
    data = {"kind": "location", "countries": "GB"}
    response = client.post(reverse("audiences:preview"), data)
    assert response.status_code == 200
    page = response.content.decode()
    assert "could not be worked out" in page
    assert "window shape" not in page and "Traceback" not in page


def test_a_build_that_crashed_says_so_and_stops_polling(
    client, marketer, world, monkeypatch, django_capture_on_commit_callbacks
):
    import audiences.kinds

    def broken(definition, *, organization):
        raise ValueError("boom")

    monkeypatch.setitem(audiences.kinds._HANDLERS, "segments", broken)
    client.force_login(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("audiences:new"), _builder_post(world))
    page = client.get(response["Location"]).content.decode()
    assert "The last build stopped before it finished." in page
    assert "something went wrong on our side" in page
    assert "every 2s" not in page and "boom" not in page
    listing = client.get(reverse("audiences:list")).content.decode()
    assert "Failed" in listing and "every 2s" not in listing


def test_edit_shows_a_rules_audience_in_the_rule_rows(client, marketer, org, world):
    from audiences.services import audience_create

    rule = {"op": "and", "conditions": [{"field": "orders_count", "operator": "gte", "value": 3}]}
    with tenant_context(org):
        audience = audience_create(
            organization=org, name="Frequent", definition={"kind": "rules", "rule": rule}, sync=True
        )
    assert audience.size == 7
    client.force_login(marketer)
    page = client.get(reverse("audiences:edit", args=[audience.pk])).content.decode()
    assert (
        'id="kind-rules" name="kind" value="rules" aria-describedby="kind-rules-help" checked'
        in page
    )
    assert '<option value="orders_count" selected>' in page
    assert 'name="g0-c0-value" value="3"' in page
