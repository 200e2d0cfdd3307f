"""Shards of one index, and the router's side of asking them: plain Python, no Ray.

A shard is a run of adjacent segments of one commit point (so, partitioned by article). Its
sentences keep their global ids: its first segment's offset in the commit point plus the local
row. The router asks every shard for

1. `term_counts`: what the BM25 statistics sum over its live sentences (summed by the router
   with `qa.store.snapshot.statistics_of`, exactly as one index sums its segments);
2. `candidates`: its dense and BM25 top-k with raw features (`qa.ranking.shard_candidates`),
   which the router fuses (`qa.ranking.fuse`) as one index does;
3. `details`: for the hits an answer may quote, their articles, sentence rows and vectors, from
   which the router assembles a small `Corpus` and composes the answer with `qa.answering`.

`qa.cluster.serve` runs these as Ray Serve deployments; the tests also call them in process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from qa.articles import Article
from qa.config import Settings
from qa.corpus import ARTICLE, Corpus
from qa.errors import QAError
from qa.ranking import Candidates, Hit, shard_candidates
from qa.store import Segment, Snapshot, dead_article_rows, read_commit, read_segment_data
from qa.store.snapshot import TermCounts


class ShardingError(QAError, ValueError):
    """The index cannot be split into the shards asked for."""


class Details(NamedTuple):
    """What composing an answer reads about some sentences, from the shard that holds them."""

    ids: np.ndarray  # global sentence ids
    articles: list[Article]  # the article of each id, row for row
    rows: np.ndarray  # (n, 5) sentence table rows (the article column is the shard's own)
    vectors: np.ndarray  # (n, d) sentence vectors


def shard_groups(sentences: Sequence[int], shards: int) -> list[range]:
    """Split segments (their sentence counts, in commit order) into `shards` runs of adjacent
    segments with about as many sentences each; every run holds at least one segment.

    Raises:
        ShardingError: fewer segments than shards.
    """
    if shards < 1:
        raise ShardingError(f"--shards must be at least 1, not {shards}.")
    if len(sentences) < shards:
        raise ShardingError(
            f"The index has {len(sentences)} segment(s); each of {shards} shards needs at least one. Use "
            f"--shards {max(len(sentences), 1)} or fewer, or rebuild with `qa build --ray ADDRESS --segments {shards}`.")
    total = np.cumsum(sentences)
    bounds = [0]
    for shard in range(1, shards):
        # The segment boundary nearest to shard/shards of the sentences, leaving one segment per later shard.
        cut = int(np.searchsorted(total, total[-1] * shard / shards)) + 1
        bounds.append(min(max(cut, bounds[-1] + 1), len(sentences) - (shards - shard)))
    bounds.append(len(sentences))
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


class ShardReader:
    """The segments `positions` of the index at `path`, read as one snapshot with global ids.

    Args:
        path: the index folder (every node must see it at this path: a shared file system).
        positions: adjacent positions in the commit point's segment list.
        generation: the commit the router planned the shards on; another one is refused, so
            that no answer mixes two commits.
    """

    def __init__(self, path: str | Path, positions: Sequence[int], generation: int) -> None:
        self.path = Path(path)
        manifest = read_commit(self.path)
        if int(manifest["generation"]) != generation:
            raise ShardingError(
                f"The index at '{self.path}' is at commit {manifest['generation']}, not {generation} as planned; "
                "redeploy the shards (`qa serve --ray ...`) to serve the new commit.")
        entries = manifest["segments"]
        first = positions[0]
        self.offset = int(sum(entry["sentences"] for entry in entries[:first]))
        segments = [Segment(entries[p]["name"], read_segment_data(self.path / entries[p]["name"], entries[p]["sentences"]),
                            dead_article_rows(entries[p], self.path)) for p in positions]
        self.snapshot = Snapshot(segments, manifest, int(manifest["model"]["dimension"]))
        self.generation = generation

    def term_counts(self, names: list[str]) -> TermCounts:
        """Phase zero: the shard's part of the BM25 statistics of `names`."""
        return self.snapshot.term_counts(names)

    def candidates(self, question: str, query_vector: np.ndarray, stats: Any, settings: Settings) -> Candidates | None:
        """Phase one: the shard's candidates with raw features (None when it has no live sentence)."""
        if len(self.snapshot) == 0:
            return None
        return shard_candidates(question, query_vector, self.snapshot, stats, settings, offset=self.offset)

    def details(self, ids: np.ndarray) -> Details:
        """Articles, sentence rows and vectors of global sentence ids this shard holds."""
        local = np.asarray(ids, dtype=np.int64) - self.offset
        corpus = self.snapshot.corpus
        rows = corpus.table[local]
        articles = [corpus.articles[int(row)] for row in rows[:, ARTICLE].tolist()]
        return Details(np.asarray(ids, dtype=np.int64), articles, rows.copy(),
                       np.asarray(self.snapshot.embeddings[local], dtype=np.float32))


def owner_of(ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The shard of each global id, given each shard's first id (ascending)."""
    return np.searchsorted(offsets, ids, side="right") - 1


def quotable(hits: list[Hit], settings: Settings, limit: int) -> int:
    """How many of the best hits an answer may read: all whose score can still be quoted
    (`qa.answering.select` stops at the first below the ratio), or every hit when abstaining."""
    if not hits:
        return 0
    if hits[0].confidence < settings.abstain_threshold:
        return len(hits)
    floor = settings.support_ratio * hits[0].score
    return next((n for n, hit in enumerate(hits) if hit.score < floor), len(hits))


def small_corpus(hits: list[Hit], parts: list[Details]) -> tuple[list[Hit], Corpus, np.ndarray]:
    """The hits renumbered into a corpus of just their sentences, that corpus, and its vectors:
    what `qa.answering.compose` reads, with the same order and scores."""
    by_id: dict[int, tuple[Article, np.ndarray, np.ndarray]] = {}
    for part in parts:
        for sentence, article, row, vector in zip(part.ids.tolist(), part.articles, part.rows, part.vectors):
            by_id[sentence] = (article, row, vector)
    articles: list[Article] = []
    article_rows: dict[str, int] = {}
    table = np.zeros((len(hits), 5), dtype=np.int64)
    vectors = []
    for n, hit in enumerate(hits):
        article, row, vector = by_id[hit.sentence_id]
        if article.id not in article_rows:
            article_rows[article.id] = len(articles)
            articles.append(article)
        table[n] = row
        table[n, ARTICLE] = article_rows[article.id]
        vectors.append(vector)
    renumbered = [hit._replace(sentence_id=n) for n, hit in enumerate(hits)]
    matrix = np.stack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
    return renumbered, Corpus(tuple(articles), table), matrix
