"""Dense retrieval: FAISS inner-product search over unit vectors, so scores are cosines.

The index type follows the corpus size (measurements in docs/speed.md):

- below `FLAT_LIMIT` vectors, `flat`: exact search, a matrix-vector product over the stored
  vectors (`similarities`; FAISS's IndexFlatIP, also in the file, serves when they are absent).
  The limit is per segment: a corpus of up to `qa.store.snapshot.EXACT_UP_TO` sentences is
  searched exactly whatever its segments' kinds, and a larger one of many mid-sized segments
  would otherwise scan every vector of each;
- from there on, `ivf-pq4fs`: an inverted file of `nlist` k-means cells holding product-quantised
  codes, 4 bits for every 2 dimensions (96 MB at 1M, a sixteenth of the float32 vectors), scanned
  with FAISS's SIMD "fast scan". A query scans the `PROBE_MARGIN` x `nprobe` nearest cells, and the best
  max(`refine` x k, `min_rescored`) are re-scored exactly from the stored float32 vectors,
  which restores what the coarse codes lose. At 1M the scan takes ~1 ms against ~9 ms for the
  4-bit scalar codes (`ivf-sq4`, the previous default, still loaded and extended), at the same
  recall@10 (docs/speed.md).
  HNSW was not chosen: building it over 1M vectors takes tens of minutes on 2 cores.

The type and its parameters are saved beside the FAISS file (`<file>.json`). Adds copy the trained
index and append (readers of the old one are undisturbed) until the index has grown past
`RETRAIN_GROWTH` times the size it was trained at.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from qa.vectors import StoredVectors, Vectors, load_vectors

__all__ = ["DenseIndex", "Probed", "StoredVectors", "choose_kind", "load_vectors", "top_k"]

FLAT_LIMIT = 10_000
RETRAIN_GROWTH = 2.0
TRAIN_PER_CELL = 64  # k-means sample per cell: enough for stable cells, cheap on 2 cores
# The `nprobe` parameter: 1/16 of the cells, at least 64; re-scoring 4 x k. A search probes
# `PROBE_MARGIN` times that share. Measured on generated corpora (docs/speed.md) when a search
# probed nprobe itself: recall@10 0.988 at 100k (64 of 256 cells), 0.967 at 1M (64 of 1024);
# probing twice that, 1.000 at 100k.
DEFAULT_NPROBE_SHARE = 1 / 16
MIN_NPROBE = 64
DEFAULT_REFINE = 4
# Fast-scan codes rank coarsely: on the 1M generated corpus the exact top 10 is only all in their
# best 256 (recall@10 0.975, the cells' own limit at nprobe 64; 0.84 in the best 40).
MIN_RESCORED = 256
# Every IVF search probes twice the share of cells its reference parameters give: a whole-corpus
# index's for a segment of a larger corpus, its own for an index searched alone. Segments need
# the margin because sentences on one topic often sit in one segment (one day's adds); an index
# alone gets it too, so merging segments does not lower the effort and change answers (at 100k,
# 16 segments merged into one: 199/200 answers identical with the margin on segments only, 200/200
# with it on both). A segment re-scores its share of the whole index's rows, at least
# `MIN_SEGMENT_RESCORED`. On the 1M generated corpus in 16 segments: recall@10 0.975 (the
# segments' own settings: 0.993 reading 7x the rows); re-scoring twice the share kept recall@10
# equal and cost 0.9 ms more (docs/speed.md).
PROBE_MARGIN = 2.0
MIN_SEGMENT_RESCORED = 32
_CODES = {"ivf-sq4": "SQ4", "ivf-sq8": "SQ8"}  # FAISS index_factory code of each scalar-quantised IVF kind
FAST_SCAN = "ivf-pq4fs"  # product quantisation, 4-bit codes of 2 dimensions each, SIMD fast scan
IVF_KINDS = (FAST_SCAN, *_CODES)
LARGE_KIND = FAST_SCAN
KINDS = ("flat", *IVF_KINDS)


def _ivf_params(size: int) -> dict[str, Any]:
    nlist = max(4, 2 ** round(math.log2(math.sqrt(max(size, 1)))))  # ~sqrt(n) cells, a power of two
    nprobe = min(nlist, max(MIN_NPROBE, int(nlist * DEFAULT_NPROBE_SHARE)))
    return {"nlist": nlist, "nprobe": nprobe, "refine": DEFAULT_REFINE, "min_rescored": MIN_RESCORED}


def choose_kind(size: int) -> tuple[str, dict[str, Any]]:
    """The index type and parameters used for `size` vectors."""
    return ("flat", {}) if size < FLAT_LIMIT else (LARGE_KIND, _ivf_params(size))


class Probed(NamedTuple):
    """What `DenseIndex.probe` found: rows and their scores, exact or by the index's codes."""

    scores: np.ndarray
    ids: np.ndarray
    needs_rows: bool  # the scores are the codes': `DenseIndex.rescore` replaces them from the stored rows


