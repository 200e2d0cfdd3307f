"""Sentence ranking: dense + BM25 candidates, re-scored by a tuned linear fusion of features.

The recipe and its weights were chosen by measurement on half of the SQuAD dev articles and
checked on the other half (bench/recipes.py, docs/quality.md). Features, per candidate sentence:

    sentence     cos(question, sentence)
    title        cos(question, "title: sentence")
    context      cos(question, "previous sentence next")      (same paragraph)
    mean         cos(question, unit mean of the three neighbours' vectors)
    paragraph    max sentence cosine within the sentence's paragraph
    neighbour    max sentence cosine of the previous/next sentence (own if none)
    bm25         BM25 of the sentence, z-scored over the candidates
    bm25_context BM25 of the sentence with its paragraph neighbours, z-scored over the candidates
    cues         0/1: the question asks for a number/date/person and the sentence has a new one
    phrase       how many of the question's adjacent word pairs the sentence holds (off by default:
                 it fixed one seed question and broke two others)

`Hit.confidence` is the part that does not depend on the other candidates. For questions in
CJK script the cosine features are replaced by term coverage (the default model is English-only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qa.config import Settings
from qa.corpus import Corpus
from qa.cues import cue_features
from qa.dense import DenseIndex
from qa.lexical import LexicalIndex, coverage, phrase_matches
from qa.questions import script_of


class Searchable(Protocol):
    """What ranking reads: an index snapshot (qa.index._State)."""

    corpus: Corpus
    embeddings: np.ndarray
    title_embeddings: np.ndarray
    context_embeddings: np.ndarray
    dense: DenseIndex
    lexical: LexicalIndex


@dataclass(frozen=True)
class Hit:
    """One ranked sentence.

    Attributes:
        sentence_id: row of the sentence in the corpus.
        score: the fused score that orders hits.
        confidence: the part of `score` that does not depend on the other candidates (the
            weighted cosines and cues, without the z-scored BM25), so it means the same in a
            one-article index as in a large one; compared with `Settings.abstain_threshold`.
        dense: cosine between question and sentence.
        lexical: raw BM25 score of the sentence.
    """

    sentence_id: int
    score: float
    confidence: float
    dense: float
    lexical: float


def candidates(state: Searchable, query_vector: np.ndarray, bm25: np.ndarray, k: int) -> np.ndarray:
    """Union of the dense top-k and the BM25 top-k (positive scores only), sorted by id."""
    _, dense_ids = state.dense.search(query_vector, k)
    k = min(k, len(bm25))
    lexical_ids = np.argpartition(-bm25, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
    lexical_ids = lexical_ids[bm25[lexical_ids] > 0]
    return np.union1d(dense_ids, lexical_ids).astype(np.int64)


def _zscore(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def _neighbour_features(state: Searchable, ids: np.ndarray, query_vector: np.ndarray) -> tuple[np.ndarray, ...]:
    """(mean, paragraph, neighbour) features of the candidates: see the module docstring."""
    corpus, vectors = state.corpus, state.embeddings
    previous, following = corpus.neighbours
    starts, ends = corpus.paragraph_bounds
    has_prev, has_next = previous[ids] >= 0, following[ids] >= 0
    prev_ids, next_ids = np.where(has_prev, previous[ids], ids), np.where(has_next, following[ids], ids)

    total = np.asarray(vectors[ids], dtype=np.float32).copy()
    total[has_prev] += vectors[prev_ids[has_prev]]
    total[has_next] += vectors[next_ids[has_next]]
    mean = (total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)) @ query_vector

    lengths = ends[ids] - starts[ids]
    members = np.repeat(starts[ids], lengths) + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    member_cos = np.asarray(vectors[members], dtype=np.float32) @ query_vector
    paragraph = np.maximum.reduceat(member_cos, np.cumsum(lengths) - lengths)

    neighbour_cos = np.asarray(vectors[np.concatenate([prev_ids, next_ids])], dtype=np.float32) @ query_vector
    neighbour = np.maximum(neighbour_cos[: len(ids)], neighbour_cos[len(ids) :])
    return mean, paragraph, neighbour


def rank(question: str, query_vector: np.ndarray, state: Searchable, settings: Settings) -> list[Hit]:
    """Every candidate sentence for a question, best first (ties broken by lower sentence id)."""
    if len(state.corpus) == 0:
        return []
    bm25 = state.lexical.scores(question)
    ids = candidates(state, query_vector, bm25, settings.candidates)
    w = settings.weights
    sentence_cos = np.asarray(state.embeddings[ids], dtype=np.float32) @ query_vector
    title_cos = np.asarray(state.title_embeddings[ids], dtype=np.float32) @ query_vector
    context_cos = np.asarray(state.context_embeddings[ids], dtype=np.float32) @ query_vector
    mean, paragraph, neighbour = _neighbour_features(state, ids, query_vector)
    bm25_context = state.lexical.context_scores(question, ids, state.corpus.neighbours)
    sentences = [state.corpus.sentence(int(i)) for i in ids]
    cues = cue_features(question, sentences)
    phrases = phrase_matches(question, sentences) if w.phrase else np.zeros(len(ids), dtype=np.float32)
    absolute = (
        w.sentence * sentence_cos
        + w.title * title_cos
        + w.context * context_cos
        + w.mean * mean
        + w.paragraph * paragraph
        + w.neighbour * neighbour
        + cues @ np.array([w.cue_number, w.cue_date, w.cue_person], dtype=np.float32)
    )
    if script_of(question) == "CJK":
        # The default encoder is English-only: its cosines between CJK texts are high and
        # meaningless, so term coverage stands in for them, on the same scale.
        absolute = coverage(question, sentences) * (w.sentence + w.title + w.context + w.mean + w.paragraph + w.neighbour)
    fused = absolute + w.bm25 * _zscore(bm25[ids]) + w.bm25_context * _zscore(bm25_context) + w.phrase * phrases
    order = np.lexsort((ids, -fused))
    return [
        Hit(int(ids[i]), float(fused[i]), float(absolute[i]), float(sentence_cos[i]), float(bm25[ids[i]]))
        for i in order
    ]
