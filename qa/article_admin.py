"""The app's Articles tab: list, add (uploaded files or pasted text) and remove articles.

Each file of an upload is judged on its own, as `qa add` does: the good ones go in and every bad
one is named with the reason. Added articles are also saved under `<index>/pasted/` (qa.pasted),
so a rebuild of the index keeps them; removing one deletes its file too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from qa.articles import ARTICLE_SUFFIXES, PDF_SUFFIXES, TEXT_SUFFIXES, Article, decode_text, parse_article
from qa.errors import ArticleError, QAError
from qa.index import AddReport, Index
from qa.pasted import save_article
from qa.progress import Status
from qa.sentences import split_sentences

MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # one news article is a few kB; 2 MB leaves room and caps abuse
MAX_TITLE_CHARS = 200
DERIVED_TITLE_CHARS = 60  # a title made from the first sentence is cut at a word near this length
PASTED_SOURCE = "pasted in the app"
UNTITLED = "pasted article"  # parse_article's fallback title for a paste: replaced by the first sentence

Progress = Callable[..., Any] | None  # a gr.Progress, or any callable taking (fraction, desc=...)


@dataclass
class Upload:
    """Articles read from the chosen files, the PDFs they came from, and what could not be read."""

    articles: list[Article] = field(default_factory=list)
    pdfs: dict[str, Path] = field(default_factory=dict)  # article text hash -> the uploaded PDF
    problems: list[str] = field(default_factory=list)


def count(number: int, noun: str) -> str:
    """'1 sentence', '2 sentences'."""
    return f"{number} {noun}" + ("" if number == 1 else "s")


def size_text(count_bytes: int) -> str:
    """A byte count for people: '2.0 MB', '12 kB'."""
    return f"{count_bytes / 1024 / 1024:.1f} MB" if count_bytes >= 1024 * 1024 else f"{count_bytes / 1024:.0f} kB"


def derived_title(text: str) -> str:
    """A title for an untitled paste: its first sentence, cut at a word if long."""
    spans = split_sentences(text.strip())
    first = " ".join(text.strip()[spans[0][0] : spans[0][1]].split()) if spans else " ".join(text.split())
    first = first.rstrip(".!?。！？")
    if len(first) > DERIVED_TITLE_CHARS:
        first = first[:DERIVED_TITLE_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return first or "Untitled"


def _unlabelled(message: str) -> str:
    """An add report line without the article's source label, which the status line already implies."""
    for label in ("uploaded: ", f"{PASTED_SOURCE}: "):
        if message.startswith(label):
            return message[len(label):]
    return message


