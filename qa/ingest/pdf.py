"""PDF articles: the text layer of each page via pypdf, with page start offsets for citations.

Pages are joined with a blank line; `Article.meta["page_starts"]` holds the character offset
where each page begins (comma-separated, JSON-friendly), so a citation's page is the number of
page starts at or before its offset. PDFs carry no paragraph marks, so a line much shorter
than the page's longest line is taken as a paragraph's (or a heading's) last line, and the
other line breaks (wrapping) become spaces.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import logging
import re
from pathlib import Path
from typing import Iterator

from qa.articles import Article, parse_article, slugify
from qa.errors import ArticleError, EmptyArticleError

MAX_PDF_BYTES = 100_000_000
PAGE_STARTS = "page_starts"
# A line this much shorter than the page's longest line ends a paragraph or is a heading.
_SHORT_LINE = 0.75
# Running page numbers ("3", "Page 3", "3 / 12", "- 3 -") are furniture, not text.
_PAGE_NUMBER = re.compile(r"^\s*(?:page\s+)?[-–]?\s*\d{1,4}\s*[-–]?(?:\s*(?:/|of)\s*\d{1,4})?\s*$", re.IGNORECASE)


class EncryptedPDFError(ArticleError):
    """The PDF needs a password to read."""


def page_of(article: Article, offset: int) -> int | None:
    """The 1-based page holding character `offset`, or None for an article that is not a PDF."""
    starts = article.meta.get(PAGE_STARTS)
    if not starts:
        return None
    return bisect.bisect_right([int(s) for s in starts.split(",")], offset)


def _paragraphs(page_text: str) -> str:
    """One page's lines regrouped into blank-line-separated paragraphs."""
    lines = [line.rstrip() for line in page_text.splitlines()]
    lines = [line for line in lines if line.strip() and not _PAGE_NUMBER.match(line)]
    if not lines:
        return ""
    widest = max(len(line) for line in lines)
    out: list[str] = []
    for number, line in enumerate(lines):
        out.append(line)
        if number + 1 < len(lines):
            if len(line) < _SHORT_LINE * widest:
                out.append("\n\n")
            elif not re.search(r"\w-$", line):  # a word hyphenated across lines stays one word
                out.append(" ")  # a wrapped line: citations read as one line
    return "".join(out).strip()


def parse_pdf(data: bytes, *, name: str, source: str) -> Article:
    """Extract a text PDF's article, keeping where each page starts.

    Raises:
        EncryptedPDFError: a password is needed.
        EmptyArticleError: no text layer (a scan) or nothing citable.
        ArticleError: not a readable PDF.
    """
    with _quiet_pypdf():
        return _parse(data, name=name, source=source)


@contextlib.contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """Silence pypdf's warnings ("EOF marker not found"...): the Failure already says what is wrong."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _parse(data: bytes, *, name: str, source: str) -> Article:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except Exception as exc:  # pypdf raises several types for damaged files
        raise ArticleError(f"{source}: not a readable PDF ({type(exc).__name__}: {exc}). "
                           "Open and re-save it with a PDF viewer, then add it again.") from None
    if encrypted:
        try:
            unlocked = bool(reader.decrypt(""))  # an owner-only password still allows reading
        except Exception:  # e.g. AES without the optional `cryptography` package
            unlocked = False
        if not unlocked:
            raise EncryptedPDFError(
                f"{source}: the PDF is encrypted and needs a password. Save a copy without a password "
                "(e.g. `qpdf --decrypt --password=PASSWORD in.pdf out.pdf`) and add that copy."
            )
    pages: list[str] = []
    for page in reader.pages:
        pages.append(_paragraphs(page.extract_text() or ""))
    if not any(pages):
        raise EmptyArticleError(
            f"{source}: the PDF has no text layer (it looks like a scan: {len(pages)} page(s) of images). "
            "Run OCR first (e.g. `ocrmypdf in.pdf out.pdf`) and add the result."
        )
    starts: list[int] = []
    text = ""
    for page in pages:
        if text:
            text += "\n\n"
        starts.append(len(text))
        text += page
    info = reader.metadata or {}
    declared = " ".join(str(info.get("/Title") or "").split())
    article = parse_article(text, name=name, source=source)  # raises EmptyArticleError with the fix
    meta = {"format": "pdf", "pages": str(len(pages)), PAGE_STARTS: ",".join(map(str, starts))}
    author = " ".join(str(info.get("/Author") or "").split())
    if author:
        meta["author"] = author
    return Article(id=slugify(name), title=declared or article.title, text=text, date=article.date,
                   source=source, meta=meta)


def read_pdf(path: Path) -> Article:
    """Read a text PDF.

    Raises:
        ArticleNotFoundError: no such file.
        ArticleError: too large, encrypted, scanned or damaged.
    """
    from qa.ingest import read_capped

    return parse_pdf(read_capped(path, MAX_PDF_BYTES, "PDF"), name=path.stem, source=str(path))
