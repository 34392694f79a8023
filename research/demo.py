"""Feedback and a survey for the demo organisation (customers/management/commands/
seed_demo.py), so its Research pages and "what changed this month" have something
to show.

`seed_demo_research(organization)` writes, once (running it again adds nothing):

- 450 reviews and support messages over the six months up to the demo's
  latest order (the demo data is historical: its dates, not today's), each from a
  customer a few days after one of their orders, most reviews with stars. The texts
  are built from six planted themes — delivery, packaging, quality, price, gifts,
  customer service — mixing praise and complaints; delivery complaints rise in the
  last 30 days, so the research step finds a growing theme;
- one survey, "How did we do?" (NPS, stars, a choice and free text), with 40
  answers through personal links from recent customers, each also a
  `survey_answered` event and a `Feedback` row (source "survey"), as an answer
  through the survey page would be.

Everything is generated from a fixed seed and the demo's own orders, so the same
data gives the same feedback.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from django.db import transaction

from accounts.tenancy import tenant_context

SEED = 13_2026
HISTORY_DAYS = 180
WINDOW_DAYS = 30
FEEDBACK_OLDER = 310  # items over the months before the last 60 days
FEEDBACK_PREV = 80  # items about orders of the 30 days before the last 30
# the survey's answers (three weeks up to the newest order) also fall in the last
# 30 days: the reviews of that window are fewer, so its volume stays near the one before
FEEDBACK_LAST = 60  # items about orders of the last 30 days
FEEDBACK_COUNT = FEEDBACK_OLDER + FEEDBACK_PREV + FEEDBACK_LAST
SURVEY_NAME = "How did we do?"
SURVEY_RESPONSES = 40
ID_PREFIX = "demo-fb-"

# theme -> how often it comes up (before, last 30 days); delivery rises
THEME_WEIGHTS: dict[str, tuple[int, int]] = {
    "delivery": (7, 60),
    "packaging": (16, 16),
    "quality": (22, 22),
    "price": (16, 16),
    "gifts": (20, 20),
    "service": (14, 14),
}
# share of complaints per theme (before, last 30 days): late deliveries pile up
COMPLAINT_SHARE: dict[str, tuple[float, float]] = {
    "delivery": (0.4, 0.8),
    "packaging": (0.35, 0.35),
    "quality": (0.25, 0.25),
    "price": (0.5, 0.5),
    "gifts": (0.15, 0.15),
    "service": (0.35, 0.35),
}

TEXTS: dict[str, dict[str, list[str]]] = {
    "delivery": {
        "praise": [
            "Quick delivery, the parcel arrived the next day.",
            "Fast delivery and a friendly courier.",
            "Delivery was spot on, it arrived before the weekend.",
            "Speedy delivery, well done.",
        ],
        "complaint": [
            "Late delivery, the parcel took over a week to arrive.",
            "Still waiting for my delivery, the tracking has not updated.",
            "The delivery was late again and the courier left the parcel in the rain.",
            "Late delivery, the {item} arrived after the birthday.",
            "My delivery was delayed and the delivery date kept moving.",
            "Delivery was very late, I had to chase the courier.",
        ],
    },
    "packaging": {
        "praise": [
            "Lovely packaging, everything was wrapped carefully in tissue paper.",
            "Beautifully packaged, the box was sturdy and nothing broke.",
            "The packaging was neat and plastic free, very nice.",
        ],
        "complaint": [
            "The packaging was poor and the {item} arrived broken.",
            "The box was crushed, the packaging is far too thin for glass.",
            "Too much plastic packaging for one small order.",
        ],
    },
    "quality": {
        "praise": [
            "Great quality, feels solid and well made.",
            "Excellent quality, the {item} is really well made.",
            "Even nicer than the photos, lovely quality.",
        ],
        "complaint": [
            "Poor quality, the paint chipped after a week.",
            "The quality is disappointing, it looks cheap and flimsy.",
            "The {item} broke after a few days, poor quality.",
        ],
    },
    "price": {
        "praise": [
            "Good value for money, the prices are fair.",
            "Very reasonable prices compared with the high street.",
            "Great prices, I bought two.",
        ],
        "complaint": [
            "Too expensive for what it is, the price went up again.",
            "The prices have gone up and the postage costs too much.",
            "Overpriced, I found the same price much cheaper elsewhere.",
        ],
    },
    "gifts": {
        "praise": [
            "Bought it as a gift for my {person} and she loved it.",
            "A perfect birthday present, the gift wrapping was a lovely touch.",
            "Lovely gift, my {person} was delighted.",
            "Our go-to shop for gifts, it made a great present.",
        ],
        "complaint": [
            "It was meant as a gift but the gift message was missing.",
            "I asked for gift wrapping for my {person} and it came without it.",
        ],
    },
    "service": {
        "praise": [
            "Customer service was brilliant, they answered my email within an hour.",
            "Helpful customer service, they sorted out my refund quickly.",
            "{agent} in customer service was friendly and fixed my order.",
        ],
        "complaint": [
            "Customer service never replied to my emails.",
            "I called customer service three times and nobody helped.",
            "Customer service was rude and did not answer my question.",
        ],
    },
}
FILLERS = {
    "item": [
        "candle holder",
        "tea set",
        "lantern",
        "mug",
        "cushion cover",
        "photo frame",
        "cake stand",
        "bunting",
        "doorstop",
        "clock",
        "lunch bag",
        "tin",
    ],
    "person": ["mum", "sister", "friend", "grandmother", "daughter"],
    "agent": ["Sophie", "James", "Priya", "Tom"],
}
# mostly nothing: a phrase repeated in many texts would become a "theme" of its own
ENDINGS = [""] * 10 + [
    " Will order again.",
    " Thank you.",
    " Not sure I will order again.",
    " Many thanks.",
    " Keep it up.",
]

SURVEY_QUESTIONS = [
    {"type": "nps", "text": "How likely are you to recommend us to a friend?", "required": True},
    {"type": "rating", "text": "How would you rate your last order?", "required": True},
    {
        "type": "choice",
        "text": "Who was your last order for?",
        "options": ["For me", "A gift", "For my business"],
        "required": False,
    },
    {"type": "text", "text": "What could we do better?", "required": False},
]


def _fill(text: str, rng: random.Random) -> str:
    for key, options in FILLERS.items():
        while "{" + key + "}" in text:
            text = text.replace("{" + key + "}", rng.choice(options), 1)
    return text


def _text(theme: str, complaint: bool, rng: random.Random) -> str:
    return _fill(rng.choice(TEXTS[theme]["complaint" if complaint else "praise"]), rng)


def _pick_theme(last: bool, rng: random.Random) -> str:
    themes = list(THEME_WEIGHTS)
    weights = [THEME_WEIGHTS[t][1 if last else 0] for t in themes]
    return rng.choices(themes, weights=weights)[0]


def demo_feedback_rows(
    orders: list[tuple[str, int, dt.datetime]], *, anchor: dt.datetime, seed: int = SEED
) -> list[dict[str, Any]]:
    """The generated feedback (pure: no database). `orders`: (external id, customer
    id, ordered_at) of the purchases to tie feedback to, in a stable order;
    `anchor`: the newest data moment, nothing is dated after it. Each row:
    external_id, customer_id, created_at, source, rating, text, properties, and
    (for tests) the planted `theme` and `complaint`."""
    rng = random.Random(seed)
    last_start = anchor - dt.timedelta(days=WINDOW_DAYS)
    prev_start = anchor - dt.timedelta(days=2 * WINDOW_DAYS)
    start = anchor - dt.timedelta(days=HISTORY_DAYS)
    # the two 30-day windows get similar volumes whatever the season, so the rise
    # of one theme is a change in what people say, not in how many say something
    pools = (
        ([o for o in orders if start <= o[2] < prev_start], FEEDBACK_OLDER),
        ([o for o in orders if prev_start <= o[2] < last_start], FEEDBACK_PREV),
        ([o for o in orders if last_start <= o[2] <= anchor], FEEDBACK_LAST),
    )
    rows: list[dict[str, Any]] = []
    for pool, count in pools:
        if not pool:
            continue
        picked = rng.sample(pool, count) if len(pool) >= count else rng.choices(pool, k=count)
        for order_id, customer_id, ordered_at in picked:
            created = ordered_at + dt.timedelta(
                days=rng.randint(1, 6), hours=rng.randint(0, 10), minutes=rng.randint(0, 59)
            )
            created = min(created, anchor)
            in_last = created > last_start
            theme = _pick_theme(in_last, rng)
            complaint = rng.random() < COMPLAINT_SHARE[theme][1 if in_last else 0]
            support = rng.random() < (0.45 if complaint else 0.1)
            text = _text(theme, complaint, rng)
            if rng.random() < 0.2:  # some mention two things
                other = rng.choice([t for t in THEME_WEIGHTS if t != theme])
                text += " " + _text(other, rng.random() < 0.3, rng)
            text += rng.choice(ENDINGS)
            if support:
                rating = None  # a message to the shop, not a review: no stars
            elif rng.random() < 0.92:
                rating = float(rng.choice([1, 2, 2, 3]) if complaint else rng.choice([4, 5, 5]))
            else:
                rating = None
            rows.append(
                {
                    "customer_id": customer_id,
                    "created_at": created,
                    "source": "support" if support else "review",
                    "rating": rating,
                    "text": text,
                    "properties": {"order": order_id, "demo": True},
                    "theme": theme,
                    "complaint": complaint,
                }
            )
    rows.sort(key=lambda r: (r["created_at"], r["text"]))
    for i, row in enumerate(rows, start=1):
        row["external_id"] = f"{ID_PREFIX}{i:04d}"
    return rows


def demo_survey_answers(
    customer_ids: list[int], *, anchor: dt.datetime, seed: int = SEED
) -> list[dict[str, Any]]:
    """The survey's answers (pure): one per customer, at most SURVEY_RESPONSES,
    dated over the three weeks up to `anchor`."""
    rng = random.Random(seed + 1)
    chosen = rng.sample(customer_ids, min(SURVEY_RESPONSES, len(customer_ids)))
    out = []
    for customer_id in chosen:
        promoter = rng.random()
        if promoter < 0.55:
            score, stars, complaint = rng.choice([9, 10, 10]), rng.choice([4, 5, 5]), False
        elif promoter < 0.8:
            score, stars, complaint = rng.choice([7, 8]), rng.choice([3, 4]), rng.random() < 0.5
        else:
            score, stars, complaint = rng.choice([2, 4, 5, 6]), rng.choice([1, 2, 3]), True
        choice = rng.choices(["For me", "A gift", "For my business", None], [4, 4, 2, 1])[0]
        text = None
        if rng.random() < 0.7:
            theme = _pick_theme(True, rng)
            text = _text(theme, complaint, rng)
        answered = anchor - dt.timedelta(
            days=rng.randint(0, 20), hours=rng.randint(0, 12), minutes=rng.randint(0, 59)
        )
        out.append(
            {
                "customer_id": customer_id,
                "answers": [score, stars, choice, text],
                "answered_at": answered,
            }
        )
    return out


def _anchor() -> dt.datetime | None:
    from django.db.models import Max

    from customers.models import Order

    return Order.objects.filter(status="paid", is_return=False).aggregate(m=Max("ordered_at"))["m"]


def _orders(anchor: dt.datetime) -> list[tuple[str, int, dt.datetime]]:
    from customers.models import Order

    start = anchor - dt.timedelta(days=HISTORY_DAYS + 7)
    return list(
        Order.objects.filter(
            status="paid",
            is_return=False,
            customer__isnull=False,
            customer__erased_at__isnull=True,
            ordered_at__gte=start,
            ordered_at__lte=anchor,
        )
        .order_by("ordered_at", "external_id")
        .values_list("external_id", "customer_id", "ordered_at")
    )


def _seed_feedback(organization, anchor: dt.datetime) -> int:
    from customers.models import Feedback

    rows = demo_feedback_rows(_orders(anchor), anchor=anchor)
    existing = set(
        Feedback.objects.filter(external_id__startswith=ID_PREFIX).values_list(
            "external_id", flat=True
        )
    )
    new = [
        Feedback(
            organization=organization,
            external_id=row["external_id"],
            customer_id=row["customer_id"],
            created_at=row["created_at"],
            source=row["source"],
            rating=row["rating"],
            text=row["text"],
            properties=row["properties"],
        )
        for row in rows
        if row["external_id"] not in existing
    ]
    Feedback.objects.bulk_create(new, batch_size=500)
    return len(new)


def _seed_survey(organization, anchor: dt.datetime) -> int:
    """The survey and its answers, written as an answer through a personal link
    would be (research/surveys.py): the response, a `survey_answered` event and a
    `Feedback` row with its stars and text, dated when it was answered."""
    from customers.models import Customer, Event, Feedback, Order
    from research.models import ResponseChannel, Survey, SurveyResponse

    if Survey.objects.filter(name=SURVEY_NAME).exists():
        return 0
    recent = anchor - dt.timedelta(days=60)
    customer_ids = sorted(
        set(
            Order.objects.filter(
                status="paid",
                is_return=False,
                customer__isnull=False,
                customer__erased_at__isnull=True,
                ordered_at__gte=recent,
                ordered_at__lte=anchor,
            ).values_list("customer_id", flat=True)
        )
    )
    # a stable order that does not depend on the database's ids
    by_external = dict(
        Customer.objects.filter(pk__in=customer_ids).values_list("external_id", "pk")
    )
    ordered_ids = [by_external[k] for k in sorted(by_external)]
    survey = Survey.objects.create(
        organization=organization,
        name=SURVEY_NAME,
        intro="Two minutes to tell us how your last order went.",
        thank_you="Thank you! We read every answer.",
        questions=SURVEY_QUESTIONS,
        created_at=anchor - dt.timedelta(days=22),
        updated_at=anchor - dt.timedelta(days=22),
    )
    answers = demo_survey_answers(ordered_ids, anchor=anchor)
    for item in answers:
        when = item["answered_at"]
        response = SurveyResponse.objects.create(
            organization=organization,
            survey=survey,
            customer_id=item["customer_id"],
            channel=ResponseChannel.PERSONAL,
            answers=item["answers"],
            created_at=when,
            updated_at=when,
        )
        stars, text = item["answers"][1], item["answers"][3]
        response.feedback = Feedback.objects.create(
            organization=organization,
            external_id=f"survey-{survey.pk}-{response.pk}",
            customer_id=item["customer_id"],
            created_at=when,
            source="survey",
            rating=float(stars),
            text=text or "",
            properties={
                "survey_id": survey.pk,
                "survey": survey.name,
                "channel": ResponseChannel.PERSONAL,
            },
        )
        response.save(update_fields=["feedback"])
        Event.objects.create(
            organization=organization,
            customer_id=item["customer_id"],
            type="survey_answered",
            occurred_at=when,
            properties={"survey_id": survey.pk, "survey": survey.name, "response_id": response.pk},
        )
    return len(answers)


def seed_demo_research(organization) -> dict[str, int]:
    """Add the demo feedback and survey to `organization` (idempotent); returns how
    many feedback items and survey answers were added."""
    with tenant_context(organization), transaction.atomic():
        anchor = _anchor()
        if anchor is None:  # no orders: nothing to tie feedback to
            return {"feedback": 0, "survey_responses": 0}
        feedback = _seed_feedback(organization, anchor)
        responses = _seed_survey(organization, anchor)
    return {"feedback": feedback, "survey_responses": responses}
