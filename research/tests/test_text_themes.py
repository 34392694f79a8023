"""Themes: planted topics in generated feedback are found, labelled and quoted."""

from __future__ import annotations

from collections import Counter

import pytest

from research.tests.generated import TOPICS, feedback
from research.text import OTHER, assign, find_themes

PLANTED = {"delivery": 120, "sizing": 90, "price": 60, "staff": 40}


@pytest.fixture(scope="module", params=[0, 1, 2, 3])
def found(request):
    texts, topics = feedback(PLANTED, seed=request.param)
    return texts, topics, find_themes(texts, max_themes=8, seed=0)


def _majority(theme, topics):
    return Counter(topics[i] for i in theme.members).most_common(1)[0]


def test_every_planted_topic_is_found_and_labelled_with_its_words(found):
    texts, topics, themes = found
    labelled = [t for t in themes if not t.is_other]
    for topic, n in PLANTED.items():
        mine = [t for t in labelled if _majority(t, topics)[0] == topic]
        assert mine, f"no theme for {topic}"
        for theme in mine:
            assert _majority(theme, topics)[1] >= 0.8 * theme.size  # pure
        covered = sum(_majority(t, topics)[1] for t in mine)
        assert covered >= 0.75 * n, (topic, covered)
        vocabulary = set(TOPICS[topic]["words"])
        assert any(set(t.label.lower().split()) & vocabulary for t in mine), [t.label for t in mine]


def test_themes_partition_the_texts_and_quote_their_own_members(found):
    texts, _, themes = found
    members = [i for t in themes for i in t.members]
    assert sorted(members) == list(range(len(texts)))
    labelled = [t for t in themes if not t.is_other]
    assert [t.id for t in labelled] == list(range(len(labelled)))  # largest first
    assert [t.size for t in labelled] == sorted((t.size for t in labelled), reverse=True)
    assert all(t.is_other for t in themes[len(labelled) :])  # "other" last, if any
    for theme in themes:
        if theme.is_other:
            assert theme.label == ""
            continue
        assert theme.label and theme.label[0].isupper()
        assert len(theme.examples) == 3
        assert len({e.lower() for e in theme.examples}) == 3
        member_texts = {texts[i] for i in theme.members}
        assert all(e in member_texts for e in theme.examples)
        assert 1 <= len(theme.phrases) <= 5


def test_assign_puts_new_texts_into_their_topics_theme(found):
    _, topics, themes = found
    new_texts, new_topics = feedback({"sizing": 30, "price": 30, "staff": 30}, seed=7)
    ids = assign(new_texts, themes)
    by_id = {t.id: _majority(t, topics)[0] for t in themes if not t.is_other}
    right = sum(by_id.get(int(i)) == topic for i, topic in zip(ids, new_topics, strict=True))
    assert right >= 0.85 * len(new_texts)
    assert assign(["", None, "zzz qqq"], themes).tolist() == [OTHER, OTHER, OTHER]


def test_same_seed_same_themes():
    texts, _ = feedback(PLANTED, seed=2)
    first = find_themes(texts, seed=0)
    second = find_themes(texts, seed=0)
    assert [(t.label, t.members) for t in first] == [(t.label, t.members) for t in second]


def test_edge_cases():
    assert find_themes([]) == []
    one = find_themes(["The parcel was late."])
    assert len(one) == 1 and one[0].is_other and one[0].members == [0]
    odd = ["", None, "😍😍😍", "Très bien, livraison rapide", "配送が遅い", "!!!", "ok"]
    themes = find_themes(odd)
    assert sorted(i for t in themes for i in t.members) == list(range(len(odd)))
    long_text = "The delivery was late and the courier was rude. " * 3000
    texts, _ = feedback(PLANTED, seed=3)
    themes = find_themes([*texts, long_text])
    assert sorted(i for t in themes for i in t.members) == list(range(len(texts) + 1))
    for theme in themes:
        assert all(len(e) <= 160 for e in theme.examples)


# Three planted subjects, each said in its own three words.
SUBJECTS = {
    "charging": ["battery", "charger", "cable"],
    "seams": ["zip", "seam", "stitching"],
    "refunds": ["refund", "voucher", "receipt"],
}
SAYINGS = ["The {}, the {} and the {}.", "About the {}: the {} and the {}!", "{}? {}, {}..."]


def _said(seed: int) -> tuple[list[str], list[str]]:
    import random

    rng = random.Random(seed)
    texts, subjects = [], []
    for subject, words in SUBJECTS.items():
        for i in range(80):
            said = rng.sample(words, 3) if i % 2 else [*rng.sample(words, 2), "it"]
            texts.append(SAYINGS[i % len(SAYINGS)].format(*said))
            subjects.append(subject)
    return texts, subjects


@pytest.mark.parametrize("seed", [0, 1])
def test_a_label_names_several_of_its_subjects_own_words(seed):
    """A one- or two-word label ("Battery") says little to a shop owner: the label
    names the subject's three words (and no other subject's)."""
    texts, subjects = _said(seed)
    themes = [t for t in find_themes(texts, max_themes=8, seed=0) if not t.is_other]
    assert len(themes) == len(SUBJECTS), [t.label for t in themes]
    for theme in themes:
        subject, count = _majority(theme, subjects)
        assert count == theme.size
        assert theme.label[0].isupper()
        terms = theme.label.lower().replace(" and ", ", ").split(", ")
        words = sorted(w for term in terms for w in term.split())
        assert words == sorted(SUBJECTS[subject]), (subject, theme.label)
    # the same texts, the same labels
    again = [t.label for t in find_themes(texts, max_themes=8, seed=0) if not t.is_other]
    assert again == [t.label for t in themes]


def test_a_label_leaves_out_words_that_do_not_tell_its_theme_apart():
    from research.text.themes import _label

    terms = [
        ("courier", 1.0),
        ("days", 0.8),
        ("courier rang", 0.6),
        ("rang twice", 0.5),
        ("delivered", 0.5),
        ("door", 0.45),
        ("sunday", 0.4),
        ("tiny", 0.1),
    ]
    other = {"days": 0.75, "delivery": 1.0}  # another delivery theme says "days" as much
    # the subject carried on by its pair, then the next words only this theme says
    # ("delivered", a lone past tense, reads oddly in a list; "tiny" weighs too little)
    assert _label(terms, [other]) == "Courier rang twice, door and sunday"
    assert _label(terms) == "Courier rang twice, days and door"
    assert _label([("price", 1.0)]) == "Price"
    assert _label([]) == ""


def test_labels_write_words_as_the_customers_do():
    """Terms lose their hyphens and apostrophes ("go-to" is the term "goto"); a label
    puts them back as the texts most often write them, so an owner never reads
    "goto" or "dont"."""
    from research.text.themes import _as_written, _written_forms

    texts = [
        "My go-to shop for gifts.",
        "Our go-to place, don't change.",
        "Its packaging is lovely; it's great.",
        "Its colour is nice.",
    ]
    forms = _written_forms(texts)
    assert forms["goto"] == "go-to" and forms["dont"] == "don't"
    assert forms["its"] == "its"  # written plain more often than "it's"
    assert _as_written("Present, gifts and goto", forms) == "Present, gifts and go-to"
    assert _as_written("Goto place", forms) == "Go-to place"
    assert _as_written("Delivery", {}) == "Delivery"
