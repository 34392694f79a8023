"""Themes: what a set of short texts is about, found without being told.

Method (about 20 s for 100,000 short texts on two busy cores, 0.6× plain VADER;
deterministic for a seed):

1. TF-IDF over subject words and word pairs (phrases.analyzer: stop words, review
   filler and judgement words such as "great" left out, so that themes are about
   things — delivery, sound, sizing — not about liking them). Terms in fewer than
   2 texts (or 0.1% of them) or in more than half are dropped; a plural term is
   folded into its singular when both occur ("prices" with "price").
2. Non-negative matrix factorisation into ``max_themes`` + 2 parts (NNDSVDa start,
   so the seed only breaks ties). Each text joins the part it loads on most, or
   "other" if it loads on none (no subject words, or too little weight).
3. Parts are merged when their term profiles are close (cosine ≥ 0.4), one's top
   word is among the other's top three, or they have the same subject (step 4). The largest
   ``max_themes`` are kept (the others' texts go to the kept part they load on
   most); parts with fewer than 3 texts (or 0.5%) join "other".
4. Each theme is labelled by its subject: its top word ("Delivery"), or a word pair
   that holds that word and weighs at least 0.3 of it ("Sound quality"), carried on
   by a pair that continues it ("Courier rang" + "rang twice"); then up to two more
   of its terms that weigh at least 0.3 of its top one and 0.15 more than in any
   other theme ("Courier rang twice, door and sunday"), in sentence case. Key
   phrases are its top terms; its three example quotes are texts of 6 words or more
   among those loading most on it, each different, cut to 160 characters.

``assign`` puts new texts into existing themes with the themes' own term weights, so
themes found once can be stored and reused.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from research.text.phrases import analyzer

OTHER = -1
MIN_LOADING = 0.02  # a text this far from its theme's centre (cosine) has no theme
KMEANS_FULL_UP_TO = 20000  # more texts: mini-batch k-means
MERGE_SIMILARITY = 0.4
EXTRA_PARTS = 2  # split into a few more parts than asked, then merge: small themes survive
QUOTE_MAX_CHARS = 160
QUOTE_MIN_WORDS = 6
# A label names the theme's subject and up to two more of its terms, each weighing
# at least LABEL_MIN_WEIGHT of its top term and LABEL_MIN_LEAD more than in any
# other theme (a word every delivery theme shares does not tell them apart).
LABEL_TERMS = 3
LABEL_MIN_WEIGHT = 0.3
LABEL_MIN_LEAD = 0.15


@dataclass
class Theme:
    id: int  # 0, 1, … in size order; OTHER (−1) for the unlabelled bucket
    label: str  # "" for the other bucket
    phrases: list[str]
    members: list[int]  # indices into the texts given
    examples: list[str]
    terms: dict[str, float] = field(default_factory=dict)  # used by assign()

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def is_other(self) -> bool:
        return self.id == OTHER


def _clean(texts: Sequence[object]) -> list[str]:
    return ["" if t is None or (isinstance(t, float) and t != t) else str(t) for t in texts]


def _head(terms: list[tuple[str, float]]) -> str:
    """A theme's subject: its top word, or a word pair that holds that word and
    carries a fair part of its weight ("sound quality" over "sound")."""
    if not terms:
        return ""
    word, weight = next(((t, w) for t, w in terms if " " not in t), terms[0])
    for term, term_weight in terms[:10]:
        if " " in term and word in term.split() and term_weight >= 0.3 * weight:
            return term
    return word


def _label(terms: list[tuple[str, float]], others: Sequence[dict[str, float]] = ()) -> str:
    """The subject (`_head`), carried on by a pair that continues it ("courier rang"
    with "rang twice": "Courier rang twice"), then the theme's next terms that tell it
    apart from the `others` (the other themes' weights, top term 1): "Courier rang
    twice, door and sunday" says more to an owner than "Courier". In sentence case."""
    if not terms:
        return ""
    top = terms[0][1] or 1.0
    weights = {t: w / top for t, w in terms}
    phrase = _head(terms).split()
    head_weight = max((weights[w] for w in phrase if w in weights), default=1.0)
    for term, weight in terms[:10]:
        first, *rest = term.split()
        if (
            len(rest) == 1
            and first == phrase[-1]
            and rest[0] not in phrase
            and weight >= LABEL_MIN_WEIGHT * head_weight
        ):
            phrase.append(rest[0])
            break
    used = list(phrase)
    parts = [" ".join(phrase)]
    for term, weight in terms[:20]:
        if len(parts) == LABEL_TERMS:
            break
        words = term.split()
        lead = weight / top - max((o.get(term, 0.0) for o in others), default=0.0)
        if (
            weight / top < LABEL_MIN_WEIGHT
            or lead < LABEL_MIN_LEAD
            or any(_same_stem(w, u) for w in words for u in used)
            # a lone past tense ("explained", "ordered") reads oddly in a list of things
            or (len(words) == 1 and len(term) > 4 and term.endswith("ed"))
        ):
            continue
        parts.append(term)
        used += words
    text = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return text[:1].upper() + text[1:]


_INNER_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)+", re.UNICODE)
_LABEL_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def _written_forms(texts: list[str]) -> dict[str, str]:
    """The words the terms lost a hyphen or an apostrophe from ("goto", "dont"), each
    mapped to how the texts most often write it ("go-to", "don't")."""
    seen: dict[str, Counter] = {}
    for text in texts:
        for word in _INNER_WORD.findall(text.lower()):
            seen.setdefault(re.sub(r"['’-]", "", word), Counter())[word] += 1
    if not seen:
        return {}
    for text in texts:  # "its" written as such as well as "it's": the commoner wins
        for word in _LABEL_WORD.findall(text.lower()):
            if word in seen:
                seen[word][word] += 1
    return {folded: counts.most_common(1)[0][0] for folded, counts in seen.items()}


