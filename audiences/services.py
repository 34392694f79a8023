"""Audiences: preview, save, build, refresh, change and delete.

A preview evaluates a definition and returns the figures the builder shows
(size, reach by channel, expected conversions, the model, the fairness check,
the unplaced count) without storing anything. On an organisation of more than
`settings.AUDIENCE_PREVIEW_SAMPLE_ABOVE` customers it evaluates the definition on a
seeded random sample of about `PREVIEW_SAMPLE_SIZE` of them (`customers.sampling`)
and scales the counts up, saying so (`estimated`, `sample_size`, `estimate`); a
build counts everyone. The kinds that select answer within the web request; the
kinds that fit a model take seconds even on the sample, so a request starts (or
reuses) a preview job for them and the page or API client polls it
(`audience_preview_request`). Saving stores the definition and
starts a build job; a build writes the members and the figures in one
transaction, so an audience is never half-built: campaigns read the members of
the last finished build. Every pipeline run ends with the `audiences` step, which
rebuilds every audience on the new results.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.tenancy import require_organization_id, scope_check
from core.dbstats import statistics_refresh_after_commit
from core.exceptions import ApplicationError
from core.jobs import NULL_JOB, JobHandle
from core.models import FINISHED, Job, JobStatus

from .definitions import GOAL_LABELS, KIND_LABELS, SCORED_KINDS, definition_clean
from .evaluation import Evaluation, progress_to
from .models import Audience, AudienceMember, AudienceStatus

log = logging.getLogger("segmenta.audiences")

WRITE_CHUNK = 5_000
NAME_MAX = 200


# --- figures ---------------------------------------------------------------------------
def _ordered_members(
    evaluation: Evaluation, definition: dict[str, Any]
) -> list[tuple[int, float | None]]:
    """The audience's members, best first, after `min_score` and `size`."""
    items = list(evaluation.scores.items())
    if definition["kind"] in SCORED_KINDS:
        items.sort(key=lambda kv: (-(kv[1] if kv[1] is not None else float("-inf")), kv[0]))
        if "min_score" in definition:
            floor = float(definition["min_score"])
            items = [kv for kv in items if kv[1] is not None and kv[1] >= floor]
        if "size" in definition:
            items = items[: int(definition["size"])]
    return items


def reach(customer_ids: Iterable[int], *, sample=None) -> dict[str, int]:
    """How many of these customers may be sent email and SMS: they consented to the
    channel and have an address for it (erased customers never count). With a
    `customers.sampling.CustomerSample` (a preview's estimate: the ids are the
    sample's), counted on the sample's consents, read once for a few minutes."""
    from customers.models import Customer

    if sample is not None:
        return _sample_reach(customer_ids, sample)
    wanted = set(customer_ids)
    email = sms = 0
    if not wanted:
        return {"email": 0, "sms": 0}
    if connection.vendor == "postgresql":
        # counted by the database over the members only (issue 15: walking every
        # customer of a million-customer shop took longer than building the audience)
        table = connection.ops.quote_name(Customer._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FILTER (WHERE accepts_email AND email <> ''), "  # noqa: S608 - model metadata
                "COUNT(*) FILTER (WHERE accepts_sms AND phone <> '') "
                f"FROM {table} WHERE organization_id = %s AND erased_at IS NULL "
                "AND id = ANY(%s)",
                [require_organization_id(), sorted(wanted)],
            )
            email, sms = cursor.fetchone()
        return {"email": int(email), "sms": int(sms)}
    rows = Customer.objects.filter(erased_at__isnull=True).values_list(
        "pk", "accepts_email", "email", "accepts_sms", "phone"
    )
    for pk, accepts_email, address, accepts_sms, phone in rows.iterator(chunk_size=20_000):
        if pk in wanted:
            email += bool(accepts_email and address)
            sms += bool(accepts_sms and phone)
    return {"email": email, "sms": sms}


def _sample_reach(customer_ids: Iterable[int], sample) -> dict[str, int]:
    import numpy as np

    from customers.models import Customer

    def read():
        rows = list(
            Customer.objects.filter(erased_at__isnull=True)
            .filter(sample.lookup("pk"))
            .order_by("pk")
            .values_list("pk", "accepts_email", "email", "accepts_sms", "phone")
        )
        return (
            np.array([r[0] for r in rows], dtype=np.int64),
            np.array([bool(r[1] and r[2]) for r in rows], dtype=bool),
            np.array([bool(r[3] and r[4]) for r in rows], dtype=bool),
        )

    # consents change with any write to the customer: the key carries its version
    ids, email, sms = sample.cached("audiences:sample-reach", require_organization_id(), read)
    wanted = np.unique(np.asarray(list(customer_ids), dtype=np.int64))
    at = np.searchsorted(ids, wanted)
    inside = at < len(ids)
    at = at[inside][ids[at[inside]] == wanted[inside]]  # ids of the sample only
    return {"email": int(email[at].sum()), "sms": int(sms[at].sum())}


