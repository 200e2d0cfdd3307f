"""Durable file operations of the store: fsync, staged folders, the writer lock, the sweep.

Every write of the store goes through here: a new segment or deletion file is written under a
`.partial` name, synced, then renamed, so a reader never sees half of one; the commit point is
replaced the same way (`qa.store.commit`). Files no commit point names any more are swept by the
next writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path
from typing import Iterator

LOCK = ".write.lock"
PARTIAL = ".partial"


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder below `folder`, deepest first, then `folder` itself."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        fsync_dir(path)
    fsync_dir(folder)


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """One writer per index folder across processes; readers never wait.

    The lock is an flock on `.write.lock`, which the kernel releases when its holder dies
    (kill -9 included). The file itself stays in the folder on purpose: a left-over file holds
    no lock, and deleting it while another writer waits on it would let two writers in.
    """
    path.mkdir(parents=True, exist_ok=True)
    with (path / LOCK).open("a") as handle:  # "a": taking the lock never rewrites the file
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def staged_folder(path: Path, name: str) -> Iterator[Path]:
    """An empty folder to fill, published as `path/name` (synced) only if the block succeeds."""
    staging = path / (name + PARTIAL)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        fsync_tree(staging)
        staging.rename(path / name)
        fsync_dir(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_file_atomically(file: Path, payload: bytes) -> None:
    """Replace `file` with `payload`: temp file, fsync, rename, fsync of the folder."""
    temp = file.with_name(file.name + PARTIAL)
    with temp.open("wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, file)
    fsync_dir(file.parent)


def sweep(path: Path, keep: set[str], prefixes: tuple[str, ...]) -> None:
    """Delete entries of `path` starting with one of `prefixes` that are not in `keep`, and any
    `.partial` leftovers of a killed writer. Readers holding an older snapshot keep working: its
    files stay open or mapped until they let go."""
    for entry in path.iterdir():
        stale = entry.name.endswith(PARTIAL) or (entry.name.startswith(prefixes) and entry.name not in keep)
        if not stale or entry.name == LOCK:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
