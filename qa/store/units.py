"""Reading units: how a snapshot's segments are read per question.

Every segment a question reads costs it a dozen small numpy calls per phase (BM25 statistics,
BM25 top-k, candidate BM25, cues), whatever its size: ~0.4 ms a segment, against ~5 ns a
sentence. So runs of adjacent small segments without deletions are joined in memory into one
unit, once per snapshot: their corpus, BM25 postings and cue tokens are copied into one of each
(nothing is encoded or tokenised again), rows and order unchanged. A question sees the same
rows, ids and scores; only the number of calls drops (1M sentences in 16 segments: BM25 top-k
6.9 -> 5.2 ms, candidate BM25 2.6 -> 1.8 ms, the 8 small segments joined in 0.1 s).

Dense indexes are not rebuilt: a joined unit searches its members' own (a run of small flat
ones as one flat index over their copied vectors, up to `COPY_FLAT_UP_TO` rows), so joining
never costs recall. A later snapshot reuses the joins whose members it still holds unchanged:
an add appends a segment, so only the last run is joined again.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from qa.bm25 import LexicalIndex
from qa.corpus import Corpus
from qa.cues import CueTable
from qa.dense import DenseIndex
from qa.store.segment import Segment, SegmentData

# Segments below this size are joined: their per-call cost outweighs their per-row cost.
JOIN_BELOW = 50_000
# A joined run holds at most this many sentences: joining costs ~1 us a sentence, paid by the
# first question of a snapshot whose run changed.
JOIN_UP_TO = 150_000
# Adjacent flat segments are searched as one flat index over their vectors copied into memory,
# up to this many rows (75 MB of float32 at 384 dimensions; when the whole run is copied, its
# title and context rows too: 150 MB more).
COPY_FLAT_UP_TO = 50_000


def starts(sizes: Sequence[int]) -> np.ndarray:
    """Where each of consecutive parts of `sizes` rows starts, and the total at the end."""
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)


class SegmentedVectors:
    """The vector matrices of several segments read as one (n, d) matrix by global row.

    Supports what the engine uses: `len`, `shape`, `v[i]`, `v[ids]` (any order, repeats
    allowed) and `np.asarray(v)` (copies: small corpora and tests only).
    """

    def __init__(self, parts: Sequence[Any], offsets: np.ndarray) -> None:
        self.parts, self.offsets = list(parts), offsets
        self.shape = (int(offsets[-1]), int(parts[0].shape[1]))
        self.dtype, self.ndim = np.dtype(np.float32), 2

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            part = int(np.searchsorted(self.offsets, key, side="right")) - 1
            return np.asarray(self.parts[part][int(key) - int(self.offsets[part])], dtype=np.float32)
        ids = np.asarray(key)
        if ids.dtype == bool:
            ids = np.flatnonzero(ids)
        ids = ids.astype(np.int64)
        out = np.empty((len(ids), self.shape[1]), dtype=np.float32)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.shape[0]):
            raise IndexError(f"row out of range for {self.shape[0]} vectors")
        if len(ids) < 2 or bool(np.all(ids[1:] >= ids[:-1])):  # candidates come sorted: one slice per part
            bounds = np.searchsorted(ids, self.offsets).tolist()
            for part, (first, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
                if stop > first:
                    out[first:stop] = self.parts[part][ids[first:stop] - self.offsets[part]]
            return out
        owner = np.searchsorted(self.offsets, ids, side="right") - 1
        for part in np.unique(owner).tolist():
            here = owner == part
            out[here] = self.parts[part][ids[here] - self.offsets[part]]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = np.concatenate([np.asarray(p, dtype=np.float32) for p in self.parts])
        return whole if dtype is None else whole.astype(dtype)


def stacked(parts: list[Any], offsets: np.ndarray, width: int) -> Any:
    """`parts` (row blocks starting at `offsets`) read as one matrix, without copying."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.zeros((0, width), dtype=np.float32)
    return SegmentedVectors(parts, offsets)


class DensePart(NamedTuple):
    """One dense index of a unit, with the vectors it was built from and where its rows start."""

    index: DenseIndex
    vectors: Any
    first: int  # unit row of the index's row 0


class JoinedDense:
    """The dense side of a joined unit: its members' own indexes, searched one by one."""

    kind = "joined"

    def __init__(self, parts: Sequence[DensePart], size: int) -> None:
        self.parts, self.size = tuple(parts), size

    def similarities(self, query: np.ndarray) -> np.ndarray | None:
        """The query's cosine with every row when each part can give it cheaply, else None."""
        return exact_cosines([(part.index, part.vectors) for part in self.parts], query)


