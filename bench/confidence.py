"""Confidence levers: which features of the top hit tell an answerable question from one the articles do not answer?

Run from the project root:  .venv/bin/python -m bench.confidence [--json bench/results/confidence.json]
                                                                  [--cache /tmp/confidence.pkl]

The question sets are those of `bench.confidence_data` (SQuAD dev against all 48 articles,
the tuning half, 12 tuning articles, the seed article alone; the news questions of
bench/data/ooc-news-questions.jsonl; the seed rows). Each lever is a logistic regression on
some features, fitted on the *quarter* set only (12 tuning-half articles indexed, the other 12
tuning-half articles' questions out of corpus), so nothing of the held-out half, the seed
article or the news questions is seen. Its threshold is also read off the tuning half: the
score below which 4% of the tuning half's questions fall, asked of all 48 articles. Reported
per lever: AUROC on the quarter set, and at that threshold the figures `qa eval` prints
(first citation right, abstains on answerable, on the held-out half, on the seed article,
on the news questions) and how many of the 16 seed rows come out right.

The engine's features are `qa.confidence.features`; the other candidates are computed here.
Takes ~5 min on 2 cores with a warm embedding cache (~20 min cold).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

SHIPPED_THRESHOLD = 4.85  # the rule before issue 17: Hit.confidence below this abstains
TUNING_ABSTAIN = 0.04
SEED_MARGIN = 0.05  # least distance between the threshold and the lowest answerable seed row  # the threshold rule: this share of tuning-half questions (all articles indexed) abstain
ENGINE = ("hit", "dense_max", "coverage", "margin", "names_absent")
LEVERS: list[tuple[str, tuple[str, ...]]] = [
    ("Hit.confidence alone, refitted", ("hit",)),
    ("top sentence cosine", ("dense",)),
    ("best cosine among candidates", ("dense_max",)),
    ("fused margin top1 - top2", ("margin",)),
    ("confidence margin top1 - best other", ("confidence_margin",)),
    ("dense and BM25 agree on the top hit", ("agree_dense", "agree_bm25")),
    ("coverage of content terms: sentence", ("coverage_sentence",)),
    ("coverage of content terms: paragraph", ("coverage",)),
    ("coverage of content terms: article", ("coverage_article",)),
    ("question names absent from the article", ("names_absent",)),
    ("content terms absent from the article", ("terms_absent",)),
    ("question-type cue asked and met", ("cue_asked", "cue_met")),
    ("hit + best cosine", ("hit", "dense_max")),
    ("hit + paragraph coverage", ("hit", "coverage")),
    ("hit + best cosine + coverage", ("hit", "dense_max", "coverage")),
    ("+ margin", ("hit", "dense_max", "coverage", "margin")),
    ("+ margin + names absent (engine)", ENGINE),
    ("engine + terms absent", (*ENGINE, "terms_absent")),
    ("engine + sentence and article coverage", (*ENGINE, "coverage_sentence", "coverage_article")),
    ("engine + agreement + cue", (*ENGINE, "agree_dense", "agree_bm25", "cue_asked", "cue_met")),
]


@functools.lru_cache(maxsize=256)
def _article_terms(text: str) -> frozenset[str]:
    from qa.confidence import content_terms

    return content_terms(text)


def candidate_features(asked: Any, corpus: Any) -> dict[str, float]:
    """Every candidate feature of one asked question (the engine's and the others)."""
    from qa.confidence import NO_HITS, content_terms, features
    from qa.cues import asks_for_cue, cue_features

    hits = asked.hits
    # Nothing ranked, or the turn rules marked the top hit unable to answer: the engine abstains
    # without the score (qa.confidence.confidence), so the row is not fitted either.
    if not hits or hits[0].confidence <= NO_HITS:
        return {}
    values = dict(zip(ENGINE, features(asked.question, hits, corpus)))
    top = hits[0]
    terms = content_terms(asked.question)
    article = corpus.article_of(top.sentence_id)
    sentence = corpus.sentence(top.sentence_id)
    share = (lambda text: len(terms & content_terms(text)) / len(terms)) if terms else (lambda text: 0.0)
    dense = np.array([h.dense for h in hits])
    lexical = np.array([h.lexical for h in hits])
    values.update(
        dense=top.dense,
        confidence_margin=top.confidence - max(h.confidence for h in hits[1:]) if len(hits) > 1 else 5.0,
        agree_dense=float(top.dense >= dense.max()),
        agree_bm25=float(top.lexical >= lexical.max()),
        coverage_sentence=share(sentence),
        coverage_article=len(terms & _article_terms(article.text)) / len(terms) if terms else 0.0,
        terms_absent=float(len(terms - _article_terms(article.text))),
        cue_asked=float(asks_for_cue(asked.question)),
        cue_met=float(cue_features(asked.question, [sentence]).any()),
    )
    return values


def feature_table(sets: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """Per set, per feature, the values of every question (NaN where nothing was ranked)."""
    corpus_of = {"full": "full", "half": "half", "quarter": "quarter", "seed": "seed", "news": "full", "seed_rows": "seed"}
    table: dict[str, dict[str, np.ndarray]] = {}
    for name, corpus_name in corpus_of.items():
        corpus = sets["corpora"][corpus_name]
        rows = [candidate_features(a, corpus) for a in sets[name]]
        names = sorted({k for r in rows for k in r})
        table[name] = {k: np.array([r.get(k, np.nan) for r in rows], dtype=np.float64) for k in names}
        table[name]["rank"] = np.array([a.rank for a in sets[name]])
        table[name]["answerable"] = np.array([a.answerable for a in sets[name]])
        table[name]["tuning"] = np.array([a.tuning for a in sets[name]])
    return table


def fit(table: dict[str, dict[str, np.ndarray]], columns: Sequence[str]) -> tuple[Callable[[str], np.ndarray], dict]:
    """Logistic regression on the quarter set; returns a scorer per set and the fitted model."""
    from sklearn.linear_model import LogisticRegression

    quarter = table["quarter"]
    x = np.column_stack([quarter[c] for c in columns])
    keep = ~np.isnan(x).any(axis=1)
    means, scales = x[keep].mean(axis=0).round(4), x[keep].std(axis=0).round(4)
    model = LogisticRegression(C=1.0, max_iter=1000).fit((x[keep] - means) / scales, quarter["answerable"][keep])
    # Scored with the rounded parameters: exactly what qa/confidence.py holds.
    weights, intercept = model.coef_[0].round(3), round(float(model.intercept_[0]), 3)

    def scorer(name: str) -> np.ndarray:
        z = (np.column_stack([table[name][c] for c in columns]) - means) / scales
        return np.nan_to_num(z @ weights + intercept, nan=-99.0)  # no hits: abstain

    return scorer, {"columns": list(columns), "means": means.tolist(), "scales": scales.tolist(),
                    "weights": weights.tolist(), "intercept": intercept}


def figures(table: dict[str, dict[str, np.ndarray]], scorer: Callable[[str], np.ndarray], threshold: float) -> dict:
    """What `qa eval` reports, at one threshold."""
    from qa.evaluation.metrics import answered_figures

    full, half = table["full"], table["half"]
    answered = answered_figures(full["rank"], scorer("full") < threshold)
    rows = scorer("seed_rows") >= threshold
    seed_rows = table["seed_rows"]
    passed = np.where(seed_rows["answerable"], rows & (seed_rows["rank"] == 1), ~rows)
    return {
        "threshold": round(float(threshold), 3),
        "answered_right": answered["answered_right"], "abstains_answerable": answered["abstained"],
        "abstains_held_out_half": float((scorer("half")[~half["answerable"]] < threshold).mean()),
        "abstains_seed_article": float((scorer("seed") < threshold).mean()),
        "abstains_news": float((scorer("news") < threshold).mean()),
        "seed_rows_right": int(passed.sum()), "seed_rows": int(len(passed)),
    }


def levers(table: dict[str, dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """Every lever's fit, AUROC on the quarter set and figures at the tuning-half threshold."""
    from qa.evaluation.metrics import auroc

    tuning = table["full"]["tuning"]
    shipped = figures(table, lambda name: np.nan_to_num(table[name]["hit"], nan=0.0), SHIPPED_THRESHOLD)
    out: list[dict[str, Any]] = [{"lever": f"before issue 17: Hit.confidence, threshold {SHIPPED_THRESHOLD}",
                                  "model": None, "auroc_quarter": auroc(table["quarter"]["hit"], table["quarter"]["answerable"]),
                                  "auroc_held_out": auroc(table["half"]["hit"], table["half"]["answerable"]), **shipped}]
    for label, columns in LEVERS:
        scorer, model = fit(table, columns)
        quarter = scorer("quarter")
        threshold = float(np.sort(scorer("full")[tuning])[int(TUNING_ABSTAIN * tuning.sum())])
        row = {"lever": label, "model": model, "auroc_quarter": auroc(quarter, table["quarter"]["answerable"]),
               "auroc_held_out": auroc(scorer("half"), table["half"]["answerable"]),
               **figures(table, scorer, threshold)}
        if columns == ENGINE:
            # The seed rows must keep passing: the threshold goes at least SEED_MARGIN under the
            # lowest answerable one, on a 0.05 grid.
            rows = table["seed_rows"]
            lowest = float(scorer("seed_rows")[rows["answerable"]].min())
            row["lowest_answerable_seed_row"] = round(lowest, 3)
            row["seed_constrained"] = figures(table, scorer, min(threshold, np.floor((lowest - SEED_MARGIN) * 20) / 20))
        out.append(row)
    return out


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The lever table as Markdown."""
    lines = ["| lever | AUROC quarter / held-out | threshold | first citation right | abstains: answerable | "
             "held-out half | seed article | news | seed rows right |", "|---|---|---|---|---|---|---|---|---|"]

    def line(label: str, auc: str, f: dict) -> str:
        return (f"| {label} | {auc} | {f['threshold']} | {f['answered_right']:.3f} | {_pct(f['abstains_answerable'])} | "
                f"{_pct(f['abstains_held_out_half'])} | {_pct(f['abstains_seed_article'])} | {_pct(f['abstains_news'])} | "
                f"{f['seed_rows_right']}/{f['seed_rows']} |")

    for row in rows:
        lines.append(line(row["lever"], f"{row['auroc_quarter']:.3f} / {row['auroc_held_out']:.3f}", row))
        if "seed_constrained" in row:
            lines.append(line("... engine, threshold 0.05 or more under the lowest answerable seed row", "", row["seed_constrained"]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Collect (or load) the sets, measure every lever, print the table, optionally write JSON."""
    from bench.confidence_data import collect

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="write every lever's fit and figures here")
    parser.add_argument("--cache", type=Path, default=None, help="keep the asked sets here and reuse them")
    args = parser.parse_args(argv)
    if args.cache and args.cache.is_file():
        with args.cache.open("rb") as handle:
            sets = pickle.load(handle)
    else:
        collected = collect(log=lambda m: print(m, file=sys.stderr, flush=True))
        sets = {k: v for k, v in collected.items() if not k.endswith("_state")}
        sets["corpora"] = {k.removesuffix("_state"): v.corpus for k, v in collected.items() if k.endswith("_state")}
        if args.cache:
            with args.cache.open("wb") as handle:
                pickle.dump(sets, handle)
    rows = levers(feature_table(sets))
    print(markdown(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"tuning_abstain_rule": TUNING_ABSTAIN, "levers": rows}, indent=2) + "\n",
                             encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
