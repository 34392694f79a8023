"""The `research` pipeline step: read every feedback item of the organisation, score
its sentiment, find themes with their trends and index per segment, and store them
(ResearchRun, Theme, FeedbackInsight). docs/research.md describes the text analysis.

- Sentiment: the general word list (`research.text.score`), unless the organisation
  has enough rated feedback and a model trained on its own ratings is clearly better
  by cross-validation (`should_use_rated`); then that model scores every item. Items
  with no text get no sentiment (None), even when they carry a rating: the rating is
  the customer's own figure and stays on the feedback row. The cross-validation is
  kept from the last run while the number of rated items has changed by less than
  CV_REUSE_CHANGE since it was done (its figures then name that run: `reused_from`).
- Themes: found on the items with text (on a seeded sample of at most
  THEME_SAMPLE texts for large organisations; the rest are assigned to the themes
  found). The "other" bucket is not stored as a theme.
- Feedback given after `as_of` is left out. Re-running replaces the insights and
  themes; earlier runs stay as history (without their themes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections import OrderedDict, defaultdict
from typing import Any, cast

import numpy as np
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts.tenancy import current_organization_id, scope_check
from core.jobs import NULL_JOB, JobHandle

from .models import FeedbackInsight, ResearchRun, Theme

log = logging.getLogger(__name__)

MAX_THEMES = 8
THEME_SAMPLE = 20_000  # texts the themes are found on; the rest are assigned to them
CV_SAMPLE = 3_000  # rated texts the trained model is cross-validated on
TRAIN_SAMPLE = 10_000  # rated texts it is trained on (a seeded sample beyond that)
CV_REUSE_CHANGE = 0.10  # rated items may change by less than this share to keep the last cv
POSITIVE_AT = 0.05  # VADER's rule: ≥ 0.05 positive, ≤ −0.05 negative
WINDOW_DAYS = 30
BATCH = 2_000


def _default_as_of(organization, zone) -> dt.date:
    """The organisation's latest data date (newest order, event or feedback item), in
    its time zone; today when it has no data yet."""
    from customers.models import Feedback
    from customers.selectors import latest_data_date
    from customers.services.limits import latest_plausible

    moments = [
        latest_data_date(organization),
        Feedback.objects.filter(created_at__lte=latest_plausible()).aggregate(m=Max("created_at"))[
            "m"
        ],
    ]
    found = [m for m in moments if m is not None]
    if not found:
        return timezone.now().astimezone(zone).date()
    return max(found).astimezone(zone).date()


def _sentiment(
    texts: list[str | None],
    ratings: list[Any],
    job: JobHandle = NULL_JOB,
    phases: dict[str, float] | None = None,
) -> tuple[np.ndarray, str, str, dict[str, Any]]:
    """Scores for the texts (NaN where None), the model used, its sentence, cv figures."""
    from research.text import (
        RatedModel,
        cross_validate,
        rating_labels,
        score,
        should_use_rated,
    )
    from research.text.sentiment import MIN_PER_CLASS, MIN_RATED

    phases = phases if phases is not None else {}
    mark = time.perf_counter()
    scores = np.full(len(texts), np.nan)
    present = [i for i, t in enumerate(texts) if t is not None]
    if present:
        scores[present] = score([texts[i] for i in present])
    phases["sentiment"] = time.perf_counter() - mark
    mark = time.perf_counter()
    labels = rating_labels([ratings[i] for i in present]) if present else np.zeros(0, dtype=int)
    rated = [present[j] for j in np.flatnonzero(labels != 0)]
    n_pos, n_neg = int(np.sum(labels == 1)), int(np.sum(labels == -1))
    cv: dict[str, Any] | None = None
    if len(rated) >= MIN_RATED and min(n_pos, n_neg) < MIN_PER_CLASS:
        cv = {"n": len(rated), "n_positive": n_pos, "n_negative": n_neg}  # too few of a kind
    elif len(rated) >= MIN_RATED and (cv := _previous_cv(len(rated))) is not None:
        pass  # about the same rated feedback as last time: its cross-validation stands
    elif len(rated) >= MIN_RATED:
        job.progress(20, "Checking a model trained on your ratings")
        rng = np.random.default_rng(0)
        chosen = (
            sorted(rng.choice(rated, CV_SAMPLE, replace=False).tolist())
            if len(rated) > CV_SAMPLE
            else rated
        )
        cv = cross_validate([texts[i] for i in chosen], [ratings[i] for i in chosen])
    decision = should_use_rated(len(rated), cv)
    phases["cross_validation"] = time.perf_counter() - mark
    mark = time.perf_counter()
    model = "lexicon"
    if decision.use_rated:
        job.progress(35, "Learning from your ratings")
        rng = np.random.default_rng(1)
        train = (
            sorted(rng.choice(rated, TRAIN_SAMPLE, replace=False).tolist())
            if len(rated) > TRAIN_SAMPLE
            else rated
        )
        trained = _trained(RatedModel, [texts[i] for i in train], [ratings[i] for i in train])
        # each distinct text once (a repeated "Great service!" is predicted once)
        distinct, where = np.unique(
            np.array([texts[i] for i in present], dtype=object), return_inverse=True
        )
        scores[present] = trained.predict(distinct.tolist())[where]
        model = "rated"
    phases["training"] = time.perf_counter() - mark
    figures = {k: v for k, v in (cv or {}).items() if k != "thresholds"}
    if cv and "thresholds" in cv:
        figures["thresholds"] = [round(float(t), 4) for t in cv["thresholds"]]
    figures = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    figures["rated"] = len(rated)
    if cv and "macro_f1" in cv and "checked_with_rated" not in figures:
        figures["checked_with_rated"] = len(rated)
    return scores, model, decision.sentence, figures


_TRAINED: OrderedDict[str, Any] = OrderedDict()  # the last few trained models, by data
TRAINED_KEPT = 4


def _trained(model_class: Any, texts: list[Any], ratings: list[Any]) -> Any:
    """A RatedModel fitted on these texts and ratings: the one fitted in this process
    before when the organisation's training sample is unchanged (fitting is seeded,
    so it would come out the same), else a new fit. At most TRAINED_KEPT kept."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(str(current_organization_id()).encode())
    for text, rating in zip(texts, ratings, strict=True):
        digest.update(f"{rating!r}\x1f{text}\x1e".encode("utf-8", "surrogatepass"))
    key = digest.hexdigest()
    if key in _TRAINED:
        _TRAINED.move_to_end(key)
        return _TRAINED[key]
    model = model_class(seed=0).fit(texts, ratings)
    _TRAINED[key] = model
    while len(_TRAINED) > TRAINED_KEPT:
        _TRAINED.popitem(last=False)
    return model


def _previous_cv(n_rated: int) -> dict[str, Any] | None:
    """The last run's cross-validation when it was a full one on about as many rated
    items (fewer than CV_REUSE_CHANGE more or fewer): the model choice it made
    stands, and the run skips the costliest part of the step."""
    previous = (
        ResearchRun.objects.filter(finished_at__isnull=False)
        .order_by("-finished_at", "-pk")
        .values_list("pk", "cv")
        .first()
    )
    if previous is None:
        return None
    pk, cv = previous
    if not isinstance(cv, dict) or "macro_f1" not in cv:
        return None
    before = cv.get("checked_with_rated") or cv.get("rated") or 0
    if before <= 0 or abs(n_rated - before) >= CV_REUSE_CHANGE * before:
        return None
    return {**cv, "reused_from": cv.get("reused_from", pk), "checked_with_rated": before}


def _themes(
    texts: list[str], phases: dict[str, float] | None = None
) -> tuple[list[Any], np.ndarray, list[list[int]]]:
    """Themes of the texts, each text's theme id (OTHER = −1) and, per theme, the
    indices (into `texts`) its quotes come from."""
    from research.text import OTHER, assign, find_themes
    from research.text.themes import _quote

    phases = phases if phases is not None else {}
    mark = time.perf_counter()
    ids = np.full(len(texts), OTHER, dtype=np.int64)
    if not texts:
        return [], ids, []
    if len(texts) > THEME_SAMPLE:
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(len(texts), THEME_SAMPLE, replace=False))
    else:
        sample = np.arange(len(texts))
    found = [t for t in find_themes([texts[i] for i in sample], max_themes=MAX_THEMES, seed=0)]
    labelled = [t for t in found if not t.is_other]
    for theme in labelled:
        ids[sample[theme.members]] = theme.id
    phases["themes"] = time.perf_counter() - mark
    mark = time.perf_counter()
    if len(sample) < len(texts):
        in_sample = np.zeros(len(texts), dtype=bool)
        in_sample[sample] = True
        rest = np.flatnonzero(~in_sample)
        distinct = list(dict.fromkeys(texts[i] for i in rest))  # each distinct text once
        theme_of = dict(zip(distinct, assign(distinct, labelled).tolist(), strict=True))
        ids[rest] = [theme_of[texts[i]] for i in rest]
    quotes: list[list[int]] = []
    for theme in labelled:
        wanted: dict[str, int | None] = {q: None for q in theme.examples}
        for m in theme.members:
            i = int(sample[m])
            q = _quote(texts[i])
            if q in wanted and wanted[q] is None:
                wanted[q] = i
                if all(v is not None for v in wanted.values()):
                    break
        quotes.append([v for v in wanted.values() if v is not None])
    phases["assignment"] = time.perf_counter() - mark
    return labelled, ids, quotes


