"""A snapshot: the segments of one commit point, read as one corpus.

Readers take a snapshot and keep it; a later commit makes a new one (segments it shares with
the old are reused, not re-read). Sentence ids are global: a segment's rows follow those of
the segments before it, in commit order, so the order of sentences, and with it every tie
broken by id, is the same however the articles are split into segments. Deleted sentences keep
their ids until a merge drops them, and are masked here.

What ranking needs from the whole corpus is assembled from the segments at question time:
BM25 statistics are summed over every live sentence (`statistics`), dense and BM25 top-k are
taken in each segment and merged (`dense_top`, `lexical_top_scored`), and per-candidate features are
read from the segment that holds the candidate.

Many small segments (the recent adds, before the merge policy gets to them) would each cost a
question a dozen small numpy calls. So ranking reads `units`: runs of adjacent small segments
without deletions are joined in memory, once per snapshot, into one unit of the same rows in the
same order (the postings, cue tokens and sentence vectors copied; nothing re-encoded). What a
question sees is unchanged; only the number of calls per question drops.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

from qa import dense, overlap
from qa.articles import Article
from qa.bm25 import LexicalIndex, Statistics, _idf
from qa.corpus import Corpus
from qa.cues import KINDS, CueTable
from qa.dense import DenseIndex, top_k
from qa.lexical import tokenize
from qa.store.segment import Segment, SegmentData

JOIN_UP_TO = 50_000  # adjacent small segments are read as one unit up to this many sentences in all
# A corpus of up to this many sentences is searched exactly (one matrix-vector product over the
# mapped vectors of every segment, whatever their index kind): at that size it is the cheapest
# search, and the cosines it gives make the paragraph features free (`qa.ranking`).
EXACT_UP_TO = 50_000


class TermCounts(NamedTuple):
    """Live sentences, their token counts and the document frequencies of some terms (sums)."""

    documents: int
    length: int
    context_length: int
    df: np.ndarray
    context_df: np.ndarray


def statistics_of(names: list[str], parts: Sequence[TermCounts]) -> Statistics:
    """The BM25 statistics of terms `names` over the sentences that `parts` counted (summed)."""
    documents = sum(p.documents for p in parts)
    length, context_length = sum(p.length for p in parts), sum(p.context_length for p in parts)
    df = np.sum([p.df for p in parts], axis=0, dtype=np.int64) if parts else np.zeros(len(names), dtype=np.int64)
    context_df = (np.sum([p.context_df for p in parts], axis=0, dtype=np.int64) if parts
                  else np.zeros(len(names), dtype=np.int64))
    size = max(documents, 1)
    return Statistics(documents, length / size, context_length / size,
                      dict(zip(names, _idf(df, documents).tolist())),
                      dict(zip(names, _idf(context_df, documents).tolist())))


class SegmentedVectors:
    """The vector matrices of several segments read as one (n, d) matrix by global row.

    Supports what the engine uses: `len`, `shape`, `v[i]`, `v[ids]` (any order, repeats
    allowed) and `np.asarray(v)` (copies: small corpora and tests only).
    """

    def __init__(self, parts: Sequence[Any], offsets: np.ndarray) -> None:
        self.parts, self.offsets = list(parts), offsets
        self.shape = (int(offsets[-1]), int(parts[0].shape[1]))
        self.dtype, self.ndim = np.dtype(np.float32), 2

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            part = int(np.searchsorted(self.offsets, key, side="right")) - 1
            return np.asarray(self.parts[part][int(key) - int(self.offsets[part])], dtype=np.float32)
        ids = np.asarray(key)
        if ids.dtype == bool:
            ids = np.flatnonzero(ids)
        ids = ids.astype(np.int64)
        out = np.empty((len(ids), self.shape[1]), dtype=np.float32)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.shape[0]):
            raise IndexError(f"row out of range for {self.shape[0]} vectors")
        if len(ids) < 2 or bool(np.all(ids[1:] >= ids[:-1])):  # candidates come sorted: one slice per part
            bounds = np.searchsorted(ids, self.offsets).tolist()
            for part, (first, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
                if stop > first:
                    out[first:stop] = self.parts[part][ids[first:stop] - self.offsets[part]]
            return out
        owner = np.searchsorted(self.offsets, ids, side="right") - 1
        for part in np.unique(owner).tolist():
            here = owner == part
            out[here] = self.parts[part][ids[here] - self.offsets[part]]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = np.concatenate([np.asarray(p, dtype=np.float32) for p in self.parts])
        return whole if dtype is None else whole.astype(dtype)


def _starts(sizes: Sequence[int]) -> np.ndarray:
    """Where each of consecutive parts of `sizes` rows starts, and the total at the end."""
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)


def _joined(segments: Sequence[Segment]) -> Segment:
    """One in-memory segment of the rows of `segments` (none with deletions), in order."""
    corpus = Corpus.concatenate([s.data.corpus for s in segments])
    offsets = _starts([len(s) for s in segments])
    embeddings = np.ascontiguousarray(np.concatenate([np.asarray(s.data.embeddings, dtype=np.float32) for s in segments]))
    every_row = [(s.data.lexical, np.ones(len(s), dtype=bool)) for s in segments]
    data = SegmentData(corpus, embeddings, SegmentedVectors([s.data.title_context_embeddings for s in segments], offsets),
                       DenseIndex.build(embeddings, kind="flat"), LexicalIndex.concatenate(every_row, corpus.neighbours),
                       CueTable.concatenate([s.data.cues for s in segments]),
                       np.zeros((0, 0), dtype=np.uint64))  # signatures are read from the segments themselves
    return Segment("+".join(s.name for s in segments), data)


def _stacked(parts: list[Any], offsets: np.ndarray, width: int) -> Any:
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.zeros((0, width), dtype=np.float32)
    return SegmentedVectors(parts, offsets)


class Snapshot:
    """The live segments of one commit, and the manifest that lists them.

    Args:
        segments: oldest first, as the commit point lists them.
        manifest: the commit point.
        dimension: vector length (for an index with no segments yet).
    """

    def __init__(self, segments: Sequence[Segment], manifest: dict[str, Any], dimension: int) -> None:
        self.segments = tuple(segments)
        self.manifest = manifest
        self.dimension = dimension
        self.offsets = _starts([len(s) for s in self.segments])
        self.article_offsets = _starts([len(s.data.corpus.articles) for s in self.segments])

    def __len__(self) -> int:
        """Live sentences."""
        return sum(s.live_sentences for s in self.segments)

    # --- the corpus as one -----------------------------------------------------

    @functools.cached_property
    def corpus(self) -> Corpus:
        """Every segment's articles and sentences, by global id (deleted ones included: see `live`)."""
        if len(self.segments) == 1:
            return self.segments[0].data.corpus
        return Corpus.concatenate([s.data.corpus for s in self.segments])

    @functools.cached_property
    def embeddings(self) -> Any:
        """Sentence vectors by global id (read from the units: a joined run is one array in memory)."""
        return _stacked([u.data.embeddings for u in self.units], self.unit_offsets, self.dimension)

    @functools.cached_property
    def title_context_embeddings(self) -> Any:
        """Title and context vectors by global id, side by side."""
        return _stacked([s.data.title_context_embeddings for s in self.segments], self.offsets, 2 * self.dimension)

    @property
    def vectors(self) -> tuple[Any, Any]:
        """Both vector matrices."""
        return self.embeddings, self.title_context_embeddings

    @functools.cached_property
    def units(self) -> tuple[Segment, ...]:
        """The segments as ranking reads them: runs of adjacent small segments with nothing
        deleted are joined into one (see the module docstring); rows and their order unchanged."""
        units: list[Segment] = []
        run: list[Segment] = []

        def close_run() -> None:
            units.extend(run if len(run) < 2 else [_joined(run)])
            run.clear()

        for segment in self.segments:
            joinable = segment.live is None and len(segment) < dense.FLAT_LIMIT and segment.data.dense.kind == "flat"
            if not joinable or sum(map(len, run)) + len(segment) > JOIN_UP_TO:
                close_run()
            if joinable:
                run.append(segment)
            else:
                units.append(segment)
        close_run()
        return tuple(units)

    @functools.cached_property
    def unit_offsets(self) -> np.ndarray:
        """Global id of each unit's first row (and the total at the end)."""
        return _starts([len(u) for u in self.units])

    @functools.cached_property
    def neighbour_dots(self) -> np.ndarray:
        """`qa.ranking.neighbour_dots` by global id (each segment's, computed once per segment)."""
        parts = [s.neighbour_dots for s in self.units]
        return np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.float32)

    @functools.cached_property
    def live(self) -> np.ndarray | None:
        """False for deleted sentences; None when nothing is deleted."""
        if all(s.live is None for s in self.segments):
            return None
        return np.concatenate([s.live if s.live is not None else np.ones(len(s), dtype=bool) for s in self.segments])

    def live_articles(self) -> Iterator[tuple[int, Article]]:
        """(global article row, article) of every article not deleted, in commit order."""
        for segment, first in zip(self.segments, self.article_offsets.tolist()):
            articles = segment.data.corpus.articles
            for row in segment.live_articles():
                yield first + row, articles[row]

    def find_article(self, article_id: str) -> tuple[int, int] | None:
        """(segment position, local article row) of the live article `article_id`, or None."""
        for position, segment in enumerate(self.segments):
            articles = segment.data.corpus.articles
            for row in segment.live_articles():
                if articles[row].id == article_id:
                    return position, row
        return None

    def live_signatures(self) -> tuple[list[Article], np.ndarray]:
        """The live articles and their near-duplicate signatures, row for row."""
        articles, rows = [], []
        for segment in self.segments:
            live = segment.live_articles()
            articles += [segment.data.corpus.articles[row] for row in live]
            rows.append(np.asarray(segment.data.signatures[live]))
        from qa.ingest.dedup import PERMUTATIONS

        return articles, (np.concatenate(rows) if rows else np.zeros((0, PERMUTATIONS), dtype=np.uint64))

    def _owners(self, ids: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Split global ids by reading unit: [(unit position, where in `ids`, local ids)]."""
        owner = np.searchsorted(self.unit_offsets, ids, side="right") - 1
        groups = []
        for position in np.unique(owner).tolist():
            where = np.flatnonzero(owner == position)
            groups.append((position, where, ids[where] - self.unit_offsets[position]))
        return groups

    # --- what ranking asks --------------------------------------------------------

    def statistics(self, question: str) -> Statistics:
        """BM25 statistics of the question's terms over every live sentence of every segment."""
        names = sorted(set(tokenize(question)))
        return statistics_of(names, [self.term_counts(names)])

    def term_counts(self, names: list[str]) -> TermCounts:
        """What the BM25 statistics of terms `names` (sorted, distinct) sum over this snapshot's
        live sentences; shards of an index each give theirs and `statistics_of` sums them."""
        documents = length = context_length = 0
        df = np.zeros(len(names), dtype=np.int64)
        context_df = np.zeros(len(names), dtype=np.int64)
        for segment in self.units:
            live, tokens, context_tokens = segment.lexical_totals
            documents, length, context_length = documents + live, length + tokens, context_length + context_tokens
            if names:
                more_df, more_context_df = segment.frequencies(names)
                df += more_df
                context_df += more_context_df
        return TermCounts(documents, length, context_length, df, context_df)

    def similarities(self, query_vector: np.ndarray) -> np.ndarray | None:
        """The query's cosine with every sentence when the corpus is small enough for that to be
        the cheapest search (`EXACT_UP_TO`, vectors mapped), else None."""
        if self.offsets[-1] > EXACT_UP_TO:
            return None
        parts = []
        for segment in self.units:
            part = segment.data.dense.similarities(query_vector)
            vectors = segment.data.embeddings
            if part is None and isinstance(vectors, np.ndarray):  # an approximate index: its vectors are exact
                part = np.asarray(vectors @ np.asarray(query_vector, dtype=np.float32), dtype=np.float32)
            if part is None:
                return None
            parts.append(part)
        return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, dtype=np.float32))

    def dense_top(self, query_vector: np.ndarray, k: int, similarities: np.ndarray | None) -> np.ndarray:
        """Global ids of the k live sentences nearest the query, best first (ties to the lower id)."""
        return self.dense_top_scored(query_vector, k, similarities)[0]

    def dense_top_scored(self, query_vector: np.ndarray, k: int,
                         similarities: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """`dense_top` and the score each was chosen by (a shard's top-k merge with others' by it)."""
        if similarities is not None:
            if self.live is None:
                best = top_k(similarities, k)
                return best, similarities[best]
            best = top_k(np.where(self.live, similarities, -np.inf), k)
            best = best[self.live[best]]  # fewer live sentences than k: the dead ones came last
            return best, similarities[best]
        units = list(zip(self.units, self.unit_offsets.tolist()))
        if len(units) > 1 and overlap.pays(len(self)):
            # As Lucene's IndexSearcher searches slices of segments on an executor: half the
            # segments on a helper thread (FAISS and the row reads release the GIL). 1M in 16
            # segments: 5.1 -> 3.7 ms. The merge below does not depend on which thread found what.
            helper = overlap.start(self._dense_tops, query_vector, k, units[1::2])
            found = self._dense_tops(query_vector, k, units[0::2]) + helper.result()
        else:
            found = self._dense_tops(query_vector, k, units)
        every_score = np.concatenate([scores for scores, _ in found])
        every_id = np.concatenate([ids for _, ids in found])
        best = np.lexsort((every_id, -every_score))[:k]
        return every_id[best], every_score[best]

    def _dense_tops(self, query_vector: np.ndarray, k: int,
                    units: Sequence[tuple[Segment, int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each of `units`' (unit, first global id) live dense top-k: (scores, global ids)."""
        found = []
        corpus_size = int(self.offsets[-1])  # each segment probes and re-scores its share of it
        for segment, offset in units:
            scores, ids = segment.data.dense.search(query_vector, k + len(segment.dead_rows), corpus_size)
            if segment.live is not None:
                alive = segment.live[ids]
                scores, ids = scores[alive], ids[alive]
            found.append((scores, ids + offset))
        return found

    def lexical_top_scored(self, question: str, k: int, stats: Statistics) -> tuple[np.ndarray, np.ndarray]:
        """Global ids (ascending) of the k best live BM25 sentences, each scored with `stats`, and those scores."""
        if len(self.units) == 1:
            segment = self.units[0]
            return segment.data.lexical.top(question, k, stats, segment.live)
        best_ids, best_scores = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        for segment, offset in zip(self.units, self.unit_offsets.tolist()):
            # The k-th best score so far bounds what a later segment must find (MaxScore across
            # segments, as Lucene shares the minimum competitive score).
            floor = float(best_scores.min()) if len(best_scores) >= k else 0.0
            found, found_scores = segment.data.lexical.top(question, k, stats, segment.live, floor)
            every_id, every_score = np.concatenate([best_ids, found + offset]), np.concatenate([best_scores, found_scores])
            best = np.sort(top_k(every_score, k))  # every_id ascends, so positions sort as ids do
            best_ids, best_scores = every_id[best], every_score[best]
        return best_ids, best_scores

    def lexical_scores(self, question: str, ids: np.ndarray, stats: Statistics) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of sentences `ids` and of their contexts, each from its own segment, with `stats`."""
        if len(self.units) == 1:
            data = self.units[0].data
            return data.lexical.candidate_scores(question, ids, data.corpus.neighbours, stats)
        sentence, context = np.zeros(len(ids), dtype=np.float32), np.zeros(len(ids), dtype=np.float32)
        for position, where, local in self._owners(ids):
            data = self.units[position].data
            sentence[where], context[where] = data.lexical.candidate_scores(question, local, data.corpus.neighbours, stats)
        return sentence, context

    def cue_features(self, question: str, ids: np.ndarray) -> np.ndarray:
        """`qa.cues.CueTable.features` of sentences `ids`, each from its own segment."""
        if len(self.units) == 1:
            return self.units[0].data.cues.features(question, ids)
        parts = np.zeros((len(ids), KINDS), dtype=np.float32)
        for position, where, local in self._owners(ids):
            parts[where] = self.units[position].data.cues.features(question, local)
        return parts