def _as_written(label: str, forms: dict[str, str]) -> str:
    """A label with its words as the texts write them ("Present, gifts and go-to")."""
    if not forms:
        return label
    text = _LABEL_WORD.sub(lambda m: forms.get(m.group().lower(), m.group()), label)
    return text[:1].upper() + text[1:]


def _same_stem(a: str, b: str) -> bool:
    """Crudely, the same word in another form: "order" and "ordered", "size" and
    "sizing", "price" and "pricey" (a label should not name one word twice)."""
    a, b = _singular(a), _singular(b)
    if a[:5] == b[:5] and min(len(a), len(b)) >= 5:
        return True
    a, b = sorted((a, b), key=len)
    return b.startswith(a) or (a.endswith("e") and len(a) > 3 and b.startswith(a[:-1]))


def _quote(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= QUOTE_MAX_CHARS:
        return text
    cut = text[: QUOTE_MAX_CHARS - 1].rsplit(" ", 1)[0]
    return cut + "…"


def _examples(texts: list[str], members: np.ndarray, loadings: np.ndarray) -> list[str]:
    # The texts loading most on the theme, preferring ones short enough to read at a
    # glance but long enough to say something; never the same text twice.
    order = members[np.argsort(-loadings[members], kind="stable")]
    chosen: list[str] = []
    seen: set[str] = set()
    fallback: list[str] = []
    for i in order[:200]:
        text = texts[i]
        key = " ".join(text.lower().split())
        if not key or key in seen:
            continue
        seen.add(key)
        if len(text.split()) >= QUOTE_MIN_WORDS and len(text) <= 2 * QUOTE_MAX_CHARS:
            chosen.append(_quote(text))
        else:
            fallback.append(_quote(text))
        if len(chosen) == 3:
            break
    return (chosen + fallback)[:3]


def _top_terms(vector: np.ndarray, vocabulary: np.ndarray, n: int = 30) -> list[tuple[str, float]]:
    order = np.argsort(-vector, kind="stable")[:n]
    return [(str(vocabulary[j]), float(vector[j])) for j in order if vector[j] > 0]


def _phrases(terms: list[tuple[str, float]], n: int = 5) -> list[str]:
    out: list[str] = []
    for term, _ in terms:
        if any(term in other or other in term for other in out):
            continue
        out.append(term)
        if len(out) == n:
            break
    return out


def find_themes(texts: Sequence[object], *, max_themes: int = 8, seed: int = 0) -> list[Theme]:
    """Themes of ``texts``, largest first, then the "other" bucket (id −1, no label)
    when any text fits no theme. Every index appears in exactly one theme's members."""
    from sklearn.decomposition import NMF
    from sklearn.feature_extraction.text import TfidfVectorizer

    cleaned = _clean(texts)
    n = len(cleaned)
    if n == 0:
        return []
    everyone = list(range(n))
    vectorizer = TfidfVectorizer(
        analyzer=analyzer,
        min_df=max(2, int(0.001 * n)),
        max_df=0.5 if n >= 20 else 1.0,
        sublinear_tf=True,
        max_features=20000,
        dtype=np.float32,
    )
    try:
        x = vectorizer.fit_transform(cleaned)
    except ValueError:  # no term in two texts: nothing in common to call a theme
        return [_other(cleaned, everyone)]
    x, vocabulary = _fold_plurals(x, vectorizer.get_feature_names_out())
    k = max(1, min(max_themes + EXTRA_PARTS, x.shape[1], n // 3))
    if n < 6 or x.nnz == 0:
        return [_other(cleaned, everyone)]
    model = NMF(n_components=k, init="nndsvda", random_state=seed, max_iter=400)
    w = model.fit_transform(x)
    h = model.components_
    best = np.argmax(w, axis=1)
    strength = w[np.arange(n), best]
    best[strength < MIN_LOADING] = OTHER

    # Merge parts that describe the same thing.
    norms = np.linalg.norm(h, axis=1, keepdims=True)
    unit = h / np.where(norms == 0, 1, norms)
    similar = unit @ unit.T
    tops = [[t for t, _ in _top_terms(h[c], vocabulary, 3)] for c in range(k)]
    labels = [_head(_top_terms(h[c], vocabulary)) for c in range(k)]
    parent = list(range(k))

    def root(c: int) -> int:
        while parent[c] != c:
            c = parent[c]
        return c

    for a in range(k):
        for b in range(a + 1, k):
            same_subject = bool(tops[a] and tops[b]) and (
                tops[a][0] in tops[b] or tops[b][0] in tops[a]
            )
            if (
                similar[a, b] >= MERGE_SIMILARITY
                or same_subject
                or (labels[a] and labels[a] == labels[b])
            ):
                parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for c in range(k):
        groups.setdefault(root(c), []).append(c)

    min_size = max(3, int(0.005 * n))
    # Too many parts left after merging: the smallest give their texts to the kept
    # part each text loads on most.
    kept_groups = sorted(groups.values(), key=lambda parts: -int(np.isin(best, parts).sum()))[
        :max_themes
    ]
    kept_parts = [c for parts in kept_groups for c in parts]
    dropped = (best != OTHER) & ~np.isin(best, kept_parts)
    if dropped.any():
        best[dropped] = np.asarray(kept_parts)[np.argmax(w[dropped][:, kept_parts], axis=1)]
        best[dropped & (w[np.arange(n), np.maximum(best, 0)] < MIN_LOADING)] = OTHER
    themes: list[Theme] = []
    other: list[int] = [int(i) for i in np.flatnonzero(best == OTHER)]
    for parts in kept_groups:
        members = np.flatnonzero(np.isin(best, parts))
        if len(members) < min_size:
            other.extend(int(i) for i in members)
            continue
        vector = h[parts].sum(axis=0)
        terms = _top_terms(vector, vocabulary)
        loadings = w[:, parts].sum(axis=1)
        top = terms[0][1] if terms else 1.0
        themes.append(
            Theme(
                id=0,
                label=_head(terms),  # the whole label once every theme is known
                phrases=_phrases(terms),
                members=[int(i) for i in members],
                examples=_examples(cleaned, members, loadings),
                terms={t: round(v / top, 4) for t, v in terms},
            )
        )
    forms = _written_forms(cleaned)
    for theme in themes:
        ranked = sorted(theme.terms.items(), key=lambda tw: -tw[1])
        theme.label = _as_written(
            _label(ranked, [o.terms for o in themes if o is not theme]), forms
        )
    themes.sort(key=lambda t: (-t.size, t.label))
    for i, theme in enumerate(themes):
        theme.id = i
    if other:
        themes.append(_other(cleaned, sorted(other)))
    return themes


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _fold(term: str) -> str:
    return " ".join(_singular(w) for w in term.split())


def _fold_plurals(x: Any, vocabulary: np.ndarray) -> tuple[Any, np.ndarray]:
    """Add each plural term's column to its singular's when the singular is a term
    too ("prices" with "price", "batteries" with "battery", "echo dots" with "echo
    dot"), then normalise the rows again. Only corpus words are folded, so "news"
    stays unless "new" is a term. The merged term is named by its commoner form."""
    from scipy import sparse
    from sklearn.preprocessing import normalize

    index = {str(t): j for j, t in enumerate(vocabulary)}
    target = np.arange(len(vocabulary))
    for j, term in enumerate(vocabulary):
        single = " ".join(_singular(w) for w in str(term).split())
        if single != term and single in index:
            target[j] = index[single]
    if np.all(target == np.arange(len(vocabulary))):
        return x, vocabulary
    kept, new_index = np.unique(target, return_inverse=True)
    fold = sparse.csr_matrix(
        (np.ones(len(vocabulary), dtype=x.dtype), (np.arange(len(vocabulary)), new_index)),
        shape=(len(vocabulary), len(kept)),
    )
    # Each folded term is named by its commoner form ("works" if more texts say it).
    df = np.asarray((x > 0).sum(axis=0)).ravel()
    names = vocabulary[kept].copy()
    best_df = df[kept].copy()
    for j, column in enumerate(new_index):
        if df[j] > best_df[column]:
            names[column], best_df[column] = vocabulary[j], df[j]
    return normalize(x @ fold), names


def _other(texts: list[str], members: list[int]) -> Theme:
    index = np.asarray(members, dtype=np.int64)
    lengths = np.array([-len(texts[i].split()) for i in range(len(texts))], dtype=np.float64)
    return Theme(
        id=OTHER,
        label="",
        phrases=[],
        members=list(members),
        examples=_examples(texts, index, lengths) if len(index) else [],
    )


def assign(texts: Sequence[object], themes: Sequence[Theme]) -> np.ndarray:
    """The theme id of each new text (OTHER when it shares no term with any theme):
    the theme whose term weights, summed over the text's words and pairs, are
    largest."""
    labelled = [t for t in themes if not t.is_other and t.terms]
    out = np.full(len(texts), OTHER, dtype=np.int64)
    if not labelled:
        return out
    # Plurals were folded when the themes were found: fold both sides the same way.
    weights = [{_fold(t): v for t, v in theme.terms.items()} for theme in labelled]
    for i, text in enumerate(_clean(texts)):
        grams = {_fold(g) for g in analyzer(text)}
        if not grams:
            continue
        scores = [sum(terms.get(g, 0.0) for g in grams) for terms in weights]
        j = int(np.argmax(scores))
        if scores[j] > 0:
            out[i] = labelled[j].id
    return out
