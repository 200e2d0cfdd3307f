"""Stored vector matrices: memory-mapped when small, read row by row when large.

Row i of each matrix belongs to sentence i. Above `READ_ROWS_FROM` rows the matrices are opened
as `StoredVectors`, which read exactly the rows asked for; see that class for why.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

READ_ROWS_FROM = 50_000  # from this many rows on, stored vectors are read by row, not mapped


class StoredVectors:
    """A read-only (n, d) float32 `.npy` matrix whose rows are read from the file when indexed.

    A memory map would serve the same rows, but every page a query touches, and the neighbours
    the kernel maps around each fault, then count in the process's resident set: at 1M sentences
    a few hundred questions map most of a 1.5 GB file. Reading just the rows asked for (one
    `pread` per run of consecutive rows) keeps the resident set flat; the page cache still
    makes repeated reads cheap. Supports `len`, `shape`, `v[i]`, `v[a:b]`, `v[ids]`, `v[mask]`
    and `np.asarray(v)`, which is all the engine uses.
    """

    def __init__(self, file: Path, shape: tuple[int, int], offset: int) -> None:
        self.file = Path(file)
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(np.float32)
        self.ndim = 2
        self._offset = offset
        self._fd = os.open(self.file, os.O_RDONLY)  # held open: this snapshot outlives a later sweep
        os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)  # no read-ahead around single rows

    @classmethod
    def open(cls, file: Path, prefetch: bool = True) -> "StoredVectors":
        """Open a `.npy` file written by `np.save` of a 2-D float32 array.

        With `prefetch`, a background thread reads the file once so the kernel caches it (when
        it fits in half the available memory): questions then read rows from memory, not disk.
        The page cache is the kernel's, not part of this process's resident set.
        """
        header = np.load(file, mmap_mode="r", allow_pickle=False)  # reads the header only
        if header.dtype != np.float32 or header.ndim != 2 or not header.flags.c_contiguous:
            raise ValueError(f"{file}: expected a C-ordered 2-D float32 array, found {header.dtype} {header.shape}")
        vectors = cls(file, header.shape, int(header.offset))
        if prefetch:
            threading.Thread(target=_prefetch, args=(vectors.file,), name="qa-prefetch", daemon=True).start()
        return vectors

    def __len__(self) -> int:
        return self.shape[0]

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
            self._fd = None

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):  # one row: no sorting, one read
            row = int(key) + len(self) if key < 0 else int(key)
            if not 0 <= row < len(self):
                raise IndexError(f"row {key} out of range for {len(self)} stored vectors")
            return self._read([row], [1])[0]
        if isinstance(key, slice):
            return self._rows(np.arange(*key.indices(len(self))))
        ids = np.asarray(key)
        if ids.dtype == bool:
            ids = np.flatnonzero(ids)
        return self._rows(ids.astype(np.int64, copy=False).ravel())

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self._rows(np.arange(len(self)))
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.shape[1]), dtype=np.float32)
        # Array methods, not numpy's Python-level helpers: a question makes ~30 of these calls.
        lowest = ids.min()
        if lowest < 0:
            ids = np.where(ids < 0, ids + len(self), ids)
            lowest = ids.min()
        if lowest < 0 or ids.max() >= len(self):
            raise IndexError(f"row out of range for {len(self)} stored vectors")
        ordered = len(ids) < 2 or bool((ids[1:] > ids[:-1]).all())  # the usual case: sorted candidate ids
        unique, inverse = (ids, None) if ordered else np.unique(ids, return_inverse=True)
        bounds = np.flatnonzero(unique[1:] != unique[:-1] + 1) + 1  # where a run of consecutive rows breaks
        firsts = np.concatenate(([0], bounds))
        counts = np.concatenate((bounds, [len(unique)])) - firsts
        out = self._read(unique[firsts].tolist(), counts.tolist())
        return out if inverse is None else out[inverse.ravel()]

    def _read(self, rows: list[int], counts: list[int]) -> np.ndarray:
        """Runs of consecutive rows, `counts[i]` from row `rows[i]` of the file, as one array.

        One system call a run: a question reads ~600 scattered rows at 1M, each `os.pread` into
        bytes joined once (~25% faster than `preadv` into slices of one buffer). One run (a block
        of rows, as a merge reads them) is read straight into the array: no second copy.
        """
        row_bytes, first, wanted = self.shape[1] * 4, self._offset, sum(counts) * self.shape[1] * 4
        if len(rows) == 1:
            out = np.empty((counts[0], self.shape[1]), dtype=np.float32)
            got = os.preadv(self._fd, [memoryview(out).cast("B")], first + rows[0] * row_bytes)
        else:
            read, fd = os.pread, self._fd
            data = bytearray().join([read(fd, count * row_bytes, first + row * row_bytes) for row, count in zip(rows, counts)])
            got, out = len(data), np.frombuffer(data, dtype=np.float32).reshape(-1, self.shape[1])
        if got != wanted:
            raise OSError(f"{self.file}: short read ({got} of {wanted} bytes); the index is damaged")
        return out


Vectors = np.ndarray | StoredVectors


def _prefetch(file: Path, chunk: int = 8 << 20) -> None:
    """Read `file` once, start to end, so its pages sit in the kernel's page cache (best effort).

    Skipped when the file exceeds half the available memory. `POSIX_FADV_WILLNEED` would be the
    obvious call, but Linux caps it at the read-ahead window (a few hundred KB), so it is read.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            available = next(int(line.split()[1]) * 1024 for line in info if line.startswith("MemAvailable"))
        if file.stat().st_size > available // 2:
            return
        buffer = bytearray(chunk)
        fd = os.open(file, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            while os.readv(fd, [buffer]) == chunk:
                pass
        finally:
            os.close(fd)
    except (OSError, StopIteration, ValueError):
        return


def load_vectors(file: Path, by_row: bool = False) -> Vectors:
    """A stored matrix: memory-mapped when small, `StoredVectors` from `READ_ROWS_FROM` rows on
    or when `by_row` (a matrix whose rows are only ever read a few at a time)."""
    mapped = np.load(file, mmap_mode="r", allow_pickle=False)
    if by_row or len(mapped) >= READ_ROWS_FROM:
        return StoredVectors.open(file)
    return mapped.view(np.ndarray)  # same mapped pages; skips np.memmap's Python-level __getitem__
