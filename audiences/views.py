"""Audience pages: the list, the builder (new and edit) with its live preview, an
audience's page with its members, the CSV download, rebuild and delete.

The preview of a kind that fits a model is worked out by a job: the preview region
then shows its progress and polls `preview/<job_id>/` until the figures are there.

Views are thin: the form turns fields into a definition, the services check,
preview, save and build it, and every `ApplicationError` becomes a message on the
page. Objects come through the scoped managers with `get_object_or_404`, so another
organisation's ids answer 404.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import org_required
from core.exceptions import ApplicationError, NotFound
from core.models import Job, JobStatus
from customers.views import read_transaction

from . import selectors, services
from .definitions import GOAL_LABELS, KIND_LABELS, SCORED_KINDS
from .forms import (
    FIELD_FOR,
    KIND_CHOICES,
    KIND_HELP,
    AudienceForm,
    initial_from_definition,
    rule_state_from_definition,
)
from .models import Audience, AudienceStatus

log = logging.getLogger("segmenta.audiences")

MEMBERS_SHOWN = 50
BUILDER_ACTIONS = ("add-", "remove-", "refresh")
# A preview job queued this long with no worker heard from: say nothing is working on it.
PREVIEW_NO_WORKER_AFTER = 15  # seconds
# Preview problems the owner can do something about by asking again.
PREVIEW_RETRY_CODES = ("preview_cancelled", "preview_failed", "preview_too_long")


# --- helpers ---------------------------------------------------------------------------
def _template_exists(name: str) -> bool:
    """The fairness and best-channel partials are written by other parts of the
    app; until they exist the pages draw their own simple version."""
    try:
        get_template(name)
    except TemplateDoesNotExist:
        return False
    return True


def _partials() -> dict[str, bool]:
    return {
        "fairness_partial": _template_exists("audiences/_fairness.html"),
        "channel_partial": _template_exists("audiences/_best_channel.html"),
    }


def _kind_words(definition: dict[str, Any]) -> str:
    kind = (definition or {}).get("kind", "")
    if kind == "goal":
        return GOAL_LABELS.get(definition.get("goal", ""), KIND_LABELS["goal"])
    return KIND_LABELS.get(kind, kind)


def _describe(definition: dict[str, Any]) -> str:
    """The definition in one plain sentence, for the audience's page."""
    from segmentation.models import Segment

    d = definition or {}
    kind = d.get("kind")
    if kind == "segments":
        wanted = [*d.get("include", []), *d.get("exclude", [])]
        names = dict(Segment.objects.filter(pk__in=wanted).values_list("pk", "name"))

        def named(ids, joiner):
            return joiner.join(f"“{names.get(i, f'segment {i}')}”" for i in ids)

        text = "Customers in " + named(
            d.get("include", []), " and " if d.get("match") == "all" else " or "
        )
        if d.get("exclude"):
            text += ", except those in " + named(d["exclude"], " or ")
        return text + "."
    if kind == "rules":
        from segmentation.services.rules import rule_describe

        try:
            return rule_describe(d.get("rule") or {}) + "."
        except (ApplicationError, KeyError, TypeError, ValueError):
            return "Customers matching a rule."
    if kind == "goal":
        text = GOAL_LABELS.get(d.get("goal", ""), "")
        if d.get("goal") == "buy_category":
            text += f" “{d.get('category', '')}”"
        if d.get("days"):
            text += f" within {d['days']} days"
        return text + ", by our predictions."
    if kind == "response":
        return (
            f"Customers most like those who had “{d.get('event')}” within "
            f"{d.get('within_days', 30)} days of “{d.get('exposure_event')}”, among those "
            f"who have not had “{d.get('exposure_event')}” yet."
        )
    if kind == "lookalike":
        if d.get("seed_segment_id"):
            name = (
                Segment.objects.filter(pk=d["seed_segment_id"])
                .values_list("name", flat=True)
                .first()
            )
            return f"Customers most like those in “{name or d['seed_segment_id']}”."
        return (
            f"Customers most like the {len(d.get('seed_customer_ids', [])):,} customers you listed."
        )
    if kind == "location":
        parts = []
        if d.get("store"):
            from stores.models import Store

            store = Store.objects.filter(pk=d["store"]).values_list("name", flat=True).first()
            parts.append(f"within {d.get('km')} km of “{store or d['store']}”")
        if d.get("near"):
            parts.append(f"within {d['near'].get('km')} km of a point on the map")
        for key, words in (
            ("countries", "in"),
            ("regions", "in"),
            ("postal_prefixes", "with a postcode starting"),
        ):
            if d.get(key):
                parts.append(f"{words} {', '.join(d[key])}")
        return "Customers " + " or ".join(parts) + "."
    return ""


