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
                 within noise on SQuAD, and no weight passes every seed question;
                 `python -m bench.proximity`, docs/quality.md)

Two phases, so that shards of an index (`qa.cluster`) rank as the whole index does:
`shard_candidates` gives one shard's dense and BM25 top-k with every raw feature, under the
corpus-wide BM25 statistics; `fuse` takes the corpus-wide top-k of each from all shards' rows,
z-scores and fuses them. One index is one shard: `rank() = fuse([shard_candidates(index)])`.
The BM25 part of phase one needs no query vector (`lexical_top`, `lexical_half`): `Index` runs it
while the question is being encoded (`qa.overlap`).

`Hit.confidence` is the part that does not depend on the other candidates: one feature of the
answer's confidence (`qa/confidence.py`), not compared with the threshold itself. For questions in
CJK script the cosine features are replaced by term coverage (the default model is English-only).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from qa.arrays import ranges, sorted_union
from qa.config import Settings
from qa.corpus import Corpus
from qa.bm25 import Statistics
from qa.cues import asks_for_cue
from qa.lexical import coverage, phrase_matches
from qa.questions import script_of


class Searchable(Protocol):
    """What ranking reads: the segments of one commit read as one corpus (qa.store.Snapshot).

    Sentence ids are global; features come from the segment that holds each sentence, and BM25
    statistics from all of them, so a ranking does not depend on how the corpus is segmented.
    """

    corpus: Corpus
    embeddings: np.ndarray
    title_context_embeddings: np.ndarray  # row i: the title vector, then the context vector, of sentence i
    neighbour_dots: np.ndarray  # see `neighbour_dots`; read only when every segment is flat

    def statistics(self, question: str) -> Statistics: ...

    def similarities(self, query_vector: np.ndarray) -> np.ndarray | None: ...

    def dense_top_scored(self, query_vector: np.ndarray, k: int,
                         similarities: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]: ...

    def lexical_top_scored(self, question: str, k: int, stats: Statistics) -> tuple[np.ndarray, np.ndarray]: ...

    def lexical_scores(self, question: str, ids: np.ndarray, stats: Statistics) -> tuple[np.ndarray, np.ndarray]: ...

    def every_lexical_score(self, question: str, stats: Statistics) -> tuple[np.ndarray, np.ndarray] | None: ...

    def cue_features(self, question: str, ids: np.ndarray) -> np.ndarray: ...


class Hit(NamedTuple):
    """One ranked sentence.

    Attributes:
        sentence_id: row of the sentence in the corpus.
        score: the fused score that orders hits.
        confidence: the part of `score` that does not depend on the other candidates (the
            weighted cosines and cues, without the z-scored BM25), so it means the same in a
            one-article index as in a large one; one feature of the answer confidence
            (`qa/confidence.py`).
        dense: cosine between question and sentence.
        lexical: raw BM25 score of the sentence.
    """

    sentence_id: int
    score: float
    confidence: float
    dense: float
    lexical: float


def _zscores(values: np.ndarray) -> np.ndarray:
    """`values` z-scored; constant values give zeros. The same arithmetic as `np.std`, without
    its dozen Python-level steps (a question z-scores two columns)."""
    if not len(values):
        return values.copy()
    centred = values - values.mean()
    spread = np.sqrt(np.multiply(centred, centred).sum() / len(values))
    return centred / spread if spread > 0 else np.zeros_like(centred)


