"""The one-call API: `answer(question)` against the default (or a named) index."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

from qa.answering import Answer
from qa.config import default_index_path
from qa.index import Index

_open: dict[Path, Index] = {}
_open_lock = threading.Lock()


def open_index(path: str | Path | None = None) -> Index:
    """The Index at `path` (default `index/` or `QA_INDEX`), loaded once per process."""
    key = Path(path or default_index_path()).resolve()
    with _open_lock:
        if key not in _open:
            _open[key] = Index.load(key)
        return _open[key]


def answer(
    question: str,
    history: Sequence[str] | None = None,
    *,
    index: str | Path | Index | None = None,
    max_citations: int | None = None,
) -> Answer:
    """Answer a question from the indexed articles, citing the sentences it quotes.

    Args:
        question: the question.
        history: earlier user turns of the chat, oldest first, for follow-ups like "And in the US?".
        index: an Index, or the path of one; default `index/` of the project or `QA_INDEX`.
        max_citations: how many sentences to quote at most.
    """
    target = index if isinstance(index, Index) else open_index(index)
    return target.answer(question, history=history, max_citations=max_citations)
