"""Sentiment of short customer texts (reviews, tickets, survey answers), −1…1.

Two scorers, no network service and nothing downloaded at run time:

- ``score(texts)``: a word-list (lexicon) score that needs no ratings. It is VADER
  (Hutto & Gilbert 2014, the `vaderSentiment` package, whose word list ships in the
  wheel) with three additions written from general review vocabulary, not fitted to
  any data set's ratings:

  1. product and service complaint phrases VADER misses or reads the wrong way round
     ("stopped working", "doesn't connect", "sent it back", "don't waste your money"
     — VADER reads the last one as positive, a negated negative) and a few review
     words missing from its list ("junk", "glitchy", "unreliable", "issues"); praise
     phrases such as "no issues", "works like a charm", "worth every penny";
  2. sentence by sentence: each sentence is scored alone and a contrast sentence
     ("But…", "However…", "Sadly…") and the last sentence weigh more, because a
     review's verdict usually comes after the contrast or at the end. VADER's own
     within-sentence "but" rule still applies;
  3. the sentence average is blended with the whole-text score, so that one strong
     sentence in a long, mostly neutral review still counts.

- ``RatedModel``: where the business's own feedback carries star ratings, a model
  trained on them (TF-IDF word and character n-grams plus the lexicon score, class
  weighted logistic regression, decision threshold tuned on the training part
  only). ``cross_validate`` measures it against the lexicon with stratified k-fold
  cross-validation and ``should_use_rated`` decides, in plain words, which one the
  business's pages use.

Missing text (None, NaN) scores NaN ("no text"); empty or word-less text scores 0.0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

# VADER's own decision rule for its compound score (its README): at or above +0.05
# positive, at or below −0.05 negative, in between neutral.
POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05

# Star ratings as labels: 4–5 positive, 1–2 negative, 3 left out (mixed).
RATING_POSITIVE_FROM = 4
RATING_NEGATIVE_TO = 2

# When the business's own ratings are enough to train on (should_use_rated).
MIN_RATED = 200
MIN_PER_CLASS = 20
MIN_GAIN = 0.02  # cross-validated macro-F1 the trained model must gain over the lexicon

# Review words VADER's list lacks, on its scale (−4…4; "bad" is −2.5, "good" 1.9).
EXTRA_WORDS: dict[str, float] = {
    "junk": -2.2,
    "garbage": -2.2,
    "rubbish": -2.0,
    "ripoff": -2.4,
    "rip-off": -2.4,
    "overpriced": -1.6,
    "unusable": -2.2,
    "unreliable": -1.8,
    "unresponsive": -1.6,
    "faulty": -1.9,
    "malfunction": -1.8,
    "malfunctions": -1.8,
    "malfunctioning": -1.8,
    "glitch": -1.2,
    "glitches": -1.2,
    "glitchy": -1.6,
    "buggy": -1.6,
    "laggy": -1.4,
    "flimsy": -1.4,
    "cheaply": -1.0,
    "issue": -0.9,
    "issues": -0.9,
    "refund": -1.0,
    "refunded": -1.0,
    "crashing": -1.6,
    "crashes": -1.6,
    "crashed": -1.6,
    "disconnects": -1.2,
    "disconnecting": -1.2,
    # words of VADER's own emoji descriptions (😡 "pouting face", 🙄 "face with rolling
    # eyes", 😒 "unamused face") that its word list does not rate
    "pouting": -2.0,
    "unamused": -1.5,
    "handy": 1.5,
    "comfy": 1.6,
    "sturdy": 1.2,
    "intuitive": 1.4,
    "seamless": 1.6,
    "seamlessly": 1.6,
}

# Phrases rewritten to one token before scoring (each token is added to the word list
# with the valence given). Order matters: negated forms come before plain ones.
_NOT = (
    r"(?:not|never|no longer|does\s*n[o']?t|doesnt|did\s*n[o']?t|didnt|do\s*n[o']?t|dont|"
    r"won'?t|will not|wouldn'?t|would not|can'?t|cannot|can not|could\s*n[o']?t|couldnt|"
    r"is\s*n[o']?t|isnt|was\s*n[o']?t|wasnt|are\s*n[o']?t|arent|were\s*n[o']?t|werent)"
)
_FAIL_VERBS = (
    r"(?:work|works|working|connect|connecting|connects|respond|responding|turn on|"
    r"switch on|charge|charging|pair|pairing|sync|syncing|load|loading|fit|fits|last|lasted)"
)
PHRASES: list[tuple[str, str, float]] = [
    # (pattern, token, valence)
    (rf"\b{_NOT}\s+(?:even\s+|really\s+|always\s+)?recommend(?:ed)?\b", "xnotrecommend", -2.2),
    (rf"\b{_NOT}\s+(?:buy|bother|waste)\b", "xdontbuy", -2.2),
    (rf"\b{_NOT}\s+worth\b", "xnotworth", -1.9),
    (rf"\b{_NOT}\s+(?:even\s+|always\s+|really\s+|properly\s+)?{_FAIL_VERBS}\b", "xfails", -2.2),
    (
        r"\b(?:stopped|stops|quit|quits|ceased)\s+(?:working|responding|connecting|charging)\b",
        "xfails",
        -2.4,
    ),
    (r"\b(?:fell|falls|falling)\s+apart\b", "xfellapart", -2.2),
    (
        r"\b(?:never|nobody|no one|didn'?t|did not)\s+(?:replied|reply|answered|answer|responded|"
        r"respond|got back|get back|called back|call back)\b",
        "xnoreply",
        -1.8,
    ),
    (
        r"\b(?:returned|returning|return(?:ed)?\s+it|sent\s+(?:it\s+)?back|send(?:ing)?\s+(?:it\s+)?back)\b",
        "xreturned",
        -1.6,
    ),
    (
        r"\b(?:no|never\s+(?:had\s+)?(?:a|any)|without\s+(?:any\s+)?)\s*(?:problems?|issues?|complaints?|"
        r"hassles?|trouble)\b",
        "xnoproblem",
        1.6,
    ),
    (r"\bthumbs\s+down\b", "xthumbsdown", -2.0),  # 👎 as VADER spells it out
    (r"\bthumbs\s+up\b", "xthumbsup", 2.0),  # 👍
    (r"\bwith\s+rolling\s+eyes\b", "xeyeroll", -1.5),  # 🙄
    (r"\bcan'?t\s+(?:complain|beat|go wrong|fault)\b", "xcantcomplain", 1.8),
    (
        r"\b(?:works|worked|working)\s+(?:great|well|perfectly|fine|flawlessly|wonderfully|"
        r"like a charm|as (?:advertised|described|expected))\b",
        "xworkswell",
        2.0,
    ),
    (r"\bworth\s+(?:it|the money|every penny|the price)\b", "xworthit", 1.8),
]
_COMPILED = [(re.compile(p, re.IGNORECASE), tok, val) for p, tok, val in PHRASES]

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|[\r\n]+|(?<=[.!?])(?=[A-Z])")
_CONTRAST = re.compile(
    r"^\W*(?:but|however|although|though|unfortunately|sadly|except|yet|still|that said|"
    r"on the other hand|the only (?:problem|issue|downside|complaint))\b",
    re.IGNORECASE,
)
CONTRAST_WEIGHT = 2.0
LAST_WEIGHT = 1.5
WHOLE_TEXT_SHARE = 0.5  # the blend of the sentence average and the whole-text score


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    analyzer.lexicon.update(EXTRA_WORDS)
    analyzer.lexicon.update({tok: val for _, tok, val in PHRASES})
    return analyzer


@lru_cache(maxsize=1)
def _plain_vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _missing(text: object) -> bool:
    return text is None or (isinstance(text, float) and math.isnan(text))


def _rewrite(text: str) -> str:
    if not text.isascii():
        # Emoji to VADER's own descriptions first, so that phrases can read them.
        emojis = _analyzer().emojis
        text = "".join(f" {emojis[ch]} " if ch in emojis else ch for ch in text)
    for pattern, token, _ in _COMPILED:
        text = pattern.sub(f" {token} ", text)
    return text


def sentences(text: str) -> list[str]:
    """The text's sentences (non-empty, stripped)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