def _segment_layers(customer_ids: set[int]) -> tuple[dict[str, dict[int, int]], dict[int, str]]:
    """Per layer of live segments (top-level clusters, sub-segments, RFM groups, each
    rule), each customer's segment; and each segment's name for sentences (its
    persona's name when it has one)."""
    from segmentation.models import Persona, Segment, SegmentationRun, SegmentMembership

    layers: dict[str, dict[int, int]] = defaultdict(dict)
    run_id = SegmentationRun.objects.filter(is_live=True).values_list("pk", flat=True).first()
    if run_id is None or not customer_ids:
        return {}, {}
    rows = SegmentMembership.objects.filter(run_id=run_id).values_list(
        "customer_id", "segment_id", "segment__kind", "segment__parent_id"
    )
    for cid, sid, kind, parent_id in rows.iterator(chunk_size=5000):
        if cid not in customer_ids:
            continue
        if kind == "rule":
            layer = f"rule-{sid}"
        elif parent_id is not None:
            layer = "sub"
        else:
            layer = kind
        layers[layer].setdefault(cid, sid)
    segment_ids = {sid for layer in layers.values() for sid in layer.values()}
    names = dict(Segment.objects.filter(pk__in=segment_ids).values_list("pk", "name"))
    for sid, name in Persona.objects.filter(segment_id__in=segment_ids).values_list(
        "segment_id", "name"
    ):
        if name:
            names[sid] = name
    return dict(layers), names


def _share(values: np.ndarray) -> dict[str, Any]:
    scored = values[~np.isnan(values)]
    n = int(len(scored))
    return {
        "count": int(len(values)),
        "scored": n,
        "mean": round(float(scored.mean()), 4) if n else None,
        "positive": round(float(np.mean(scored >= POSITIVE_AT)), 4) if n else None,
        "negative": round(float(np.mean(scored <= -POSITIVE_AT)), 4) if n else None,
    }


