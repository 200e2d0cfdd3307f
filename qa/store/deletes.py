"""Deletion files: which articles of an immutable segment are removed.

`seg-000003.del-000012.npy` holds the sorted local article rows of `seg-000003` that are removed as
of commit generation 12 (all of them, not only the new ones: a reader needs one file). A
remove writes a new file of a few bytes and a commit point naming it; the segment's own files
are never touched. A merge drops the deleted rows for good (`qa.store.merge`).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from qa.store.files import write_file_atomically


def write_deletes(file: Path, dead_articles: np.ndarray) -> None:
    """Write the sorted, distinct article rows `dead_articles` to `file`, durably."""
    buffer = io.BytesIO()
    np.save(buffer, np.unique(np.asarray(dead_articles, dtype=np.int64)))
    write_file_atomically(file, buffer.getvalue())


def read_deletes(file: Path) -> np.ndarray:
    """The article rows a deletion file holds."""
    rows = np.load(file, allow_pickle=False)
    if rows.ndim != 1 or (len(rows) and (rows.min() < 0 or np.any(np.diff(rows) <= 0))):
        raise ValueError(f"{file.name} is not a sorted list of article rows")
    return rows.astype(np.int64)