class ArticleAdmin:
    """Handlers of the Articles tab over one live Index (the constructor only stores)."""

    def __init__(self, index: Index, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.index = index
        self.max_upload_bytes = max_upload_bytes

    def listing(self) -> list[list[Any]]:
        """The articles table, newest first: title, date, sentences, id."""
        return [[a.title, a.date or "", a.sentences, a.id] for a in reversed(self.index.articles())]

    def choices(self) -> list[tuple[str, str]]:
        """The remove menu: ("title · date", id) pairs, newest first; the id is the value, never typed."""
        return [(f"{a.title} · {a.date}" if a.date else a.title, a.id) for a in reversed(self.index.articles())]

    def add_files(self, files: str | Sequence[str] | None, progress: Progress = None) -> str:
        """Add uploaded article files; returns the status message."""
        paths = [files] if isinstance(files, str) else list(files or [])
        if not paths:
            return "Choose one or more article files first."
        upload = Upload()
        for path in paths:
            self._read_upload(Path(str(path)), upload)
        return self._add(upload, progress)

    def add_pasted(self, title: str | None, text: str | None, progress: Progress = None) -> str:
        """Add an article from a pasted title and text; returns the status message."""
        title = " ".join((title or "").split())[:MAX_TITLE_CHARS]
        text = (text or "").strip()
        if not text:
            return "Paste the article's text first (a title alone has nothing to quote)."
        if len(text.encode("utf-8")) > self.max_upload_bytes:
            return f"The text is over the {size_text(self.max_upload_bytes)} limit. Trim it or split it."
        try:
            if not title and parse_article(text + "\n", name=UNTITLED).title == UNTITLED:
                title = derived_title(text)  # no title typed and none on the first line
            full = f"# {title}\n\n{text}\n" if title else text + "\n"
            article = parse_article(full, name=title or UNTITLED, source="pasted")
        except ArticleError as exc:
            return f"Not added: {exc}"
        return self._add(Upload(articles=[replace(article, source=PASTED_SOURCE)]), progress)

    def remove(self, article_id: str | None) -> str:
        """Remove one article by id (and its saved file); the next question no longer sees it."""
        if not article_id:
            return "Choose an article to remove first."
        try:
            info = self.index.remove(article_id)
        except QAError as exc:
            return str(exc)
        return f"Removed '{info.title}' ({info.id}, {count(info.sentences, 'sentence')})."

    def _read_upload(self, path: Path, upload: Upload) -> None:
        """Read one uploaded file into `upload`. Gradio's copy keeps the original base name."""
        name = path.name
        suffix = path.suffix.lower()
        if suffix not in ARTICLE_SUFFIXES:
            upload.problems.append(f"{name}: only {', '.join(ARTICLE_SUFFIXES)} files can be added.")
            return
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            upload.problems.append(
                f"{name}: {size_text(size)} is over the {size_text(self.max_upload_bytes)} limit. Split it.")
            return
        if suffix in TEXT_SUFFIXES:
            try:
                article = parse_article(decode_text(path.read_bytes(), name), name=path.stem, source=name)
            except ArticleError as exc:
                upload.problems.append(str(exc))
                return
            upload.articles.append(replace(article, source=f"uploaded: {name}"))
            return
        from qa.ingest import Failure, load_file

        for item in load_file(path):  # HTML, PDF, JSONL: read from Gradio's upload copy
            if isinstance(item, Failure):
                reason = item.reason.replace(str(path), name)
                upload.problems.append(reason if reason.startswith(name) else f"{name}: {reason}")
                continue
            upload.articles.append(replace(item, source=f"uploaded: {name}"))
            if suffix in PDF_SUFFIXES:
                upload.pdfs[item.sha256] = path

    def _add(self, upload: Upload, progress: Progress) -> str:
        report, problems = AddReport(), list(upload.problems)
        if upload.articles:
            try:
                report = self.index.add_articles(upload.articles, progress=_bar_mover(progress) or False)
            except QAError as exc:
                problems.append(str(exc))
        problems += [f"{name}: {why}" for name, why in report.failed]
        infos = {a.id: a for a in self.index.articles()}
        lines = []
        for article_id in report.added:
            if article_id in infos:
                # Saved as indexed: the add may have given it another id (a taken name gets a hash suffix).
                self._save(self.index.article(article_id), upload.pdfs, problems)
                info = infos[article_id]
                lines.append(f"Added '{info.title}' ({info.id}, {count(info.sentences, 'sentence')}).")
        lines += [f"Near-duplicate: {_unlabelled(message)}" for message in report.near_duplicates]
        lines += [f"Skipped: {_unlabelled(message)}" for message in report.duplicates]
        lines += [f"Not added: {problem}" for problem in problems]
        return "\n".join(lines) or "Nothing was added."

    def _save(self, article: Article, pdfs: dict[str, Path], problems: list[str]) -> None:
        try:
            save_article(self.index.path, article, original_pdf=pdfs.get(article.sha256))
        except (OSError, ValueError) as exc:
            problems.append(f"{article.id}: indexed, but its copy under pasted/ could not be written ({exc}); "
                            "a rebuild of the index would drop it.")


def _bar_mover(progress: Progress) -> Callable[[Status], None] | None:
    """A progress reporter (qa.progress) that moves the app's bar: the share embedded, and the
    count, rate and ETA as its text ('Embedded 1,200/4,800 sentences, 40 sentences/s, ETA 1m 30s')."""
    if progress is None:
        return None

    def move(status: Status) -> None:
        text = status.describe()
        progress(status.fraction, desc=text[:1].upper() + text[1:])

    return move