# VADER's cost grows with the square of a text's length (0.02 s for 5,000 characters,
# 1 s for 40,000, minutes for a pasted document), so longer answers are judged on
# their first MAX_TEXT_CHARS characters, cut at a sentence's end where there is one.
MAX_TEXT_CHARS = 5_000


def _cut(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    head = text[:MAX_TEXT_CHARS]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    return (head[: ends[-1]] if ends and ends[-1] > MAX_TEXT_CHARS // 2 else head).rstrip()


@lru_cache(maxsize=200_000)  # a trained model scores the same texts once per fold
def _score_text(text: str) -> float:
    analyzer = _analyzer()
    text = _rewrite(_cut(text))
    whole = float(analyzer.polarity_scores(text)["compound"])
    parts = sentences(text)
    if len(parts) <= 1:
        return whole
    total = weight_sum = 0.0
    for i, part in enumerate(parts):
        value = float(analyzer.polarity_scores(part)["compound"])
        if value == 0.0:
            continue  # a neutral sentence ("I bought it for my mum.") carries no verdict
        weight = 1.0
        if _CONTRAST.match(part):
            weight = CONTRAST_WEIGHT
        if i == len(parts) - 1:
            weight = max(weight, LAST_WEIGHT)
        total += weight * value
        weight_sum += weight
    if weight_sum == 0.0:
        return whole
    return WHOLE_TEXT_SHARE * whole + (1 - WHOLE_TEXT_SHARE) * (total / weight_sum)


def score(texts: Iterable[object]) -> np.ndarray:
    """The lexicon sentiment of each text, −1 (negative) … 1 (positive), float64.

    None or NaN give NaN (no text to judge); empty text or text with no sentiment
    words gives 0.0. Anything else is turned into a string. Emoji and emoticons
    count (VADER reads them). Non-English text mostly scores near 0: the word list
    is English.
    """
    out = []
    for text in texts:
        if _missing(text):
            out.append(math.nan)
            continue
        text = str(text).strip()
        out.append(_score_text(text) if text else 0.0)
    return np.asarray(out, dtype=np.float64)


def vader_score(texts: Iterable[object]) -> np.ndarray:
    """Plain VADER compound scores (the baseline), with the same missing-text rule."""
    analyzer = _plain_vader()
    out = []
    for text in texts:
        if _missing(text):
            out.append(math.nan)
            continue
        text = str(text).strip()
        out.append(float(analyzer.polarity_scores(text)["compound"]) if text else 0.0)
    return np.asarray(out, dtype=np.float64)


def label(scores: np.ndarray) -> np.ndarray:
    """VADER's rule: 1 positive (≥ 0.05), −1 negative (≤ −0.05), 0 neutral or missing."""
    scores = np.asarray(scores, dtype=np.float64)
    out = np.zeros(len(scores), dtype=np.int64)
    out[scores >= POSITIVE_AT] = 1
    out[scores <= NEGATIVE_AT] = -1
    return out


def rating_labels(ratings: Iterable[object]) -> np.ndarray:
    """Star ratings as labels: 1 for 4–5, −1 for 1–2, 0 for 3 and for blank or
    non-numeric ratings (left out of training and scoring)."""
    out = []
    for rating in ratings:
        try:
            value = float(rating)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            out.append(0)
            continue
        if math.isnan(value):
            out.append(0)
        elif value >= RATING_POSITIVE_FROM:
            out.append(1)
        elif value <= RATING_NEGATIVE_TO:
            out.append(-1)
        else:
            out.append(0)
    return np.asarray(out, dtype=np.int64)


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Macro-F1 over the two classes (1, −1). A neutral prediction (0) is wrong for
    either class: it counts as a miss for the true class and a hit for neither."""
    scores = []
    for cls in (1, -1):
        tp = float(np.sum((predicted == cls) & (truth == cls)))
        fp = float(np.sum((predicted == cls) & (truth != cls)))
        fn = float(np.sum((predicted != cls) & (truth == cls)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def _clean(texts: Sequence[object]) -> list[str]:
    return ["" if _missing(t) else str(t) for t in texts]


def _best_threshold(probabilities: np.ndarray, truth: np.ndarray) -> float:
    best, best_f1 = 0.5, -1.0
    for threshold in np.linspace(0.05, 0.95, 91):
        predicted = np.where(probabilities >= threshold, 1, -1)
        f1 = macro_f1(truth, predicted)
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(threshold), f1
    return best


class RatedModel:
    """Sentiment trained on one business's rated feedback.

    Features: TF-IDF of words and word pairs, TF-IDF of character 2–5-grams within
    words (spelling variants, "gr8", "soooo"), and the lexicon score. Class-weighted
    logistic regression, because most reviews are positive. The decision threshold is
    chosen on out-of-fold predictions inside the training data (3 folds), so no
    rating of a text being predicted is ever seen. ``predict`` maps the probability
    to −1…1 with the threshold at 0.
    """

    def __init__(self, *, c: float = 4.0, seed: int = 0) -> None:
        self.c = c
        self.seed = seed
        self.threshold = 0.5
        self._pipeline: Any = None

    def _fit_rows(self, counts: _Counts, rows: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """Fit on ``rows`` of the counted texts: vocabularies chosen on those rows
        only (as a TfidfVectorizer fitted on their texts would), then the classifier."""
        from sklearn.linear_model import LogisticRegression

        parts = counts.fit_tfidf(rows)
        classifier = LogisticRegression(
            C=self.c, class_weight="balanced", max_iter=2000, solver="liblinear"
        )
        classifier.fit(counts.features(parts, rows), labels)
        parts["clf"] = classifier
        return parts

    @staticmethod
    def _proba_rows(parts: dict[str, Any], counts: _Counts, rows: np.ndarray) -> np.ndarray:
        classes = list(parts["clf"].classes_)
        return parts["clf"].predict_proba(counts.features(parts, rows))[:, classes.index(1)]

    def _fit_counted(self, counts: _Counts, rows: np.ndarray, labels: np.ndarray) -> RatedModel:
        """``fit`` on rows of texts counted once (cross_validate shares one count)."""
        from sklearn.model_selection import StratifiedKFold

        n_pos, n_neg = int(np.sum(labels == 1)), int(np.sum(labels == -1))
        if min(n_pos, n_neg) < 2:
            raise ValueError("RatedModel needs rated texts of both kinds (1–2 and 4–5 stars).")
        inner = min(3, n_pos, n_neg)
        oof = np.zeros(len(rows))
        splitter = StratifiedKFold(n_splits=inner, shuffle=True, random_state=self.seed)
        for train, test in splitter.split(np.zeros(len(rows)), labels):
            parts = self._fit_rows(counts, rows[train], labels[train])
            oof[test] = self._proba_rows(parts, counts, rows[test])
        self.threshold = _best_threshold(oof, labels)
        self._pipeline = self._fit_rows(counts, rows, labels)
        return self

    def fit(self, texts: Sequence[object], ratings: Sequence[object]) -> RatedModel:
        """Train on the texts whose rating is 1–2 or 4–5 (3 and blanks are left out)."""
        labels_all = rating_labels(ratings)
        keep = labels_all != 0
        cleaned = _clean(texts)
        kept = [t for t, k in zip(cleaned, keep, strict=True) if k]
        labels = labels_all[keep]
        if min(int(np.sum(labels == 1)), int(np.sum(labels == -1))) < 2:
            raise ValueError("RatedModel needs rated texts of both kinds (1–2 and 4–5 stars).")
        return self._fit_counted(_Counts(kept), np.arange(len(kept)), labels)

    def predict(self, texts: Sequence[object]) -> np.ndarray:
        """−1…1 per text; ≥ 0 means positive at the tuned threshold. None/NaN give NaN."""
        if self._pipeline is None:
            raise RuntimeError("RatedModel.predict before fit")
        cleaned = _clean(texts)
        p = _proba_texts(self._pipeline, cleaned)
        return self._scale(p, np.array([_missing(x) for x in texts], dtype=bool))

    def _scale(self, p: np.ndarray, missing: np.ndarray) -> np.ndarray:
        t = self.threshold
        out = np.where(p >= t, (p - t) / (1 - t), (p - t) / t)
        out = out.astype(np.float64)
        out[missing] = np.nan
        return np.clip(out, -1.0, 1.0)


# The n-gram settings of the trained model's two TF-IDF parts (min_df 2 in the texts
# trained on, at most max_features terms: the most frequent, as scikit-learn picks).
_WORD_SETTINGS: dict[str, Any] = {"ngram_range": (1, 2), "lowercase": True}
_CHAR_SETTINGS: dict[str, Any] = {"analyzer": "char_wb", "ngram_range": (2, 5)}
_LIMITS = {"words": 50000, "chars": 100000}
_MIN_DF = 2


class _Counts:
    """The word and character n-gram counts of a list of texts, counted once.

    Training on a subset of rows picks its vocabulary from those rows exactly as a
    ``TfidfVectorizer(min_df=2, max_features=…, sublinear_tf=True)`` fitted on their
    texts does (terms in ≥ 2 of them; the most frequent when there are too many, in
    the same order scikit-learn breaks ties: alphabetical columns), and weights them
    with scikit-learn's own ``TfidfTransformer``. So cross-validation folds and the
    threshold's inner folds share one pass over the texts instead of one per fit,
    with the same features to the last bit.
    """

    def __init__(self, texts: list[str]) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        self.matrices: dict[str, Any] = {}
        self.terms: dict[str, np.ndarray] = {}
        for name, settings in (("words", _WORD_SETTINGS), ("chars", _CHAR_SETTINGS)):
            vectorizer = CountVectorizer(**settings, dtype=np.float64)
            self.matrices[name] = vectorizer.fit_transform(texts).tocsr()
            self.terms[name] = vectorizer.get_feature_names_out()
        self.lexicon = np.nan_to_num(score(texts)).reshape(-1, 1)

    def fit_tfidf(self, rows: np.ndarray) -> dict[str, Any]:
        from sklearn.feature_extraction.text import TfidfTransformer

        parts: dict[str, Any] = {}
        for name, matrix in self.matrices.items():
            x = matrix[rows]
            columns = _kept_columns(x, _LIMITS[name])
            tfidf = TfidfTransformer(sublinear_tf=True).fit(_columns(x, columns))
            parts[name] = (columns, tfidf, self.terms[name][columns])
        return parts

    def features(self, parts: dict[str, Any], rows: np.ndarray) -> Any:
        from scipy import sparse

        blocks = []
        for name, matrix in self.matrices.items():
            columns, tfidf, _ = parts[name]
            blocks.append(tfidf.transform(_columns(matrix[rows], columns)))
        blocks.append(sparse.csr_matrix(self.lexicon[rows]))
        return sparse.hstack(blocks).tocsr()


def _columns(x: Any, columns: np.ndarray) -> Any:
    out = x[:, columns]
    out.sort_indices()
    return out


def _kept_columns(x: Any, limit: int) -> np.ndarray:
    """scikit-learn's CountVectorizer._limit_features on the rows' counts."""
    dfs = np.bincount(x.indices, minlength=x.shape[1])
    mask = (dfs >= _MIN_DF) & (dfs <= x.shape[0])
    if mask.sum() > limit:
        tfs = np.asarray(x.sum(axis=0)).ravel()
        chosen = (-tfs[mask]).argsort()[:limit]
        new_mask = np.zeros(len(dfs), dtype=bool)
        new_mask[np.where(mask)[0][chosen]] = True
        mask = new_mask
    if not mask.any():
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    return np.flatnonzero(mask)


def _proba_texts(parts: dict[str, Any], texts: list[str]) -> np.ndarray:
    """The trained model's probability of "positive" for new texts."""
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    blocks = []
    for name, settings in (("words", _WORD_SETTINGS), ("chars", _CHAR_SETTINGS)):
        _, tfidf, terms = parts[name]
        vectorizer = CountVectorizer(
            **settings, dtype=np.float64, vocabulary={str(t): j for j, t in enumerate(terms)}
        )
        blocks.append(tfidf.transform(vectorizer.transform(texts)))
    blocks.append(sparse.csr_matrix(np.nan_to_num(score(texts)).reshape(-1, 1)))
    x = sparse.hstack(blocks).tocsr()
    classes = list(parts["clf"].classes_)
    return parts["clf"].predict_proba(x)[:, classes.index(1)]


def cross_validate(
    texts: Sequence[object], ratings: Sequence[object], folds: int = 5, *, seed: int = 0
) -> dict[str, Any]:
    """Stratified k-fold cross-validation of ``RatedModel`` on the rated texts, beside
    plain VADER and this module's lexicon on the same texts (which need no training).

    Protocol: ratings 4–5 positive, 1–2 negative, 3 and blanks left out. The trained
    model predicts positive at ≥ 0 (its threshold tuned inside each training part);
    the lexicons use VADER's ±0.05 rule, and their neutral answers count as wrong.
    Macro-F1 is the mean of the two classes' F1 (so the few negatives weigh as much as
    the many positives); accuracy is the share of texts whose label agrees.
    """
    from sklearn.model_selection import StratifiedKFold

    labels_all = rating_labels(ratings)
    keep = labels_all != 0
    cleaned = _clean(texts)
    kept = [t for t, k in zip(cleaned, keep, strict=True) if k]
    truth = labels_all[keep]
    n_pos, n_neg = int(np.sum(truth == 1)), int(np.sum(truth == -1))
    if min(n_pos, n_neg) < 4:
        raise ValueError(
            "Cross-validation needs at least 4 rated texts of each kind (1–2 and 4–5 stars)."
        )
    folds = max(2, min(folds, n_pos // 2, n_neg // 2))
    predicted = np.zeros(len(kept), dtype=np.int64)
    thresholds = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    counts = _Counts(kept)  # every fold's vocabulary comes from this one count
    for train, test in splitter.split(np.zeros(len(kept)), truth):
        model = RatedModel(seed=seed)._fit_counted(counts, train, truth[train])
        p = model._proba_rows(model._pipeline, counts, test)
        values = model._scale(p, np.zeros(len(test), dtype=bool))
        predicted[test] = np.where(values >= 0, 1, -1)
        thresholds.append(model.threshold)
    vader = label(vader_score(kept))
    lexicon = label(score(kept))
    return {
        "n": len(kept),
        "n_positive": n_pos,
        "n_negative": n_neg,
        "folds": folds,
        "macro_f1": macro_f1(truth, predicted),
        "accuracy": float(np.mean(predicted == truth)),
        "vader_macro_f1": macro_f1(truth, vader),
        "vader_accuracy": float(np.mean(vader == truth)),
        "vader_neutral": int(np.sum(vader == 0)),
        "lexicon_macro_f1": macro_f1(truth, lexicon),
        "lexicon_accuracy": float(np.mean(lexicon == truth)),
        "lexicon_neutral": int(np.sum(lexicon == 0)),
        "thresholds": thresholds,
    }


@dataclass(frozen=True)
class RatedDecision:
    use_rated: bool
    sentence: str


def should_use_rated(n_rated: int, cv: dict[str, Any] | None) -> RatedDecision:
    """Whether a business's pages should use its trained model instead of the word
    list: at least MIN_RATED rated texts, MIN_PER_CLASS of each kind, and a
    cross-validated macro-F1 at least MIN_GAIN above the word list's. The sentence
    says why, for the owner."""
    if n_rated < MIN_RATED or cv is None:
        return RatedDecision(
            False,
            f"Using the general word list: {n_rated:,} of your reviews have a 1–2 or 4–5 star "
            f"rating, and at least {MIN_RATED} are needed to learn from your own ratings.",
        )
    if min(cv["n_positive"], cv["n_negative"]) < MIN_PER_CLASS:
        return RatedDecision(
            False,
            f"Using the general word list: learning from your ratings needs at least "
            f"{MIN_PER_CLASS} good (4–5 star) and {MIN_PER_CLASS} poor (1–2 star) reviews; "
            f"you have {cv['n_positive']:,} and {cv['n_negative']:,}.",
        )
    ours = round(100 * cv["accuracy"])
    general = round(100 * cv["lexicon_accuracy"])
    if cv["macro_f1"] < cv["lexicon_macro_f1"] + MIN_GAIN:
        return RatedDecision(
            False,
            f"Using the general word list: a model trained on your {cv['n']:,} rated reviews "
            f"was not clearly better (agrees with the stars {ours} times in 100, against "
            f"{general} for the word list).",
        )
    return RatedDecision(
        True,
        f"Trained on your {cv['n']:,} rated reviews: agrees with the stars {ours} times "
        f"in 100, against {general} for the general word list.",
    )
