"""Generated customer feedback with planted topics, sentiment, dates and segments.

Each text is built from a topic's templates and fillers chosen at random (seeded), so a
test knows what each text is about and whether it praises or complains.
"""

from __future__ import annotations

import datetime as dt
import random

TOPICS: dict[str, dict[str, list[str]]] = {
    "delivery": {
        "words": ["delivery", "courier", "parcel", "arrived", "shipping", "dispatch"],
        "templates": [
            "The delivery {took} {days} days and the courier {courier}.",
            "My delivery arrived {when}, {delivery_end}",
            "Shipping took {days} days, delivery {delivery_end}",
            "Delivery was {when} and the delivery box {parcel}.",
        ],
    },
    "sizing": {
        "words": ["size", "sizing", "fit", "fits", "small", "large", "medium"],
        "templates": [
            "The size runs {runs}, I had to order a {size} instead.",
            "Sizing is {runs}: the {garment} size fits like a {size}.",
            "I ordered a {size} {garment} and the size was {runs}.",
            "Check the size chart, the {garment} size runs {runs}.",
        ],
    },
    "price": {
        "words": ["price", "prices", "cost", "money", "value", "pricey"],
        "templates": [
            "The price went up again, {price_end}",
            "For the price it is {value} value for money, price {price_end}",
            "Prices are {pricey} compared to the shop down the road, {price_end}",
            "The cost of the {garment} is {pricey}, price {price_end}",
        ],
    },
    "staff": {
        "words": ["staff", "assistant", "cashier", "team", "employee", "manager"],
        "templates": [
            "The staff at the {branch} branch {staff_act}.",
            "A staff member named {name} {staff_act}.",
            "The cashier {staff_act} and the staff manager {staff_act}.",
            "Staff in {branch} {staff_act}, the team {staff_act}.",
        ],
    },
}

FILLERS = {
    "took": ["took", "needed", "lasted"],
    "days": ["two", "three", "five", "ten", "twelve"],
    "courier": ["left it by the door", "rang twice", "called ahead", "came on a Sunday"],
    "when": ["on Tuesday", "this morning", "after a week", "before noon", "on Friday"],
    "delivery_end": ["the parcel was dented.", "tracking never updated.", "parcel was fine."],
    "parcel": ["was wet", "came in a huge box", "had a torn label"],
    "runs": ["small", "large", "narrow", "short", "long"],
    "size": ["medium", "large", "small", "size twelve", "size ten"],
    "garment": ["jacket", "dress", "jumper", "coat", "shirt"],
    "price_end": ["the price is too high now.", "cost is hard to justify.", "prices keep rising."],
    "value": ["fair", "decent", "poor", "reasonable"],
    "pricey": ["pricey", "steep", "higher", "about the same"],
    "branch": ["Leeds", "York", "Bath", "Derby", "high street"],
    "name": ["Sam", "Priya", "Tom", "Ana", "Lee"],
    "staff_act": [
        "helped me find a coat",
        "explained the returns",
        "ignored us at the till",
        "was patient with my kids",
        "talked on the phone",
    ],
}

EXTRA = [
    "",
    " Paid by card.",
    " First order with you.",
    " Will see next time.",
    " Bought as a gift.",
]


def feedback(
    counts: dict[str, int], *, seed: int = 0, extra: bool = True
) -> tuple[list[str], list[str]]:
    """``counts`` texts per topic, shuffled: (texts, their topics)."""
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    for topic, n in counts.items():
        templates = TOPICS[topic]["templates"]
        for _ in range(n):
            text = rng.choice(templates)
            for key, options in FILLERS.items():
                while "{" + key + "}" in text:
                    text = text.replace("{" + key + "}", rng.choice(options), 1)
            if extra:
                text += rng.choice(EXTRA)
            rows.append((text, topic))
    rng.shuffle(rows)
    return [r[0] for r in rows], [r[1] for r in rows]


def dated(
    per_topic_windows: dict[str, tuple[int, int]], *, as_of: dt.date, seed: int = 0
) -> tuple[list[dt.date], list[str]]:
    """Dates and topics: per topic, (mentions in the 30 days before that, mentions in
    the last 30 days up to ``as_of``), spread evenly at random inside each window."""
    rng = random.Random(seed)
    dates: list[dt.date] = []
    topics: list[str] = []
    for topic, (previous, last) in per_topic_windows.items():
        for _ in range(previous):
            dates.append(as_of - dt.timedelta(days=rng.randint(30, 59)))
            topics.append(topic)
        for _ in range(last):
            dates.append(as_of - dt.timedelta(days=rng.randint(0, 29)))
            topics.append(topic)
    return dates, topics


# Two made-up product words with no sentiment in any general word list: only the
# business's own ratings can teach a model that a zip that "jams" is bad news.
RATED_GOOD = [
    "The zip glides and the lid seals.",
    "Zip glides, seams hold, lid seals tight.",
    "Lid seals first time, the zip glides.",
    "The hinge clicks shut and the zip glides.",
]
RATED_BAD = [
    "The zip jams and the lid rattles.",
    "Zip jams, lid rattles, hinge squeaks.",
    "The hinge squeaks and the zip jams.",
    "Lid rattles on the bus and the zip jams.",
]


def rated(n_good: int, n_bad: int, *, seed: int = 0) -> tuple[list[str], list[int]]:
    """Reviews whose stars follow made-up product words, with a twentieth of the
    stars the other way round (customers are not consistent)."""
    rng = random.Random(seed)
    texts: list[str] = []
    stars: list[int] = []
    for good, n in ((True, n_good), (False, n_bad)):
        for _ in range(n):
            text = rng.choice(RATED_GOOD if good else RATED_BAD)
            text += rng.choice(EXTRA) + rng.choice(["", " Colour: blue.", " Size: large."])
            star = rng.choice([4, 5]) if good else rng.choice([1, 2])
            if rng.random() < 0.05:
                star = 6 - star
            texts.append(text)
            stars.append(star)
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], [stars[i] for i in order]
