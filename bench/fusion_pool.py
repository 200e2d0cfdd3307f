"""Every candidate the engine ranks for every question, with its fusion features, as flat arrays.

`qa.ranking.rank` fuses features that do not depend on the weights (the candidate set, the
cosines from the sentence vectors, BM25, cues) with two that depend on what was embedded (the
"title" and "context" slots of `title-context-embeddings.npy`). This module runs the engine's
own candidate and feature code once per question, keeps the weight-independent features, and
then scores any recipe (any pair of slot vectors, any FusionWeights) with numpy alone, so a
weight search costs milliseconds per trial instead of a `qa eval squad` run.

Ranks follow the engine exactly: fused score descending, ties broken by lower sentence id; a
question whose correct sentence is not among its candidates scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from qa.config import FusionWeights, Settings
from qa.corpus import ARTICLE, END, START
from qa.evaluation import metrics
from qa.questions import script_of
from qa.ranking import _zscores, shard_candidates

# Weight-independent features, named as the FusionWeights fields that multiply them.
BASE = ("sentence", "mean", "paragraph", "neighbour", "bm25", "bm25_context", "cue_number", "cue_date", "cue_person")
SLOTS = ("title", "context")  # from the stored slot vectors: recipe-dependent
NOT_IN_CONFIDENCE = ("bm25", "bm25_context")  # the z-scored parts (see qa.ranking.Hit.confidence)
# The grid and the anchor of bench/recipes.py's coordinate ascent (tune_linear).
GRID = (0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5)
TUNED = ("title", "context", "mean", "paragraph", "neighbour", "bm25", "bm25_context", "cue_number", "cue_date", "cue_person")


@dataclass
class Pool:
    """Flat candidate table of one index snapshot: row r is candidate `ids[r]` of question `question[r]`."""

    offsets: np.ndarray  # (questions + 1,): question i's rows are offsets[i]:offsets[i + 1]
    ids: np.ndarray
    question: np.ndarray
    label: np.ndarray  # the candidate holds a gold answer start (qa.evaluation.metrics.holds_gold)
    base: dict[str, np.ndarray]
    cjk: int  # questions the engine scores by term coverage instead (none in SQuAD dev)

    @property
    def questions(self) -> int:
        return len(self.offsets) - 1

    def slot_features(self, slots: np.ndarray, query_vectors: np.ndarray) -> dict[str, np.ndarray]:
        """The title and context cosines of every candidate, from (n, 2 x d) slot vectors (engine layout)."""
        d = query_vectors.shape[1]
        out = {name: np.empty(len(self.ids), dtype=np.float32) for name in SLOTS}
        for first in range(0, len(self.ids), 200_000):  # bounded temporaries
            rows = slice(first, first + 200_000)
            pairs = np.asarray(slots[self.ids[rows]], dtype=np.float32)
            q = query_vectors[self.question[rows]]
            out["title"][rows] = np.einsum("ij,ij->i", pairs[:, :d], q)
            out["context"][rows] = np.einsum("ij,ij->i", pairs[:, d:], q)
        return out


def extract(state: object, texts: Sequence[str | None], vectors: np.ndarray, golds: Sequence[list[tuple[int, int]]],
            settings: Settings) -> Pool:
    """Run `qa.ranking.rank` up to the fusion for every question against snapshot `state`.

    Args:
        state: a `qa.store.snapshot.Snapshot` (the engine's own candidate and feature code runs on it).
        texts: resolved questions (None: refused by the engine, no candidates).
        vectors: their vectors, row for row.
        golds: per question, (article row, offset) pairs in this snapshot.
    """
    table = state.corpus.table
    parts: dict[str, list[np.ndarray]] = {name: [] for name in (*BASE, "ids", "label")}
    counts = np.zeros(len(texts), dtype=np.int64)
    cjk = 0
    for i, text in enumerate(texts):
        if text is None:
            continue
        query = np.asarray(vectors[i], dtype=np.float32)
        found = shard_candidates(text, query, state, state.statistics(text), settings)  # one shard: every candidate
        ids = found.ids
        bm25_z, context_z = _zscores(np.stack([found.bm25, found.bm25_context]))
        cjk += script_of(text) == "CJK"
        sentence, mean, paragraph, neighbour, cues = found.sentence, found.mean, found.paragraph, found.neighbour, found.cues
        rows = table[ids]
        for name, values in zip(BASE, (sentence, mean, paragraph, neighbour, bm25_z, context_z, *cues.T)):
            parts[name].append(np.asarray(values, dtype=np.float32))
        parts["ids"].append(ids)
        parts["label"].append(metrics.holds_gold(rows[:, ARTICLE], rows[:, START], rows[:, END], golds[i]))
        counts[i] = len(ids)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    joined = {name: np.concatenate(values) if values else np.zeros(0) for name, values in parts.items()}
    return Pool(offsets, joined.pop("ids").astype(np.int64), np.repeat(np.arange(len(texts)), counts),
                joined.pop("label").astype(bool), {k: v.astype(np.float32) for k, v in joined.items()}, cjk)


def weights_dict(weights: FusionWeights) -> dict[str, float]:
    return {f.name: float(getattr(weights, f.name)) for f in fields(weights) if f.name != "phrase"}


def scores(pool: Pool, slots: dict[str, np.ndarray], weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(fused, absolute) per candidate, as `qa.ranking.rank` computes them (phrase weight 0)."""
    features = {**pool.base, **slots}
    absolute = np.zeros(len(pool.ids), dtype=np.float32)
    for name, weight in weights.items():
        if weight and name not in NOT_IN_CONFIDENCE:
            absolute += np.float32(weight) * features[name]
    fused = absolute + np.float32(weights["bm25"]) * features["bm25"] + np.float32(weights["bm25_context"]) * features["bm25_context"]
    return fused, absolute


def ranks(pool: Pool, fused: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of each question's first correct candidate (0: none), engine order."""
    rank = np.zeros(pool.questions, dtype=np.int64)
    counts = np.diff(pool.offsets)
    nonempty = np.flatnonzero(counts > 0)
    starts = pool.offsets[nonempty]
    best = np.full(pool.questions, -np.inf, dtype=np.float32)
    best[nonempty] = np.maximum.reduceat(np.where(pool.label, fused, -np.inf), starts)
    expanded = np.repeat(best, counts)
    hit = pool.label & (fused == expanded)
    first_id = np.full(pool.questions, np.iinfo(np.int64).max)
    first_id[nonempty] = np.minimum.reduceat(np.where(hit, pool.ids, np.iinfo(np.int64).max), starts)
    ahead = (fused > expanded) | ((fused == expanded) & (pool.ids < np.repeat(first_id, counts)))
    rank[nonempty] = np.add.reduceat(ahead, starts) + 1
    rank[~np.isfinite(best)] = 0
    return rank if rows is None else rank[rows]


def top_confidences(pool: Pool, fused: np.ndarray, absolute: np.ndarray) -> np.ndarray:
    """`Answer.confidence` of each question: the absolute part of its top hit (0 without candidates)."""
    order = np.lexsort((pool.ids, -fused, pool.question))
    out = np.zeros(pool.questions, dtype=np.float64)
    counts = np.diff(pool.offsets)
    nonempty = counts > 0
    out[nonempty] = absolute[order[pool.offsets[:-1][nonempty]]]
    return out


def mrr(rank: np.ndarray) -> float:
    return metrics.mrr(rank)


def tune(pool: Pool, slots: dict[str, np.ndarray], rows: np.ndarray, start: dict[str, float] | None = None,
         names: Sequence[str] = TUNED, passes: int | None = None) -> tuple[dict[str, float], float]:
    """Coordinate ascent of the weights on the MRR of questions `rows`, as bench/recipes.py's
    `tune_linear`: sentence weight fixed at 1, the others over GRID, 2 passes (> 8 features),
    from zero or from `start`."""
    mask = np.zeros(pool.questions, dtype=bool)
    mask[rows] = True
    keep = mask[pool.question]
    sub = Pool(np.concatenate([[0], np.cumsum(np.diff(pool.offsets)[mask])]), pool.ids[keep],
               np.repeat(np.arange(mask.sum()), np.diff(pool.offsets)[mask]), pool.label[keep],
               {k: v[keep] for k, v in pool.base.items()}, 0)
    sub_slots = {k: v[keep] for k, v in slots.items()}
    weights = dict(start) if start else {**{name: 0.0 for name in weights_dict(FusionWeights())}, "sentence": 1.0}

    def value(trial: dict[str, float]) -> float:
        return mrr(ranks(sub, scores(sub, sub_slots, trial)[0]))

    best = value(weights)
    for _ in range(passes or (3 if len(names) <= 8 else 2)):
        improved = False
        for name in names:
            for candidate in GRID:
                if candidate == weights[name]:
                    continue
                trial = {**weights, name: float(candidate)}
                score = value(trial)
                if score > best + 1e-5:
                    best, weights, improved = score, trial, True
        if not improved:
            break
    return weights, best
