"""Text analysis for market research: sentiment, themes, key phrases and trends.

Pure functions over lists of strings, dates and ids (no models, no database), so they
can be unit-tested on generated feedback and benchmarked alone
(bench/research_text.py). docs/research.md says how each works and how accurate it is.
"""

from research.text.phrases import Phrase, key_phrases, phrases_per_text
from research.text.sentiment import (
    RatedDecision,
    RatedModel,
    cross_validate,
    rating_labels,
    score,
    should_use_rated,
    vader_score,
)
from research.text.themes import OTHER, Theme, assign, find_themes
from research.text.trends import index_sentence, segment_index, theme_trends

__all__ = [
    "OTHER",
    "Phrase",
    "RatedDecision",
    "RatedModel",
    "Theme",
    "assign",
    "cross_validate",
    "find_themes",
    "index_sentence",
    "key_phrases",
    "phrases_per_text",
    "rating_labels",
    "score",
    "segment_index",
    "should_use_rated",
    "theme_trends",
    "vader_score",
]