def research_run(
    *,
    organization,
    as_of: dt.date | None = None,
    job: JobHandle | None = None,
    phases: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Analyse the organisation's feedback up to `as_of` (default: its latest data
    date) and store the run. Returns the job's summary. `phases`, when given, is
    filled with the seconds each part took (bench/research_step.py prints them)."""
    from customers.models import Feedback
    from loyalty.services import local_day_end, organization_zone
    from research.changes import compute_changes
    from research.text import index_sentence, phrases_per_text, segment_index, theme_trends

    job = job or NULL_JOB
    scope_check(organization=organization)
    started = time.perf_counter()
    phases = phases if phases is not None else {}
    mark = started
    zone = organization_zone(organization)
    if as_of is None:
        as_of = _default_as_of(organization, zone)
    job.progress(5, "Reading feedback")
    rows = list(
        Feedback.objects.filter(created_at__lt=local_day_end(as_of, zone))
        .order_by("id")
        .values_list("id", "customer_id", "created_at", "rating", "text", "source")
    )
    ids = [r[0] for r in rows]
    customers = [r[1] for r in rows]
    days = [r[2].astimezone(zone).date() for r in rows]
    ratings = [r[3] for r in rows]
    texts: list[str | None] = [r[4] if r[4] and r[4].strip() else None for r in rows]
    sources = [r[5] or "other" for r in rows]

    phases["read"] = time.perf_counter() - mark

    job.progress(15, "Scoring sentiment")
    scores, model, sentence, cv = _sentiment(texts, ratings, job, phases)

    job.progress(45, "Finding themes")
    with_text = [i for i, t in enumerate(texts) if t is not None]
    found, text_theme, quotes = _themes([texts[i] for i in with_text], phases)  # type: ignore[misc]
    theme_of = np.full(len(rows), -1, dtype=np.int64)
    theme_of[with_text] = text_theme
    mark = time.perf_counter()
    distinct = list(dict.fromkeys(t for t in texts if t is not None))  # each text once
    phrases_of = dict(zip(distinct, phrases_per_text(distinct), strict=True))
    phrases = [phrases_of[t] if t is not None else [] for t in texts]
    phases["phrases"] = time.perf_counter() - mark
    mark = time.perf_counter()

    job.progress(60, "Comparing segments")
    trends = theme_trends([days[i] for i in with_text], text_theme.tolist(), as_of)
    layers, names = _segment_layers({c for c in customers if c is not None})
    by_segment: dict[int, list[dict[str, Any]]] = defaultdict(list)
    labels = {t.id: t.label for t in found}
    for layer in layers.values():
        segs = [layer.get(customers[i]) if customers[i] is not None else None for i in with_text]
        if not any(s is not None for s in segs):
            continue
        for sid, per_theme in segment_index(text_theme.tolist(), segs).items():
            for tid, figures in per_theme.items():
                by_segment[tid].append(
                    {
                        "segment_id": sid,
                        **figures,
                        "sentence": index_sentence(
                            names.get(cast(int, sid), "This segment"), labels[tid], figures["index"]
                        ),
                    }
                )

    phases["trends_index"] = time.perf_counter() - mark
    mark = time.perf_counter()
    job.progress(75, "Saving themes and insights")
    summary = _summary(scores, days, sources, as_of, n_rated=sum(r is not None for r in ratings))
    with transaction.atomic():
        run = ResearchRun.objects.create(
            organization=organization,
            as_of=as_of,
            feedback_count=len(rows),
            text_count=len(with_text),
            model=model,
            model_sentence=sentence,
            cv=cv,
            summary=summary,
        )
        themes: dict[int, Theme] = {}
        for position, theme in enumerate(found):
            members = np.flatnonzero(theme_of == theme.id)
            values = scores[members]
            values = values[~np.isnan(values)]
            examples = [
                {"feedback_id": ids[with_text[j]], "text": _quote(texts[with_text[j]] or "")}
                for j in quotes[position]
            ]
            themes[theme.id] = Theme(
                organization=organization,
                run=run,
                position=position,
                label=theme.label[:200],
                phrases=theme.phrases,
                size=int(len(members)),
                sentiment=round(float(values.mean()), 4) if len(values) else None,
                examples=examples,
                trend=trends.get(theme.id, {}),
                by_segment=sorted(
                    by_segment.get(theme.id, []),
                    key=lambda e: (-(e["index"] or 0), e["segment_id"]),
                ),
            )
        for item in themes.values():
            item.save()
        FeedbackInsight.objects.all().delete()
        now = timezone.now()
        insights = (
            FeedbackInsight(
                organization=organization,
                feedback_id=ids[i],
                sentiment=None if np.isnan(scores[i]) else round(float(scores[i]), 4),
                theme=themes.get(int(theme_of[i])),
                phrases=phrases[i],
                analysed_at=now,
            )
            for i in range(len(rows))
        )
        _bulk_create(insights)
        Theme.objects.exclude(run=run).delete()
    phases["writes"] = time.perf_counter() - mark
    mark = time.perf_counter()
    job.progress(92, "Summing up what changed")
    run.changes = compute_changes(organization=organization, as_of=as_of)
    run.finished_at = timezone.now()
    run.save(update_fields=["changes", "finished_at"])
    phases["changes"] = time.perf_counter() - mark
    seconds = time.perf_counter() - started
    log.info(
        "research.run_done org_id=%s as_of=%s feedback=%s themes=%s model=%s seconds=%.2f",
        organization.pk, as_of, len(rows), len(themes), model, seconds,
    )  # fmt: skip
    if not rows:
        message = "No feedback yet: themes and sentiment appear after the first feedback import."
    else:
        message = (
            f"{len(rows):,} feedback items read, {len(themes)} themes found "
            f"(feedback up to {as_of:%d %b %Y})."
        )
    return {
        "message": message,
        "as_of": as_of.isoformat(),
        "run": run.pk,
        "feedback": len(rows),
        "texts": len(with_text),
        "themes": len(themes),
        "model": model,
        "seconds": round(seconds, 3),
    }


def _quote(text: str) -> str:
    from research.text.themes import _quote as quote

    return quote(text)


def _bulk_create(insights) -> None:
    batch: list[FeedbackInsight] = []
    for item in insights:
        batch.append(item)
        if len(batch) >= BATCH:
            FeedbackInsight.objects.bulk_create(batch)
            batch = []
    if batch:
        FeedbackInsight.objects.bulk_create(batch)


def _summary(
    scores: np.ndarray, days: list[dt.date], sources: list[str], as_of: dt.date, *, n_rated: int
) -> dict[str, Any]:
    """Counts and the shares of positive and negative feedback: overall, in the last
    30 days up to `as_of` against the 30 before, and per source."""
    day = np.array(days, dtype="datetime64[D]") if days else np.zeros(0, dtype="datetime64[D]")
    end = np.datetime64(as_of, "D")
    last = (day > end - WINDOW_DAYS) & (day <= end)
    prev = (day > end - 2 * WINDOW_DAYS) & (day <= end - WINDOW_DAYS)
    src = np.array(sources, dtype=object)
    per_source = {s: _share(scores[src == s]) for s in sorted(set(sources))}
    return {
        "feedback": int(len(scores)),
        "with_text": int(np.sum(~np.isnan(scores))),
        "rated": n_rated,
        **{k: v for k, v in _share(scores).items() if k != "count"},
        "last_30d": _share(scores[last]),
        "prev_30d": _share(scores[prev]),
        "by_source": per_source,
    }
