"""Ingestion: files, folders, URLs and JSONL batches turned into Articles, one result per input.

`load_articles` never raises for a bad input: each one becomes a `Failure` naming the file,
URL or JSONL line and the reason, so a batch of a thousand files adds every good one and
reports every bad one. Format modules (`html`, `pdf`, `jsonl`, `url`) import their heavy
libraries only when first used.

    >>> from qa.ingest import load_articles, Failure
    >>> for item in load_articles("inbox/"):
    ...     print(item.name if isinstance(item, Failure) else item.id)
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Union

from qa.articles import (
    HTML_SUFFIXES,
    JSONL_SUFFIXES,
    PDF_SUFFIXES,
    TEXT_SUFFIXES,
    Article,
    find_article_files,
    read_article,
)
from qa.errors import ArticleError, ArticleNotFoundError, QAError, UnsupportedFileError

if TYPE_CHECKING:
    from qa.ingest.url import Fetcher

__all__ = ["Failure", "Fetcher", "is_url", "load_articles", "load_file", "read_one"]

log = logging.getLogger(__name__)

_URL = re.compile(r"^https?://", re.IGNORECASE)


@dataclass(frozen=True)
class Failure:
    """An input that could not be indexed: its name (path, URL or `path:line`) and why, with the fix."""

    name: str
    reason: str


Loaded = Union[Article, Failure]


def is_url(value: object) -> bool:
    """True for an `http://` or `https://` string (anything else is taken as a path)."""
    return isinstance(value, str) and bool(_URL.match(value.strip()))


def __getattr__(name: str) -> object:
    # `Fetcher` lives in qa.ingest.url; resolved lazily so importing qa.ingest stays cheap.
    if name == "Fetcher":
        from qa.ingest.url import Fetcher

        return Fetcher
    raise AttributeError(f"module 'qa.ingest' has no attribute '{name}'")


def read_capped(path: Path, limit: int, kind: str) -> bytes:
    """The bytes of a file, refusing a missing one or one larger than `limit`.

    Raises:
        ArticleNotFoundError: no such file.
        ArticleError: the file is larger than `limit` bytes.
    """
    if not path.is_file():
        raise ArticleNotFoundError(f"{path}: no such file. Check the path.")
    size = path.stat().st_size
    if size > limit:
        raise ArticleError(
            f"{path}: {size / 1e6:.1f} MB is more than the {limit / 1e6:.0f} MB accepted for a {kind} article. "
            "Split it, or save only the article itself."
        )
    return path.read_bytes()


def _failure(name: str, exc: QAError) -> Failure:
    """A Failure for `name`; messages start with the input's name so they read alone, the Failure carries it once."""
    reason = str(exc)
    return Failure(name, reason[len(name) + 2 :] if reason.startswith(f"{name}: ") else reason)


def _guarded(name: str, produce: Callable[[], Iterable[Loaded]]) -> Iterator[Loaded]:
    """Run one loader; its errors become a Failure instead of ending the whole batch."""
    try:
        yield from produce()
    except QAError as exc:
        yield _failure(name, exc)
    except Exception as exc:  # a parser bug on one odd file must not stop the other 999
        log.warning("unexpected error reading %s", name, exc_info=True)
        yield Failure(name, f"could not be read ({type(exc).__name__}: {exc}). Check the file, or convert it to .txt.")


def read_one(path: str | Path) -> Article:
    """Read a single-article input (file of any supported format, or URL).

    Raises:
        ArticleError: the input is unreadable, empty, of an unsupported type, or a JSONL file
            holding other than exactly one article.
        ArticleNotFoundError: no such file.
    """
    if is_url(path):
        from qa.ingest.url import load_url

        return load_url(str(path).strip())
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return read_article(path)
    if suffix in HTML_SUFFIXES:
        from qa.ingest.html import read_html

        return read_html(path)
    if suffix in PDF_SUFFIXES:
        from qa.ingest.pdf import read_pdf

        return read_pdf(path)
    if suffix in JSONL_SUFFIXES:
        from qa.ingest.jsonl import load_jsonl

        items = list(load_jsonl(path))
        articles = [item for item in items if isinstance(item, Article)]
        if len(items) == 1 and articles:
            return articles[0]
        raise ArticleError(
            f"{path}: holds {len(items)} JSONL records, not one article. "
            "Use `Index.add(path)` or `qa.ingest.load_articles(path)` for batches."
        )
    return read_article(path)  # raises the "unsupported file type" error with the list of types


def load_file(path: Path) -> Iterator[Loaded]:
    """Every article in one file: one for most formats, one per line for JSONL."""
    if path.suffix.lower() in JSONL_SUFFIXES:
        from qa.ingest.jsonl import load_jsonl

        return _guarded(str(path), lambda: load_jsonl(path))
    return _guarded(str(path), lambda: [read_one(path)])


def load_articles(source: str | Path, *, fetcher: "Fetcher | None" = None) -> Iterator[Loaded]:
    """Every article from a file, a folder (recursive, sorted) or an http(s) URL.

    Args:
        source: a path or an `http://`/`https://` URL.
        fetcher: download limits for URLs (default: `Fetcher.from_env()`).

    Yields:
        An `Article` per good input and a `Failure` per bad one, in a stable order.
    """
    if is_url(source):
        from qa.ingest.url import load_url

        url = str(source).strip()
        yield from _guarded(url, lambda: [load_url(url, fetcher)])
        return
    if isinstance(source, str) and "://" in source:
        yield Failure(source, str(UnsupportedFileError(
            f"{source}: only http:// and https:// URLs can be fetched. Download the file and add the local copy.")))
        return
    try:
        files = list(find_article_files(source))
    except QAError as exc:
        yield _failure(str(source), exc)
        return
    for file in files:
        yield from load_file(file)