def exact_cosines(dense_parts: Sequence[tuple[DenseIndex | JoinedDense, Any]], query: np.ndarray) -> np.ndarray | None:
    """The query's cosine with every row of consecutive (dense index, its vectors) parts, each from
    a flat index or one product over vectors held in memory (an approximate index's rows are
    exact too); None as soon as a part can give neither."""
    found = []
    for index, vectors in dense_parts:
        part = index.similarities(query)
        if part is None and isinstance(vectors, np.ndarray):
            part = np.asarray(vectors @ np.asarray(query, dtype=np.float32), dtype=np.float32)
        if part is None:
            return None
        found.append(part)
    return np.concatenate(found) if len(found) > 1 else (found[0] if found else np.zeros(0, dtype=np.float32))


def _runs(segments: Sequence[Segment], joinable: Callable[[Segment], bool], limit: int) -> list[list[Segment]]:
    """`segments` in order, grouped: runs of adjacent joinable ones of up to `limit` rows in all,
    every other segment alone. Greedy from the oldest, so an appended segment changes the last run only."""
    runs: list[list[Segment]] = []
    run: list[Segment] = []
    for segment in segments:
        if run and (not joinable(segment) or sum(map(len, run)) + len(segment) > limit):
            runs.append(run)
            run = []
        if joinable(segment):
            run.append(segment)
        else:
            runs.append([segment])
    if run:
        runs.append(run)
    return runs


def reading_units(segments: Sequence[Segment],
                  reusable: dict[tuple[Segment, ...], Segment]) -> tuple[tuple[Segment, ...], dict[tuple[Segment, ...], Segment]]:
    """The units a question reads (see the module docstring), and the joined ones by their
    members; joins found in `reusable` (a previous snapshot's) are taken, not made again."""
    units, joins = [], {}
    for run in _runs(segments, lambda s: s.live is None and len(s) < JOIN_BELOW, JOIN_UP_TO):
        if len(run) == 1:
            units.append(run[0])
            continue
        members = tuple(run)
        joins[members] = reusable.get(members) or _joined(run)
        units.append(joins[members])
    return tuple(units), joins


def _joined(segments: Sequence[Segment]) -> Segment:
    """One in-memory segment of the rows of `segments` (none with deletions), in order."""
    corpus = Corpus.concatenate([s.data.corpus for s in segments])
    offsets = starts([len(s) for s in segments])
    parts = _dense_parts(segments)
    if len(parts) == 1:  # all flat and small: one flat index over the copied vectors
        embeddings, dense = parts[0].vectors, parts[0].index
        # Their title and context rows copied too: a question gathers ~170 of them, and from one
        # array (in huge pages) that takes 0.08 ms instead of 0.22 ms from 16 segments' mappings.
        title_context: Any = _copied([s.data.title_context_embeddings for s in segments])
    else:
        embeddings = SegmentedVectors([part.vectors for part in parts], starts([part.index.size for part in parts]))
        dense = JoinedDense(parts, len(corpus))
        title_context = SegmentedVectors([s.data.title_context_embeddings for s in segments], offsets)
    every_row = [(s.data.lexical, np.ones(len(s), dtype=bool)) for s in segments]
    data = SegmentData(corpus, embeddings, title_context,
                       dense,  # type: ignore[arg-type]  # a JoinedDense: `Snapshot` searches its parts
                       LexicalIndex.concatenate(every_row, corpus.neighbours),
                       CueTable.concatenate([s.data.cues for s in segments]),
                       np.zeros((0, 0), dtype=np.uint64))  # signatures are read from the segments themselves
    return Segment("+".join(s.name for s in segments), data)


def _dense_parts(segments: Sequence[Segment]) -> list[DensePart]:
    """The dense indexes a joined run searches: runs of flat members as one flat index over their
    copied vectors, every other member's own index."""
    parts, first = [], 0
    for run in _runs(segments, lambda s: s.data.dense.kind == "flat", COPY_FLAT_UP_TO):
        if len(run) == 1:
            parts.append(DensePart(run[0].data.dense, run[0].data.embeddings, first))
        else:
            vectors = _copied([s.data.embeddings for s in run])
            parts.append(DensePart(DenseIndex.build(vectors, kind="flat"), vectors, first))
        first += sum(map(len, run))
    return parts


def _copied(matrices: Sequence[Any]) -> np.ndarray:
    """The rows of `matrices` (stored or mapped) in one float32 array in memory."""
    return np.ascontiguousarray(np.concatenate([np.asarray(m, dtype=np.float32) for m in matrices]))