def _stores_url() -> str | None:
    for name in ("stores:list", "stores:stores"):
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return None


def _form_choices() -> dict[str, Any]:
    from customers.models import Event, Product
    from segmentation.selectors import segments_current
    from stores.models import Store

    segments = list(segments_current().order_by("kind", "name", "id"))
    event_types = list(
        Event.objects.order_by("type").values_list("type", flat=True).distinct()[:200]
    )
    categories = list(
        Product.objects.exclude(category="")
        .order_by("category")
        .values_list("category", flat=True)
        .distinct()[:500]
    )
    stores = list(Store.objects.order_by("name", "id"))
    return {
        "segments": segments,
        "event_types": event_types,
        "categories": categories,
        "stores": stores,
    }


def _rule_definition(post) -> dict[str, Any]:
    from segmentation.views_segments import _builder_state, _state_to_rule

    state = _builder_state(post)
    if state["problems"]:
        raise ApplicationError(" ".join(state["problems"]) + " Reload the page and start again.")
    return _state_to_rule(state)


def _definition(form: AudienceForm, post) -> dict[str, Any]:
    definition = form.definition()
    if definition["kind"] == "rules":
        definition["rule"] = _rule_definition(post)
    return definition


def _form_problem(form: AudienceForm) -> str:
    """The form's first problems in one sentence (for the preview region)."""
    parts = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        parts.append(f"{label}: {' '.join(errors)}" if label else " ".join(errors))
    return " ".join(parts[:3])


def _friendly(text: str, form: AudienceForm, fields: dict[str, Any] | None = None) -> str:
    """A definition's field names (as the API knows them) in the form's words:
    "reason is required." -> "“Why you need them” is required."."""
    for key in sorted((fields or {}).keys(), key=len, reverse=True):
        name = FIELD_FOR.get(key.split(".")[0])
        if not name or name not in form.fields or key == "name":
            continue
        text = re.sub(rf"(?<![\w“]){re.escape(key)}(?![\w”])", f"“{form.fields[name].label}”", text)
    return text[:1].upper() + text[1:]


def _incomplete(form: AudienceForm, post) -> str | None:
    """A hint instead of an error while the chosen kind's main inputs are empty."""
    d = form.cleaned_data
    kind = d.get("kind")
    if kind == "segments" and not d.get("include"):
        return "Tick at least one segment to see who is in the audience."
    if kind == "rules" and not any(
        post.get(k) for k in post if k.startswith("g") and k.endswith("-field")
    ):
        return "Choose a field for a condition to see who matches."
    if kind == "goal" and d.get("goal") == "buy_category" and not d.get("category"):
        return "Choose a category to see who is likely to buy from it."
    if kind == "response" and not (d.get("exposure_event") and d.get("response_event")):
        return "Choose the message they received and what counts as responding."
    if kind == "lookalike" and not (d.get("seed_segment") or d.get("seed_customer_ids")):
        return "Choose a segment or paste customer ids to find customers like them."
    if kind == "location" and not (
        d.get("store") or d.get("countries") or d.get("regions") or d.get("postal_prefixes")
    ):
        return "Choose a store and a distance, or name countries, regions or postcodes."
    return None


def _figures_of(audience: Audience) -> dict[str, Any]:
    return {
        "size": audience.size,
        "candidates": audience.candidates,
        "reachable": {"email": audience.reachable_email, "sms": audience.reachable_sms},
        "expected_conversions": audience.expected_conversions,
        "model": audience.model,
        "fairness": audience.fairness or [],
        "best_channel": audience.best_channel,
        "unplaced": audience.unplaced,
        "notes": audience.notes or [],
        "scored": audience.kind in SCORED_KINDS,
    }


def _stalled(audience: Audience) -> bool:
    """Marked as building, but its build job ended without finishing it (a fault
    outside the service's own errors): say so instead of showing progress forever."""
    job = audience.job
    return (
        audience.status == AudienceStatus.BUILDING
        and job is not None
        and job.is_finished
        and job.status != "succeeded"
    )


def _warnings(fairness) -> list[str]:
    return [
        row["warning"] for row in fairness or [] if isinstance(row, dict) and row.get("warning")
    ]


# --- list ------------------------------------------------------------------------------
@org_required
@require_GET
def audience_list(request):
    audiences = list(selectors.audiences_list().select_related("job"))
    for audience in audiences:
        audience.kind_words = _kind_words(audience.definition)
        audience.fairness_warnings = _warnings(audience.fairness)
        audience.stalled = _stalled(audience)
    return render(
        request,
        "audiences/list.html",
        {
            "audiences": audiences,
            "any_building": any(
                a.status == AudienceStatus.BUILDING and not a.stalled for a in audiences
            ),
        },
    )


