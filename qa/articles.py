"""Articles: reading text files, finding title and date, and cutting the body into sentences.

Every offset here indexes `Article.text`, the decoded file exactly as read, so a citation's
`text[start:end]` is the quoted sentence, character for character.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from qa.errors import ArticleEncodingError, ArticleNotFoundError, EmptyArticleError, UnsupportedFileError
from qa.sentences import split_paragraphs, split_sentences

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
# Read by qa.ingest (imported lazily: trafilatura and pypdf are heavy).
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
PDF_SUFFIXES = (".pdf",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
ARTICLE_SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES + JSONL_SUFFIXES
MAX_TITLE_CHARS = 200
MAX_HEADING_WORDS = 14

_MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    "sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_DATE_LINE = re.compile(
    r"^\s*(?:(?:published|updated|posted|date)\s*:?\s*)?(?:on\s+)?(?:\w+day,?\s+)?"
    rf"(\d{{1,2}}/\d{{1,2}}/\d{{2,4}}|\d{{4}}-\d{{2}}-\d{{2}}(?:[T ][\d:.+\-Z]+)?"
    rf"|(?:{_MONTHS})\.?\s+\d{{1,2}},?\s+\d{{4}}|\d{{1,2}}\s+(?:{_MONTHS})\.?,?\s+\d{{4}})\s*$",
    re.IGNORECASE,
)
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_SENTENCE_END = re.compile(r"[.!?。！？:;…\"”’»)\]]\s*$")


@dataclass(frozen=True)
class SentenceSpan:
    """One citable sentence: `text[start:end]`, inside paragraph number `paragraph`."""

    start: int
    end: int
    paragraph: int


@dataclass(frozen=True)
class Article:
    """An article as indexed: metadata plus the full text that offsets point into."""

    id: str
    title: str
    text: str
    date: str | None = None
    source: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """Content hash of the text: the key for duplicate detection."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def sentences(self) -> list[SentenceSpan]:
        """The citable sentences of the body (title, date and headings are not citable)."""
        return segment_body(self.text)


def slugify(name: str) -> str:
    """A readable, file-system-safe id: lower-case ASCII words joined by dashes."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    if slug:
        return slug[:80].rstrip("-")
    # Names in scripts with no ASCII transliteration (e.g. Chinese) still need a stable id.
    return "article-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]


def _is_heading(paragraph: str) -> bool:
    """A one-line block, short and without closing punctuation, is a heading, not a sentence."""
    if "\n" in paragraph.strip():
        return False
    if paragraph.lstrip().startswith("#"):
        return True
    return len(paragraph.split()) <= MAX_HEADING_WORDS and not _SENTENCE_END.search(paragraph)


def _metadata_spans(text: str, paragraphs: list[tuple[int, int]]) -> tuple[str | None, str | None, int]:
    """Title and date from the first blocks. Returns (title, date, number of blocks used)."""
    title: str | None = None
    date: str | None = None
    used = 0
    if paragraphs:
        first = text[paragraphs[0][0] : paragraphs[0][1]]
        if "\n" not in first and len(first) <= MAX_TITLE_CHARS and _is_heading(first):
            title = first.lstrip("#").strip()
            used = 1
    if len(paragraphs) > used:
        candidate = text[paragraphs[used][0] : paragraphs[used][1]]
        match = _DATE_LINE.match(candidate)
        if match:
            date = match.group(1)
            used += 1
    return title, date, used


def _front_matter(text: str) -> tuple[dict[str, str], int]:
    """YAML-style `key: value` front matter of a Markdown file, and where the body starts."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, 0
    fields: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip().strip("\"'")
    return fields, match.end()


def _blocks(text: str) -> tuple[dict[str, str], list[tuple[int, int]]]:
    """Front-matter fields, and the paragraph spans after it (offsets into the whole text)."""
    fields, body_start = _front_matter(text)
    return fields, [(s + body_start, e + body_start) for s, e in split_paragraphs(text[body_start:])]


