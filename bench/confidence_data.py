"""Question sets for the confidence lever study (`python -m bench.confidence`): who is asked what, of which articles.

Every set is a list of `Asked` records: the question, its hits as the engine ranks them, and
the rank of the first correct hit (0 when none is correct or the set is out of corpus).
The indexes are built the way `qa eval squad` builds them (folders of article files,
`Index.build` then `Index.add`), through the embedding cache.

    full          all SQuAD questions, all 48 articles indexed           (answerable)
    half          all SQuAD questions, the tuning half's 24 indexed      (tuning-half questions answerable,
                                                                           held-out-half questions out of corpus)
    quarter       the tuning half's questions, 12 of its articles indexed (fitting only: the other 12's
                                                                           questions are out of corpus)
    seed          all SQuAD questions asked of the seed article alone    (out of corpus: news vs encyclopedia)
    news          bench/data/ooc-news-questions.jsonl, all 48 indexed    (out of corpus: topics SQuAD lacks)
    seed_rows     ../shared/eval/seed-questions.jsonl, the seed article  (the product's own rows)
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT.parent / "shared" / "eval" / "squad-dev-v1.1.json.gz"
SEED_ROWS = ROOT.parent / "shared" / "eval" / "seed-questions.jsonl"
NEWS = ROOT / "bench" / "data" / "ooc-news-questions.jsonl"


@dataclass
class Asked:
    """One question put to one index."""

    question: str  # the text searched (resolved)
    hits: list  # qa.ranking.Hit, best first
    rank: int  # 1-based rank of the first correct hit; 0 if none
    answerable: bool  # a gold answer is in the indexed articles
    tuning: bool  # the question comes from a tuning-half article (SQuAD sets)
    index: str  # which index: "full", "half", "quarter", "seed"


def _rows_by_text(index: Any, texts: Sequence[str]) -> dict[int, int]:
    by_text = {article.text: row for row, article in enumerate(index._state.corpus.articles)}
    return {number: by_text[text] for number, text in enumerate(texts) if text in by_text}


def _ask(index: Any, name: str, squad: Any, texts: list, vectors: np.ndarray, chosen: np.ndarray,
         tuning: np.ndarray) -> list[Asked]:
    from qa.corpus import ARTICLE, END, START
    from qa.evaluation.metrics import first_hit_rank
    from qa.evaluation.run import rank_many

    rows = _rows_by_text(index, [a.text for a in squad.articles])
    table = index._state.corpus.table
    picked = np.flatnonzero(chosen)
    out = []
    for i, hits in zip(picked, rank_many(index, [texts[i] for i in picked], vectors[picked])):
        golds = [(rows[g.article], g.offset) for g in squad.questions[i].golds if g.article in rows]
        rank = 0
        if hits and golds:
            cited = table[[h.sentence_id for h in hits]]
            rank = first_hit_rank(cited[:, ARTICLE], cited[:, START], cited[:, END], golds)
        out.append(Asked(texts[i] or "", hits, rank, bool(golds), bool(tuning[i]), name))
    return out


def _write(folder: Path, articles: Sequence[Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for article in articles:
        with (folder / f"{article.file_name}.txt").open("w", encoding="utf-8", newline="") as handle:
            handle.write(article.text)
    return folder


def read_rows(path: Path) -> list[dict]:
    """JSONL rows of a question file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def collect(articles: int | None = None, log: Any = print) -> dict[str, Any]:
    """Ask every set of its index; returns {set name: [Asked]} plus the indexes' states."""
    from qa.cache import cached_encode
    from qa.config import default_source_path
    from qa.evaluation.run import resolved_questions
    from qa.evaluation.squad import TUNING, load_squad
    from qa.index import Index

    squad = load_squad(SQUAD, articles)
    tuning = np.array([squad.articles[q.article].half == TUNING for q in squad.questions])
    tuning_articles = sorted((a for a in squad.articles if a.half == TUNING), key=lambda a: a.title)
    quarter = {a.title for a in tuning_articles[::2]}  # every other tuning article: fitting-only split
    in_quarter = np.array([squad.articles[q.article].title in quarter for q in squad.questions])
    sets: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="qa-confidence-") as tmp:
        base = Path(tmp)
        quarter_dir = _write(base / "quarter", [a for a in tuning_articles if a.title in quarter])
        rest_dir = _write(base / "rest", [a for a in tuning_articles if a.title not in quarter])
        held_dir = _write(base / "held", [a for a in squad.articles if a.half != TUNING])
        index = Index.build(quarter_dir, base / "index")
        texts = resolved_questions([q.text for q in squad.questions], index.settings)
        vectors = cached_encode(index.encoder, [t or "" for t in texts])
        log("quarter")
        sets["quarter"] = _ask(index, "quarter", squad, texts, vectors, tuning, tuning)
        sets["quarter_state"] = index._state
        index.add(rest_dir)
        log("half")
        sets["half"] = _ask(index, "half", squad, texts, vectors, np.ones(len(texts), bool), tuning)
        sets["half_state"] = index._state
        index.add(held_dir)
        log("full")
        sets["full"] = _ask(index, "full", squad, texts, vectors, np.ones(len(texts), bool), tuning)
        sets["full_state"] = index._state
        news = [r["question"] for r in read_rows(NEWS)]
        sets["news"] = [Asked(q, index.search(q)[1], 0, False, False, "full") for q in news]
        seed = Index.build(default_source_path(), base / "seed-index")
        log("seed")
        sets["seed"] = _ask(seed, "seed", squad, texts, vectors, np.ones(len(texts), bool), tuning)
        sets["seed_state"] = seed._state
        seed_rows = []
        for row in read_rows(SEED_ROWS):
            query, hits = seed.search(row["question"], row.get("history"))
            right = bool(hits) and "expect" in row and row["expect"] in seed._state.corpus.sentence(hits[0].sentence_id)
            seed_rows.append(Asked(query, hits, 1 if right else 0, not row.get("abstain"), False, "seed"))
        sets["seed_rows"] = seed_rows
        sets["in_quarter"] = in_quarter
    return sets