def _figures(
    evaluation: Evaluation, definition: dict[str, Any], *, organization, sample=None
) -> tuple[list[tuple[int, float | None]], dict[str, Any]]:
    """The audience's members and figures; with a sample (a preview's estimate), the
    members and figures of the sample, not yet scaled up."""
    from .channels import best_channel
    from .fairness import fairness_check

    members = _ordered_members(evaluation, definition)
    ids = [pk for pk, _ in members]
    expected = None
    if evaluation.probabilities:
        expected = round(sum(float(s or 0.0) for _, s in members), 1)
    figures = {
        "size": len(members),
        "candidates": len(evaluation.scores),
        "reachable": reach(ids, sample=sample),
        "expected_conversions": expected,
        "model": evaluation.model.as_api() if evaluation.model else None,
        "fairness": fairness_check(ids, organization=organization, sample=sample),
        "best_channel": best_channel(ids, organization=organization, sample=sample),
        "unplaced": evaluation.unplaced,
        "notes": list(evaluation.notes),
    }
    return members, figures


def _evaluate(definition: dict[str, Any], *, organization, sample=None) -> Evaluation:
    from .kinds import evaluate

    return evaluate(definition, organization=organization, sample=sample)


# --- the preview -----------------------------------------------------------------------
# Customers in a big organisation's preview sample. A share found in 20,000 customers
# is within 0.7 points of the whole organisation's 19 times in 20. On that many, the
# kinds that select (segments, rules, goals read off the predictions, location) answer
# in 0.1-0.2 s at 100,000 customers and 0.4-0.5 s at 1,000,000 once the sample's
# counts, consents, fairness columns and engagement are cached (first preview: a few
# seconds); the kinds that train a model still take 4-13 s (bench/audiences_preview.py).
PREVIEW_SAMPLE_SIZE = 20_000
PREVIEW_SAMPLE_SEED = 1
# counts found in the sample and scaled up to the organisation
_SCALED = ("size", "candidates", "reachable", "expected_conversions", "unplaced")
# worked out on the sample as they stand: shares, rates and the model's own check
_FROM_SAMPLE = ("fairness", "best_channel", "model")


def preview_sample(*, organization):
    """The `CustomerSample` a preview estimates from, or None when the organisation
    is small enough to count exactly (`settings.AUDIENCE_PREVIEW_SAMPLE_ABOVE`
    customers or fewer, erased ones left out)."""
    from django.conf import settings
    from django.core.cache import cache

    from customers.models import Customer
    from customers.sampling import CACHE_SECONDS, CustomerSample

    above = int(settings.AUDIENCE_PREVIEW_SAMPLE_ABOVE)
    # counting a million customers (twice) takes a few tenths of a second: the counts
    # are kept a few minutes, as what the sample reads is
    key = (
        f"audiences:preview-sample:org{organization.pk}:"
        f"{above}:{PREVIEW_SAMPLE_SIZE}:{PREVIEW_SAMPLE_SEED}"
    )
    found = cache.get(key)
    if found is None:
        current = Customer.objects.filter(organization_id=organization.pk, erased_at__isnull=True)
        total = current.count()
        found = {"population": total, "threshold": None, "size": total}
        if total > above and total > PREVIEW_SAMPLE_SIZE:
            sample = CustomerSample.of_rate(PREVIEW_SAMPLE_SIZE / total, seed=PREVIEW_SAMPLE_SEED)
            found["threshold"] = sample.threshold
            found["size"] = current.filter(sample.lookup("pk")).count()
        cache.set(key, found, CACHE_SECONDS)
    if found["threshold"] is None or not found["size"]:
        return None
    return CustomerSample(
        threshold=found["threshold"],
        seed=PREVIEW_SAMPLE_SEED,
        population=found["population"],
        size=found["size"],
    )


def _about(value: float) -> int:
    """An estimated count, to three significant figures: a count scaled up from a
    sample is not known to the last customer, and should not look as if it were."""
    value = round(value)
    if abs(value) < 1000:
        return value
    digits = len(str(abs(value))) - 3
    return int(round(value, -digits))


def _in_sample(size: int, sample) -> int:
    """The best `size` of everyone are about the best `size / scale` of the sample."""
    return max(1, round(size / sample.scale))


def _scale_up(figures: dict[str, Any], definition: dict[str, Any], sample) -> None:
    """The sample's counts made estimates for the whole organisation; `definition`
    is the one asked for (its `size`, if any, the best N of everyone)."""
    scale = sample.scale
    candidates = _about(figures["candidates"] * scale)
    size = _about(figures["size"] * scale)
    if "size" in definition:
        wanted = int(definition["size"])
        if figures["size"] >= _in_sample(wanted, sample):  # cut at the best N
            size = wanted
        size = min(size, wanted, candidates)
    figures["size"] = size
    figures["candidates"] = candidates
    figures["reachable"] = {
        channel: min(_about(n * scale), size) for channel, n in figures["reachable"].items()
    }
    if figures["expected_conversions"] is not None:
        figures["expected_conversions"] = float(_about(figures["expected_conversions"] * scale))
    if figures["unplaced"] is not None:
        figures["unplaced"] = _about(figures["unplaced"] * scale)


