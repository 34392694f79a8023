"""Sentiment: the word-list score on labelled examples, the rated model on generated
reviews, and the rule that chooses between them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from research.tests.generated import rated
from research.text import sentiment
from research.text.sentiment import (
    RatedModel,
    cross_validate,
    macro_f1,
    rating_labels,
    score,
    should_use_rated,
    vader_score,
)

POSITIVE = [
    "Lovely shop, friendly staff and quick delivery.",
    "The jacket fits perfectly and the colour is gorgeous.",
    "Great value for money, I will order again.",
    "Delivery was slow. But the shoes fit perfectly and I love them!",
    "No issues at all, works like a charm.",
    "Never had a problem with this kettle.",
    "I was worried it would be too small, but it is just right and very comfy.",
    "Worth every penny.",
    "Can't complain, arrived on time and well packed.",
    "Not bad at all, actually pretty good.",
    "Best coffee in town 😍",
    "Really happy with my order 👍",
    "Easy to set up and the sound is excellent.",
    "Highly recommend this place to anyone.",
    "The staff went out of their way to help me. Thank you!",
]
NEGATIVE = [
    "not good",
    "The food was not good and the waiter was rude.",
    "It stopped working after a week.",
    "Don't waste your money.",
    "I would not recommend this shop.",
    "The box was damaged and the parcel arrived late.",
    "Looks nice but it broke on the second day.",
    "The staff were lovely but the delivery was late and the box was damaged.",
    "Does not connect to my phone at all.",
    "Sent it back, the sizing is way off and the fabric feels cheap.",
    "Terrible customer service, nobody answered my emails.",
    "The app keeps crashing and the support team never replied 😡",
    "Overpriced junk 👎",
    "Great idea, poor execution. Fell apart within a month.",
    "Disappointed. The colour is nothing like the photo.",
]


def test_agrees_with_labelled_examples():
    values = score(POSITIVE + NEGATIVE)
    truth = np.array([1] * len(POSITIVE) + [-1] * len(NEGATIVE))
    predicted = sentiment.label(values)
    wrong = [
        text for text, p, t in zip(POSITIVE + NEGATIVE, predicted, truth, strict=True) if p != t
    ]
    assert len(wrong) <= 2, wrong
    assert np.all((values >= -1) & (values <= 1))
    vader_right = int(np.sum(sentiment.label(vader_score(POSITIVE + NEGATIVE)) == truth))
    assert len(truth) - len(wrong) >= vader_right + 3


@pytest.mark.parametrize(
    "text",
    [
        "not good",
        "Don't waste your money.",
        "It stopped working after a week.",
        "Does not connect to my phone at all.",
        "Overpriced junk 👎",
        "The staff were lovely but the delivery was late and the box was damaged.",
    ],
)
def test_negation_complaints_and_but_clauses_read_negative(text):
    assert score([text])[0] <= -0.05


def test_the_clause_after_but_decides():
    assert score(["The staff were rude but the food was amazing and I loved it."])[0] > 0.05
    assert score(["The food was amazing but the staff were rude and I hated it."])[0] < -0.05


def test_fixes_what_plain_vader_reads_the_wrong_way_round():
    texts = ["Don't waste your money.", "Don't bother, I returned it."]
    assert np.all(vader_score(texts) > 0.05)  # VADER: a negated negative reads positive
    assert np.all(score(texts) <= -0.05)


def test_edge_cases():
    assert score([]).shape == (0,)
    values = score([None, float("nan"), "", "   ", "😍", "😡", "Très bien, merci !", "ok"])
    assert math.isnan(values[0]) and math.isnan(values[1])
    assert values[2] == 0.0 and values[3] == 0.0
    assert values[4] > 0.05 and values[5] < -0.05
    assert np.all(np.isfinite(values[2:]))
    long = "The delivery was quick and the staff were friendly. " * 2000
    value = score([long])[0]
    assert 0.05 < value <= 1.0


def test_a_pasted_document_is_judged_on_its_opening_quickly():
    """VADER's cost grows with the square of the length: a 100,000-character answer
    is judged on its first MAX_TEXT_CHARS characters, cut at a sentence's end."""
    from research.text.sentiment import MAX_TEXT_CHARS, _cut

    opening = "I love this shop, the staff were wonderful. " * 200
    text = opening + "Terrible, awful, the worst service ever. " * 2000
    cut = _cut(text)
    assert len(cut) <= MAX_TEXT_CHARS and cut.endswith(".")
    assert "Terrible" not in cut
    assert score([text])[0] > 0.05  # the opening's verdict, not the tail's
    assert _cut("Short answer.") == "Short answer."


def test_rating_labels_keep_blank_and_odd_ratings_out():
    labels = rating_labels([5, "4", 4.0, 3, "3.0", 2, "1", None, "", "n/a", float("nan")])
    assert labels.tolist() == [1, 1, 1, 0, 0, -1, -1, 0, 0, 0, 0]


def test_macro_f1_counts_neutral_as_wrong():
    truth = np.array([1, 1, 1, -1])
    # one positive called neutral: positive F1 = 2*2/(2*2+0+1) = 0.8, negative F1 = 1
    assert macro_f1(truth, np.array([1, 1, 0, -1])) == pytest.approx(0.9)
    # every answer neutral scores 0, not 0.5
    assert macro_f1(truth, np.zeros(4, dtype=int)) == 0.0


def test_rated_model_learns_the_business_words_the_word_list_cannot_know():
    texts, stars = rated(240, 80, seed=3)
    cv = cross_validate(texts, stars, folds=5)
    assert cv["n"] == 320 and 70 <= cv["n_negative"] <= 100  # a twentieth of stars flipped
    # the made-up words carry no sentiment in any word list
    assert cv["lexicon_macro_f1"] < 0.6
    assert cv["macro_f1"] >= 0.85
    assert cv["macro_f1"] > cv["lexicon_macro_f1"] + 0.2
    decision = should_use_rated(cv["n"], cv)
    assert decision.use_rated
    assert decision.sentence.startswith("Trained on your 320 rated reviews: agrees with the stars")


def test_rated_model_predicts_on_a_minus_one_to_one_scale():
    texts, stars = rated(120, 40, seed=5)
    model = RatedModel().fit(texts + [None, ""], stars + [None, 3])
    values = model.predict(["The zip jams and the lid rattles.", "The zip glides.", None])
    assert values[0] < 0 < values[1]
    assert math.isnan(values[2])
    assert np.all(np.abs(values[:2]) <= 1)


def test_rated_model_needs_both_kinds():
    with pytest.raises(ValueError):
        RatedModel().fit(["fine", "good", "ok"], [5, 5, 4])
    with pytest.raises(ValueError, match="at least 4"):
        cross_validate(["fine"] * 30 + ["bad"] * 2, [5] * 30 + [1] * 2)


def test_should_use_rated_needs_enough_ratings_and_a_clear_gain():
    few = should_use_rated(150, None)
    assert not few.use_rated and "at least 200" in few.sentence
    lopsided = should_use_rated(
        500,
        {
            "n": 500,
            "n_positive": 490,
            "n_negative": 10,
            "macro_f1": 0.9,
            "lexicon_macro_f1": 0.7,
            "accuracy": 0.95,
            "lexicon_accuracy": 0.85,
        },
    )
    assert not lopsided.use_rated and "20 poor" in lopsided.sentence
    no_gain = should_use_rated(
        500,
        {
            "n": 500,
            "n_positive": 400,
            "n_negative": 100,
            "macro_f1": 0.81,
            "lexicon_macro_f1": 0.80,
            "accuracy": 0.9,
            "lexicon_accuracy": 0.89,
        },
    )
    assert not no_gain.use_rated and "not clearly better" in no_gain.sentence
    good = should_use_rated(
        3150,
        {
            "n": 3150,
            "n_positive": 2900,
            "n_negative": 250,
            "macro_f1": 0.86,
            "lexicon_macro_f1": 0.74,
            "accuracy": 0.934,
            "lexicon_accuracy": 0.851,
        },
    )
    assert good.use_rated
    assert good.sentence == (
        "Trained on your 3,150 rated reviews: agrees with the stars 93 times in 100, "
        "against 85 for the general word list."
    )
