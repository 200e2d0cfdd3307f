"""Typed errors: every message says what went wrong and what to do about it."""

from __future__ import annotations


class QAError(Exception):
    """Base class of every error this package raises on purpose."""


# --- questions -------------------------------------------------------------


class QuestionError(QAError, ValueError):
    """The question cannot be answered as asked."""


class EmptyQuestionError(QuestionError):
    """The question is empty or whitespace."""


class QuestionTooLongError(QuestionError):
    """The question is longer than the configured limit."""


class QuestionScriptError(QuestionError):
    """The question is in a script that none of the indexed articles use."""


# --- articles --------------------------------------------------------------


class ArticleError(QAError, ValueError):
    """An article file cannot be read or indexed."""


class EmptyArticleError(ArticleError):
    """The article has no text to index."""


class ArticleEncodingError(ArticleError):
    """The file is binary or not UTF-8 text."""


class UnsupportedFileError(ArticleError):
    """The file type is not one the indexer reads."""


class NoArticlesError(ArticleError):
    """A build found nothing it could index."""


class MissingArticlesError(QAError):
    """A rebuild would drop articles that only the index holds, and was not asked to."""


class ArticleNotFoundError(QAError, KeyError):
    """No article with that id (or file at that path)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


# --- the index -------------------------------------------------------------


class IndexLoadError(QAError):
    """The index folder cannot be used."""


class IndexMissingError(IndexLoadError, FileNotFoundError):
    """There is no index at that path."""


class IndexCorruptError(IndexLoadError):
    """The index files are unreadable or inconsistent."""


class IndexFormatError(IndexLoadError):
    """The index was written by an incompatible version of this package."""


class ModelMismatchError(IndexLoadError):
    """The index was built with another embedding model than the one in use."""


class ModelLoadError(QAError):
    """The embedding model cannot be loaded from local files."""