def audience_preview(*, organization, definition: Any) -> dict[str, Any]:
    """What the audience would be now, without saving it (CONTRACT: preview), worked
    out here and now whatever its kind (a request answers through
    `audience_preview_request`, which sends the model kinds to a job that calls this).

    On a big organisation (see the module docstring) the figures are estimates from
    a sample: `estimated` is true, `sample_size` the customers in the sample, and
    `estimate` says which figures are counts scaled up (`scaled`) and which were
    worked out on the sample as they stand (`from_sample`: the fairness check's
    shares and ratios, the best channel's rates, the model and its check)."""
    scope_check(organization=organization)
    return _preview_figures(definition_clean(definition), organization=organization)


def _preview_figures(cleaned: dict[str, Any], *, organization) -> dict[str, Any]:
    from .evaluation import progress

    sample = preview_sample(organization=organization)
    evaluated = cleaned
    if sample is not None and "size" in cleaned:
        evaluated = {**cleaned, "size": _in_sample(cleaned["size"], sample)}
    try:
        evaluation = _evaluate(evaluated, organization=organization, sample=sample)
    except ApplicationError as exc:
        if sample is None or exc.code != "not_enough_data":
            raise
        # the counts in the message are the sample's: say so, and that everyone may do
        raise ApplicationError(
            f"In the preview's sample of {sample.size:,} of your {sample.population:,} "
            f"customers: {exc.message} The saved audience is built from all of them, "
            "which may be enough.",
            exc.extra,
            code=exc.code,
            status=exc.status,
        ) from exc
    progress(1.0, "Counting who you can reach and checking fairness")
    members, figures = _figures(evaluation, evaluated, organization=organization, sample=sample)
    figures["estimated"] = sample is not None
    figures["sample_size"] = sample.size if sample is not None else None
    figures["estimate"] = None
    if sample is not None:
        _scale_up(figures, cleaned, sample)
        figures["estimate"] = {
            "customers": sample.population,
            "sample_size": sample.size,
            "scaled": [k for k in _SCALED if figures.get(k) is not None],
            "from_sample": [k for k in _FROM_SAMPLE if figures.get(k)],
        }
        log.info(
            "audiences.preview_estimated",
            extra={
                "organization_id": organization.pk,
                "kind": cleaned["kind"],
                "customers": sample.population,
                "sample_size": sample.size,
            },
        )
    figures["definition"] = cleaned
    figures["sample"] = [pk for pk, _ in members[:10]]
    return figures


# --- the preview of a model kind, as a job -----------------------------------------------
# The kinds that fit a model (`kinds.trains_model`: response, lookalike, a category
# goal) take seconds even on the preview's sample (4-6.5 s at 1,000,000 customers,
# more on a loaded machine), too long to hold a web request (issue 15). Their
# preview runs as an `audience_preview` job on the interactive queue; the request
# answers at once with the job, which the builder and API clients poll. Asking
# again for the same definition of the same organisation while its customers are
# unchanged (`customers_version`) reuses the job rather than training again: the
# builder asks on every keystroke in the name field.
PREVIEW_JOB_KIND = "audience_preview"
# A finished preview is reused this long: as long as what a preview reads for its
# sample is kept (customers.sampling.CACHE_SECONDS), so the answer is no older than
# a preview answered in the request could be.
PREVIEW_REUSE_SECONDS = 600
# Preview jobs are throw-away: those older than this are deleted when a new one starts.
PREVIEW_JOBS_KEPT_SECONDS = 24 * 3600
PREVIEW_JOBS_PRUNED_AT_ONCE = 500
PREVIEW_TOO_LONG = (
    "The preview took longer than the time allowed and was stopped. Ask for it again in "
    "a while, or save the audience and look at it once it is built."
)


@dataclass(frozen=True)
class PreviewAnswer:
    """A preview request's answer: the figures now (the kinds that select), or the
    job working them out (the kinds that fit a model)."""

    figures: dict[str, Any] | None = None
    job: Job | None = None


def preview_key(*, organization, definition: dict[str, Any]) -> str:
    """What makes two previews the same: the organisation, the cleaned definition,
    and the state of its customers (any write to a customer, an erasure included,
    moves `customers_version`) and of the preview's sampling."""
    from django.conf import settings

    from customers.sampling import customers_version

    payload = json.dumps(
        {
            "organization": organization.pk,
            "definition": definition,
            "customers": customers_version(organization.pk),
            "sample": [
                int(settings.AUDIENCE_PREVIEW_SAMPLE_ABOVE),
                PREVIEW_SAMPLE_SIZE,
                PREVIEW_SAMPLE_SEED,
            ],
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _preview_job_reusable(key: str) -> Job | None:
    """A recent preview job for the same key whose answer still stands: one still
    queued or running, one that succeeded, or one that failed for a reason in the
    data (it would fail the same way again). Not one that was cancelled, whose
    worker died, or that failed on a fault of ours: those are worked out again."""
    since = timezone.now() - timedelta(seconds=PREVIEW_REUSE_SECONDS)
    recent = Job.objects.filter(
        kind=PREVIEW_JOB_KIND, created_at__gte=since, params__preview_key=key
    ).order_by("-created_at", "-pk")
    for job in recent[:5]:
        if job.cancel_requested or job.status == JobStatus.CANCELLED:
            continue
        if job.status == JobStatus.QUEUED or job.status == JobStatus.SUCCEEDED:
            return job
        if job.status == JobStatus.RUNNING and not job.is_stale:
            return job
        result = job.result if isinstance(job.result, dict) else {}
        if job.status == JobStatus.FAILED and result.get("code") and not result.get("retry"):
            return job
    return None


def _preview_jobs_prune() -> None:
    """Delete the organisation's preview jobs older than a day (a few hundred at a
    time): nothing refers to them, and the builder makes one per change of a model
    kind's definition."""
    before = timezone.now() - timedelta(seconds=PREVIEW_JOBS_KEPT_SECONDS)
    old = list(
        Job.objects.filter(kind=PREVIEW_JOB_KIND, created_at__lt=before).values_list(
            "pk", flat=True
        )[:PREVIEW_JOBS_PRUNED_AT_ONCE]
    )
    if old:
        Job.objects.filter(pk__in=old).delete()


def _preview_job_replace(job_id: Any, *, keep: Job, user) -> None:
    """Stop the preview job `job_id` this person started for the builder, now that
    they changed the audience (it would work for nobody). Only their own, unfinished,
    and not the one that answers now."""
    from core.jobs import job_cancel

    person = _person(user)
    try:
        job_id = int(job_id)
    except (TypeError, ValueError):
        return
    if person is None or job_id == keep.pk:
        return
    old = (
        Job.objects.filter(pk=job_id, kind=PREVIEW_JOB_KIND, created_by=person)
        .exclude(status__in=FINISHED)
        .first()
    )
    if old is None:
        return
    try:
        job_cancel(job=old)
    except ApplicationError:  # it finished meanwhile: nothing to stop
        return


def audience_preview_request(
    *, organization, definition: Any, user=None, replaces: Any = None
) -> PreviewAnswer:
    """A preview asked for by a person or an API client. The kinds that select
    (segments, rules, goals read off the predictions, location) are worked out now
    (`figures`); the kinds that fit a model start, or reuse, an `audience_preview` job
    (`job`), whose result holds the same figures once it has succeeded. `replaces`
    names the preview job the builder showed before (stopped if still running)."""
    from core.jobs import job_start

    from .kinds import trains_model
    from .tasks import audience_preview as preview_task

    scope_check(organization=organization)
    cleaned = definition_clean(definition)
    if not trains_model(cleaned):
        return PreviewAnswer(figures=_preview_figures(cleaned, organization=organization))
    key = preview_key(organization=organization, definition=cleaned)
    job = _preview_job_reusable(key)
    if job is None:
        _preview_jobs_prune()
        job = job_start(
            organization=organization,
            kind=PREVIEW_JOB_KIND,
            task=preview_task,
            params={"definition": cleaned, "preview_key": key},
            user=user,
            title=_preview_title(cleaned),
        )
        log.info(
            "audiences.preview_job_started",
            extra={"organization_id": organization.pk, "job_id": job.pk, "kind": cleaned["kind"]},
        )
    if replaces not in (None, ""):
        _preview_job_replace(replaces, keep=job, user=user)
    # With no transaction open the job was sent already; a worker running in this
    # process (CELERY_TASK_ALWAYS_EAGER) has even finished it.
    job.refresh_from_db()
    return PreviewAnswer(job=job)


def _preview_title(cleaned: dict[str, Any]) -> str:
    if cleaned["kind"] == "goal":
        words = GOAL_LABELS.get(cleaned.get("goal", ""), KIND_LABELS["goal"])
    else:
        words = KIND_LABELS.get(cleaned["kind"], cleaned["kind"])
    return f"Audience preview: {words}"[:200]


def audience_preview_run(*, definition: dict[str, Any], job: JobHandle = NULL_JOB) -> dict:
    """The `audience_preview` job's body: the figures `audience_preview` gives,
    reporting its progress. A reason in the data (too few responders, an unknown
    category) fails the job with that reason, its field, and the code and status
    an API answer gives it; running out of time fails it as worth trying again."""
    from celery.exceptions import SoftTimeLimitExceeded  # type: ignore[import-untyped]

    from accounts.models import Organization

    organization = Organization.objects.get(pk=require_organization_id())
    job.progress(2, "Getting ready", force=True)
    try:
        with progress_to(lambda share, message: job.progress(5 + 85 * share, message)):
            figures = _preview_figures(definition_clean(definition), organization=organization)
    except ApplicationError as exc:
        raise ApplicationError(
            exc.message,
            {**exc.extra, "code": exc.code, "status": exc.status},
            code=exc.code,
            status=exc.status,
        ) from exc
    except SoftTimeLimitExceeded as exc:
        raise ApplicationError(
            PREVIEW_TOO_LONG, {"retry": True}, code="preview_too_long", status=409
        ) from exc
    figures.pop("sample", None)
    about = "About " if figures.get("estimated") else ""
    return {"message": f"{about}{figures['size']:,} customers.", **figures}


def preview_job_get(*, job_id: int) -> Job:
    """One of the current organisation's preview jobs, or NotFound (another
    organisation's, or a job of another kind, is not found)."""
    from core.api.params import MAX_ID
    from core.exceptions import NotFound

    # an id no column can hold is no one's (SQLite refuses to compare it)
    job = None
    if 0 < job_id <= MAX_ID:
        job = Job.objects.filter(pk=job_id, kind=PREVIEW_JOB_KIND).first()
    if job is None:
        raise NotFound("No such preview: it may have been for another organisation, or removed.")
    return job


def preview_job_figures(job: Job) -> dict[str, Any]:
    """A succeeded preview job's figures, as `audience_preview` gives them."""
    figures = dict(job.result or {})
    figures.pop("message", None)
    return figures


def preview_job_problem(job: Job) -> ApplicationError | None:
    """Why a finished preview job has no figures, as the error an API answer gives
    (the same as the preview in the request would have given for a reason in the
    data), or None when it succeeded or has not finished."""
    if job.status == JobStatus.CANCELLED:
        return ApplicationError(
            "This preview was stopped before it finished (the audience was changed, or "
            "someone cancelled it). Ask for the preview again.",
            code="preview_cancelled",
            status=409,
        )
    if job.status != JobStatus.FAILED:
        return None
    result = job.result if isinstance(job.result, dict) else {}
    if result.get("code"):
        fields = result.get("fields") if isinstance(result.get("fields"), dict) else {}
        status = result.get("status")
        return ApplicationError(
            str(result.get("error") or job.message),
            {"fields": fields},
            code=str(result["code"]),
            status=status if isinstance(status, int) and 400 <= status < 500 else 400,
        )
    return ApplicationError(
        "The preview could not be worked out: an error on our side, which has been logged "
        f"(reference: job {job.pk}). Ask for it again, or save the audience and look at it "
        "once it is built.",
        code="preview_failed",
        status=409,
    )


def _person(user):
    """The signed-in person behind a request (an API key is nobody)."""
    from django.contrib.auth import get_user_model

    return user if isinstance(user, get_user_model()) and user.pk else None


# --- saving ----------------------------------------------------------------------------
def _clean_name(name: Any, *, exclude_pk: int | None = None) -> str:
    value = "" if name is None else str(name).strip()
    if not value:
        raise ApplicationError("Give the audience a name.", {"fields": {"name": "Required."}})
    if len(value) > NAME_MAX:
        raise ApplicationError(
            f"The name is longer than {NAME_MAX} characters.",
            {"fields": {"name": f"At most {NAME_MAX} characters."}},
        )
    taken = Audience.objects.filter(name__iexact=value)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ApplicationError(
            f"An audience named “{value}” exists already.",
            {"fields": {"name": "Choose another name."}},
            code="duplicate",
        )
    return value


def _audit_sensitive(*, organization, audience: Audience, user, request) -> None:
    if not audience.definition.get("use_sensitive"):
        return
    from accounts.services import audit_log

    audit_log(
        organization=organization,
        action="audience.sensitive_unlocked",
        actor=user,
        request=request,
        target=f"audience {audience.pk}: {audience.name}",
        details={
            "audience_id": audience.pk,
            "kind": audience.kind,
            "reason": audience.definition.get("reason", ""),
        },
    )


def _start_build(*, organization, audience: Audience, user=None, sync: bool = False):
    from core.jobs import job_start

    from .tasks import audience_build

    Audience.objects.filter(pk=audience.pk).update(status=AudienceStatus.BUILDING)
    job = job_start(
        organization=organization,
        kind="audience",
        task=audience_build,
        params={"audience_id": audience.pk},
        user=user,
        title=f"Build audience “{audience.name}”"[:200],
        sync=sync,
    )
    Audience.objects.filter(pk=audience.pk).update(job=job)
    audience.job = job
    return job


def audience_create(
    *, organization, name: Any, definition: Any, user=None, request=None, sync: bool = False
) -> Audience:
    """Save an audience and start building it (a job)."""
    scope_check(organization=organization)
    cleaned = definition_clean(definition)
    with transaction.atomic():
        audience = Audience.objects.create(
            organization=organization,
            name=_clean_name(name),
            definition=cleaned,
            status=AudienceStatus.BUILDING,
            created_by=_person(user),
        )
        _audit_sensitive(organization=organization, audience=audience, user=user, request=request)
        if not sync:
            _start_build(organization=organization, audience=audience, user=user)
    if sync:
        _start_build(organization=organization, audience=audience, user=user, sync=True)
    audience.refresh_from_db()
    return audience


def _free_name(base: str) -> str:
    """`base`, or `base (2)`, `base (3)`… when the name is taken (names are unique,
    case-insensitive)."""
    base = base[:NAME_MAX].strip()
    taken = {n.casefold() for n in Audience.objects.values_list("name", flat=True)}
    if base.casefold() not in taken:
        return base
    for i in range(2, 1000):
        candidate = f"{base[: NAME_MAX - 6]} ({i})"
        if candidate.casefold() not in taken:
            return candidate
    return base  # audience_create says the name is taken


def audience_for_definition(
    *, organization, definition: dict, name: str = "", base_name: str, user=None, request=None
) -> tuple[Audience, bool]:
    """(audience, created) for the pages' one-click audiences (a local promotion, a
    loyalty tier): the saved audience with this very definition when there is one and
    no name was asked for (newest first), else a new one named `name`, or `base_name`
    made free."""
    from .definitions import definition_clean

    cleaned = definition_clean(definition)
    if not name:
        same_kind = Audience.objects.filter(definition__kind=cleaned.get("kind")).order_by("-pk")
        for audience in same_kind:
            if audience.definition == cleaned:
                return audience, False
    audience = audience_create(
        organization=organization,
        name=name or _free_name(base_name),
        definition=cleaned,
        user=user,
        request=request,
    )
    return audience, True


def audience_update(
    *,
    organization,
    audience: Audience,
    name: Any = None,
    definition: Any = None,
    user=None,
    request=None,
    sync: bool = False,
) -> Audience:
    """Rename and/or redefine; a new definition rebuilds the audience."""
    scope_check(organization=organization)
    rebuild = False
    with transaction.atomic():
        if name is not None:
            audience.name = _clean_name(name, exclude_pk=audience.pk)
        if definition is not None:
            cleaned = definition_clean(definition)
            if cleaned != audience.definition:
                audience.definition = cleaned
                rebuild = True
        audience.save()
        if rebuild:
            _audit_sensitive(
                organization=organization, audience=audience, user=user, request=request
            )
            if not sync:
                _start_build(organization=organization, audience=audience, user=user)
    if rebuild and sync:
        _start_build(organization=organization, audience=audience, user=user, sync=True)
    audience.refresh_from_db()
    return audience


def audience_delete(*, organization, audience: Audience) -> None:
    scope_check(organization=organization)
    audience.delete()


def audience_rebuild(*, organization, audience: Audience, user=None):
    scope_check(organization=organization)
    return _start_build(organization=organization, audience=audience, user=user)


# --- building --------------------------------------------------------------------------
def _write_members(audience: Audience, members: Sequence[tuple[int, float | None]]) -> None:
    AudienceMember.objects.filter(audience=audience).delete()
    if connection.vendor == "postgresql" and len(members) > WRITE_CHUNK:
        _copy_members(audience, members)
        return
    batch: list[AudienceMember] = []
    for rank, (customer_id, score) in enumerate(members, start=1):
        batch.append(
            AudienceMember(
                organization_id=audience.organization_id,
                audience=audience,
                customer_id=customer_id,
                rank=rank,
                score=None if score is None else float(score),
            )
        )
        if len(batch) >= WRITE_CHUNK:
            AudienceMember.objects.bulk_create(batch)
            batch = []
    if batch:
        AudienceMember.objects.bulk_create(batch)


def _copy_members(audience: Audience, members: Sequence[tuple[int, float | None]]) -> None:
    """PostgreSQL, a big audience (issue 15): the members COPYed into a temporary
    staging table and moved with one INSERT … SELECT (COPY FROM is refused into the
    row-level-secured table), instead of a model instance per member."""
    table = connection.ops.quote_name(AudienceMember._meta.db_table)
    with connection.cursor() as cursor:
        # through Django first: the statement binds the organisation for the COPY
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _seg_stage_audmembers (customer_id bigint, "
            "rank integer, score double precision) ON COMMIT DELETE ROWS; "
            "TRUNCATE _seg_stage_audmembers"
        )
        with cursor.cursor.copy(
            "COPY _seg_stage_audmembers (customer_id, rank, score) FROM STDIN"
        ) as copy:
            for rank, (customer_id, score) in enumerate(members, start=1):
                copy.write_row((int(customer_id), rank, None if score is None else float(score)))
        cursor.execute(
            f"INSERT INTO {table} (organization_id, audience_id, customer_id, rank, score) "  # noqa: S608 - model metadata
            "SELECT %s, %s, customer_id, rank, score FROM _seg_stage_audmembers",
            [audience.organization_id, audience.pk],
        )
    statistics_refresh_after_commit(AudienceMember, len(members))  # core.dbstats


def _build(audience: Audience, *, job: JobHandle = NULL_JOB) -> Audience:
    organization = audience.organization
    job.progress(10, f"Finding the customers of “{audience.name}”")
    if _needs_new_seeds(audience.definition):
        raise ApplicationError(
            SEEDS_ERASED, {"fields": {"seed_customer_ids": SEEDS_ERASED}}, code="seeds_erased"
        )
    definition = definition_clean(audience.definition)
    reporting = (
        progress_to(lambda share, message: job.progress(10 + 50 * share, message))
        if job is not NULL_JOB
        else nullcontext()
    )
    with reporting:
        evaluation = _evaluate(definition, organization=organization)
    job.progress(60, "Counting reach and checking fairness")
    members, figures = _figures(evaluation, definition, organization=organization)
    job.progress(80, f"Saving {len(members):,} members")
    with transaction.atomic():
        locked = Audience.objects.select_for_update().filter(pk=audience.pk).first()
        if locked is None:  # deleted while it was being built
            return audience
        if _superseded(audience):
            return locked
        _write_members(locked, members)
        locked.size = figures["size"]
        locked.candidates = figures["candidates"]
        locked.reachable_email = figures["reachable"]["email"]
        locked.reachable_sms = figures["reachable"]["sms"]
        locked.expected_conversions = figures["expected_conversions"]
        locked.model = figures["model"]
        locked.fairness = figures["fairness"]
        locked.best_channel = figures["best_channel"]
        locked.unplaced = figures["unplaced"]
        locked.notes = figures["notes"]
        locked.status = AudienceStatus.READY
        locked.message = ""
        locked.refreshed_at = timezone.now()
        locked.save()
    from webhooks.events import emit

    emit(
        organization,
        "audience.rebuilt",
        {
            "audience_id": locked.pk,
            "job_id": getattr(job, "job_id", None),
            "size": locked.size,
            "refreshed_at": locked.refreshed_at.isoformat(),
        },
    )
    return locked


def _mark_failed(audience_id: int, message: str) -> None:
    Audience.objects.filter(pk=audience_id).update(
        status=AudienceStatus.FAILED, message=message[:500]
    )


def audience_build_cancelled(*, job) -> None:
    """The `audience` job's `on_cancelled` hook: its build was cancelled before it
    finished, so the audience is not left "building". It becomes failed with the
    reason, even when an earlier build finished: the build was started because the
    audience is new or its definition changed (or someone asked for fresh members), so
    calling the old members "ready" could send a campaign to the wrong people. The
    members of the last build stay until a rebuild succeeds (as after any failure).
    Idempotent; an audience a newer job is building is left alone."""
    audience = Audience.objects.filter(job_id=job.pk, status=AudienceStatus.BUILDING).first()
    if audience is None:
        return
    if audience.refreshed_at is not None:
        message = (
            "The build was cancelled before it finished. It still holds the customers of "
            "its last build; rebuild it to bring it up to date."
        )
    else:
        message = "The build was cancelled before it finished. Rebuild it to find its customers."
    Audience.objects.filter(pk=audience.pk, job_id=job.pk, status=AudienceStatus.BUILDING).update(
        status=AudienceStatus.FAILED, message=message[:500]
    )


def audience_build(*, audience_id: int, job: JobHandle = NULL_JOB) -> Audience:
    """Build one audience (the `audience` job). A definition that no longer works
    (a deleted segment, predictions not run) fails the audience with the reason;
    the members of its last good build stay until a build succeeds."""
    audience = Audience.objects.select_related("organization").filter(pk=audience_id).first()
    if audience is None:
        raise ApplicationError("That audience was deleted.", code="not_found", status=404)
    try:
        return _build(audience, job=job)
    except ApplicationError as exc:
        if _superseded(audience):  # its failure was the old definition's
            return audience
        _mark_failed(audience_id, exc.message)
        raise


def audiences_refresh_all(*, job: JobHandle = NULL_JOB) -> dict[str, int]:
    """Rebuild every audience (the pipeline's `audiences` step). Each is read just
    before it is built: one redefined (or whose seed was erased) since the step began
    is built as it is now, not as it was (`_superseded`)."""
    pks = list(Audience.objects.order_by("pk").values_list("pk", flat=True))
    done = {"rebuilt": 0, "failed": 0}
    for n, pk in enumerate(pks):
        audience = Audience.objects.select_related("organization").filter(pk=pk).first()
        if audience is None:  # deleted meanwhile
            continue
        job.progress(5 + int(90 * n / max(len(pks), 1)), f"Rebuilding “{audience.name}”")
        Audience.objects.filter(pk=audience.pk).update(status=AudienceStatus.BUILDING)
        try:
            _build(audience)
            done["rebuilt"] += 1
        except ApplicationError as exc:
            if _superseded(audience):  # its failure was the old definition's
                continue
            _mark_failed(audience.pk, exc.message)
            done["failed"] += 1
    return done


def _superseded(audience: Audience) -> bool:
    """Whether the audience's definition changed since this build read it: a person
    redefined it (which started a build of its own), or an erasure took a seed (which
    did too, or left it needing new seeds). The build then publishes nothing, not
    even its failure (whose message may name the erased seed). An audience left
    needing new seeds is said to again, in case this build marked it building."""
    current = Audience.objects.filter(pk=audience.pk).values_list("definition", flat=True).first()
    if current is None or current == audience.definition:
        return False
    if _needs_new_seeds(current):
        _mark_failed(audience.pk, SEEDS_ERASED)
    return True


# --- erasure ---------------------------------------------------------------------------
SEEDS_ERASED = (
    "Every customer in this audience's seed list has been erased, so there is no one to "
    "look like. Choose new seed customers or a seed segment, and save it to rebuild it."
)


def _needs_new_seeds(definition: dict[str, Any]) -> bool:
    """A lookalike left with no seed: its seed customers were all erased (a definition
    without a seed is refused when it is saved)."""
    return (
        definition.get("kind") == "lookalike"
        and not definition.get("seed_segment_id")
        and not definition.get("seed_customer_ids")
    )


def _lists_any(text: str, ids: set[str]) -> bool:
    """Whether a note or failure message lists one of `ids` among the seed ids a build
    did not find ("2 seed customer ids were not found: C1, C2")."""
    _, found, listed = str(text).partition("were not found: ")
    return bool(found) and any(i in listed for i in ids)


def audience_seeds_forget(*, organization, customer_ids: list[int]) -> list[int]:
    """The erased customers' own ids (as the shop typed them) leave the seed lists of
    the saved lookalike audiences: the only stored definitions that name customers
    (the other kinds, campaigns, automations and offers name segments, fields,
    places and products). Runs in the erasure before the customers' ids are
    rewritten, so the ids are still there to be found. Returns the audiences changed.

    An audience with a seed left (other customers, or a seed segment) is rebuilt: its
    members were ranked by likeness to the erased person too. A build still queued
    reads the new seeds when it starts, so none is added; a running one publishes
    nothing (`_build`: its definition changed). An audience whose seeds were all
    erased keeps its definition with an empty `seed_customer_ids`, and is marked
    failed saying it needs new seeds (SEEDS_ERASED, at each rebuild too); its members
    and figures go, as they were worked out from the erased people alone. Saving it
    with new seeds rebuilds it."""
    from customers.models import Customer

    gone = set(Customer.objects.filter(pk__in=customer_ids).values_list("external_id", flat=True))
    if not gone:
        return []
    changed: list[int] = []
    for audience in Audience.objects.filter(definition__kind="lookalike").order_by("pk"):
        definition = dict(audience.definition or {})
        seeds = definition.get("seed_customer_ids") or []
        kept = [s for s in seeds if s not in gone]
        if len(kept) == len(seeds):
            continue
        if kept or not definition.get("seed_segment_id"):
            definition["seed_customer_ids"] = kept
        else:  # the seed segment is the seed now (the form a definition is saved in)
            definition.pop("seed_customer_ids", None)
        audience.definition = definition
        audience.notes = [n for n in audience.notes or [] if not _lists_any(n, gone)]
        if _lists_any(audience.message, gone):
            audience.message = ""
        if _needs_new_seeds(definition):
            _seeds_all_erased(audience)
        else:
            audience.save(update_fields=["definition", "notes", "message", "updated_at"])
            if not _build_waiting(audience):
                _start_build(organization=organization, audience=audience)
        changed.append(audience.pk)
    if changed:
        log.info(
            "audiences.seeds_erased",
            extra={"organization_id": organization.pk, "audience_ids": changed},
        )
    return changed


def _build_waiting(audience: Audience) -> bool:
    """A build of `audience` queued and not started yet (it reads the audience's
    definition when it starts)."""
    return (
        audience.status == AudienceStatus.BUILDING
        and audience.job_id is not None
        and Job.objects.filter(
            pk=audience.job_id, status=JobStatus.QUEUED, cancel_requested=False
        ).exists()
    )


def _seeds_all_erased(audience: Audience) -> None:
    AudienceMember.objects.filter(audience=audience).delete()
    audience.status = AudienceStatus.FAILED
    audience.message = SEEDS_ERASED
    audience.size = audience.candidates = 0
    audience.reachable_email = audience.reachable_sms = 0
    audience.expected_conversions = audience.unplaced = None
    audience.model = audience.best_channel = None
    audience.fairness = []
    audience.notes = []
    audience.save()
