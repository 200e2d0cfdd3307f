"""Offline question answering over a folder of articles, with cited sentences.

    >>> from qa import answer
    >>> a = answer("How many industrial robots were installed in China in 2022?")
    >>> a.citations[0].sentence

Importing this package is cheap: the model, FAISS and BM25 load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names resolved on first access, so `import qa` stays fast (no numpy/torch at import).
_EXPORTS = {
    "answer": "qa.api",
    "open_index": "qa.api",
    "Index": "qa.index",
    "AddReport": "qa.index",
    "ArticleInfo": "qa.index",
    "Answer": "qa.answering",
    "Citation": "qa.answering",
    "Article": "qa.articles",
    "Settings": "qa.config",
    "QAError": "qa.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from qa.answering import Answer, Citation
    from qa.api import answer, open_index
    from qa.articles import Article
    from qa.config import Settings
    from qa.errors import QAError
    from qa.index import AddReport, ArticleInfo, Index


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qa' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)
