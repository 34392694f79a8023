"""The research step's speed-ups keep its results: the trained model's shared n-gram
counts give scikit-learn's own TF-IDF features, and the last run's cross-validation
is kept only while the rated feedback has changed by less than 10%; an unchanged
training sample reuses the model fitted on it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from accounts.tenancy import tenant_context
from customers.models import Feedback
from research import analysis
from research.analysis import research_run
from research.models import FeedbackInsight, ResearchRun
from research.tests import generated
from research.text.sentiment import _Counts, _kept_columns

AS_OF = dt.date(2026, 6, 30)
NOON = dt.time(12, 0, tzinfo=dt.UTC)


def test_counted_once_features_are_scikit_learns_tfidf():
    texts, _ = generated.feedback({"delivery": 60, "sizing": 60, "price": 60, "staff": 60})
    texts += ["Zip jams!", "zip JAMS", "Gr8 zip, soooo good"]
    counts = _Counts(texts)
    rows = np.arange(0, len(texts), 2)  # a training part: every other text
    parts = counts.fit_tfidf(rows)
    for name, settings, limit in (
        ("words", {"ngram_range": (1, 2)}, 50000),
        ("chars", {"analyzer": "char_wb", "ngram_range": (2, 5)}, 100000),
    ):
        vectorizer = TfidfVectorizer(**settings, min_df=2, sublinear_tf=True, max_features=limit)
        expected = vectorizer.fit_transform([texts[i] for i in rows])
        columns, tfidf, terms = parts[name]
        assert list(terms) == list(vectorizer.get_feature_names_out())
        got = tfidf.transform(counts.matrices[name][rows][:, columns])
        assert np.allclose(got.toarray(), expected.toarray(), rtol=0, atol=1e-12)
        # texts the part was not trained on: the same as the vectoriser's transform
        other = np.arange(1, len(texts), 2)
        got = tfidf.transform(counts.matrices[name][other][:, columns])
        expected = vectorizer.transform([texts[i] for i in other])
        assert np.allclose(got.toarray(), expected.toarray(), rtol=0, atol=1e-12)


def test_kept_columns_limit_takes_the_most_frequent_terms():
    from scipy import sparse

    x = sparse.csr_matrix(np.array([[3, 1, 1, 0], [2, 1, 0, 1], [1, 0, 1, 1]], dtype=float))
    assert _kept_columns(x, 10).tolist() == [0, 1, 2, 3]
    assert _kept_columns(x, 1).tolist() == [0]
    with pytest.raises(ValueError):
        _kept_columns(sparse.csr_matrix(np.eye(3)), 10)  # no term in two rows


def _rated(org, n_good: int, n_bad: int, *, seed: int, prefix: str) -> None:
    texts, stars = generated.rated(n_good, n_bad, seed=seed)
    with tenant_context(org):
        Feedback.objects.bulk_create(
            Feedback(
                organization=org,
                external_id=f"{prefix}{i}",
                created_at=dt.datetime.combine(AS_OF, NOON),
                source="review",
                rating=star,
                text=text,
            )
            for i, (text, star) in enumerate(zip(texts, stars, strict=True))
        )


@pytest.mark.django_db
def test_the_last_cross_validation_stands_while_the_ratings_barely_change(org):
    _rated(org, 260, 140, seed=3, prefix="a")
    with tenant_context(org):
        analysis._TRAINED.clear()
        first = research_run(organization=org, as_of=AS_OF)
        scores = sorted(FeedbackInsight.objects.values_list("feedback_id", "sentiment"))
        second = research_run(organization=org, as_of=AS_OF)  # the same model, kept
        assert len(analysis._TRAINED) == 1
        assert sorted(FeedbackInsight.objects.values_list("feedback_id", "sentiment")) == scores
        runs = list(ResearchRun.objects.order_by("pk"))
    assert first["model"] == second["model"] == "rated"
    assert "reused_from" not in runs[0].cv and runs[0].cv["checked_with_rated"] == 400
    assert runs[1].cv["reused_from"] == runs[0].pk
    assert runs[1].model_sentence == runs[0].model_sentence
    assert {k: v for k, v in runs[1].cv.items() if k != "reused_from"} == runs[0].cv

    _rated(org, 30, 5, seed=5, prefix="b")  # 35 more: under 10% of 400
    with tenant_context(org):
        research_run(organization=org, as_of=AS_OF)
        third = ResearchRun.objects.order_by("-pk").first()
    assert third.cv["reused_from"] == runs[0].pk and third.cv["rated"] == 435

    _rated(org, 10, 5, seed=6, prefix="c")  # 450 in all: 12.5% more than checked
    with tenant_context(org):
        research_run(organization=org, as_of=AS_OF)
        fourth = ResearchRun.objects.order_by("-pk").first()
    assert "reused_from" not in fourth.cv
    assert fourth.cv["checked_with_rated"] == 450 and fourth.cv["n"] == 450
