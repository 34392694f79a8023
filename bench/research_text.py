"""Research text analysis on real reviews: sentiment against the stars, and themes.

    .venv/bin/python bench/research_text.py [--data PATH] [--folds 5] [--themes 8]
                                            [--scale 100000] [--json out.json]

Reads ``amazon_alexa.tsv`` (3,150 Amazon reviews of Echo devices with 1–5 stars,
tab-separated; ../shared/data, its licence keeps it out of the project, so it is read
from where it lies and never copied) straight from the file, no database.

Protocol (research/text/sentiment.py): 4–5 stars positive, 1–2 negative, 3 left out,
as are reviews with no text. Plain VADER and this package's word list
(``research.text.score``) use VADER's rule (≥ 0.05 positive, ≤ −0.05 negative, in
between neutral, and a neutral answer counts as wrong for either class); neither sees
a rating. The rated model (``research.text.cross_validate``) is scored by 5-fold
stratified cross-validation (seed 0), its threshold tuned inside each training part.
Macro-F1 is the mean of the two classes' F1; accuracy the share that agrees.

Prints counts, macro-F1 and accuracy for the three, their times as ratios against
plain VADER measured in the same run, then the themes of all reviews
(``research.text.find_themes``) with labels, sizes, key phrases and two example
quotes each, and with ``--scale N`` the time to find themes in the reviews repeated
to N texts. docs/research.md records the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from research.text import cross_validate, find_themes, score, should_use_rated  # noqa: E402
from research.text.sentiment import label, macro_f1, rating_labels, vader_score  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "amazon_alexa.tsv"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--themes", type=int, default=8)
    parser.add_argument("--scale", type=int, default=0, help="also time themes on N texts")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    raw = pd.read_csv(args.data, sep="\t", encoding="utf-8-sig")
    texts_all = raw["verified_reviews"].tolist()
    has_text = raw["verified_reviews"].notna() & (
        raw["verified_reviews"].astype(str).str.strip() != ""
    )
    truth_all = rating_labels(raw["rating"])
    keep = (truth_all != 0) & has_text.to_numpy()
    texts = [t for t, k in zip(texts_all, keep, strict=True) if k]
    ratings = raw["rating"][keep].tolist()
    truth = truth_all[keep]

    # Warm both analysers (loading the word list) outside the timings.
    score(["warm up"]), vader_score(["warm up"])
    vader, t_vader = timed(vader_score, texts)
    ours, t_ours = timed(score, texts)
    cv, t_cv = timed(cross_validate, texts, ratings, folds=args.folds)

    v_label, o_label = label(vader), label(ours)
    results: dict = {
        "file": args.data.name,
        "rows": len(raw),
        "n": len(texts),
        "n_positive": int(np.sum(truth == 1)),
        "n_negative": int(np.sum(truth == -1)),
        "left_out_3_stars": int(np.sum(raw["rating"] == 3)),
        "left_out_no_text": int(np.sum(~has_text & (truth_all != 0))),
        "vader": {
            "macro_f1": round(macro_f1(truth, v_label), 4),
            "accuracy": round(float(np.mean(v_label == truth)), 4),
            "neutral": int(np.sum(v_label == 0)),
            "seconds": round(t_vader, 3),
        },
        "lexicon": {
            "macro_f1": round(macro_f1(truth, o_label), 4),
            "accuracy": round(float(np.mean(o_label == truth)), 4),
            "neutral": int(np.sum(o_label == 0)),
            "seconds": round(t_ours, 3),
            "time_vs_vader": round(t_ours / t_vader, 2),
        },
        "rated_cv": {
            "folds": cv["folds"],
            "macro_f1": round(cv["macro_f1"], 4),
            "accuracy": round(cv["accuracy"], 4),
            "thresholds": [round(t, 2) for t in cv["thresholds"]],
            "seconds": round(t_cv, 2),
            "time_vs_vader": round(t_cv / t_vader, 1),
        },
    }
    decision = should_use_rated(cv["n"], cv)
    results["decision"] = {"use_rated": decision.use_rated, "sentence": decision.sentence}

    print(
        f"{args.data.name}: {len(raw)} rows, {len(texts)} scored "
        f"({results['n_positive']} positive 4–5★, {results['n_negative']} negative 1–2★; "
        f"{results['left_out_3_stars']} 3★ and {results['left_out_no_text']} without text left out)"
    )
    print(f"{'':24}{'macro-F1':>9}{'accuracy':>10}{'neutral':>9}{'time':>9}{'× VADER':>9}")
    v, o, r = results["vader"], results["lexicon"], results["rated_cv"]
    print(
        f"{'VADER (±0.05)':24}{v['macro_f1']:9.3f}{v['accuracy']:10.3f}{v['neutral']:9d}"
        f"{v['seconds']:8.2f}s{1.0:9.2f}"
    )
    print(
        f"{'word list (ours, ±0.05)':24}{o['macro_f1']:9.3f}{o['accuracy']:10.3f}"
        f"{o['neutral']:9d}{o['seconds']:8.2f}s{o['time_vs_vader']:9.2f}"
    )
    rated_name = f"rated model, {r['folds']}-fold CV"
    print(
        f"{rated_name:24}{r['macro_f1']:9.3f}{r['accuracy']:10.3f}"
        f"{'-':>9}{r['seconds']:8.2f}s{r['time_vs_vader']:9.1f}"
    )
    print(f"decision: {decision.sentence}")

    themes, t_themes = timed(find_themes, texts_all, max_themes=args.themes, seed=0)
    results["themes"] = {
        "seconds": round(t_themes, 2),
        "time_vs_vader": round(t_themes / t_vader, 2),
        "themes": [
            {
                "label": t.label or "(other)",
                "size": t.size,
                "phrases": t.phrases,
                "examples": t.examples[:2],
            }
            for t in themes
        ],
    }
    print(
        f"\nthemes of all {len(texts_all)} reviews: {t_themes:.2f}s "
        f"({t_themes / t_vader:.2f}× VADER on the scored reviews)"
    )
    for theme in results["themes"]["themes"]:
        print(f"  {theme['label']} ({theme['size']}): {', '.join(theme['phrases'])}")
        for quote in theme["examples"]:
            print(f"      “{quote}”")

    if args.scale:
        copies = -(-args.scale // len(texts_all))
        big = (texts_all * copies)[: args.scale]
        _, t_big = timed(find_themes, big, max_themes=args.themes, seed=0)
        _, t_big_vader = timed(vader_score, big)
        results["themes"]["scale"] = {
            "texts": len(big),
            "seconds": round(t_big, 2),
            "vader_seconds": round(t_big_vader, 2),
            "time_vs_vader": round(t_big / t_big_vader, 2),
        }
        print(
            f"\nthemes of {len(big):,} texts: {t_big:.1f}s; plain VADER on them {t_big_vader:.1f}s "
            f"({t_big / t_big_vader:.2f}×)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
