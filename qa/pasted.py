"""Articles added in the app, kept as files under `<index>/pasted/` so a rebuild finds them again.

A pasted or uploaded article exists only inside the index otherwise: `qa build` starts from
files, so it could not re-index them. Each one is written as `<article id>.md` (title on the
first line, the date line if any, then the text) or, for a PDF, as the uploaded `<id>.pdf`
so its citations keep their page numbers. Ids are slugs, so they are safe file names.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from qa.articles import Article, parse_article
from qa.errors import QAError
from qa.rebuild import PASTED_FOLDER  # the folder a rebuild reads: one name for both sides

SAVED_SUFFIXES = (".md", ".pdf")
_SAFE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,120}$")


def pasted_folder(index_path: Path) -> Path:
    """Where the app keeps the article files of an index."""
    return Path(index_path) / PASTED_FOLDER


def article_file_text(article: Article) -> str:
    """The Markdown that parses back into the same title, date and body as `article`.

    The text itself when it already starts with its title (and date); else the title line and the
    date line are put before it; front matter when the date is in a form a date line cannot hold.
    """
    candidates = [article.text]
    head = f"# {article.title}\n\n" + (f"{article.date}\n\n" if article.date else "")
    candidates.append(head + article.text.lstrip("\n"))
    for text in candidates:
        if _reads_back(text, article):
            return text
    fields = f"title: {article.title}\n" + (f"date: {article.date}\n" if article.date else "")
    return f"---\n{fields}---\n\n{article.text.lstrip(chr(10))}"


def _reads_back(text: str, article: Article) -> bool:
    try:
        parsed = parse_article(text, name=article.id)
    except QAError:
        return False
    return parsed.title == article.title and parsed.date == article.date


def save_article(index_path: Path, article: Article, original_pdf: Path | None = None) -> Path:
    """Write one article's file (atomically) and return its path.

    Args:
        index_path: the index folder; the file goes to its `pasted/` folder.
        article: the article as indexed (its id names the file).
        original_pdf: the uploaded PDF the article came from, copied as is to keep its pages.

    Raises:
        ValueError: the id is not a plain slug (it never is for ids made by qa.articles).
    """
    if not _SAFE_ID.match(article.id):
        raise ValueError(f"unsafe article id for a file name: {article.id!r}")
    folder = pasted_folder(index_path)
    folder.mkdir(parents=True, exist_ok=True)
    if original_pdf is not None:
        target, data = folder / f"{article.id}.pdf", Path(original_pdf).read_bytes()
    else:
        target, data = folder / f"{article.id}.md", article_file_text(article).encode("utf-8")
    # Write a temporary file in the same folder, then rename: a crash never leaves half a file.
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".saving-", suffix=target.suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def delete_article_files(index_path: Path, article_id: str) -> list[Path]:
    """Delete the saved files of a removed article (so a rebuild does not bring it back)."""
    if not _SAFE_ID.match(article_id):
        return []
    removed = []
    for suffix in SAVED_SUFFIXES:
        path = pasted_folder(index_path) / f"{article_id}{suffix}"
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed
