"""Dense retrieval: a FAISS inner-product index over unit vectors (so scores are cosines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class DenseIndex:
    """Nearest sentences to a query vector. Exact search; the FAISS index is rebuilt from stored vectors."""

    def __init__(self, faiss_index: Any, dimension: int) -> None:
        self._index = faiss_index
        self.dimension = dimension

    @property
    def size(self) -> int:
        """Number of vectors in the index."""
        return int(self._index.ntotal)

    @classmethod
    def build(cls, vectors: np.ndarray) -> "DenseIndex":
        """Index an (n, d) float32 array of unit vectors; row i is sentence id i."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = faiss.IndexFlatIP(vectors.shape[1])
        if len(vectors):
            index.add(vectors)
        return cls(index, vectors.shape[1])

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for one query vector, best first; ties broken by lower id."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        scores, ids = self._index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k)
        scores, ids = scores[0], ids[0]
        keep = ids >= 0
        scores, ids = scores[keep], ids[keep]
        order = np.lexsort((ids, -scores))
        return scores[order], ids[order]

    def save(self, file: Path) -> None:
        """Write the FAISS index to `file`."""
        import faiss

        faiss.write_index(self._index, str(file))

    @classmethod
    def load(cls, file: Path) -> "DenseIndex":
        """Read a FAISS index written by `save`."""
        import faiss

        index = faiss.read_index(str(file))
        return cls(index, int(index.d))
