"""The index folder on disk: a manifest that commits one generation folder of data files.

    index/
      manifest.json        format version, model + fingerprint, counts, times, current data folder
      data-000003/         articles.jsonl, sentences.npy, embeddings.npy, title-context-embeddings.npy,
                           dense.faiss, bm25/, cues/, minhash.npy

A write fills a fresh `data-NNNNNN` folder, syncs it, then atomically replaces manifest.json
(write to a temp file, fsync, os.replace). Until that rename the old manifest still names the
old folder, so a crash or kill -9 at any moment leaves the previous index loadable; leftovers
are swept on the next write.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from qa.errors import IndexCorruptError, IndexFormatError, IndexMissingError

# 3: incremental BM25 (term counts) + minhash.npy; 4: BM25 counts stored term-major; 5: cues/ (cue
# tokens); 6: title and context vectors side by side in one file
FORMAT_VERSION = 6
MANIFEST = "manifest.json"
LOCK = ".write.lock"
_DATA_PREFIX = "data-"
_TMP_SUFFIX = ".partial"


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        fsync_dir(path)
    fsync_dir(folder)


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the index at `path`, checked for format version and a data folder.

    Raises:
        IndexMissingError: no index there.
        IndexCorruptError: unreadable manifest or missing data folder.
        IndexFormatError: written by an incompatible format version.
    """
    file = path / MANIFEST
    if not file.is_file():
        raise IndexMissingError(
            f"No index at '{path}' (no {MANIFEST}). Build one with `qa build --source DIR --index {path}`."
        )
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
        version = manifest["format_version"]
        data = manifest["data"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(
            f"The index at '{path}' is corrupt ({MANIFEST}: {exc}). Rebuild it with `qa build --index {path}`."
        ) from None
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"The index at '{path}' has format version {version}; this qa reads version {FORMAT_VERSION}. "
            f"Rebuild it with `qa build --index {path}`."
        )
    if not (path / data).is_dir():
        raise IndexCorruptError(
            f"The index at '{path}' names data folder '{data}', which is missing. "
            f"Rebuild it with `qa build --index {path}`."
        )
    return manifest


def data_folder(path: Path, manifest: dict[str, Any]) -> Path:
    """The generation folder the manifest commits."""
    return path / manifest["data"]


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """One writer per index folder across processes (readers never wait)."""
    path.mkdir(parents=True, exist_ok=True)
    with (path / LOCK).open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _generation_number(name: str) -> int:
    digits = name[len(_DATA_PREFIX) :].split(".")[0]
    return int(digits) if digits.isdigit() else 0


def _next_generation(path: Path) -> str:
    # Leftover partial folders count too, so a new write never reuses a half-written name.
    latest = max((_generation_number(p.name) for p in path.glob(_DATA_PREFIX + "*")), default=0)
    return f"{_DATA_PREFIX}{latest + 1:06d}"


@contextlib.contextmanager
def new_generation(path: Path) -> Iterator[tuple[Path, str]]:
    """A fresh, empty data folder to fill, and the name to commit it under.

    The folder is only renamed to that name if the block succeeds; otherwise it is deleted.
    """
    path.mkdir(parents=True, exist_ok=True)
    name = _next_generation(path)
    staging = path / (name + _TMP_SUFFIX)
    staging.mkdir()
    try:
        yield staging, name
        _fsync_tree(staging)
        staging.rename(path / name)
        fsync_dir(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def commit(path: Path, manifest: dict[str, Any]) -> None:
    """Atomically point the index at `manifest["data"]`, then sweep older generations."""
    temp = path / (MANIFEST + _TMP_SUFFIX)
    with temp.open("w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path / MANIFEST)
    fsync_dir(path)
    for stale in path.glob(_DATA_PREFIX + "*"):
        if stale.name != manifest["data"]:
            shutil.rmtree(stale, ignore_errors=True)
