"""Retrieval and abstention metrics over per-question results.

A question's *rank* is the 1-based position of the first correct sentence among the engine's
candidates, or 0 when no candidate is correct (it then counts as a miss everywhere).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def first_hit_rank(
    articles: np.ndarray, starts: np.ndarray, ends: np.ndarray, golds: Sequence[tuple[int, int]]
) -> int:
    """Rank of the first candidate whose span holds a gold answer start, or 0.

    Args:
        articles, starts, ends: per candidate, best first: its article and its `[start, end)` span.
        golds: (article, offset) pairs; a candidate is correct when it is in that article and
            `start <= offset < end` (spans never cross paragraphs, so this is the gold paragraph).
    """
    if not len(articles) or not golds:
        return 0
    found = np.flatnonzero(holds_gold(articles, starts, ends, golds))
    return int(found[0]) + 1 if len(found) else 0


def holds_gold(articles: np.ndarray, starts: np.ndarray, ends: np.ndarray, golds: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per candidate (arguments as in `first_hit_rank`): does its span hold a gold answer start?"""
    correct = np.zeros(len(articles), dtype=bool)
    for article, offset in golds:
        correct |= (articles == article) & (starts <= offset) & (offset < ends)
    return correct


def mrr(ranks: np.ndarray) -> float:
    """Mean reciprocal rank; a rank of 0 (not found) contributes 0."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if not len(ranks):
        return float("nan")
    return float(np.where(ranks > 0, 1.0 / np.maximum(ranks, 1.0), 0.0).mean())


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Share of questions whose first correct sentence is in the top `k`."""
    ranks = np.asarray(ranks)
    if not len(ranks):
        return float("nan")
    return float(((ranks > 0) & (ranks <= k)).mean())


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive scores above a random negative.

    Ties count one half (the Mann-Whitney U statistic with average ranks). NaN when either
    class is empty.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    # Average the ranks of tied scores.
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = sums[inverse] / counts[inverse]
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def abstain_rate(confidences: np.ndarray, threshold: float) -> float:
    """Share of questions whose top score is below the threshold (as `compose` decides)."""
    confidences = np.asarray(confidences, dtype=np.float64)
    if not len(confidences):
        return float("nan")
    return float((confidences < threshold).mean())


def summary(ranks: np.ndarray, confidences: np.ndarray, threshold: float) -> dict[str, float | int]:
    """MRR, R@1, R@5, R@10, abstain rate and miss counts for one group of questions."""
    ranks = np.asarray(ranks)
    return {
        "questions": int(len(ranks)),
        "mrr": mrr(ranks),
        "r@1": recall_at(ranks, 1),
        "r@5": recall_at(ranks, 5),
        "r@10": recall_at(ranks, 10),
        "abstain_rate": abstain_rate(confidences, threshold),
        "not_in_candidates": int((ranks == 0).sum()),
    }


def threshold_for_abstain_rate(confidences: np.ndarray, rate: float) -> float:
    """The highest threshold at which at most `rate` of these questions would abstain.

    Abstaining means confidence < threshold, so the answer is the confidence at position
    floor(rate * n) of the sorted list: only the values below it abstain.
    """
    confidences = np.sort(np.asarray(confidences, dtype=np.float64))
    if not len(confidences):
        return float("nan")
    return float(confidences[min(int(np.floor(rate * len(confidences))), len(confidences) - 1)])


def answered_figures(ranks: np.ndarray, abstained: np.ndarray) -> dict[str, float | int]:
    """What users of answerable questions see: the first citation right, wrong, or an abstention.

    Answered-and-right means the first citation (the top hit) holds a gold answer (rank 1); an
    abstention is a miss. The three rates add up to 1.
    """
    ranks, abstained = np.asarray(ranks), np.asarray(abstained, dtype=bool)
    right = ~abstained & (ranks == 1)
    wrong = ~abstained & (ranks != 1)
    n = len(ranks)
    return {
        "questions": int(n),
        "answered_right": float(right.mean()) if n else float("nan"),
        "answered_wrong": float(wrong.mean()) if n else float("nan"),
        "abstained": float(abstained.mean()) if n else float("nan"),
        "counts": {"answered_right": int(right.sum()), "answered_wrong": int(wrong.sum()),
                   "abstained": int(abstained.sum())},
    }


def out_of_corpus_figures(abstained: np.ndarray) -> dict[str, float | int]:
    """What users of out-of-corpus questions see: an abstention, or an answer that can only be wrong."""
    abstained = np.asarray(abstained, dtype=bool)
    n = len(abstained)
    return {
        "questions": int(n),
        "abstained": float(abstained.mean()) if n else float("nan"),
        "answered_wrong": float((~abstained).mean()) if n else float("nan"),
        "counts": {"abstained": int(abstained.sum()), "answered_wrong": int((~abstained).sum())},
    }