def segment_body(text: str) -> list[SentenceSpan]:
    """Citable sentences of an article: every sentence of every body paragraph, in order."""
    _, paragraphs = _blocks(text)
    _, _, skip = _metadata_spans(text, paragraphs)
    spans: list[SentenceSpan] = []
    for number, (p_start, p_end) in enumerate(paragraphs[skip:], start=skip):
        block = text[p_start:p_end]
        if _is_heading(block):
            continue
        for s, e in split_sentences(block):
            spans.append(SentenceSpan(p_start + s, p_start + e, number))
    return spans


def parse_article(text: str, *, name: str, source: str = "") -> Article:
    """Build an Article from raw text; `name` (usually the file stem) is the fallback title and id.

    Raises:
        EmptyArticleError: the text has no sentence to index.
    """
    fields, paragraphs = _blocks(text)
    title, date, _ = _metadata_spans(text, paragraphs)
    title = fields.get("title") or title or re.sub(r"[-_]+", " ", name).strip() or "Untitled"
    date = fields.get("date") or date
    article = Article(id=slugify(name), title=title, text=text, date=date, source=source)
    if not article.sentences():
        raise EmptyArticleError(
            f"{source or name}: no sentences to index (the file is empty or holds only a title/headings). "
            "Add the article's body text and try again."
        )
    return article


# Longest first: the UTF-32-LE mark begins with the UTF-16-LE one. Python's "utf-16"/"utf-32"
# codecs read the mark for the byte order and drop it.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def bom_encoding(data: bytes) -> str | None:
    """The encoding a byte-order mark at the start of `data` declares ("utf-16", "utf-32", "utf-8-sig"), if any."""
    return next((encoding for bom, encoding in _BOMS if data.startswith(bom)), None)


def decode_text(data: bytes, source: str) -> str:
    """Strict UTF-8, or UTF-8/16/32 with a byte-order mark; binary and other encodings are refused with a fix.

    Windows editors save "Unicode" text as UTF-16 with a mark; its zero bytes are not a sign of binary.
    """
    encoding = bom_encoding(data) or "utf-8"
    if encoding == "utf-8" and b"\x00" in data[:8192]:
        raise ArticleEncodingError(f"{source}: this looks like a binary file, not text. Give a .txt or .md article.")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        name = {"utf-16": "UTF-16", "utf-32": "UTF-32"}.get(encoding, "UTF-8")
        raise ArticleEncodingError(
            f"{source}: not valid {name} (byte {exc.start}). Re-save the file as UTF-8 and add it again."
        ) from None
    if "\x00" in text[:8192]:  # a mark followed by binary, or UTF-16 text read with the wrong width
        raise ArticleEncodingError(f"{source}: this looks like a binary file, not text. Give a .txt or .md article.")
    return text


def read_article(path: str | Path) -> Article:
    """Read one article: a .txt/.md file here; .html/.pdf/.jsonl files and http(s) URLs via qa.ingest.

    Raises:
        ArticleNotFoundError: no such file.
        UnsupportedFileError: not a supported file type.
        ArticleEncodingError: binary or not UTF-8.
        EmptyArticleError: nothing to index.
    """
    if isinstance(path, str) and path.strip().lower().startswith(("http://", "https://")):
        from qa.ingest import read_one

        return read_one(path)
    path = Path(path)
    if not path.is_file():
        raise ArticleNotFoundError(f"{path}: no such file. Check the path.")
    if path.suffix.lower() in ARTICLE_SUFFIXES and path.suffix.lower() not in TEXT_SUFFIXES:
        from qa.ingest import read_one

        return read_one(path)
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise UnsupportedFileError(
            f"{path}: unsupported file type '{path.suffix}'. Supported: {', '.join(ARTICLE_SUFFIXES)}."
        )
    text = decode_text(path.read_bytes(), str(path))
    return parse_article(text, name=path.stem, source=str(path))


def find_article_files(path: str | Path) -> Iterator[Path]:
    """The article files under a folder (recursively, sorted, hidden files skipped), or the file itself."""
    path = Path(path)
    if not path.exists():
        raise ArticleNotFoundError(f"{path}: no such file or folder. Check the path.")
    if path.is_file():
        yield path
        return
    for candidate in sorted(path.rglob("*")):
        hidden = any(part.startswith(".") for part in candidate.relative_to(path).parts)
        if candidate.is_file() and not hidden and candidate.suffix.lower() in ARTICLE_SUFFIXES:
            yield candidate
