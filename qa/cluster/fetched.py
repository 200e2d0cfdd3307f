"""What the router has read from its shards, presented as the corpus the answer rules read.

The turn rules (`qa.turns`), the confidence (`qa.confidence`) and composing (`qa.answering`)
read a `Corpus` by global sentence id: sentence text, table rows, paragraph bounds, articles.
`Fetched` answers those reads from what the shards sent, so the router runs that one
implementation unchanged. It holds two tiers:

- *lines*, sent with every candidate (`qa.cluster.shards.Lines`): each candidate's table row,
  text and its article's id and title. The money preference and the follow-up fit read only these.
- *details*, fetched for the hits an answer looks at (`qa.cluster.shards.Details`): whole articles
  with their sentence rows (paragraphs, confidence, citations) and sentence vectors (selection).

A read of something not fetched raises `NotFetched` naming the sentences it needs: the router
fetches them and runs the rules again (they are deterministic and cheap to re-run).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from qa.articles import Article
from qa.corpus import ARTICLE, PARAGRAPH


class NotFetched(LookupError):
    """The rules read data of sentences `ids` that the router has not fetched from the shards yet."""

    def __init__(self, ids: Iterable[int]) -> None:
        self.ids = [int(i) for i in ids]
        super().__init__(f"not fetched yet: sentences {self.ids[:5]}")


class Headline:
    """An article known by id and title only (from the lines tier); reading more raises `NotFetched`."""

    def __init__(self, article_id: str, title: str, sentence_id: int) -> None:
        self.id, self.title, self._sentence_id = article_id, title, sentence_id

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe for optional hooks
            raise AttributeError(name)
        raise NotFetched([self._sentence_id])  # text, date, source, meta: the article must be fetched


class _Lookup:
    """`table`, `articles`, a side of `paragraph_bounds` or the vectors: indexed as the corpus's are."""

    def __init__(self, read: Any) -> None:
        self._read = read

    def __getitem__(self, key: Any) -> Any:
        return self._read(key)


class Fetched:
    """A duck-typed `qa.corpus.Corpus` over the sentences fetched so far, by global id.

    Attributes:
        table: `table[i]` is sentence i's row, `table[i, column]` one cell (ARTICLE is the
            global article row, as in the single index's corpus).
        articles: `articles[row]` is the article, or a `Headline` when only its title is known.
        paragraph_bounds: `(starts, ends)`: `starts[i]`/`ends[i]` bound sentence i's paragraph.
        vectors: `vectors[i]` is sentence i's vector (what `compose` takes as embeddings).
    """

    def __init__(self) -> None:
        self._rows: dict[int, np.ndarray] = {}
        self._texts: dict[int, str] = {}
        self._headlines: dict[int, Headline] = {}
        self._articles: dict[int, Article] = {}
        self._blocks: dict[int, tuple[int, np.ndarray]] = {}  # article row -> (first sentence id, its rows)
        self._vectors: dict[int, np.ndarray] = {}
        self.table = _Lookup(self._cell)
        self.articles = _Lookup(self._article)
        self.paragraph_bounds = (_Lookup(lambda i: self._paragraph(i)[0]), _Lookup(lambda i: self._paragraph(i)[1]))
        self.vectors = _Lookup(self._vector)

    # --- filling ---------------------------------------------------------

    def add_lines(self, ids: np.ndarray, rows: np.ndarray, texts: Sequence[str],
                  titles: dict[int, tuple[str, str]]) -> None:
        """Candidates' rows (ARTICLE = global article row), texts, and their articles' (id, title)."""
        for sentence, row, text in zip(ids.tolist(), rows, texts):
            self._rows[sentence] = row
            self._texts[sentence] = text
            article = int(row[ARTICLE])
            if article not in self._headlines:
                article_id, title = titles[article]
                self._headlines[article] = Headline(article_id, title, sentence)

    def add_article(self, row: int, first: int, article: Article, rows: np.ndarray) -> None:
        """A whole article (global row `row`), its first sentence's global id and its sentence rows."""
        self._articles[row] = article
        self._blocks[row] = (first, rows)

    def add_vectors(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Sentence vectors by global id."""
        self._vectors.update(zip(ids.tolist(), vectors))

    def titles_only(self) -> list[int]:
        """Global rows of the articles known by their title only."""
        return [row for row in self._headlines if row not in self._articles]

    def needs(self, ids: Sequence[int]) -> tuple[list[int], dict[int, int]]:
        """Of candidate sentences `ids`: those without a vector, and the global rows of their articles
        not fetched whole, each with one of its sentences."""
        vectors = [i for i in ids if i not in self._vectors]
        articles: dict[int, int] = {}
        for i in ids:
            article = int(self._rows[i][ARTICLE])
            if article not in self._articles:
                articles.setdefault(article, i)
        return vectors, articles

    # --- what the corpus reads -------------------------------------------

    def sentence(self, sentence_id: int) -> str:
        """The exact text of one sentence."""
        text = self._texts.get(int(sentence_id))
        if text is None:
            raise NotFetched([sentence_id])
        return text

    def sentences(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """The exact texts of several sentences."""
        return [self.sentence(i) for i in np.asarray(ids, dtype=np.int64).tolist()]

    def article_of(self, sentence_id: int) -> Article | Headline:
        """The article a sentence belongs to (a `Headline` when not fetched whole)."""
        return self._article(self._row(sentence_id)[ARTICLE])

    def _row(self, sentence_id: int) -> np.ndarray:
        sentence_id = int(sentence_id)
        row = self._rows.get(sentence_id)
        if row is not None:
            return row
        for first, rows in self._blocks.values():  # a paragraph neighbour of a fetched sentence
            if first <= sentence_id < first + len(rows):
                return rows[sentence_id - first]
        raise NotFetched([sentence_id])

    def _cell(self, key: Any) -> Any:
        if isinstance(key, tuple):
            sentence_id, column = key
            return self._row(sentence_id)[column]
        return self._row(key)

    def _article(self, row: Any) -> Article | Headline:
        row = int(row)
        found = self._articles.get(row) or self._headlines.get(row)
        if found is None:
            raise KeyError(f"article row {row} was never sent by a shard")
        return found

    def _paragraph(self, sentence_id: int) -> tuple[int, int]:
        """Global ids [first, end) of the paragraph of a sentence whose article was fetched whole."""
        article = int(self._row(sentence_id)[ARTICLE])
        if article not in self._blocks:
            raise NotFetched([sentence_id])
        first, rows = self._blocks[article]
        paragraphs = rows[:, PARAGRAPH]
        paragraph = paragraphs[int(sentence_id) - first]
        return (first + int(np.searchsorted(paragraphs, paragraph, side="left")),
                first + int(np.searchsorted(paragraphs, paragraph, side="right")))

    def _vector(self, sentence_id: Any) -> np.ndarray:
        vector = self._vectors.get(int(sentence_id))
        if vector is None:
            raise NotFetched([sentence_id])
        return vector
