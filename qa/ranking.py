"""Sentence ranking: dense and BM25 candidates, re-scored by a linear fusion of three features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.config import Settings
from qa.corpus import ARTICLE, Corpus
from qa.dense import DenseIndex
from qa.lexical import LexicalIndex


@dataclass(frozen=True)
class Hit:
    """One ranked sentence with the features behind its score."""

    sentence_id: int
    score: float
    dense: float
    context: float
    lexical: float


def context_vectors(corpus: Corpus, embeddings: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Unit mean of each sentence's vector and its neighbours' in the same article.

    A sentence that continues a topic ("It reached 290,300 units") is found through its
    neighbours; averaging stored vectors costs no extra encoding.
    """
    total = embeddings[ids].astype(np.float32, copy=True)
    articles = corpus.table[:, ARTICLE]
    for offset in (-1, 1):
        neighbour = ids + offset
        valid = (neighbour >= 0) & (neighbour < len(corpus))
        valid[valid] &= articles[neighbour[valid]] == articles[ids[valid]]
        total[valid] += embeddings[neighbour[valid]]
    norms = np.linalg.norm(total, axis=1, keepdims=True)
    return total / np.maximum(norms, 1e-12)


def rank(
    question: str,
    query_vector: np.ndarray,
    *,
    corpus: Corpus,
    embeddings: np.ndarray,
    dense: DenseIndex,
    lexical: LexicalIndex,
    settings: Settings,
) -> list[Hit]:
    """All candidate sentences for a question, best first (ties broken by lower sentence id)."""
    if len(corpus) == 0:
        return []
    _, dense_ids = dense.search(query_vector, settings.candidates)
    bm25 = lexical.scores(question)
    k = min(settings.candidates, len(bm25))
    lexical_ids = np.argpartition(-bm25, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
    lexical_ids = lexical_ids[bm25[lexical_ids] > 0]
    ids = np.union1d(dense_ids, lexical_ids).astype(np.int64)

    sentence_cos = embeddings[ids] @ query_vector
    context_cos = context_vectors(corpus, embeddings, ids) @ query_vector
    top_bm25 = float(bm25[ids].max()) if len(ids) else 0.0
    lexical_norm = bm25[ids] / top_bm25 if top_bm25 > 0 else np.zeros(len(ids), dtype=np.float32)
    fused = (
        settings.weight_sentence * sentence_cos
        + settings.weight_context * context_cos
        + settings.weight_lexical * lexical_norm
    )
    order = np.lexsort((ids, -fused))
    return [
        Hit(int(ids[i]), float(fused[i]), float(sentence_cos[i]), float(context_cos[i]), float(lexical_norm[i]))
        for i in order
    ]