class DenseIndex:
    """Nearest sentences to a query vector; row i of the indexed vectors is sentence id i.

    Args:
        faiss_index: the FAISS index.
        dimension: vector length.
        kind: one of `KINDS`.
        params: the kind's parameters (nlist, nprobe, refine, trained_size for the IVF kinds).
        vectors: the float32 vectors themselves, for exact re-scoring of approximate results.
    """

    def __init__(
        self, faiss_index: Any, dimension: int, kind: str = "flat", params: dict[str, Any] | None = None,
        vectors: Vectors | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown dense index kind '{kind}'; known: {', '.join(KINDS)}")
        self._index = faiss_index
        self.dimension = dimension
        self.kind = kind
        self.params = dict(params or {})
        self._vectors = vectors

    @property
    def size(self) -> int:
        """Number of vectors in the index."""
        return int(self._index.ntotal)

    def describe(self) -> dict[str, Any]:
        """Kind, parameters and size, as saved beside the index."""
        return {"kind": self.kind, "params": self.params, "size": self.size, "dimension": self.dimension}

    # --- building ---------------------------------------------------------

    @classmethod
    def build(cls, vectors: Vectors, kind: str | None = None, **params: Any) -> "DenseIndex":
        """Index an (n, d) array of unit vectors; the kind and parameters default to `choose_kind(n)`."""
        import faiss

        kind = kind or choose_kind(len(vectors))[0]
        if kind not in KINDS:
            raise ValueError(f"unknown dense index kind '{kind}'; known: {', '.join(KINDS)}")
        dimension = int(vectors.shape[1])
        if kind == FAST_SCAN and dimension % 2:
            kind = "ivf-sq4"  # fast-scan codes cover two dimensions each
        params = {**(_ivf_params(len(vectors)) if kind in IVF_KINDS else {}), **params}
        if kind == "flat":
            index = faiss.IndexFlatIP(dimension)
        else:
            index = _ivf_index(kind, dimension, int(params["nlist"]))
            index.cp.seed = 1234  # fixed k-means seed: the same vectors give the same cells
            index.train(_training_sample(vectors, int(params["nlist"]) * TRAIN_PER_CELL))
            index.nprobe = int(params["nprobe"])
            params["trained_size"] = len(vectors)
        dense = cls(index, dimension, kind, params, vectors)
        dense._add(vectors, 0)
        return dense

    def _add(self, vectors: Vectors, start: int) -> None:
        for first in range(start, len(vectors), 100_000):  # in blocks: a StoredVectors is read as it goes
            block = np.ascontiguousarray(vectors[first : min(first + 100_000, len(vectors))], dtype=np.float32)
            self._index.add(block)

    def extend(self, vectors: Vectors) -> "DenseIndex":
        """A new index over `vectors`, whose first `size` rows are the ones already indexed.

        Reuses the trained cells (a copy: readers of this index are undisturbed) unless the size
        now calls for another kind or the index outgrew its training; then builds afresh.
        """
        import faiss

        if len(vectors) < self.size:
            raise ValueError("extend() only appends; build a new index after removals")
        kind, _ = choose_kind(len(vectors))
        outgrown = self.kind in IVF_KINDS and len(vectors) > RETRAIN_GROWTH * self.params.get("trained_size", 0)
        if kind != self.kind or outgrown or self.size == 0:
            return DenseIndex.build(vectors)
        dense = DenseIndex(faiss.clone_index(self._index), self.dimension, self.kind, self.params, vectors)
        dense._add(vectors, self.size)
        return dense

    def with_vectors(self, vectors: Vectors) -> "DenseIndex":
        """The same index, re-scoring from `vectors` (e.g. the stored copy instead of one in memory)."""
        return DenseIndex(self._index, self.dimension, self.kind, self.params, vectors)

    # --- searching --------------------------------------------------------

    def search(self, query: np.ndarray, k: int, corpus_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for one query vector, best first; ties broken by lower id.

        Args:
            query: a unit vector.
            k: how many.
            corpus_size: when this index is one segment of a corpus of that many vectors, an
                approximate index probes and re-scores its share of what an index of the whole
                corpus would (`segment_effort`), and returns every row it re-scored, up to k.
        """
        return self.rescore(query, k, self.probe(query, k, corpus_size))

    def probe(self, query: np.ndarray, k: int, corpus_size: int | None = None) -> Probed:
        """The first half of `search`, which reads no stored row: an approximate index's nearest
        cells' best rows by their codes, or a flat index's exact top-k. FAISS and the product
        release the GIL, so threads probe segments side by side (`qa.store.Snapshot`)."""
        k = min(k, self.size)
        if k <= 0:
            return Probed(np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64), False)
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        every = self.similarities(query[0])
        if every is not None:
            ids = top_k(every, k)
            return Probed(every[ids], ids, False)
        refine = self.kind != "flat" and self._vectors is not None
        nprobe, depth = self.segment_effort(k, corpus_size)
        scores, ids = _one_thread_search(self._index, query, min(self.size, depth) if refine else k, nprobe)
        keep = ids[0] >= 0
        return Probed(scores[0][keep], ids[0][keep].astype(np.int64), refine)

    def rescore(self, query: np.ndarray, k: int, probed: Probed) -> tuple[np.ndarray, np.ndarray]:
        """The second half of `search`: the probed rows' exact scores from the stored vectors
        (one read per row: best done on one thread, as each read hands the GIL over), top-k."""
        scores, ids = probed.scores, probed.ids
        if probed.needs_rows and len(ids):
            ids = ids[np.argsort(ids, kind="stable")]  # ascending rows: a sequential read
            scores = np.asarray(self._vectors[ids], dtype=np.float32) @ np.asarray(query, dtype=np.float32).ravel()
        order = np.lexsort((ids, -scores))[: min(k, self.size)]
        return scores[order], ids[order]

    def segment_effort(self, k: int, corpus_size: int | None = None) -> tuple[int | None, int]:
        """(cells to probe, rows to re-score) of a top-k search; no cells for a flat index.

        An IVF index probes `PROBE_MARGIN` times the share of its cells that its reference
        parameters give: its own alone (or as the whole corpus), those a whole-corpus index would
        have as one segment of a larger corpus. It re-scores max(`refine` x k, `min_rescored`)
        rows alone, and its share of the whole-corpus index's rows as a segment: sixteen segments
        then read about what one index reads, not 16 times it, and one merged index probes what
        its segments did.
        """
        own_depth = max(k * int(self.params.get("refine", 1)), int(self.params.get("min_rescored", 0)))
        if self.kind not in IVF_KINDS:
            return None, own_depth
        alone = not corpus_size or corpus_size <= self.size
        reference = self.params if alone else _ivf_params(corpus_size)
        probe_share = min(1.0, PROBE_MARGIN * int(reference["nprobe"]) / int(reference["nlist"]))
        nlist = int(self.params["nlist"])
        nprobe = max(1, math.ceil(nlist * probe_share))
        if alone:
            return nprobe, own_depth
        whole_depth = max(k * int(reference["refine"]), int(reference["min_rescored"]))
        depth = min(own_depth, max(MIN_SEGMENT_RESCORED, math.ceil(whole_depth * self.size / corpus_size)))
        return nprobe, depth

    def similarities(self, query: np.ndarray) -> np.ndarray | None:
        """The query's cosine with every indexed vector, when exact and cheap (a flat index whose
        vectors are mapped or in memory: one BLAS product, 0.3 ms at 10k against FAISS's 1.0 ms
        flat search); None otherwise."""
        if self.kind != "flat" or not isinstance(self._vectors, np.ndarray) or len(self._vectors) != self.size:
            return None
        return np.asarray(self._vectors @ np.asarray(query, dtype=np.float32), dtype=np.float32)

    # --- files ------------------------------------------------------------

    def save(self, file: Path) -> None:
        """Write the FAISS index to `file` and its kind and parameters to `<file>.json`."""
        import faiss

        faiss.write_index(self._index, str(file))
        _sidecar(file).write_text(json.dumps(self.describe(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, file: Path, vectors: Vectors | None = None) -> "DenseIndex":
        """Read what `save` wrote; `vectors` (the stored float32 rows) enable exact re-scoring."""
        import faiss

        index = faiss.read_index(str(file))
        meta: dict[str, Any] = {"kind": "flat", "params": {}}
        if _sidecar(file).is_file():  # indexes written before the sidecar existed are flat
            meta = json.loads(_sidecar(file).read_text(encoding="utf-8"))
        if meta["kind"] != "flat":
            index.nprobe = int(meta["params"]["nprobe"])
        return cls(index, int(index.d), meta["kind"], meta["params"], vectors)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Ids of the `k` highest scores, best first, ties broken by lower id."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    ids = np.flatnonzero(scores >= kth)  # every tie at the k-th score, so the lower ids win
    return ids[np.lexsort((ids, -scores[ids]))[:k]].astype(np.int64)


def _ivf_index(kind: str, dimension: int, nlist: int) -> Any:
    """An untrained inverted-file index of `kind` with `nlist` cells (inner product)."""
    import faiss

    if kind == FAST_SCAN:
        spec = f"IVF{nlist},PQ{dimension // 2}x4fs"
    else:
        spec = f"IVF{nlist},{_CODES[kind]}"
    return faiss.index_factory(dimension, spec, faiss.METRIC_INNER_PRODUCT)


def _one_thread_search(index: Any, query: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Search on the calling thread alone (probing `nprobe` cells of an IVF index, when given:
    passed with the call, so threads searching the same index do not race on a setting).

    For one query an OpenMP team costs more than it saves, and on a busy machine its
    spin-waiting threads made a 10k flat search ~40 ms instead of ~1 ms (docs/speed.md).
    The setting is per calling thread, so it is restored for builds on the same thread.
    """
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        if nprobe is None:
            return index.search(query, k)
        return index.search(query, k, params=faiss.SearchParametersIVF(nprobe=nprobe))
    finally:
        faiss.omp_set_num_threads(threads)


def _sidecar(file: Path) -> Path:
    return file.with_name(file.name + ".json")


def _training_sample(vectors: Vectors, count: int) -> np.ndarray:
    """A fixed, evenly spread sample of rows (deterministic, and cheap to read from disk)."""
    if len(vectors) <= count:
        return np.ascontiguousarray(vectors[: len(vectors)], dtype=np.float32)
    rows = np.linspace(0, len(vectors) - 1, count).astype(np.int64)
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)
