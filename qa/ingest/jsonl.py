"""JSONL batches: one article per line, `{"title", "text", "date"?, "url"?, "source"?}`.

Each bad line (not JSON, not an object, no `text`, nothing citable) is reported as
`path:line` with the reason; the good lines still go in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from qa.articles import Article, decode_text, parse_article, slugify
from qa.errors import ArticleError

if TYPE_CHECKING:
    from qa.ingest import Failure

MAX_JSONL_BYTES = 500_000_000


def _field(record: dict[str, Any], *keys: str) -> str:
    """The first present key as a trimmed string ('' when absent or empty)."""
    for key in keys:
        value = record.get(key)
        if value is not None and not isinstance(value, (dict, list)):
            text = str(value).strip()
            if text:
                return text
    return ""


def parse_record(record: dict[str, Any], *, name: str, source: str) -> Article:
    """One JSONL record as an Article.

    The title goes first as `# title` so it is shown with the text but never cited.
    `source` in the record (the publisher) is kept as `meta["publisher"]`; `Article.source`
    is the record's `url`, or `path:line` when it has none.

    Raises:
        ArticleError: no `text`, or nothing citable in it.
    """
    body = record.get("text")
    if not isinstance(body, str) or not body.strip():
        raise ArticleError(f"{source}: no \"text\" field (or it is empty). Each line needs at least "
                           '{"title": ..., "text": ...}.')
    title = _field(record, "title", "headline")
    url = _field(record, "url", "link")
    text = f"# {title}\n\n{body.strip()}" if title else body.strip()
    parsed = parse_article(text, name=title or name, source=url or source)  # raises EmptyArticleError
    meta = {"format": "jsonl", "origin": source}
    for key, value in (("url", url), ("publisher", _field(record, "source", "publisher")),
                       ("author", _field(record, "author", "byline"))):
        if value:
            meta[key] = value
    identifier = _field(record, "id")
    return Article(id=slugify(identifier or title or name), title=parsed.title, text=text,
                   date=_field(record, "date", "published") or parsed.date, source=url or source, meta=meta)


def load_jsonl(path: Path) -> Iterator["Article | Failure"]:
    """Every article of a JSONL file, and a `Failure` for every bad line.

    Raises:
        ArticleNotFoundError, ArticleError: the file itself is missing, too large or not UTF-8.
    """
    from qa.ingest import Failure, read_capped

    text = decode_text(read_capped(path, MAX_JSONL_BYTES, "JSONL"), str(path))
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other line separators raw.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Failure(where, f"not valid JSON ({exc.msg} at column {exc.colno}). "
                                 "Write one JSON object per line.")
            continue
        if not isinstance(record, dict):
            yield Failure(where, f"a JSON {type(record).__name__}, not an object. "
                                 'Write one {"title": ..., "text": ...} object per line.')
            continue
        try:
            yield parse_record(record, name=f"{path.stem}-{number}", source=where)
        except ArticleError as exc:
            reason = str(exc)
            yield Failure(where, reason[len(where) + 2 :] if reason.startswith(f"{where}: ") else reason)
