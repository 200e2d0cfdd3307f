"""The corpus: articles plus a flat table of their citable sentences, saved as plain files.

Sentence ids are row numbers: row i of the sentence table, of the embedding matrix and of the
FAISS and BM25 indexes is the same sentence. Sentence text is never stored twice: it is always
`article.text[start:end]`, so citations are exact by construction.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from qa.acronyms import acronym_expander
from qa.articles import Article

ARTICLES_FILE = "articles.jsonl"
SENTENCES_FILE = "sentences.npy"
# Columns of the sentence table.
ARTICLE, START, END, PARAGRAPH, POSITION = range(5)


@dataclass(frozen=True)
class Corpus:
    """Immutable articles + sentence table; `with_articles`/`without_article` return new corpora."""

    articles: tuple[Article, ...]
    table: np.ndarray  # (n, 5) int64: article row, start, end, paragraph, position within article

    @classmethod
    def empty(cls) -> "Corpus":
        """A corpus with no articles."""
        return cls((), np.zeros((0, 5), dtype=np.int64))

    @classmethod
    def from_articles(cls, articles: Iterable[Article]) -> "Corpus":
        """Segment each article into sentences and lay them out in one table."""
        return cls.empty().with_articles(articles)

    def __len__(self) -> int:
        return len(self.table)

    def sentence(self, sentence_id: int) -> str:
        """The exact text of one sentence."""
        row = self.table[sentence_id]
        return self.articles[row[ARTICLE]].text[row[START] : row[END]]

    def sentences(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """The exact texts of several sentences (one vectorised table read)."""
        rows = self.table[np.asarray(ids, dtype=np.int64)]
        articles = self.articles
        return [articles[a].text[s:e] for a, s, e in zip(rows[:, ARTICLE].tolist(), rows[:, START].tolist(), rows[:, END].tolist())]

    def article_of(self, sentence_id: int) -> Article:
        """The article a sentence belongs to."""
        return self.articles[int(self.table[sentence_id, ARTICLE])]

    def texts(self) -> list[str]:
        """All sentence texts in id order."""
        return [self.sentence(i) for i in range(len(self))]

    @functools.cached_property
    def neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """Ids of each sentence's previous and next sentence in its paragraph (-1 where none)."""
        key = self._paragraph_keys()
        ids = np.arange(len(self))
        previous = np.full(len(self), -1, dtype=np.int64)
        following = np.full(len(self), -1, dtype=np.int64)
        same = key[1:] == key[:-1]
        previous[1:][same] = ids[:-1][same]
        following[:-1][same] = ids[1:][same]
        return previous, following

    @functools.cached_property
    def paragraph_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """For each sentence, the id range [start, end) of its paragraph (paragraphs are contiguous)."""
        key = self._paragraph_keys()
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(self) else np.zeros(0, dtype=np.int64)
        last = np.r_[first[1:], len(self)]
        group = np.cumsum(np.r_[True, key[1:] != key[:-1]]) - 1 if len(self) else np.zeros(0, dtype=np.int64)
        return first[group], last[group]

    def _paragraph_keys(self) -> np.ndarray:
        return self.table[:, ARTICLE] * (1 << 32) + self.table[:, PARAGRAPH]

    def embedding_texts(self, start: int = 0) -> tuple[list[str], list[str], list[str]]:
        """What the encoder reads for sentences `start:`: the sentence, "title: sentence", and the
        sentence between its paragraph neighbours (the measured recipe: docs/quality.md).

        All three spell out acronyms the article defines ("LLMs" -> "LLMs (large language
        models)"), so a question in words finds a sentence in acronyms. BM25 reads the first
        and the last of these texts too.
        """
        previous, following = self.neighbours
        sentences, titled, in_context = [], [], []
        for i, expand in zip(range(start, len(self)), self._expanders(start)):
            row = int(self.table[i, ARTICLE])
            text = self.sentence(i)
            sentences.append(expand(text))
            titled.append(expand(f"{self.articles[row].title}: {text}"))
            around = [self.sentence(int(j)) for j in (previous[i],) if j >= 0] + [text]
            around += [self.sentence(int(j)) for j in (following[i],) if j >= 0]
            in_context.append(expand(" ".join(around)))
        return sentences, titled, in_context

    def title_texts(self) -> list[str]:
        """Each article's title as the encoder reads it (acronyms its article defines spelled out)."""
        return [acronym_expander(article.text)(article.title) for article in self.articles]

    def lexical_texts(self, start: int = 0) -> list[str]:
        """What BM25 reads for sentences `start:`: the first of `embedding_texts`, alone (cheaper)."""
        return [expand(self.sentence(i)) for i, expand in zip(range(start, len(self)), self._expanders(start))]

    def _expanders(self, start: int) -> Iterator[Callable[[str], str]]:
        """The acronym expander of each sentence's article, for sentences `start:` (one per article)."""
        cache: dict[int, Callable[[str], str]] = {}
        for row in self.table[start:, ARTICLE].tolist():
            if row not in cache:
                cache[row] = acronym_expander(self.articles[row].text)
            yield cache[row]

    def index_of(self, article_id: str) -> int | None:
        """Row of an article by id, or None."""
        for row, article in enumerate(self.articles):
            if article.id == article_id:
                return row
        return None

    def sentence_ids(self, article_row: int) -> np.ndarray:
        """Ids of an article's sentences."""
        return np.flatnonzero(self.table[:, ARTICLE] == article_row)

    def with_articles(self, articles: Iterable[Article]) -> "Corpus":
        """A new corpus with `articles` appended; their sentences get the next ids."""
        new_articles = list(self.articles)
        rows = [self.table]
        for article in articles:
            spans = article.sentences()
            block = np.zeros((len(spans), 5), dtype=np.int64)
            block[:, ARTICLE] = len(new_articles)
            block[:, START] = [s.start for s in spans]
            block[:, END] = [s.end for s in spans]
            block[:, PARAGRAPH] = [s.paragraph for s in spans]
            block[:, POSITION] = np.arange(len(spans))
            rows.append(block)
            new_articles.append(article)
        return Corpus(tuple(new_articles), np.concatenate(rows))

    def without_article(self, article_row: int) -> tuple["Corpus", np.ndarray]:
        """A new corpus without one article, and the boolean mask of the sentence rows kept."""
        keep = self.table[:, ARTICLE] != article_row
        table = self.table[keep].copy()
        table[table[:, ARTICLE] > article_row, ARTICLE] -= 1
        articles = self.articles[:article_row] + self.articles[article_row + 1 :]
        return Corpus(articles, table), keep

    def only_articles(self, article_rows: Sequence[int]) -> tuple["Corpus", np.ndarray]:
        """A new corpus of the articles at `article_rows` (ascending), and the mask of the sentence rows kept."""
        rows = np.asarray(article_rows, dtype=np.int64)
        keep = np.isin(self.table[:, ARTICLE], rows)
        table = self.table[keep].copy()
        table[:, ARTICLE] = np.searchsorted(rows, table[:, ARTICLE])
        return Corpus(tuple(self.articles[r] for r in rows.tolist()), table), keep

    @classmethod
    def concatenate(cls, corpora: Sequence["Corpus"]) -> "Corpus":
        """One corpus of several, in order: their sentences and articles follow one another."""
        tables, articles = [], []
        for corpus in corpora:
            table = corpus.table.copy()
            table[:, ARTICLE] += len(articles)
            tables.append(table)
            articles.extend(corpus.articles)
        return cls(tuple(articles), np.concatenate(tables) if tables else np.zeros((0, 5), dtype=np.int64))

    def save(self, folder: Path) -> None:
        """Write articles.jsonl and sentences.npy into `folder`."""
        with (folder / ARTICLES_FILE).open("w", encoding="utf-8") as handle:
            for article in self.articles:
                handle.write(json.dumps(asdict(article), ensure_ascii=False) + "\n")
        np.save(folder / SENTENCES_FILE, self.table)

    @classmethod
    def load(cls, folder: Path) -> "Corpus":
        """Read what `save` wrote."""
        with (folder / ARTICLES_FILE).open(encoding="utf-8") as handle:
            articles = tuple(Article(**json.loads(line)) for line in handle if line.strip())
        table = np.load(folder / SENTENCES_FILE, allow_pickle=False)
        if table.ndim != 2 or table.shape[1] != 5 or (len(table) and table[:, ARTICLE].max() >= len(articles)):
            raise ValueError("sentence table does not match the articles")
        return cls(articles, table)
