"""Site pages for segments, personas and rule segments.

Views are thin: read through selectors, write through services, render.
Objects are looked up through the scoped managers with `get_object_or_404`, so
another organisation's ids answer 404.
"""

from __future__ import annotations

import csv
import re
from typing import Any

from django.contrib import messages
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.actor import Actor
from accounts.decorators import org_required
from accounts.models import Role
from core.exceptions import ApplicationError
from core.models import Job, JobStatus
from core.web import safe_next_url
from customers.views import read_transaction

from . import selectors
from .models import Persona, Segment, SegmentKind
from .services import personas as persona_services
from .services import rules as rule_services
from .services import segments as segment_services

MEMBERS_PER_PAGE = 50


def _latest_job():
    return Job.objects.filter(kind="segments").order_by("-created_at").first()


def _chart_rows(profile: dict[str, Any], limit: int = 10) -> list[dict[str, Any]]:
    """Features for the profile chart: most distinctive first, as index vs base (100)."""
    rows = []
    for feature in profile.get("features", [])[: limit * 2]:
        if feature.get("index") is None:
            continue
        rows.append(
            {
                "label": feature.get("description") or feature.get("feature"),
                "index": round(feature["index"], 1),
                "sentence": feature.get("sentence", ""),
            }
        )
        if len(rows) >= limit:
            break
    return rows


def _heatmap(clusters: list[Segment], per_segment: int = 3, limit: int = 12) -> dict[str, Any]:
    """The features that set segments apart, as an index per segment (100 = average)."""
    chosen: list[str] = []
    labels: dict[str, str] = {}
    for segment in clusters:
        features = [f for f in segment.profile.get("features", []) if f.get("index") is not None]
        for feature in features[:per_segment]:
            labels[feature["feature"]] = feature.get("description") or feature["feature"]
            if feature["feature"] not in chosen:
                chosen.append(feature["feature"])
    chosen = chosen[:limit]
    z = []
    for name in chosen:
        row = []
        for segment in clusters:
            found = next(
                (f for f in segment.profile.get("features", []) if f["feature"] == name), None
            )
            row.append(
                round(found["index"], 0) if found and found.get("index") is not None else None
            )
        z.append(row)
    return {
        "features": [labels[n] for n in chosen],
        "segments": [s.name for s in clusters],
        "z": z,
        "rows": list(zip([labels[n] for n in chosen], z, strict=True)),
    }


@org_required
@require_GET
@read_transaction
def segments(request):
    run = selectors.live_run()
    current = list(selectors.segments_current())
    found = [s for s in current if s.kind == SegmentKind.CLUSTER]
    # sub-segments (drill-down) are shown inside their segment's card
    clusters = [s for s in found if s.parent_id is None]
    for segment in clusters:
        segment.subsegments = [s for s in found if s.parent_id == segment.pk]
    rfm = [s for s in current if s.kind == SegmentKind.RFM]
    rules = [s for s in current if s.kind == SegmentKind.RULE]
    job = _latest_job()
    show_job = job is not None and (not job.is_finished or job.status != JobStatus.SUCCEEDED)
    chart = None
    if run is not None and clusters:
        chart = {
            "projection": run.projection,
            "explained_total": sum(run.projection.get("explained", [])),
            "segments": [{"id": s.pk, "name": s.name, "size": s.size} for s in clusters],
            "heatmap": _heatmap(clusters),
        }
    from customers.models import Customer

    has_customers = Customer.objects.exists()
    return render(
        request,
        "segmentation/segments.html",
        {
            "run": run,
            "clusters": clusters,
            "n_subsegments": len(found) - len(clusters),
            "rfm": rfm,
            "rules": rules,
            "job": job if show_job else None,
            "chart": chart,
            "settings_row": selectors.segmentation_settings_get(),
            "can_configure": Actor.from_request(request).can(Role.ADMIN),
            "has_customers": has_customers,
            "migration": selectors.migration_matrix() if run else None,
            "sensitive": sorted(
                set(segment_services.DEFAULT_SENSITIVE)
                | set(request.organization.sensitive_attributes or [])
            ),
        },
    )


