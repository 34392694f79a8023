"""Key phrases of a group against everyone else, and of single texts."""

from __future__ import annotations

from research.tests.generated import feedback
from research.text import key_phrases, phrases_per_text
from research.text.phrases import ngrams, words


def test_a_planted_phrase_stands_out_against_the_background():
    background, _ = feedback({"delivery": 80, "sizing": 80, "price": 80}, seed=1)
    group = [f"The oat milk latte was cold. {t}" for t in background[:40]]
    phrases = key_phrases(group, background=background, top=5)
    assert phrases[0].text in {"oat milk latte", "oat milk", "milk latte", "latte cold"}
    assert phrases[0].count == 40


def test_without_background_the_common_phrase_comes_first():
    texts = ["Sound quality is superb", "the sound quality could be louder", "Nice sound quality"]
    phrases = key_phrases(texts, top=3)
    assert phrases[0].text == "sound quality" and phrases[0].count == 3
    assert all(p.text != "sound" for p in phrases)  # the longer phrase covers it


def test_stop_words_and_judgement_words_are_not_phrases():
    assert words("I really LOVE the delivery") == ["", "", "", "", "delivery"]
    # a pair never spans a removed word or a comma
    assert "price delivery" not in ngrams("price, delivery")
    assert ngrams("Set-up over wi-fi") == ["setup", "wifi"]


def test_phrases_per_text_and_edge_cases():
    out = phrases_per_text(["The sound quality of the kitchen speaker", "", None, "😍"])
    assert out[0][0] == "sound quality"
    assert out[1:] == [[], [], []]
    assert key_phrases([]) == []
    assert key_phrases([None, ""]) == []
