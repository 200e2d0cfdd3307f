"""SQuAD-format files as articles plus gold answer offsets, and the fixed half split.

Each SQuAD article becomes one article file whose text is the title line, a blank line, then
its paragraphs separated by blank lines. A gold `answer_start` (paragraph-relative in SQuAD)
becomes an offset into that article text, so it can be compared with the `[start, end)` span
of any sentence the engine cites.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from qa.articles import slugify
from qa.errors import QAError

TUNING, HELD_OUT = "tuning", "held-out"
PARAGRAPH_BREAK = "\n\n"
# SQuAD titles ("Sky_(United_Kingdom)") are safe file names as they are; anything else is slugged.
_SAFE_NAME = re.compile(r"^[\w(),.'-]+$")


class EvaluationDataError(QAError, ValueError):
    """The evaluation file is missing or not in SQuAD format."""


@dataclass(frozen=True)
class Gold:
    """Where one gold answer starts: `article` indexes `SquadSet.articles`, `offset` its text."""

    article: int
    paragraph: int
    offset: int


@dataclass(frozen=True)
class SquadArticle:
    """One SQuAD article laid out as an article file."""

    title: str  # as in the SQuAD file, e.g. "Super_Bowl_50"
    file_name: str  # stem of the article file; the engine derives the article id from it
    text: str
    paragraph_starts: tuple[int, ...]  # offset of each paragraph's first character in `text`
    half: str  # TUNING or HELD_OUT


@dataclass(frozen=True)
class SquadQuestion:
    """One unique question string with every gold answer it has anywhere in the file."""

    text: str
    golds: tuple[Gold, ...]

    @property
    def article(self) -> int:
        """The article of the question's first occurrence (decides its half)."""
        return self.golds[0].article


@dataclass(frozen=True)
class SquadSet:
    """A loaded SQuAD file: articles, unique questions and counts for the report."""

    path: str
    sha256: str  # of the uncompressed JSON, to tell which file was measured
    version: str
    articles: tuple[SquadArticle, ...]
    questions: tuple[SquadQuestion, ...]
    paragraphs: int
    question_rows: int  # questions in the file before de-duplication
    articles_in_file: int


def article_text(title: str, contexts: list[str]) -> tuple[str, tuple[int, ...]]:
    """The article text for a title and its paragraphs, and where each paragraph starts in it."""
    parts = [title.replace("_", " ").strip()]
    starts: list[int] = []
    cursor = len(parts[0])
    for context in contexts:
        cursor += len(PARAGRAPH_BREAK)
        starts.append(cursor)
        parts.append(context)
        cursor += len(context)
    return PARAGRAPH_BREAK.join(parts), tuple(starts)


def split_halves(titles: list[str]) -> list[str]:
    """The fixed split: titles sorted, even positions tune, odd positions are held out."""
    order = sorted(range(len(titles)), key=lambda i: (titles[i], i))
    halves = [TUNING] * len(titles)
    for position, i in enumerate(order):
        halves[i] = TUNING if position % 2 == 0 else HELD_OUT
    return halves


def _read_json(path: Path) -> tuple[dict, str]:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
        return json.loads(raw.decode("utf-8")), hashlib.sha256(raw).hexdigest()
    except FileNotFoundError:
        raise EvaluationDataError(f"{path}: no such file. Give the path of a SQuAD .json or .json.gz file.") from None
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationDataError(
            f"{path}: not a readable SQuAD JSON file ({type(exc).__name__}: {exc}). "
            "Give a SQuAD v1.1-format .json or .json.gz file."
        ) from None


def load_squad(path: str | Path, articles: int | None = None) -> SquadSet:
    """Read a SQuAD v1.1-format file (.json or .json.gz).

    Args:
        path: the file.
        articles: keep only the first N articles of the file (a quick slice); None keeps all.

    Raises:
        EvaluationDataError: missing file, bad JSON, or not SQuAD-shaped.
    """
    path = Path(path)
    if articles is not None and articles < 1:
        raise EvaluationDataError(f"--articles must be at least 1, not {articles}.")
    data, digest = _read_json(path)
    try:
        entries = data["data"]
        chosen = entries[:articles] if articles else entries
        titles = [str(entry["title"]) for entry in chosen]
        halves = split_halves(titles)
        built: list[SquadArticle] = []
        golds: dict[str, list[Gold]] = {}
        paragraphs = rows = 0
        for a, (entry, half) in enumerate(zip(chosen, halves)):
            contexts = [p["context"] for p in entry["paragraphs"]]
            text, starts = article_text(entry["title"], contexts)
            name = entry["title"] if _SAFE_NAME.match(entry["title"]) else slugify(entry["title"])
            built.append(SquadArticle(entry["title"], name, text, starts, half))
            paragraphs += len(contexts)
            for p, paragraph in enumerate(entry["paragraphs"]):
                for qa in paragraph["qas"]:
                    rows += 1
                    # ReQA counts unique question strings; the engine strips questions, so do we.
                    found = golds.setdefault(qa["question"].strip(), [])
                    for answer in qa["answers"]:
                        gold = Gold(a, p, starts[p] + int(answer["answer_start"]))
                        if gold not in found:
                            found.append(gold)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise EvaluationDataError(
            f"{path}: not in SQuAD v1.1 format ({type(exc).__name__}: {exc}); expected "
            '{"data": [{"title", "paragraphs": [{"context", "qas": [{"question", "answers": '
            '[{"answer_start", "text"}]}]}]}]}.'
        ) from None
    questions = tuple(SquadQuestion(text, tuple(g)) for text, g in golds.items() if text and g)
    if not questions:
        raise EvaluationDataError(f"{path}: no questions with answers found. Give a SQuAD file with answers.")
    return SquadSet(str(path), digest, str(data.get("version", "")), tuple(built), questions,
                    paragraphs, rows, len(entries))


def write_articles(squad: SquadSet, folder: Path) -> dict[str, Path]:
    """Write each half's articles as UTF-8 .txt files under `folder/<half>/`; returns the folders."""
    folders = {half: folder / half for half in (TUNING, HELD_OUT)}
    for article in squad.articles:
        target = folders[article.half]
        target.mkdir(parents=True, exist_ok=True)
        # newline="" keeps the text byte-exact, so gold offsets stay valid after reading back.
        with (target / f"{article.file_name}.txt").open("w", encoding="utf-8", newline="") as handle:
            handle.write(article.text)
    return {half: path for half, path in folders.items() if path.exists()}