# --- builder ---------------------------------------------------------------------------
def _builder(request, *, audience: Audience | None):
    from segmentation.views_segments import _builder_context, _builder_state

    choices = _form_choices()
    error = None
    if request.method == "POST":
        form = AudienceForm(request.POST, **choices)
        rule_state = _builder_state(request.POST)
        action = request.POST.get("action", "save")
        if action.startswith(BUILDER_ACTIONS):
            # the rule rows' add/remove buttons without JavaScript: redraw, keep going
            form.is_valid()
            form._errors = {}  # noqa: SLF001  (not a save: no complaints yet)
        elif form.is_valid():
            try:
                definition = _definition(form, request.POST)
                if audience is None:
                    saved = services.audience_create(
                        organization=request.organization,
                        name=form.cleaned_data["name"],
                        definition=definition,
                        user=request.user,
                        request=request,
                    )
                    messages.success(
                        request, f"Audience “{saved.name}” saved. It is being built now."
                    )
                else:
                    saved = services.audience_update(
                        organization=request.organization,
                        audience=audience,
                        name=form.cleaned_data["name"],
                        definition=definition,
                        user=request.user,
                        request=request,
                    )
                    messages.success(request, f"Audience “{saved.name}” saved.")
            except ApplicationError as exc:
                fields = (exc.extra or {}).get("fields") or {}
                error = _friendly(exc.message, form, fields)
                form.add_definition_error(
                    {k: _friendly(str(v), form, {k: v}) for k, v in fields.items()}, error
                )
                if "rule" in fields:
                    rule_state["error"] = fields["rule"]
            else:
                return redirect("audiences:detail", pk=saved.pk)
        else:
            error = "Some fields need your attention: " + _form_problem(form)
    else:
        if audience is not None:
            initial = initial_from_definition(audience.definition, audience.name)
        else:
            initial = initial_from_definition({})
            wanted = request.GET.get("segment", "")
            if wanted.isdigit() and any(str(s.pk) == wanted for s in choices["segments"]):
                initial["include"] = [wanted]
        form = AudienceForm(initial=initial, **choices)
        rule_state = rule_state_from_definition(audience.definition if audience else {})
    rule_context = _builder_context(rule_state)
    context = {
        "form": form,
        "audience": audience,
        "error": error,
        "rule_error": rule_state.get("error"),
        "kinds": [
            {"value": value, "label": label, "help": KIND_HELP[value]}
            for value, label in KIND_CHOICES
        ],
        "segments_by_id": {str(s.pk): s for s in choices["segments"]},
        "has_segments": bool(choices["segments"]),
        "has_events": bool(choices["event_types"]),
        "has_stores": bool(choices["stores"]),
        "stores_url": _stores_url(),
        **rule_context,
        "rule_segment": None,
    }
    return render(request, "audiences/form.html", context, status=400 if error else 200)


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def audience_new(request):
    return _builder(request, audience=None)


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def audience_edit(request, pk: int):
    audience = get_object_or_404(Audience.objects.all(), pk=pk)
    return _builder(request, audience=audience)


def _no_worker(job: Job) -> bool:
    """Queued for a while, and no worker has reported lately (core.jobs heartbeat)."""
    from core.jobs import WORKER_HEARTBEAT_EVERY, worker_last_seen

    if job.status != JobStatus.QUEUED:
        return False
    now = timezone.now()
    if (now - job.created_at).total_seconds() < PREVIEW_NO_WORKER_AFTER:
        return False
    seen = worker_last_seen()
    return seen is None or (now - seen).total_seconds() > 3 * WORKER_HEARTBEAT_EVERY


def _preview_job_context(job: Job, form: AudienceForm | None = None) -> dict[str, Any]:
    """The preview region for a preview job: its progress while it works, then its
    figures, or why there are none."""
    context: dict[str, Any] = {"job": job}
    problem = services.preview_job_problem(job)
    if problem is not None:
        fields = (problem.extra or {}).get("fields") or {}
        # the labels are the form's own: an unbound form (no choices) has them too
        context["error"] = _friendly(problem.message, form or AudienceForm(), fields)
        context["retry"] = problem.code in PREVIEW_RETRY_CODES
    elif job.is_stale:  # its worker stopped reporting: it is not reused either
        context["error"] = (
            "The preview stopped answering while it was being worked out. Ask for it again."
        )
        context["retry"] = True
    elif not job.is_finished:
        context["working"] = True
        context["no_worker"] = _no_worker(job)
    else:
        figures = services.preview_job_figures(job)
        figures["scored"] = (figures.get("definition") or {}).get("kind") in SCORED_KINDS
        context["fig"] = figures
        context["compact"] = True
        context["warnings"] = _warnings(figures.get("fairness"))
    return context


