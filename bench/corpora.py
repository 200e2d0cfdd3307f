"""Benchmark corpora: SQuAD dev as articles, its questions, and generated corpora of any size.

SQuAD v1.1 dev is read from `../shared/eval/` (beside the repository) and never copied. Each of
its 48 articles becomes one text: the title line, a blank line, then its paragraphs separated by
blank lines, parsed by `qa.articles.parse_article` exactly as a user's file would be.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from qa.articles import Article, parse_article
from qa.corpus import ARTICLE, END, START, Corpus

SHARED = Path(__file__).resolve().parents[2] / "shared"
SQUAD_FILE = SHARED / "eval" / "squad-dev-v1.1.json.gz"


def squad_available() -> bool:
    """True when the SQuAD dev file is beside the repository."""
    return SQUAD_FILE.is_file()


@lru_cache(maxsize=1)
def _squad() -> list[dict[str, Any]]:
    if not squad_available():
        raise FileNotFoundError(f"{SQUAD_FILE} is missing: the benchmark reads SQuAD dev from ../shared/eval/.")
    with gzip.open(SQUAD_FILE, "rt", encoding="utf-8") as handle:
        return json.load(handle)["data"]


@dataclass(frozen=True)
class SquadArticle:
    """One SQuAD article as a user file, with where each paragraph starts in its text."""

    article: Article
    paragraph_starts: tuple[int, ...]
    raw: dict[str, Any]


def squad_articles(limit: int | None = None) -> list[SquadArticle]:
    """The SQuAD dev articles (all 48, or the first `limit`), parsed like user files."""
    out = []
    for raw in _squad()[:limit]:
        title = raw["title"].replace("_", " ")
        parts, starts, cursor = [title], [], len(title)
        for paragraph in raw["paragraphs"]:
            cursor += 2  # the blank line before each paragraph
            starts.append(cursor)
            parts.append(paragraph["context"])
            cursor += len(paragraph["context"])
        text = "\n\n".join(parts) + "\n"
        out.append(SquadArticle(parse_article(text, name=title, source=f"squad-dev:{raw['title']}"), tuple(starts), raw))
    return out


def squad_questions(count: int | None = 200, seed: int = 0) -> list[str]:
    """`count` unique SQuAD dev questions, a fixed random sample (all of them when `count` is None)."""
    unique = sorted({qa["question"].strip() for a in _squad() for p in a["paragraphs"] for qa in p["qas"]})
    if count is None or count >= len(unique):
        return unique
    return random.Random(seed).sample(unique, count)


def squad_gold(items: list[SquadArticle], corpus: Corpus) -> tuple[list[str], list[set[int]]]:
    """Unique questions and, for each, the ids of the corpus sentences holding a gold answer start.

    ReQA protocol (see ../shared/eval/README.md); `corpus` must hold `items` in the same order.
    Questions whose answers no sentence covers are dropped.
    """
    gold: dict[str, set[int]] = {}
    for row, item in enumerate(items):
        ids = np.flatnonzero(corpus.table[:, ARTICLE] == row)
        starts, ends = corpus.table[ids, START], corpus.table[ids, END]
        for offset, paragraph in zip(item.paragraph_starts, item.raw["paragraphs"]):
            for qa in paragraph["qas"]:
                found = gold.setdefault(qa["question"].strip(), set())
                for answer in qa["answers"]:
                    at = offset + answer["answer_start"]
                    found.update(int(i) for i in ids[(starts <= at) & (at < ends)])
    questions = sorted(q for q, ids in gold.items() if ids)
    return questions, [gold[q] for q in questions]


def generated_corpus(
    size: int, texts: list[str], vectors: Sequence[np.ndarray], *, noise: float = 0.5, seed: int = 0,
    per_paragraph: int = 4, per_article: int = 20,
) -> tuple[Corpus, list[np.ndarray]]:
    """A corpus of `size` sentences made without the model, and its unit vectors.

    Each generated sentence repeats a real sentence drawn at random (`texts[j]`), so BM25 sees
    a real vocabulary; each of its vectors (the matrices of `vectors`, in the index's file
    layout: sentence; title and context side by side) is that sentence's real vector plus
    Gaussian noise of norm about `noise`,
    re-normalised (cosine about 0.9 to the original), so the vectors keep the clustered shape
    of real embeddings. Sentences are grouped `per_paragraph` to a paragraph and `per_article`
    to an article titled "Generated article N"; the sentence table is laid out directly from
    the known offsets (no segmenter run), so row i is sentence i.
    """
    rng = np.random.default_rng(seed)
    source = rng.integers(0, len(texts), size)
    clean = [" ".join(t.split()) for t in texts]  # one line each, so blank lines stay paragraph breaks
    rows = np.arange(size)
    article, position = rows // per_article, rows % per_article
    first_in_paragraph = position % per_paragraph == 0
    titles = [f"Generated article {a + 1}" for a in range(int(article[-1]) + 1 if size else 0)]
    lengths = np.array([len(t) for t in clean], dtype=np.int64)[source]
    # Offsets follow from the lengths: "\n\n" opens a paragraph, " " joins sentences inside one.
    step = np.where(first_in_paragraph, 2, 1) + lengths
    ends = np.cumsum(step)
    article_start = np.flatnonzero(position == 0)
    ends -= np.repeat(ends[article_start] - step[article_start], per_article)[:size]  # restart per article
    ends += np.array([len(t) for t in titles], dtype=np.int64)[article]
    table = np.stack([article, ends - lengths, ends, position // per_paragraph + 1, position], axis=1)
    pieces = [("\n\n" if first else " ") + clean[j] for first, j in zip(first_in_paragraph.tolist(), source.tolist())]
    articles = [
        Article(id=f"generated-{a + 1}", title=title, text=title + "".join(pieces[a * per_article : (a + 1) * per_article]) + "\n",
                source="generated")
        for a, title in enumerate(titles)
    ]
    dimension = vectors[0].shape[1] if vectors else 0
    return Corpus(tuple(articles), table), [_noisy(matrix, source, noise, rng, dimension) for matrix in vectors]


def _noisy(base: np.ndarray, source: np.ndarray, noise: float, rng: np.random.Generator, dimension: int) -> np.ndarray:
    """Unit vectors `base[source] + noise`, built in blocks (1M rows of noise at once is 1.5 GB more).

    A row of `base` may hold several vectors side by side (the title and context file): each
    `dimension`-wide part gets its own noise and is normalised on its own.
    """
    out = np.empty((len(source), base.shape[1]), dtype=np.float32)
    scale = np.float32(noise / np.sqrt(dimension))
    for start in range(0, len(source), 100_000):
        block = base[source[start : start + 100_000]]
        block += rng.standard_normal(block.shape, dtype=np.float32) * scale
        parts = block.reshape(len(block), -1, dimension)
        out[start : start + len(block)] = (parts / np.linalg.norm(parts, axis=2, keepdims=True)).reshape(len(block), -1)
    return out
