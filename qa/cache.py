"""Embedding cache: each (model, sentence) pair is encoded once, then reused by every build and add.

Plain files, one folder per model fingerprint, so vectors of two models never mix:

    $QA_CACHE_DIR/                     default $XDG_CACHE_HOME/qa or ~/.cache/qa
      embeddings/<fingerprint>/
        <shard>.vecs.npy               (n, d) float32 vectors
        <shard>.keys.npy               (n, 32) uint8 sha256 of each text, same row order

Every write is a new shard: both files go to temporary names, are synced, then renamed into
place, vectors first and keys last, so a shard is visible only once it is whole. Writers never
share a file, so any number of processes can write at once; a torn or unreadable shard is
skipped (its texts are simply encoded again). When small shards pile up (one per `add`), a
writer that wins a non-blocking lock merges them into one.

The cache is a speed-up, never a requirement: if the folder cannot be written, encoding goes on
without it and a warning is logged once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from qa.encoder import Encoder

log = logging.getLogger(__name__)

KEY_BYTES = 32
MERGE_AT = 16  # shards in a folder before a writer merges them
_KEYS, _VECS = ".keys.npy", ".vecs.npy"
_warned: set[str] = set()


def default_cache_dir() -> Path:
    """`$QA_CACHE_DIR`, else `$XDG_CACHE_HOME/qa`, else `~/.cache/qa` (outside the repository)."""
    if os.environ.get("QA_CACHE_DIR"):
        return Path(os.environ["QA_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qa"


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """(n, 32) uint8 sha256 digests of the UTF-8 texts."""
    keys = np.empty((len(texts), KEY_BYTES), dtype=np.uint8)
    for row, text in enumerate(texts):
        keys[row] = np.frombuffer(hashlib.sha256(text.encode("utf-8")).digest(), dtype=np.uint8)
    return keys


def _as_strings(keys: np.ndarray) -> np.ndarray:
    # Fixed-width bytes sort and compare like the digests; one comparison per key, not 32.
    return np.ascontiguousarray(keys, dtype=np.uint8).view(f"S{KEY_BYTES}").ravel()


class EmbeddingCache:
    """Vectors of one model, keyed by the sha256 of the text.

    Args:
        folder: the model's folder, e.g. `default_cache_dir() / "embeddings" / fingerprint`.
        dimension: the model's vector length; shards of another length are ignored.
    """

    def __init__(self, folder: Path, dimension: int) -> None:
        if dimension < 1:
            raise ValueError("dimension must be positive")
        self.folder = Path(folder)
        self.dimension = dimension

    @classmethod
    def for_encoder(cls, encoder: Encoder, root: Path | None = None) -> "EmbeddingCache":
        """The cache of `encoder`'s model under `root` (default `default_cache_dir()`)."""
        root = Path(root) if root else default_cache_dir()
        return cls(root / "embeddings" / encoder.fingerprint, encoder.dimension)

    # --- reading ----------------------------------------------------------

    def _shards(self) -> list[Path]:
        """Complete shards (their keys file exists), oldest first, then by name."""
        try:
            found = [p for p in self.folder.iterdir() if p.name.endswith(_KEYS)]
        except OSError:
            return []
        return sorted(found, key=lambda p: p.name)

    def _open(self, keys_file: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """(keys, vectors) of one shard, or None when it is gone, torn or of another model size."""
        vecs_file = keys_file.with_name(keys_file.name[: -len(_KEYS)] + _VECS)
        try:
            keys = np.load(keys_file, allow_pickle=False)
            vectors = np.load(vecs_file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if (keys.ndim != 2 or keys.shape[1] != KEY_BYTES or vectors.ndim != 2
                or vectors.shape != (len(keys), self.dimension) or vectors.dtype != np.float32):
            return None
        return keys, vectors

    def get(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Cached vectors of `texts`.

        Returns:
            (vectors, found): an (n, d) float32 array (zero rows where missing) and an (n,) bool mask.
        """
        return self._get(text_keys(texts))

    def _get(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.zeros((len(wanted), self.dimension), dtype=np.float32)
        found = np.zeros(len(wanted), dtype=bool)
        wanted_s = _as_strings(wanted)
        for keys_file in self._shards():
            if found.all():
                break
            shard = self._open(keys_file)
            if shard is None or not len(shard[0]):
                continue
            keys_s, stored = _as_strings(shard[0]), shard[1]
            todo = np.flatnonzero(~found)
            rows = np.minimum(np.searchsorted(keys_s, wanted_s[todo]), len(keys_s) - 1)  # shards are key-sorted
            hit = keys_s[rows] == wanted_s[todo]
            if hit.any():
                take = rows[hit]
                by_row = np.argsort(take, kind="stable")  # read the shard in file order
                vectors[todo[hit][by_row]] = stored[take[by_row]]
                found[todo[hit]] = True
        return vectors, found

    # --- writing ----------------------------------------------------------

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors for texts (one new shard); then merge small shards if they piled up."""
        self._put(text_keys(texts), vectors)

    def _put(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(keys) != len(vectors) or (len(vectors) and vectors.shape[1] != self.dimension):
            raise ValueError(f"expected {len(keys)} vectors of length {self.dimension}, got {vectors.shape}")
        if not len(keys):
            return
        _, first = np.unique(_as_strings(keys), return_index=True)  # key-sorted, duplicates dropped
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_shard(keys[first], vectors[first])
        if len(self._shards()) >= MERGE_AT:
            self.merge()

    def _write_shard(self, keys: np.ndarray, vectors: np.ndarray) -> Path:
        # Time first, so names sort by age; pid + random so concurrent writers never collide.
        stem = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        for suffix, array in ((_VECS, vectors), (_KEYS, keys)):  # keys last: they publish the shard
            final = self.folder / (stem + suffix)
            temp = self.folder / (f".{stem}{suffix}.tmp")
            try:
                with temp.open("wb") as handle:
                    np.save(handle, array, allow_pickle=False)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, final)
            finally:
                temp.unlink(missing_ok=True)
        return self.folder / (stem + _KEYS)

    @contextlib.contextmanager
    def _merge_lock(self) -> Iterator[bool]:
        with (self.folder / ".merge.lock").open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False  # another process is merging; it will tidy up
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def merge(self) -> None:
        """Fold the small shards into one (large ones stay put, so a merge never rewrites the bulk).

        Readers meanwhile see the old shards, the new one or both; every mix is valid.
        """
        with self._merge_lock() as mine:
            if not mine:
                return
            opened = [(f, s) for f in self._shards() if (s := self._open(f)) is not None]
            opened.sort(key=lambda pair: -len(pair[1][0]))
            rest = sum(len(s[0]) for _, s in opened)
            while opened and len(opened[0][1][0]) >= rest - len(opened[0][1][0]):
                rest -= len(opened.pop(0)[1][0])  # bigger than all smaller ones together: keep
            self._sweep_temporaries()
            if len(opened) < 2:
                return
            keys = np.concatenate([s[0] for _, s in opened])
            vectors = np.concatenate([np.asarray(s[1]) for _, s in opened])
            _, first = np.unique(_as_strings(keys), return_index=True)
            self._write_shard(keys[first], vectors[first])
            for keys_file, _ in opened:
                keys_file.unlink(missing_ok=True)
                keys_file.with_name(keys_file.name[: -len(_KEYS)] + _VECS).unlink(missing_ok=True)

    def _sweep_temporaries(self, older_than: float = 3600.0) -> None:
        """Delete temporary files that a killed writer left behind (young ones may be in use)."""
        for temp in self.folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if time.time() - temp.stat().st_mtime > older_than:
                    temp.unlink()

    # --- the one call the index makes ----------------------------------------

    def encode(self, encoder: Encoder, texts: Sequence[str],
               progress: bool | Callable[[int, int], None] = False) -> np.ndarray:
        """Vectors of `texts`: cached ones read back, the rest encoded once each and stored."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        keys = text_keys(texts)
        vectors, found = self._get(keys)
        missing = np.flatnonzero(~found)
        if len(missing):
            # A text repeated in this batch is encoded once, in order of first appearance.
            _, first, inverse = np.unique(_as_strings(keys[missing]), return_index=True, return_inverse=True)
            order = np.argsort(first, kind="stable")
            unique_rows = missing[first[order]]
            fresh = encoder.encode([texts[i] for i in unique_rows], progress=progress)
            position = np.empty(len(order), dtype=np.int64)
            position[order] = np.arange(len(order))
            vectors[missing] = fresh[position[inverse.ravel()]]
            try:
                self._put(keys[unique_rows], fresh)
            except OSError as exc:
                if str(self.folder) not in _warned:
                    _warned.add(str(self.folder))
                    log.warning("embedding cache at %s is not writable (%s); encoding without it", self.folder, exc)
        return vectors


def cached_encode(encoder: Encoder, texts: Sequence[str],
                  progress: bool | Callable[[int, int], None] = False) -> np.ndarray:
    """`encoder.encode(texts)` through the default cache folder (see `default_cache_dir`)."""
    return EmbeddingCache.for_encoder(encoder).encode(encoder, texts, progress=progress)
