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
without deletions joined in memory into one (`qa.store.units`). What a question sees is
unchanged; only the number of calls per question drops.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

from qa import overlap
from qa.articles import Article
from qa.bm25 import FULL_SCAN_POSTINGS, Statistics, _idf
from qa.corpus import Corpus
from qa.cues import KINDS
from qa.dense import DenseIndex, Probed, top_k
from qa.lexical import tokenize
from qa.store.segment import Segment
from qa.store.units import JoinedDense, exact_cosines, reading_units, stacked, starts

# A corpus of up to this many sentences is searched exactly (one matrix-vector product over the
# mapped vectors of every segment, whatever their index kind): at that size it is the cheapest
# search, and the cosines it gives make the paragraph features free (`qa.ranking`).
EXACT_UP_TO = 50_000
# Up to this many sentences in one unit, the BM25 features of every sentence (~1 ms at 10k, on a
# helper thread beside the ~5 ms encode) are taken instead of the candidates' after the encode.
EVERY_LEXICAL_UP_TO = 30_000


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


class DenseSearch(NamedTuple):
    """One dense index a question searches, and how its rows map to global ids."""

    index: DenseIndex
    first: int  # global id of its row 0
    live: np.ndarray | None  # False for its deleted rows; None when nothing is deleted
    dead: int  # how many are deleted: a top-k asks for that many more


class Snapshot:
    """The live segments of one commit, and the manifest that lists them.

    Args:
        segments: oldest first, as the commit point lists them.
        manifest: the commit point.
        dimension: vector length (for an index with no segments yet).
        previous: the snapshot this one follows, whose joined reading units it may reuse.
    """

    def __init__(self, segments: Sequence[Segment], manifest: dict[str, Any], dimension: int,
                 previous: "Snapshot | None" = None) -> None:
        self.segments = tuple(segments)
        self.manifest = manifest
        self.dimension = dimension
        self.offsets = starts([len(s) for s in self.segments])
        self.article_offsets = starts([len(s.data.corpus.articles) for s in self.segments])
        # Only the previous snapshot's joins are kept, never a chain of snapshots.
        self._joins: dict[tuple[Segment, ...], Segment] = previous._joins if previous is not None else {}
        # Counted once: every question asks (`overlap.pays`), and a commit never changes.
        self._live_sentences = sum(s.live_sentences for s in self.segments)

    def __len__(self) -> int:
        """Live sentences."""
        return self._live_sentences

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
        return stacked([u.data.embeddings for u in self.units], self.unit_offsets, self.dimension)

    @functools.cached_property
    def title_context_embeddings(self) -> Any:
        """Title and context vectors by global id, side by side (read from the units, as `embeddings`)."""
        return stacked([u.data.title_context_embeddings for u in self.units], self.unit_offsets, 2 * self.dimension)

    @property
    def vectors(self) -> tuple[Any, Any]:
        """Both vector matrices."""
        return self.embeddings, self.title_context_embeddings

    @functools.cached_property
    def units(self) -> tuple[Segment, ...]:
        """The segments as ranking reads them: runs of adjacent small segments with nothing
        deleted are joined into one (`qa.store.units`); rows and their order unchanged."""
        units, self._joins = reading_units(self.segments, self._joins)
        return units

    def warm_up(self) -> None:
        """Make now what the first question would otherwise wait for: the reading units, and the
        by-sentence postings of those too large for a question to gather its terms' postings."""
        for unit in self.units:
            lexical = unit.data.lexical
            if lexical.postings.nnz > FULL_SCAN_POSTINGS:
                lexical.sentence_postings  # a cached property: read here for its making

    @functools.cached_property
    def unit_offsets(self) -> np.ndarray:
        """Global id of each unit's first row (and the total at the end)."""
        return starts([len(u) for u in self.units])

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
        return exact_cosines([(unit.data.dense, unit.data.embeddings) for unit in self.units], query_vector)

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
        searches = self.dense_searches
        corpus_size = int(self.offsets[-1])  # each segment probes and re-scores its share of it
        wanted = [k + search.dead for search in searches]
        if len(searches) > 1 and overlap.pays():
            # As Lucene's IndexSearcher searches slices of segments on an executor: half the
            # segments are probed on a helper thread (FAISS releases the GIL). Their rows are then
            # re-scored here, on one thread: each row read hands the GIL over, and reads from two
            # threads spent more on those hand-overs than they saved (docs/speed.md, "Stop 28").
            helper = overlap.start(_probe_all, query_vector, searches[1::2], wanted[1::2], corpus_size)
            mine = _probe_all(query_vector, searches[0::2], wanted[0::2], corpus_size)
            theirs = helper.result()
            probed = [(theirs if at % 2 else mine)[at // 2] for at in range(len(searches))]
        else:
            probed = _probe_all(query_vector, searches, wanted, corpus_size)
        found = []
        for search, want, rows in zip(searches, wanted, probed):
            scores, ids = search.index.rescore(query_vector, want, rows)
            if search.live is not None:
                alive = search.live[ids]
                scores, ids = scores[alive], ids[alive]
            found.append((scores, ids + search.first))
        every_score = np.concatenate([scores for scores, _ in found])
        every_id = np.concatenate([ids for _, ids in found])
        best = np.lexsort((every_id, -every_score))[:k]
        return every_id[best], every_score[best]

    @functools.cached_property
    def dense_searches(self) -> tuple[DenseSearch, ...]:
        """Every dense index a question searches: each unit's own, a joined unit's parts one by one."""
        searches = []
        for unit, offset in zip(self.units, self.unit_offsets.tolist()):
            dense = unit.data.dense
            if isinstance(dense, JoinedDense):  # joined units have nothing deleted
                searches += [DenseSearch(part.index, offset + part.first, None, 0) for part in dense.parts]
            else:
                searches.append(DenseSearch(dense, offset, unit.live, len(unit.dead_rows)))
        return tuple(searches)

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

    def every_lexical_score(self, question: str, stats: Statistics) -> tuple[np.ndarray, np.ndarray] | None:
        """`lexical_scores` of every sentence when one unit holds them all and it is small enough
        (`EVERY_LEXICAL_UP_TO`) for that to take less than the encode it runs beside; else None."""
        if len(self.units) != 1 or len(self.units[0]) > EVERY_LEXICAL_UP_TO:
            return None
        data = self.units[0].data
        return data.lexical.every_candidate_score(question, data.corpus.neighbours, stats)

    def cue_features(self, question: str, ids: np.ndarray) -> np.ndarray:
        """`qa.cues.CueTable.features` of sentences `ids`, each from its own segment."""
        if len(self.units) == 1:
            return self.units[0].data.cues.features(question, ids)
        parts = np.zeros((len(ids), KINDS), dtype=np.float32)
        for position, where, local in self._owners(ids):
            parts[where] = self.units[position].data.cues.features(question, local)
        return parts


def _probe_all(query_vector: np.ndarray, searches: Sequence[DenseSearch], wanted: Sequence[int],
               corpus_size: int) -> list[Probed]:
    """`DenseIndex.probe` of each of `searches` for its `wanted` rows."""
    return [search.index.probe(query_vector, want, corpus_size) for search, want in zip(searches, wanted)]