@org_required(write=True)
@require_POST
def run(request):
    try:
        job = segment_services.segmentation_run_start(
            organization=request.organization, user=request.user
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("segmentation:segments")
    if request.htmx:
        return render(request, "core/_job_progress.html", {"job": job})
    messages.info(request, "Segmentation started. It runs in the background; progress shows below.")
    return redirect("segmentation:segments")


@org_required(role=Role.ADMIN)
@require_POST
def settings_update(request):
    try:
        segment_services.segmentation_settings_update(
            organization=request.organization, data=request.POST, user=request.user
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Settings saved. They apply from the next run.")
    return redirect(reverse("segmentation:segments") + "#settings")


def _segment_panels(request, segment: Segment) -> list[dict[str, Any]]:
    """Places other capabilities add to the segment page (Capability.segment_panels);
    a panel whose function answers None is not drawn."""
    from core.capabilities import capabilities, panel_contents

    # Not cached: panels are drawn for this request (its member's role, its session's
    # CSRF token in their forms), so one member's panel must never be shown to another.
    return panel_contents(
        [p for c in capabilities() for p in c.segment_panels], request=request, segment=segment
    )


@org_required
@require_GET
@read_transaction
def segment_detail(request, pk: int):
    segment = get_object_or_404(Segment.objects.prefetch_related("personas"), pk=pk)
    # keyset pages ("after"/"before" a member) that start at their place in the index,
    # for a run's segment and a rule segment alike; old `?page=N` links are still
    # served, from the cached member index (selectors.member_page)
    page = selectors.member_page(
        segment=segment,
        after=request.GET.get("after", ""),
        before=request.GET.get("before", ""),
        page=request.GET.get("page", ""),
        size=MEMBERS_PER_PAGE,
    )
    profile = segment.profile or {}
    history = selectors.segment_history(segment=segment)
    children = list(
        Segment.objects.filter(parent=segment, is_active=True)
        .prefetch_related("personas")
        .order_by("-size", "id")
    )
    return render(
        request,
        "segmentation/segment_detail.html",
        {
            "segment": segment,
            "persona": segment.persona,
            "children": children,
            "drill_down": profile.get("drill_down"),
            "profile": profile,
            "sentences": profile.get("sentences", []),
            "chart_rows": _chart_rows(profile),
            "page": page,
            "history": history,
            "history_chart": {
                "x": [h["as_of"].isoformat() for h in history],
                "y": [h["size"] for h in history],
            },
            "migration": selectors.segment_migration(segment=segment),
            "segment_panels": _segment_panels(request, segment),
            "rule_text": rule_services.rule_describe(segment.rule)
            if segment.kind == SegmentKind.RULE
            else "",
        },
    )


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP: CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    def write(self, value):
        return value


@org_required
@require_GET
def segment_members_export(request, pk: int):
    segment = get_object_or_404(Segment.objects.all(), pk=pk)
    members = selectors.segment_members(segment=segment).values_list(
        "pk", "external_id", "email", "first_name", "last_name", "country", "orders_count",
        "total_spent", "last_order_at",
    )  # fmt: skip
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(
            ["id", "customer_id", "email", "first_name", "last_name", "country", "orders",
             "total_spent", "last_order_at", "segment"]
        )  # fmt: skip
        for row in members.iterator(chunk_size=2000):
            *values, last_order = row
            yield writer.writerow(
                [csv_safe(v) for v in values]
                + [last_order.isoformat() if last_order else "", csv_safe(segment.name)]
            )

    filename = f"segment-{segment.key}-{timezone.now():%Y%m%d}.csv"
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- personas ------------------------------------------------------------------------
@org_required
@require_GET
def personas(request):
    found = _with_notes(list(selectors.personas_current()))
    return render(request, "segmentation/personas.html", {"personas": found})


def _with_notes(personas: list[Persona]) -> list[Persona]:
    """Each persona with `notes`: lines other capabilities add to its card
    (Capability.persona_notes), read once for all the cards."""
    from core.capabilities import capabilities, resolve

    ids = [p.segment_id for p in personas]
    notes: dict[int, list[dict[str, Any]]] = {}
    for ref in (r for c in capabilities() for r in c.persona_notes):
        for segment_id, lines in (resolve(ref)(ids) or {}).items():
            notes.setdefault(segment_id, []).extend(lines)
    for persona in personas:
        persona.notes = notes.get(persona.segment_id, [])  # type: ignore[attr-defined]
    return personas


@org_required
@require_GET
def persona_card(request, pk: int):
    persona = get_object_or_404(Persona.objects.select_related("segment"), pk=pk)
    (persona,) = _with_notes([persona])
    return render(request, "segmentation/_persona_card.html", {"persona": persona, "link": True})


def _persona_form_data(post) -> tuple[dict[str, Any], list[str]]:
    data: dict[str, Any] = {}
    for name in Persona.EDITABLE_FIELDS:
        if name in post:
            raw = post.get(name, "")
            data[name] = raw.splitlines() if name in Persona.LIST_FIELDS else raw
    return data, post.getlist("reset")


@org_required(write=True)
def persona_edit(request, pk: int):
    persona = get_object_or_404(Persona.objects.select_related("segment"), pk=pk)
    error = None
    if request.method == "POST":
        data, reset = _persona_form_data(request.POST)
        try:
            persona_services.persona_update(
                persona=persona, data=data, user=request.user, reset_fields=reset
            )
        except ApplicationError as exc:
            error = exc.message
        else:
            if request.htmx:
                return render(
                    request,
                    "segmentation/_persona_card.html",
                    {"persona": persona, "link": True, "saved": True},
                )
            messages.success(request, f"Persona “{persona.name}” saved.")
            return redirect(safe_next_url(request, default=reverse("segmentation:personas")))
    template = (
        "segmentation/_persona_form.html" if request.htmx else "segmentation/persona_edit.html"
    )
    return render(
        request,
        template,
        {
            "persona": persona,
            "error": error,
            "fields": _persona_form_fields(persona, request.POST if error else None),
            "next": safe_next_url(request, default=""),
        },
        status=400 if error else 200,
    )


FIELD_LABELS = {
    "name": "Name",
    "summary": "Portrait",
    "traits": "Key traits (one per line)",
    "motivations": "What motivates them (one per line)",
    "preferred_channel": "Preferred channel",
    "preferred_time": "Preferred time",
    "favourite_categories": "Favourite categories (one per line)",
    "favourite_products": "Favourite products (one per line)",
    "value": "Value",
    "risk": "Risk",
    "actions": "Suggested actions (one per line)",
}


def _persona_form_fields(persona: Persona, posted=None) -> list[dict[str, Any]]:
    out = []
    for name in Persona.EDITABLE_FIELDS:
        value = getattr(persona, name)
        if posted is not None and name in posted:
            value = posted.get(name)
        elif name in Persona.LIST_FIELDS:
            value = "\n".join(value or [])
        out.append(
            {
                "name": name,
                "label": FIELD_LABELS[name],
                "value": value,
                "multiline": name in Persona.LIST_FIELDS or name in ("summary", "value", "risk"),
                "edited": persona.is_edited(name),
            }
        )
    return out


# --- rule segments -------------------------------------------------------------------
def _form_count(post, name: str, default: int, problems: list[str]) -> int:
    """A count the builder posts in a hidden field; a forged one is a form problem."""
    raw = post.get(name, "") or str(default)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4):
        problems.append(f"The form's '{name}' field ('{raw[:20]}') is not a count.")
        return default
    return int(raw)


def _builder_state(post) -> dict[str, Any]:
    """The builder's groups from a posted form, with add/remove actions applied.

    Malformed hidden fields (counts, actions) are listed in `problems`, so the page
    shows a form error instead of failing."""
    groups = []
    problems: list[str] = []
    n_groups = _form_count(post, "groups", 1, problems)
    for gi in range(min(n_groups, rule_services.MAX_DEPTH * 10)):
        prefix = f"g{gi}"
        n_conditions = _form_count(post, f"{prefix}-n", 0, problems)
        conditions = []
        for ci in range(min(n_conditions, rule_services.MAX_CONDITIONS)):
            cp = f"{prefix}-c{ci}"
            if f"{cp}-field" not in post:
                continue
            values = post.getlist(f"{cp}-value")
            conditions.append(
                {
                    "field": post.get(f"{cp}-field", ""),
                    "operator": post.get(f"{cp}-operator", ""),
                    "value": values if len(values) > 1 else (values[0] if values else ""),
                }
            )
        groups.append({"op": post.get(f"{prefix}-op", "and"), "conditions": conditions})
    action = post.get("action", "")
    add_condition = re.fullmatch(r"add-condition-(\d{1,4})", action)
    remove = re.fullmatch(r"remove-(\d{1,4})-(\d{1,4})", action)
    if action.startswith(("add-condition-", "remove-")) and not (add_condition or remove):
        problems.append(f"The form's action ('{action[:30]}') is not one the builder sends.")
    if add_condition:
        gi = int(add_condition.group(1))
        if 0 <= gi < len(groups):
            groups[gi]["conditions"].append({"field": "", "operator": "", "value": ""})
    elif action == "add-group":
        groups.append({"op": "and", "conditions": [{"field": "", "operator": "", "value": ""}]})
    elif remove:
        gi, ci = int(remove.group(1)), int(remove.group(2))
        if 0 <= gi < len(groups) and 0 <= ci < len(groups[gi]["conditions"]):
            groups[gi]["conditions"].pop(ci)
            if not groups[gi]["conditions"] and len(groups) > 1:
                groups.pop(gi)
    return {
        "name": post.get("name", ""),
        "description": post.get("description", ""),
        "op": post.get("op", "and"),
        "groups": groups or [{"op": "and", "conditions": []}],
        "problems": problems,
    }


def _state_to_rule(state: dict[str, Any]) -> dict[str, Any]:
    groups = [
        {
            "op": g["op"],
            "conditions": [c for c in g["conditions"] if c.get("field")],
        }
        for g in state["groups"]
    ]
    groups = [g for g in groups if g["conditions"]]
    if len(groups) == 1:
        return groups[0]
    return {"op": state["op"], "conditions": groups}


def _rule_to_state(segment: Segment) -> dict[str, Any]:
    rule = segment.rule or {"op": "and", "conditions": []}
    items = rule.get("conditions", [])
    if items and all("conditions" in i for i in items):
        groups, op = items, rule.get("op", "and")
    else:
        # a flat rule, or a mix: the plain conditions form the first group
        plain = [i for i in items if "conditions" not in i]
        nested = [i for i in items if "conditions" in i]
        groups = [{"op": rule.get("op", "and"), "conditions": plain}, *nested]
        op = rule.get("op", "and")
    for group in groups:
        for condition in group["conditions"]:
            value = condition.get("value")
            if isinstance(value, list) and condition.get("operator") == "between":
                condition["value"] = ", ".join(str(v) for v in value)
    return {"name": segment.name, "description": segment.description, "op": op, "groups": groups}


def _builder_context(state: dict[str, Any]) -> dict[str, Any]:
    fields = rule_services.rule_fields()
    grouped: dict[str, list] = {}
    for f in fields.values():
        grouped.setdefault(f.group, []).append(f)
    groups = []
    for gi, group in enumerate(state["groups"]):
        rows = []
        for ci, condition in enumerate(group["conditions"]):
            field = fields.get(condition.get("field"))
            value = condition.get("value")
            values = [str(v) for v in value] if isinstance(value, list) else [str(value or "")]
            rows.append(
                {
                    "index": ci,
                    "prefix": f"g{gi}-c{ci}",
                    "field": field,
                    "field_name": condition.get("field", ""),
                    "operator": condition.get("operator")
                    or (next(iter(field.operators)) if field else ""),
                    "value": value if not isinstance(value, list) else ", ".join(values),
                    "values": values,
                    "choices": field.choices() if field and field.choices else None,
                }
            )
        groups.append({"index": gi, "op": group["op"], "rows": rows})
    return {
        "state": state,
        "groups": groups,
        "n_groups": len(groups),
        "field_groups": sorted(grouped.items(), key=lambda kv: kv[0] != "Customer"),
    }


def _rule_form(request, *, segment: Segment | None):
    if request.method == "POST":
        state = _builder_state(request.POST)
    elif segment is not None:
        state = _rule_to_state(segment)
    else:
        state = {
            "name": "",
            "description": "",
            "op": "and",
            "groups": [{"op": "and", "conditions": [{"field": "", "operator": "", "value": ""}]}],
        }
    error = None
    problems = state.get("problems")
    if problems:
        error = " ".join(problems) + " Reload the page and build the rule again."
    elif request.method == "POST" and request.POST.get("action") == "save":
        try:
            if segment is None:
                segment = rule_services.rule_segment_create(
                    organization=request.organization,
                    name=state["name"],
                    rule=_state_to_rule(state),
                    description=state["description"],
                    user=request.user,
                )
            else:
                rule_services.rule_segment_update(
                    segment=segment,
                    name=state["name"],
                    rule=_state_to_rule(state),
                    description=state["description"],
                )
        except ApplicationError as exc:
            error = exc.message
        else:
            messages.success(
                request, f"Segment “{segment.name}” saved: {segment.size:,} customers."
            )
            return redirect("segmentation:segment_detail", pk=segment.pk)
    context = {**_builder_context(state), "segment": segment, "error": error}
    if request.htmx and request.POST.get("action", "").startswith(("add-", "remove-", "refresh")):
        return render(request, "segmentation/_rule_builder.html", context)
    return render(request, "segmentation/rule_form.html", context, status=400 if error else 200)


@org_required(write=True)
def rule_new(request):
    return _rule_form(request, segment=None)


@org_required(write=True)
def rule_edit(request, pk: int):
    segment = get_object_or_404(Segment.objects.filter(kind=SegmentKind.RULE), pk=pk)
    return _rule_form(request, segment=segment)


@org_required(write=True)
@require_POST
def rule_delete(request, pk: int):
    segment = get_object_or_404(Segment.objects.filter(kind=SegmentKind.RULE), pk=pk)
    name = segment.name
    rule_services.rule_segment_delete(segment=segment)
    messages.success(request, f"Segment “{name}” deleted.")
    return redirect("segmentation:segments")


@org_required
@require_POST
def rule_preview(request):
    """The live size of the rule being built (htmx fragment). Reads only."""
    state = _builder_state(request.POST)
    if state["problems"]:
        error = " ".join(state["problems"]) + " Reload the page and build the rule again."
        return render(request, "segmentation/_rule_preview.html", {"error": error})
    try:
        preview = rule_services.rule_preview(rule=_state_to_rule(state))
    except ApplicationError as exc:
        return render(request, "segmentation/_rule_preview.html", {"error": exc.message})
    return render(request, "segmentation/_rule_preview.html", {"preview": preview})
