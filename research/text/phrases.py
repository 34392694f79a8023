"""Key phrases: the words and short word sequences a text or a group of texts is about.

The same tokens serve the themes (themes.py): lower-case words of letters (with
inner apostrophes and hyphens folded away), English stop words and review filler
("product", "bought", "really") dropped, and judgement words left out ("great",
"terrible": any word VADER's list rates at 1.5 or more either way), because a
phrase should name what people talk about; how they feel is sentiment's job.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

# Words that carry no subject in reviews, tickets and survey answers.
FILLER = frozenset(
    """
    product products item items thing things stuff bought buy buying purchase purchased
    got get gets getting use used using uses just really would also one even still much
    lot lots dont don doesn didn isn wasn won cant im ive its wa ha does did doing
    way thats that's say said think thought know want wanted make makes made need needs
    like likes liked love loved loves great good nice best better well pretty definitely
    absolutely totally highly recommend recommended ok okay overall far ever yes
    go goes going went gone come comes coming came take takes taking took taken give
    gives gave given put puts tried try tries told tell tells asked ask asks let lets
    needed keep keeps kept seem seems seemed look looks looked
    """.split()
)
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | FILLER
JUDGEMENT_AT = 1.5  # |VADER valence| from which a word is a judgement, not a subject

# Words, and the punctuation that ends a phrase (a pair never spans a comma).
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|[.,;:!?()\"/…]", re.UNICODE)


@lru_cache(maxsize=1)
def judgement_words() -> frozenset[str]:
    """Words VADER's list rates at ±1.5 or beyond (plus this package's additions)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from research.text.sentiment import EXTRA_WORDS

    lexicon = dict(SentimentIntensityAnalyzer().lexicon)
    lexicon.update(EXTRA_WORDS)
    return frozenset(w for w, v in lexicon.items() if abs(v) >= JUDGEMENT_AT and w.isalpha())


def words(text: str) -> list[str]:
    """The words of a text in order, lower-case, with "" in place of each stop word or
    judgement word, so that n-grams (``ngrams``) never bridge a removed word.
    "set up", "set-up" and "setup" all read "setup"; inner apostrophes and hyphens
    are folded away ("don't" → "dont", "wi-fi" → "wifi")."""
    dropped = _dropped()
    text = _SET_UP.sub("setup", text.lower())
    out = []
    for word in _WORD.findall(text):
        word = _INNER.sub("", word)
        out.append("" if len(word) < 2 or word in dropped else word)
    return out


_SET_UP = re.compile(r"\bset[\s-]+up\b")
_INNER = re.compile(r"['’-]")


@lru_cache(maxsize=1)
def _dropped() -> frozenset[str]:
    return STOP_WORDS | judgement_words()


def ngrams(text: str, *, max_n: int = 2) -> list[str]:
    """Words and word sequences up to ``max_n`` long that do not cross a removed word."""
    tokens = words(text)
    out: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if token:
            run.append(token)
            continue
        for n in range(1, max_n + 1):
            out.extend(" ".join(run[i : i + n]) for i in range(len(run) - n + 1))
        run = []
    return out


def analyzer(text: str) -> list[str]:
    """The n-gram analyzer the themes' vectoriser uses (words and pairs)."""
    return ngrams(text, max_n=2)


@dataclass(frozen=True)
class Phrase:
    text: str
    count: int  # texts of the group that contain it
    score: float


def key_phrases(
    texts: Sequence[object],
    *,
    background: Sequence[object] | None = None,
    top: int = 10,
    max_n: int = 3,
) -> list[Phrase]:
    """The phrases that best describe a group of texts.

    A phrase's score is the number of texts that contain it, times how much more
    often it appears in the group than in ``background`` (smoothed log ratio; left
    out when there is no background), with a bonus of a quarter per extra word, so
    "oat milk latte" beats "latte". Phrases seen in fewer than 2 texts (1 for a group of
    under 5) are dropped, and a shorter phrase is dropped when a longer one that
    contains it is kept with at least 80% of its count.
    """
    group = [str(t) for t in texts if t is not None and str(t).strip()]
    if not group:
        return []
    counts = _doc_counts(group, max_n)
    min_count = 2 if len(group) >= 5 else 1
    back_counts: Counter[str] = _doc_counts([str(t) for t in background or [] if t], max_n)
    n_back = max(1, len(background or []))
    scored = []
    for phrase, count in counts.items():
        if count < min_count:
            continue
        share = count / len(group)
        if background is not None:
            back_share = (back_counts.get(phrase, 0) + 1) / (n_back + 2)
            lift = math.log((share + 1e-9) / back_share)
            if lift <= 0:
                continue
            value = count * lift * (1 + 0.25 * phrase.count(" "))
        else:
            value = count * (1 + 0.25 * phrase.count(" "))
        scored.append((value, phrase, count))
    scored.sort(key=lambda item: (-item[0], item[1]))
    chosen: list[tuple[float, str, int]] = []
    for value, phrase, count in scored:
        if any(
            phrase in other and phrase != other and other_count >= 0.8 * count
            for _, other, other_count in chosen
        ):
            continue
        chosen = [
            c for c in chosen if not (c[1] in phrase and c[1] != phrase and count >= 0.8 * c[2])
        ]
        chosen.append((value, phrase, count))
        if len(chosen) >= top * 2:
            break
    chosen.sort(key=lambda item: (-item[0], item[1]))
    return [Phrase(text=p, count=c, score=round(v, 4)) for v, p, c in chosen[:top]]


def phrases_per_text(texts: Iterable[object], *, top: int = 3) -> list[list[str]]:
    """Up to ``top`` key phrases of each text: its longest subject word sequences
    (at most three words), first come first."""
    out: list[list[str]] = []
    for text in texts:
        if text is None or not str(text).strip():
            out.append([])
            continue
        tokens = words(str(text))
        runs: list[list[str]] = []
        run: list[str] = []
        for token in [*tokens, ""]:
            if token:
                run.append(token)
            elif run:
                runs.append(run[:3])
                run = []
        seen: list[str] = []
        for phrase in sorted(runs, key=lambda r: -len(r)):
            joined = " ".join(phrase)
            if joined not in seen:
                seen.append(joined)
        out.append(seen[:top])
    return out


def _doc_counts(texts: Sequence[str], max_n: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(set(ngrams(text, max_n=max_n)))
    return counts
