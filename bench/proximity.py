"""Term-proximity lever on SQuAD v1.1 dev: does rewarding the question's word sequences help?

Run from the project root:  .venv/bin/python -m bench.proximity [--json bench/results/proximity.json]

The engine ranks every question against all dev articles (an index built like `qa eval squad`
builds one, through the embedding cache); then each variant's count is added to the fused
score with weight w, and the first correct sentence is looked up again. Variants, all on
stemmed words:

    pairs          adjacent word pairs, except stop-word-only ones (`qa.lexical.phrase_pairs`)
    content pairs  adjacent pairs after stop words are dropped ("domestic LLM developers")
    triples        three adjacent words, except stop-word-only ones ("train their models")

Weights are judged on the tuning half's questions and reported on the held-out half and the
full set (the halves of `qa.evaluation.squad`). Takes ~1 min on 2 cores with a warm cache.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "squad-dev-v1.1.json.gz"
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5)

@functools.lru_cache(maxsize=100_000)  # candidate sentences recur across questions
def content_pairs(text: str) -> frozenset[tuple[str, ...]]:
    """Adjacent stems once stop words are dropped."""
    from qa.lexical import _stopwords, stemmed_words

    stop = _stopwords()
    words, stems = stemmed_words(text)
    kept = [s for w, s in zip(words, stems) if w not in stop]
    return frozenset(zip(kept, kept[1:]))


@functools.lru_cache(maxsize=100_000)
def triples(text: str) -> frozenset[tuple[str, ...]]:
    """Three adjacent stems, except stop-word-only triples."""
    from qa.lexical import _stopwords, stemmed_words

    stop = _stopwords()
    words, stems = stemmed_words(text)
    return frozenset(tuple(stems[i:i + 3]) for i in range(len(stems) - 2) if not all(w in stop for w in words[i:i + 3]))


def _counts(question: str, sentences: list[str], extract: Callable[[str], frozenset]) -> np.ndarray:
    asked = extract(question)
    return np.array([len(asked & extract(s)) for s in sentences], dtype=np.float32)


def collect(path: Path, articles: int | None = None) -> list[dict]:
    """Per answerable question: candidate ids, fused scores, which are correct, the variants' counts."""
    from qa.cache import cached_encode
    from qa.corpus import ARTICLE, END, START
    from qa.evaluation.metrics import holds_gold
    from qa.evaluation.run import article_rows, resolved_questions
    from qa.evaluation.squad import TUNING, load_squad, write_articles
    from qa.index import Index
    from qa.lexical import phrase_pairs
    from qa.ranking import rank

    squad = load_squad(path, articles)
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="qa-proximity-") as tmp:
        files = write_articles(squad, Path(tmp) / "articles")
        index = Index.build(files[TUNING], Path(tmp) / "index")  # then the other half, as `qa eval squad` does
        for half, folder in files.items():
            if half != TUNING:
                index.add(folder)
        state = index._state
        rows = article_rows(index, squad, set(files))
        texts = resolved_questions([q.text for q in squad.questions], index.settings)
        vectors = cached_encode(index.encoder, [t or "" for t in texts])
        pairs = functools.lru_cache(maxsize=100_000)(phrase_pairs)
        variants = {"pairs": pairs, "content pairs": content_pairs, "triples": triples}
        for number, (question, text) in enumerate(zip(squad.questions, texts)):
            if text is None:
                continue
            hits = rank(text, vectors[number], state, index.settings)
            ids = np.array([h.sentence_id for h in hits], dtype=np.int64)
            table = state.corpus.table[ids]
            golds = [(rows[g.article], g.offset) for g in question.golds if g.article in rows]
            correct = holds_gold(table[:, ARTICLE], table[:, START], table[:, END], golds)
            sentences = state.corpus.sentences(ids)
            rows_out.append({
                "ids": ids, "fused": np.array([h.score for h in hits]), "correct": correct,
                "half": squad.articles[question.article].half == TUNING,
                **{name: _counts(text, sentences, extract) for name, extract in variants.items()},
            })
            if number % 2000 == 0:
                print(f"{number:,} / {len(squad.questions):,} questions", file=sys.stderr, flush=True)
    return rows_out


def reciprocal_ranks(rows: list[dict], variant: str, weight: float) -> np.ndarray:
    """1/rank of the first correct sentence per question (0 when none), ties to the lower id."""
    ranks = np.zeros(len(rows))
    for i, row in enumerate(rows):
        order = np.lexsort((row["ids"], -(row["fused"] + weight * row[variant])))
        found = np.flatnonzero(row["correct"][order])
        ranks[i] = 1.0 / (found[0] + 1) if len(found) else 0.0
    return ranks


def sweep(rows: list[dict]) -> list[dict]:
    tuning = np.array([row["half"] for row in rows])
    table = []
    for variant in ("pairs", "content pairs", "triples"):
        for weight in WEIGHTS:
            rr = reciprocal_ranks(rows, variant, weight)
            table.append({"variant": variant, "weight": weight, "mrr_tuning": float(rr[tuning].mean()),
                          "mrr_held_out": float(rr[~tuning].mean()), "mrr_full": float(rr.mean()),
                          "r1_full": float((rr == 1).mean())})
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", type=Path, help="write the table as JSON here")
    parser.add_argument("--articles", type=int, help="only the first N articles (a quick look)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"{args.data} not found: put ../shared/eval beside the project (see its README).", file=sys.stderr)
        return 2
    table = sweep(collect(args.data, args.articles))
    print(f"{'variant':<14} {'w':>4} {'MRR tuning':>11} {'held-out':>9} {'full':>7} {'R@1 full':>9}")
    for row in table:
        print(f"{row['variant']:<14} {row['weight']:>4} {row['mrr_tuning']:>11.4f} {row['mrr_held_out']:>9.4f} "
              f"{row['mrr_full']:>7.4f} {row['r1_full']:>9.4f}")
    if args.json:
        report = {"data": str(args.data), "articles": args.articles, "rows": table}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