@org_required
@require_POST
def audience_preview(request):
    """What the audience being built would be now (htmx fragment). Reads only; a kind
    that fits a model starts (or reuses) a preview job and the fragment polls it."""
    form = AudienceForm(request.POST, **_form_choices())
    context: dict[str, Any] = _partials()
    form.is_valid()
    problems = {k: v for k, v in form.errors.items() if k != "name"}
    if problems:
        context["error"] = _form_problem(form)
    elif hint := _incomplete(form, request.POST):
        context["hint"] = hint
    else:
        try:
            definition = _definition(form, request.POST)
            answer = services.audience_preview_request(
                organization=request.organization,
                definition=definition,
                user=request.user,
                replaces=request.POST.get("preview_job"),
            )
        except ApplicationError as exc:
            fields = (exc.extra or {}).get("fields") or {}
            context["error"] = _friendly(exc.message, form, fields)
        except Exception:
            # A preview only reads: a fault in a model must not leave the builder
            # with a stale preview and no word (htmx does not swap a 500). Logged
            # with its stack for us; the owner gets a sentence.
            log.exception("audiences.preview_failed", extra={"kind": form.cleaned_data["kind"]})
            context["error"] = (
                "The preview could not be worked out for this audience: an error on our "
                "side, which has been logged. Try other settings, or save it and look again "
                "after the next run."
            )
        else:
            if answer.job is not None:
                context.update(_preview_job_context(answer.job, form))
            else:
                figures = dict(answer.figures or {})
                figures["scored"] = definition["kind"] in SCORED_KINDS
                context["fig"] = figures
                context["compact"] = True
                context["warnings"] = _warnings(figures.get("fairness"))
    return render(request, "audiences/_preview.html", context)


@org_required
@require_GET
def audience_preview_job(request, job_id: int):
    """The preview region for a preview job (htmx polls it while the job works).
    Another organisation's job, or a job that is not a preview, is not found."""
    try:
        job = services.preview_job_get(job_id=job_id)
    except NotFound:
        raise Http404("No such preview.") from None
    context: dict[str, Any] = {**_partials(), **_preview_job_context(job)}
    return render(request, "audiences/_preview.html", context)


# --- one audience ----------------------------------------------------------------------
@org_required
@require_GET
@read_transaction
def audience_detail(request, pk: int):
    audience = get_object_or_404(Audience.objects.select_related("job", "created_by"), pk=pk)
    members = list(selectors.audience_members(audience=audience)[:MEMBERS_SHOWN])
    probabilities = audience.expected_conversions is not None
    definition = audience.definition or {}
    at_stake = definition.get("kind") == "goal" and definition.get("goal") == "high_value_at_risk"
    currency = getattr(request.organization, "currency", "") or ""
    if at_stake:
        score_label = f"Value at stake ({currency})" if currency else "Value at stake"
    elif definition.get("kind") == "lookalike":
        score_label = "Likeness"
    else:
        score_label = "Chance" if probabilities else "Score"
    for member in members:
        score = member.score
        if score is None:
            member.score_text = ""
        elif at_stake:
            member.score_text = f"{score:,.0f}"
        elif probabilities:
            member.score_text = f"{100 * score:.0f}%"
        else:
            member.score_text = f"{score:,.2f}"
    figures = _figures_of(audience)
    context = {
        "audience": audience,
        "kind_words": _kind_words(audience.definition),
        "description": _describe(audience.definition),
        "fig": figures,
        "warnings": _warnings(figures["fairness"]),
        "members": members,
        "probabilities": probabilities,
        "score_label": score_label,
        "has_scores": any(m.score is not None for m in members),
        "members_shown": MEMBERS_SHOWN,
        "building": audience.status == AudienceStatus.BUILDING and not _stalled(audience),
        "stalled": _stalled(audience),
        **_partials(),
    }
    return render(request, "audiences/detail.html", context)


@org_required
@require_GET
def audience_export(request, pk: int):
    from .api import audience_csv

    audience = get_object_or_404(Audience.objects.all(), pk=pk)
    return audience_csv(audience)


@org_required(write=True)
@require_POST
def audience_rebuild(request, pk: int):
    audience = get_object_or_404(Audience.objects.all(), pk=pk)
    try:
        services.audience_rebuild(
            organization=request.organization, audience=audience, user=request.user
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.info(request, f"Rebuilding “{audience.name}”. The figures update when it is done.")
    return redirect("audiences:detail", pk=audience.pk)


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def audience_delete(request, pk: int):
    audience = get_object_or_404(Audience.objects.all(), pk=pk)
    if request.method == "POST":
        name = audience.name
        try:
            services.audience_delete(organization=request.organization, audience=audience)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("audiences:detail", pk=audience.pk)
        messages.success(request, f"Audience “{name}” deleted.")
        return redirect("audiences:list")
    return render(request, "audiences/delete.html", {"audience": audience})
