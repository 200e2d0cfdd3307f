"""Merging segments, and the policy that decides when.

A merge builds one segment from the live rows of several: articles, sentence table, vectors,
BM25 counts and cue tokens are copied (nothing is encoded or tokenised again), deleted rows are
dropped, and the dense index is built afresh for the merged size. It is then committed like an
add: the merged segment takes the place of the first of the segments it replaces, so the order
of sentences, and every tie broken by id, stays as it was.

`MergePolicy` is logarithmic, like Lucene's LogMergePolicy and tantivy's: a segment's tier is the
log of its size in units of `floor` sentences, base `segments_per_tier`. When `segments_per_tier`
adjacent segments share a tier they are merged into one of the next tier. So the segment count
stays below about `segments_per_tier` per tier (log n tiers), and a sentence is rewritten once
per tier it climbs: O(log n) times over the archive's life. A segment whose rows are mostly
deleted is rewritten alone to reclaim them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qa.bm25 import LexicalIndex
from qa.corpus import Corpus
from qa.cues import CueTable
from qa.dense import DenseIndex
from qa.store.segment import Segment, SegmentData


def merge_segments(segments: Sequence[Segment]) -> SegmentData:
    """One segment's data holding the live rows of `segments`, in order."""
    corpora, keeps = [], []
    for segment in segments:
        corpus, keep = segment.data.corpus.only_articles(segment.live_articles())
        corpora.append(corpus)
        keeps.append(keep)
    corpus = Corpus.concatenate(corpora)

    def vectors(pick: str) -> np.ndarray:
        parts = [np.asarray(getattr(s.data, pick)[np.flatnonzero(keep)], dtype=np.float32) for s, keep in zip(segments, keeps)]
        return np.ascontiguousarray(np.concatenate(parts))

    embeddings, title_context = vectors("embeddings"), vectors("title_context_embeddings")
    lexical = LexicalIndex.concatenate([(s.data.lexical, keep) for s, keep in zip(segments, keeps)], corpus.neighbours)
    cues = CueTable.concatenate([s.data.cues.without(keep) for s, keep in zip(segments, keeps)])
    signatures = np.concatenate([np.asarray(s.data.signatures[s.live_articles()]) for s in segments])
    return SegmentData(corpus, embeddings, title_context, DenseIndex.build(embeddings), lexical, cues,
                       signatures.astype(np.uint64))


@dataclass(frozen=True)
class MergePolicy:
    """When to merge (see the module docstring).

    Attributes:
        segments_per_tier: adjacent segments of one tier merged at once; also the most one
            tier holds before a merge.
        floor: segments up to this many sentences share the lowest tier.
        reclaim_share: a segment with more than this share of its sentences deleted is rewritten.
    """

    segments_per_tier: int = 8
    floor: int = 2_000
    reclaim_share: float = 0.5

    def tier(self, sentences: int) -> int:
        """The size tier of a segment of `sentences` rows."""
        return int(math.log(max(sentences, self.floor) / self.floor, self.segments_per_tier) + 1e-9)

    def find_merge(self, sizes: Sequence[int], deleted: Sequence[int]) -> list[int] | None:
        """Positions of adjacent segments to merge next, or None. `sizes` counts every row of each
        segment, `deleted` its deleted rows; the lowest tier with a full run goes first."""
        for position, (size, dead) in enumerate(zip(sizes, deleted)):
            if size and dead > self.reclaim_share * size:
                return [position]
        tiers = [self.tier(size - dead) for size, dead in zip(sizes, deleted)]
        best: list[int] | None = None
        for start in range(len(tiers) - self.segments_per_tier + 1):
            window = tiers[start : start + self.segments_per_tier]
            if len(set(window)) == 1 and (best is None or window[0] < tiers[best[0]]):
                best = list(range(start, start + self.segments_per_tier))
        return best
