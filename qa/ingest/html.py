"""HTML articles: the main text, title, author and date of a saved news page, via trafilatura.

Menus, ads, bylines, share bars and comments are dropped by trafilatura's boilerplate
removal. The article text is rebuilt as plain text: `# title`, then one block per paragraph,
`## ` before sub-headings and `- ` before list items, blank lines between blocks, so the
usual paragraph and sentence splitting applies and headings are never cited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qa.articles import Article, slugify
from qa.errors import EmptyArticleError

MAX_HTML_BYTES = 20_000_000
# Block tags trafilatura's output may hold that are never article prose.
_SKIPPED_TAGS = frozenset({"nav", "table", "graphic", "figure", "aside", "header", "footer", "form", "comments"})


def _clean(text: str | None) -> str:
    """Collapse runs of whitespace (trafilatura keeps source line breaks inside paragraphs)."""
    return " ".join((text or "").split())


def _blocks(body: Any, title: str) -> list[str]:
    """Paragraph blocks of trafilatura's XML body, in document order."""
    blocks: list[str] = []
    for element in body:
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag in _SKIPPED_TAGS:
            continue
        if tag == "list":
            items = [_clean("".join(item.itertext())) for item in element.iter("item")]
            lines = [f"- {item}" for item in items if item]
            if lines:
                blocks.append("\n".join(lines))
            continue
        text = _clean("".join(element.itertext()))
        if not text:
            continue
        if tag == "head":
            if not blocks and text.casefold() == title.casefold():
                continue  # the page's <h1> repeats the title we already put first
            text = f"## {text}"
        blocks.append(text)
    return blocks


def parse_html(data: bytes | str, *, name: str, source: str, url: str | None = None) -> Article:
    """Extract the article from an HTML page.

    Args:
        data: the page, as bytes (encoding detected from the page) or text.
        name: fallback title and the article id (usually the file stem).
        source: where it came from (file path or URL), kept in `Article.source`.
        url: the page's URL when known (helps trafilatura resolve metadata).

    Raises:
        EmptyArticleError: the page has no article body (only navigation, a form, an error page).
    """
    import trafilatura

    document = trafilatura.bare_extraction(
        data,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
        include_formatting=False,
        # Only dates the page declares (meta tags, JSON-LD, <time>): a guess from a copyright
        # footer or today's date would be a wrong publication date.
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    body = getattr(document, "body", None)
    title = _clean(getattr(document, "title", None)) or name.replace("-", " ").replace("_", " ").strip() or "Untitled"
    blocks = _blocks(body, title) if body is not None else []
    text = "\n\n".join([f"# {title}", *blocks])
    meta = {"format": "html"}
    for key in ("author", "url", "sitename", "language", "description"):
        value = _clean(getattr(document, key, None))
        if value:
            meta[key] = value
    article = Article(id=slugify(name), title=title, text=text, date=getattr(document, "date", None) or None,
                      source=source, meta=meta)
    if not blocks or not article.sentences():
        raise EmptyArticleError(
            f"{source}: no article body found (the page holds only navigation, links or headings). "
            "Save the article page itself, or paste its text into a .txt file."
        )
    return article


def read_html(path: Path) -> Article:
    """Read a saved web page (.html/.htm).

    Raises:
        ArticleNotFoundError: no such file.
        ArticleError: too large, or no article body.
    """
    from qa.ingest import read_capped

    data = read_capped(path, MAX_HTML_BYTES, "web page")
    return parse_html(data, name=path.stem, source=str(path))
