"""Shards of one index, and the router's side of asking them: plain Python, no Ray.

A shard is a run of adjacent segments of one commit point (so, partitioned by article). Its
sentences keep their global ids: its first segment's offset in the commit point plus the local
row. The router asks every shard for

1. `term_counts`: what the BM25 statistics sum over its live sentences (summed by the router
   with `qa.store.snapshot.statistics_of`, exactly as one index sums its segments);
2. `candidates`: its dense and BM25 top-k with raw features (`qa.ranking.shard_candidates`),
   which the router fuses (`qa.ranking.fuse`) as one index does, and the `Lines` of those
   candidates (row, text, article title): all that the money preference and the follow-up fit read;
3. `details`: for the hits an answer looks at, their whole articles (with sentence rows) and
   vectors: what the confidence, the article checks and the citations read.

The router reads both through `qa.cluster.fetched.Fetched`, a corpus by global id, and answers
with the single index's own code (`qa.turns`, `qa.answering`).

`qa.cluster.serve` runs these as Ray Serve deployments; the tests also call them in process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from qa.articles import Article
from qa.config import Settings
from qa.corpus import ARTICLE
from qa.errors import QAError
from qa.ranking import Candidates, fuse, shard_candidates
from qa.store import Segment, Snapshot, dead_article_rows, read_commit, read_segment_data
from qa.store.snapshot import TermCounts


class ShardingError(QAError, ValueError):
    """The index cannot be split into the shards asked for."""


class Lines(NamedTuple):
    """Candidates' sentence rows and texts, and their articles' ids and titles (the light tier)."""

    ids: np.ndarray  # global sentence ids
    rows: np.ndarray  # (n, 5) sentence table rows; the article column is the global article row
    texts: list[str]
    titles: dict[int, tuple[str, str]]  # global article row -> (article id, title)


class Details(NamedTuple):
    """Vectors of some sentences, and some whole articles with their sentence rows (global ids and rows)."""

    ids: np.ndarray  # global sentence ids of `vectors`
    vectors: np.ndarray  # (n, d)
    articles: list[tuple[int, int, Article, np.ndarray]]  # (global article row, first sentence id, article, rows)


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
        self.article_offset = int(sum(entry["articles"] for entry in entries[:first]))
        segments = [Segment(entries[p]["name"], read_segment_data(self.path / entries[p]["name"], entries[p]["sentences"]),
                            dead_article_rows(entries[p], self.path)) for p in positions]
        self.snapshot = Snapshot(segments, manifest, int(manifest["model"]["dimension"]))
        self.generation = generation

    def term_counts(self, names: list[str]) -> TermCounts:
        """Phase zero: the shard's part of the BM25 statistics of `names`."""
        return self.snapshot.term_counts(names)

    def candidates(self, question: str, query_vector: np.ndarray, stats: Any, settings: Settings,
                   best: int = 0, known: Sequence[int] = ()) -> tuple[Candidates, Lines, Details] | None:
        """Phase one: the shard's candidates with raw features, their `Lines`, and the `Details` of
        its own `best` hits (fused over this shard alone: the router's first reads are mostly among
        them), without the articles at global rows `known` (the router holds those). None when the
        shard has no live sentence."""
        if len(self.snapshot) == 0:
            return None
        found = shard_candidates(question, query_vector, self.snapshot, stats, settings, offset=self.offset)
        local = found.ids - self.offset
        corpus = self.snapshot.corpus
        rows = self._global_rows(corpus.table[local])
        titles = {row: (corpus.articles[row - self.article_offset].id, corpus.articles[row - self.article_offset].title)
                  for row in np.unique(rows[:, ARTICLE]).tolist()}
        top = np.array([hit.sentence_id for hit in fuse(question, [found], settings)[:best]], dtype=np.int64)
        wanted = np.setdiff1d(np.unique(corpus.table[top - self.offset, ARTICLE]) + self.article_offset, known)
        firsts = np.searchsorted(corpus.table[:, ARTICLE], wanted - self.article_offset) + self.offset
        return found, Lines(found.ids, rows, corpus.sentences(local), titles), self.details(top, firsts)

    def details(self, vector_ids: np.ndarray, article_ids: np.ndarray) -> Details:
        """Vectors of global sentence ids `vector_ids`, and the whole articles of `article_ids`."""
        corpus = self.snapshot.corpus
        vector_ids = np.asarray(vector_ids, dtype=np.int64)
        vectors = np.asarray(self.snapshot.embeddings[vector_ids - self.offset], dtype=np.float32)
        owners = corpus.table[:, ARTICLE]  # ascending: segments and their articles follow one another
        articles = []
        for row in np.unique(owners[np.asarray(article_ids, dtype=np.int64) - self.offset]).tolist():
            first, end = np.searchsorted(owners, [row, row + 1])
            articles.append((row + self.article_offset, int(first) + self.offset, corpus.articles[row],
                             self._global_rows(corpus.table[first:end])))
        return Details(vector_ids, vectors, articles)

    def _global_rows(self, rows: np.ndarray) -> np.ndarray:
        """Sentence rows with the global article row in the article column."""
        rows = rows.copy()
        rows[:, ARTICLE] += self.article_offset
        return rows


def owner_of(ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The shard of each global id, given each shard's first id (ascending)."""
    return np.searchsorted(offsets, ids, side="right") - 1