def neighbour_dots(vectors: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(n, 3) dot products of each sentence's vector with its previous and next sentence's, and of
    those two with each other (0 where a neighbour is missing): with them, the `mean` feature
    needs no vector reads when every cosine is already known."""
    previous, following = neighbours
    dots = np.zeros((len(vectors), 3), dtype=np.float32)
    for first in range(0, len(vectors), 8192):  # bounded temporaries
        rows = np.arange(first, min(first + 8192, len(vectors)))
        own = np.asarray(vectors[rows], dtype=np.float32)
        before = np.asarray(vectors[np.maximum(previous[rows], 0)], dtype=np.float32)
        after = np.asarray(vectors[np.maximum(following[rows], 0)], dtype=np.float32)
        has_prev, has_next = previous[rows] >= 0, following[rows] >= 0
        dots[rows, 0] = np.einsum("ij,ij->i", own, before) * has_prev
        dots[rows, 1] = np.einsum("ij,ij->i", own, after) * has_next
        dots[rows, 2] = np.einsum("ij,ij->i", before, after) * (has_prev & has_next)
    return dots


def _paragraph_features(state: Searchable, ids: np.ndarray, query_vector: np.ndarray,
                        similarities: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(sentence, mean, paragraph, neighbour) features of the candidates: see the module docstring.

    With `similarities` (the query against every sentence, from a flat index) every cosine is
    known and the mean of three unit vectors follows from their pairwise dot products
    (`Searchable.neighbour_dots`): nothing is read. Otherwise every vector needed is in a
    candidate's paragraph, so the paragraphs are read once, as consecutive runs of rows (one
    read per paragraph when the vectors are on disk).
    """
    corpus = state.corpus
    previous, following = corpus.neighbours
    starts, ends = corpus.paragraph_bounds
    lengths = ends[ids] - starts[ids]
    members = ranges(starts[ids], lengths)  # each candidate's paragraph, one after the other
    firsts = np.cumsum(lengths) - lengths
    has_prev, has_next = previous[ids] >= 0, following[ids] >= 0
    before = np.where(has_prev, previous[ids], ids)  # a missing neighbour counts as the sentence itself
    after = np.where(has_next, following[ids], ids)
    if similarities is not None:
        own, prev_cos, next_cos = similarities[ids], similarities[before], similarities[after]
        dots = state.neighbour_dots[ids]
        with_prev, with_next = has_prev.astype(np.float32), has_next.astype(np.float32)
        # |a + b + c|^2 for unit vectors, counting only the neighbours that exist.
        squared = 1 + with_prev + with_next + 2 * (dots[:, 0] + dots[:, 1] + dots[:, 2])
        mean = (own + with_prev * prev_cos + with_next * next_cos) / np.sqrt(np.maximum(squared, 1e-12))
        paragraph = np.maximum.reduceat(similarities[members], firsts)
        return own, mean, paragraph, np.maximum(prev_cos, next_cos)
    rows = np.unique(members)
    block = np.asarray(state.embeddings[rows], dtype=np.float32)
    cosines = block @ query_vector

    def at(sentence_ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(rows, sentence_ids)

    own, prev_at, next_at = at(ids), at(before), at(after)
    total = block[own] + block[prev_at] * has_prev[:, None] + block[next_at] * has_next[:, None]
    mean = (total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)) @ query_vector
    paragraph = np.maximum.reduceat(cosines[at(members)], firsts)
    neighbour = np.maximum(cosines[prev_at], cosines[next_at])
    return cosines[own], mean, paragraph, neighbour


class Candidates(NamedTuple):
    """One shard's candidates for a question, with every raw feature (phase one of ranking).

    Rows are sentences in ascending global id. A row is in the shard's dense top-k when its
    `dense_score` is finite and in its BM25 top-k when `lexical_score` is; `fuse` takes the
    corpus-wide top-k of each from every shard's rows. Nothing here depends on the other
    candidates, so shards can compute it apart; the z-scores are taken in `fuse`.
    """

    ids: np.ndarray  # global sentence ids, ascending
    dense_score: np.ndarray  # the score the dense top-k was chosen by; -inf when not in it
    lexical_score: np.ndarray  # BM25 score the lexical top-k was chosen by; -inf when not in it
    sentence: np.ndarray  # the cosine features of the module docstring
    title: np.ndarray
    context: np.ndarray
    mean: np.ndarray
    paragraph: np.ndarray
    neighbour: np.ndarray
    bm25: np.ndarray
    bm25_context: np.ndarray
    cues: np.ndarray  # (n, 3) number/date/person cues; zeros when the question asks for none
    phrase: np.ndarray
    coverage: np.ndarray | None  # CJK questions only: term coverage, standing in for the cosines

    def take(self, rows: np.ndarray) -> "Candidates":
        """The candidates at positions `rows`."""
        return Candidates(*(None if column is None else column[rows] for column in self))

    @classmethod
    def concatenate(cls, parts: "list[Candidates]") -> "Candidates":
        """Several shards' candidates as one table, by ascending global id."""
        if len(parts) == 1:
            return parts[0]
        joined = Candidates(*(None if any(p[i] is None for p in parts) else np.concatenate([p[i] for p in parts])
                              for i in range(len(cls._fields))))
        return joined.take(np.argsort(joined.ids, kind="stable"))


class LexicalTop(NamedTuple):
    """The part of phase one that needs no query vector: BM25 statistics and top-k of a question."""

    stats: Statistics  # corpus-wide
    ids: np.ndarray  # the state's BM25 top-k, ascending
    scores: np.ndarray  # their BM25 scores under `stats`
    # The BM25 of every sentence and of its context (`lexical_half`), or None: looked up per candidate.
    every_row: tuple[np.ndarray, np.ndarray] | None = None


def lexical_top(question: str, state: Searchable, settings: Settings) -> LexicalTop:
    """BM25 statistics of the question over all of `state` and its BM25 top-k there."""
    stats = state.statistics(question)
    return LexicalTop(stats, *state.lexical_top_scored(question, settings.candidates, stats))


def lexical_half(question: str, state: Searchable, settings: Settings) -> LexicalTop:
    """`lexical_top`, with the candidates' BM25 features taken in advance for every sentence where
    `state` can (`Searchable.every_lexical_score`): work for a helper thread while the question is
    encoded, which leaves phase one a lookup instead."""
    top = lexical_top(question, state, settings)
    return top._replace(every_row=state.every_lexical_score(question, top.stats))


def shard_candidates(question: str, query_vector: np.ndarray, state: Searchable, stats: Statistics,
                     settings: Settings, offset: int = 0, lexical: LexicalTop | None = None) -> Candidates:
    """Phase one: the dense and BM25 top-k of `state` (a whole index or one shard of it), with
    their raw features. `stats` are the corpus-wide BM25 statistics; `offset` turns the state's
    ids into global ones; `lexical` is the state's `lexical_top` (or `lexical_half`) under
    `stats` when already taken."""
    k = settings.candidates
    similarities = state.similarities(query_vector)
    dense_ids, dense_scores = state.dense_top_scored(query_vector, k, similarities)
    lexical_ids, lexical_scores = ((lexical.ids, lexical.scores) if lexical is not None
                                   else state.lexical_top_scored(question, k, stats))
    ids = sorted_union(dense_ids, lexical_ids)
    dense_score = np.full(len(ids), -np.inf, dtype=np.float64)
    dense_score[np.searchsorted(ids, dense_ids)] = dense_scores
    lexical_score = np.full(len(ids), -np.inf, dtype=np.float64)
    lexical_score[np.searchsorted(ids, lexical_ids)] = lexical_scores
    if lexical is not None and lexical.every_row is not None:
        bm25, bm25_context = lexical.every_row[0][ids], lexical.every_row[1][ids]
    else:
        bm25, bm25_context = state.lexical_scores(question, ids, stats)
    w = settings.weights
    sentence_cos, mean, paragraph, neighbour = _paragraph_features(state, ids, query_vector, similarities)
    pairs = np.asarray(state.title_context_embeddings[ids], dtype=np.float32)  # (n, 2 x dimension)
    title_cos, context_cos = (pairs.reshape(2 * len(ids), -1) @ query_vector).reshape(len(ids), 2).T
    cjk = script_of(question) == "CJK"
    # Candidate text is sliced out only for the features that read it.
    sentences = state.corpus.sentences(ids) if w.phrase or cjk else None
    phrases = phrase_matches(question, sentences) if w.phrase and sentences else np.zeros(len(ids), dtype=np.float32)
    covered = (coverage(question, sentences) if sentences else np.zeros(0, dtype=np.float32)) if cjk else None
    cues = (state.cue_features(question, ids) if asks_for_cue(question) and not cjk
            else np.zeros((len(ids), 3), dtype=np.float32))
    return Candidates(ids + offset, dense_score, lexical_score, sentence_cos, title_cos, context_cos, mean, paragraph,
                      neighbour, bm25, bm25_context, cues, phrases, covered)


def fuse(question: str, shards: list[Candidates], settings: Settings) -> list[Hit]:
    """Phase two: the corpus-wide dense and BM25 top-k from every shard's candidates, united,
    scored by the tuned fusion; best first, ties broken by lower sentence id."""
    table = Candidates.concatenate(shards)
    if len(shards) > 1:  # one shard's rows are already its top-k of each kind
        k = settings.candidates
        chosen = []
        for score in (table.dense_score, table.lexical_score):
            held = np.flatnonzero(np.isfinite(score))
            chosen.append(held[np.lexsort((table.ids[held], -score[held]))[:k]])
        table = table.take(sorted_union(*chosen))  # positions ascend with the ids
    ids = table.ids
    w = settings.weights
    cjk = script_of(question) == "CJK"
    absolute = (
        w.sentence * table.sentence
        + w.title * table.title
        + w.context * table.context
        + w.mean * table.mean
        + w.paragraph * table.paragraph
        + w.neighbour * table.neighbour
    )
    if cjk and table.coverage is not None:
        # The default encoder is English-only: its cosines between CJK texts are high and
        # meaningless, so term coverage stands in for them, on the same scale.
        absolute = table.coverage * (w.sentence + w.title + w.context + w.mean + w.paragraph + w.neighbour)
    bm25_z, context_z = _zscores(table.bm25), _zscores(table.bm25_context)
    fused = absolute + w.bm25 * bm25_z + w.bm25_context * context_z + w.phrase * table.phrase
    if asks_for_cue(question) and not cjk:
        gained = table.cues @ np.array([w.cue_number, w.cue_date, w.cue_person], dtype=np.float32)
        absolute += gained
        fused += gained
    order = np.lexsort((ids, -fused))
    columns = zip(ids[order].tolist(), fused[order].tolist(), absolute[order].tolist(),
                  table.sentence[order].tolist(), table.bm25[order].tolist())
    return list(map(Hit._make, columns))


def rank(question: str, query_vector: np.ndarray, state: Searchable, settings: Settings,
         lexical: LexicalTop | None = None) -> list[Hit]:
    """Every candidate sentence for a question, best first (ties broken by lower sentence id):
    the two phases over the whole index as one shard. `lexical`: `lexical_top` of the same
    question and state, when already taken."""
    if len(state.corpus) == 0:
        return []
    lexical = lexical or lexical_top(question, state, settings)
    found = shard_candidates(question, query_vector, state, lexical.stats, settings, lexical=lexical)
    return fuse(question, [found], settings)
