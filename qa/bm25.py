"""The BM25 index: term postings that grow on add, exact top-k without scoring every sentence.

The scores are bm25s's "lucene" BM25 (tests check them against bm25s), but the index is ours:
bm25s can only index a whole corpus at once (xhluca/bm25s#5), so adding one article to 10k
sentences re-tokenised everything (4 s). Here the stored truth is each term's postings
(sentence ids and counts); an add tokenises only the new sentences and re-derives the weights,
vectorised arithmetic over the counts. A sentence's context (it and its paragraph neighbours)
is the sum of their counts, so context BM25 needs no second index: it is scored for the
candidates only, with its document frequencies kept up to date on add and remove.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from scipy import sparse

from qa.arrays import ranges
from qa.dense import top_k
from qa.lexical import tokenize

DEFAULT_K1 = 0.5
DEFAULT_B = 0.35
PARAMS_FILE = "params.json"
TERMS_FILE = "terms.json"
_ARRAYS = ("indptr", "sentence_ids", "counts", "context_df")
_CONTEXT_CHUNK = 100_000  # rows per sparse product when counting context frequencies (bounded memory)
FULL_SCAN_POSTINGS = 50_000  # up to this many postings (and no floor from other segments), every holder is scored
SEED_POSTINGS = 20_000  # postings of the rarest query terms read to bound the k-th best score
SEED_FACTOR = 4  # how many of their best sentences, per wanted one, are scored exactly for that bound
DENSE_SHARE = 0.25  # essential postings above this share of the sentences: one dense pass is cheaper


class _Gathered(NamedTuple):
    """Every posting of a query's terms, read once and shared by `top` and `candidate_scores`."""

    positions: np.ndarray  # in the postings arrays, term after term
    keys: np.ndarray  # term row x sentences + sentence id: ascending, so one bisection serves all terms
    ids: np.ndarray  # the sentences holding any of the terms, ascending
    scores: np.ndarray  # their BM25 scores


class Statistics(NamedTuple):
    """BM25 statistics of a whole corpus, for an index that holds only part of it (a segment).

    Scores then do not depend on how the sentences are split into segments: document count,
    mean lengths and document frequencies are summed over every live sentence (`qa.store`).
    """

    documents: int
    mean_length: float
    context_mean_length: float
    idf: dict[str, float]  # query term -> idf over the whole corpus
    context_idf: dict[str, float]  # query term -> idf over the whole corpus's sentence contexts


class _Query(NamedTuple):
    """A query as the index reads it: computed once per question, then shared by every lookup."""

    text: str
    stats: Statistics | None  # corpus-wide statistics, or None for this index's own
    terms: np.ndarray  # distinct indexed term ids, in the order of the terms' text (the same in every segment)
    names: list[str]  # the terms themselves
    weights: np.ndarray  # saturated term weights of every posting, at the mean length in force
    ceiling: np.ndarray  # largest of them per term
    repeats: np.ndarray  # how often each occurs in the query (repeats count, as in bm25s)
    factors: np.ndarray  # repeats x idf: what each term's saturated weight is multiplied by
    sizes: np.ndarray  # how many postings each term has
    few: bool  # at most FULL_SCAN_POSTINGS postings in all: `top` may score every one
    gathered: _Gathered | None = None  # those postings, once `top` read them (`LexicalIndex._gathered`)


def _idf(df: np.ndarray, documents: int) -> np.ndarray:
    """Lucene's BM25 idf, never negative."""
    return np.log1p((documents - df + 0.5) / (df + 0.5)).astype(np.float32)


def _saturation(counts: np.ndarray, lengths: np.ndarray, mean_length: float, k1: float, b: float) -> np.ndarray:
    """The BM25 term-frequency part tf / (tf + k1 (1 - b + b |d| / avgdl)), per (document, term) pair."""
    counts = counts.astype(np.float32)
    return counts / (counts + k1 * (1 - b + b * lengths.astype(np.float32) / max(mean_length, 1e-9)))


def _context_rows(rows: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray], size: int) -> sparse.csr_matrix:
    """A (len(rows), size) 0/1 matrix picking each row, its previous and its next sentence."""
    previous, following = neighbours
    columns = np.stack([rows, previous[rows], following[rows]], axis=1).ravel()
    owner = np.repeat(np.arange(len(rows)), 3)
    present = columns >= 0
    ones = np.ones(int(present.sum()), dtype=np.int32)
    return sparse.csr_matrix((ones, (owner[present], columns[present])), shape=(len(rows), size))


class LexicalIndex:
    """BM25 over sentences, and over each sentence's paragraph context, that grows and shrinks.

    Immutable: `extend` and `without` return new indexes, so readers keep a consistent snapshot.

    Args:
        terms: the vocabulary, term id -> term.
        postings: (sentences, terms) CSC matrix of term counts: column t lists the sentences
            holding term t (ascending) and how often.
        context_df: for each term, how many sentence contexts contain it.
        context_length: total token count of all sentence contexts (for their mean length).
    """

    def __init__(
        self,
        terms: list[str],
        postings: sparse.csc_matrix,
        context_df: np.ndarray,
        context_length: int,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
    ) -> None:
        if postings.shape[1] != len(terms) or len(context_df) != len(terms):
            raise ValueError(f"BM25 postings have {postings.shape[1]} terms, the vocabulary {len(terms)}")
        postings.sort_indices()  # lookups bisect each term's sentence ids
        self.terms, self.postings = terms, postings
        self.context_df, self.context_length = context_df, context_length
        self.k1, self.b = k1, b
        self.size = postings.shape[0]
        self.lengths = np.bincount(postings.indices, weights=postings.data, minlength=self.size).astype(np.int64)
        self._vocabulary = {term: i for i, term in enumerate(terms)}
        self._last_query: _Query | None = None
        self.mean_length = float(self.lengths.mean()) if self.size else 0.0
        self._idf = _idf(np.diff(postings.indptr), self.size)
        # Every posting's weight at one mean length, made when first read: a segment of a larger
        # corpus is scored at the corpus-wide mean and never needs its own (one float per posting).
        self._weights_cache: tuple[float, np.ndarray, np.ndarray] | None = None

    def _weights_at(self, mean_length: float) -> tuple[np.ndarray, np.ndarray]:
        """Every posting's saturated weight at `mean_length`, and the largest per term (which bounds
        what a term can add to any sentence's score)."""
        postings = self.postings
        weights = _saturation(postings.data, self.lengths[postings.indices], mean_length, self.k1, self.b)
        starts = postings.indptr[:-1]
        nonempty = np.diff(postings.indptr) > 0
        ceiling = np.zeros(len(self.terms), dtype=np.float32)
        if weights.size:
            ceiling[nonempty] = np.maximum.reduceat(weights, starts[nonempty])
        return weights, ceiling

    def _weights_for(self, stats: Statistics | None) -> tuple[np.ndarray, np.ndarray]:
        """The weights at the mean length in force: this index's own, or the corpus-wide one.
        Computed when that value changes (it changes only when the corpus does) and kept alone."""
        mean_length = self.mean_length if stats is None else stats.mean_length
        cached = self._weights_cache
        if cached is None or cached[0] != mean_length:
            cached = (mean_length, *self._weights_at(mean_length))
            self._weights_cache = cached  # one swap: safe when threads race
        return cached[1], cached[2]

    # --- statistics --------------------------------------------------------

    def term_ids(self, terms: Sequence[str]) -> np.ndarray:
        """The id of each term in this index's vocabulary, -1 where absent."""
        return np.array([self._vocabulary.get(t, -1) for t in terms], dtype=np.int64)

    def frequencies(self, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """How many sentences, and how many sentence contexts, hold each of `terms` (0 where absent)."""
        ids = self.term_ids(terms)
        present = ids >= 0
        df, context_df = np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=np.int64)
        df[present] = np.diff(self.postings.indptr)[ids[present]]
        context_df[present] = self.context_df[ids[present]]
        return df, context_df

    def only_rows(self, rows: np.ndarray) -> sparse.csr_matrix:
        """A (sentences, terms) CSR matrix of counts holding `rows` alone (every other row empty)."""
        mask = np.zeros(self.size, dtype=bool)
        mask[rows] = True
        positions = np.flatnonzero(mask[self.postings.indices])
        columns = np.searchsorted(self.postings.indptr, positions, side="right") - 1
        return sparse.csr_matrix((self.postings.data[positions], (self.postings.indices[positions], columns)),
                                 shape=self.postings.shape)

    @classmethod
    def empty(cls, k1: float = DEFAULT_K1, b: float = DEFAULT_B) -> "LexicalIndex":
        """An index of no sentences."""
        return cls([], sparse.csc_matrix((0, 0), dtype=np.int32), np.zeros(0, dtype=np.int64), 0, k1, b)

    @classmethod
    def build(cls, texts: Sequence[str], neighbours: tuple[np.ndarray, np.ndarray]) -> "LexicalIndex":
        """Index texts (one per sentence, in id order); `neighbours` as `Corpus.neighbours`."""
        return cls.empty().extend(texts, neighbours)

    # --- writing -----------------------------------------------------------

    def extend(self, texts: Sequence[str], neighbours: tuple[np.ndarray, np.ndarray]) -> "LexicalIndex":
        """A new index with `texts` appended as the next sentence ids.

        `neighbours` covers the whole new corpus; the new sentences' paragraph neighbours must be
        new sentences too (articles are appended whole), so old contexts do not change.
        """
        vocabulary = dict(self._vocabulary)
        token_ids: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = tokenize(text)
            token_ids.extend(vocabulary.setdefault(t, len(vocabulary)) for t in tokens)
            lengths[row] = len(tokens)
        terms = self.terms + list(vocabulary)[len(self.terms) :]
        rows = np.repeat(np.arange(len(texts)), lengths)
        # COO -> CSR sums the repeated (sentence, term) pairs into counts.
        added = sparse.coo_matrix(
            (np.ones(len(rows), dtype=np.int32), (rows, np.asarray(token_ids, dtype=np.int64))),
            shape=(len(texts), len(terms)),
        ).tocsr()
        old = self._by_sentence(len(terms))
        counts = sparse.vstack([old, added], format="csr", dtype=np.int32)
        context_df, context_length = _context_statistics(counts, np.arange(self.size, counts.shape[0]), neighbours)
        context_df += np.pad(self.context_df, (0, len(terms) - len(self.context_df)))
        return LexicalIndex(terms, counts.tocsc(), context_df, self.context_length + context_length, self.k1, self.b)

    def without(self, keep: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray]) -> "LexicalIndex":
        """A new index with only the sentences where `keep` is True; `neighbours` of the current corpus."""
        counts = self._by_sentence(len(self.terms))
        context_df, context_length = _context_statistics(counts, np.flatnonzero(~keep), neighbours)
        return LexicalIndex(self.terms, counts[keep].tocsc(), self.context_df - context_df,
                            self.context_length - context_length, self.k1, self.b)

    @classmethod
    def concatenate(cls, parts: Sequence[tuple["LexicalIndex", np.ndarray]],
                    neighbours: tuple[np.ndarray, np.ndarray]) -> "LexicalIndex":
        """One index of the kept rows of several, in order (a segment merge): vocabularies are
        united, counts copied. `neighbours` of the result.

        Context frequencies are summed when every row is kept (a paragraph never spans two
        parts: articles are added whole), else counted afresh: summing is ~2/3 less work.
        """
        if not parts:
            return cls.empty()
        vocabulary: dict[str, int] = {}
        blocks = []
        for lexical, keep in parts:
            mapping = np.array([vocabulary.setdefault(t, len(vocabulary)) for t in lexical.terms], dtype=np.int64)
            blocks.append((lexical._by_sentence(len(lexical.terms))[keep], mapping))
        width = len(vocabulary)
        counts = sparse.vstack([sparse.csr_matrix((c.data, mapping[c.indices], c.indptr), shape=(c.shape[0], width))
                                for c, mapping in blocks], format="csr", dtype=np.int32)
        if all(bool(np.all(keep)) for _, keep in parts):
            context_df = np.zeros(width, dtype=np.int64)
            for (lexical, _), (_, mapping) in zip(parts, blocks):
                context_df[mapping] += lexical.context_df  # a part's terms map to distinct columns
            context_length = sum(lexical.context_length for lexical, _ in parts)
        else:
            context_df, context_length = _context_statistics(counts, np.arange(counts.shape[0]), neighbours)
        first = parts[0][0]
        return cls(list(vocabulary), counts.tocsc(), context_df, context_length, first.k1, first.b)

    def _by_sentence(self, width: int) -> sparse.csr_matrix:
        """The counts as a (sentences, width) CSR matrix (width >= the vocabulary: new terms)."""
        counts = self.postings.tocsr()
        return sparse.csr_matrix((counts.data, counts.indices, counts.indptr), shape=(self.size, width))

    # --- reading -----------------------------------------------------------

    def _query(self, query: str, stats: Statistics | None = None) -> _Query:
        """The query's indexed terms, and their postings when few (see `_Query`)."""
        last = self._last_query  # a question is looked up two or three times in a row
        if last is not None and last.text == query and last.stats is stats:
            return last
        vocabulary = self._vocabulary
        # Terms in the order of their text, not of their ids: every segment then sums a
        # sentence's term scores in the same order, and scores agree to the last bit.
        counted = [(term, times) for term, times in _query_terms(query) if term in vocabulary]
        names = [term for term, _ in counted]
        # Built in Python: for a dozen ids np.unique costs twice as much.
        terms = np.array([vocabulary[term] for term in names], dtype=np.int64)
        repeats = np.array([times for _, times in counted], dtype=np.int64)
        idf = self._idf[terms] if stats is None else np.array([stats.idf[t] for t in names], dtype=np.float32)
        factors = repeats * idf
        weights, ceiling = self._weights_for(stats)
        starts = self.postings.indptr[terms]
        sizes = self.postings.indptr[terms + 1] - starts
        few = 0 < sizes.sum() <= FULL_SCAN_POSTINGS
        query_state = _Query(query, stats, terms, names, weights, ceiling, repeats, factors, sizes, few)
        self._last_query = query_state  # one swap: safe when threads race
        return query_state

    def _gathered(self, q: _Query) -> _Gathered:
        """Every posting of the query's terms (few: see `_Query`), by position, so that candidates
        can be looked up in the postings arrays after one bisection. Read once per query: kept
        with it for `candidate_scores`."""
        if q.gathered is not None:
            return q.gathered
        terms, sizes = q.terms, q.sizes
        positions, rows = ranges(self.postings.indptr[terms], sizes), np.repeat(np.arange(len(terms)), sizes)
        holders = self.postings.indices[positions]
        ids, scores = _merge(holders, q.weights[positions] * q.factors[rows], self.size)
        gathered = _Gathered(positions, holders + rows * self.size, ids, scores)
        if self._last_query is q:
            self._last_query = q._replace(gathered=gathered)
        return gathered

    def _span(self, term: int) -> slice:
        return slice(self.postings.indptr[term], self.postings.indptr[term + 1])

    def _locate(self, term: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For sentences `ids`: their position in the postings arrays under `term`, and whether
        they hold the term at all (the position is meaningless where not).

        Bisects the term's sorted sentence ids as a view: "the" alone has ~600k postings at 1M.
        """
        first, stop = int(self.postings.indptr[term]), int(self.postings.indptr[term + 1])
        if stop == first:
            return np.zeros(ids.shape, dtype=np.int64), np.zeros(ids.shape, dtype=bool)
        holders = self.postings.indices[first:stop]
        # Needles of the postings' own dtype: mixed dtypes would copy all the postings per call.
        found = np.minimum(np.searchsorted(holders, ids.astype(holders.dtype, copy=False)), stop - first - 1)
        return found + first, holders[found] == ids

    def _locate_terms(self, query: _Query, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_locate` for each of the query's terms, as arrays of shape (terms, *ids.shape): one
        bisection of the gathered postings' keys when there are some, else through the
        sentences' own postings (`sentence_postings`)."""
        gathered = query.gathered
        if gathered is None:
            return self._locate_by_sentence(query, ids)
        needles = (np.arange(len(query.terms), dtype=np.int64) * self.size).reshape(-1, *[1] * ids.ndim) + ids
        found = np.minimum(np.searchsorted(gathered.keys, needles), len(gathered.keys) - 1)
        return gathered.positions[found], gathered.keys[found] == needles

    @functools.cached_property
    def sentence_postings(self) -> tuple[np.ndarray, np.ndarray]:
        """Each sentence's postings: (where each sentence's run starts, and the runs: positions in
        the postings arrays, by sentence, then by term). 4 bytes a posting (11 MB for a segment
        of 128k news sentences, ~90 MB at 1M), made once: a question's candidates then find
        their query terms in a few calls, not one bisection per term (`_locate_by_sentence`)."""
        postings = self.postings
        # The transpose of a matrix holding each posting's position: scipy's linear-time counting
        # sort, in int32 (an argsort would make int64 temporaries of twice the size).
        dtype = np.int32 if postings.nnz < 2**31 else np.int64
        positions = sparse.csc_matrix((np.arange(postings.nnz, dtype=dtype), postings.indices, postings.indptr),
                                      shape=postings.shape).tocsr()
        return positions.indptr, positions.data

    def _locate_by_sentence(self, query: _Query, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_locate_terms` without one bisection per term: every posting of the sentences `ids`
        is read, and a posting belongs to query term j when its position falls in j's span."""
        starts, by_sentence = self.sentence_postings
        flat = ids.ravel()
        counts = starts[flat + 1] - starts[flat]
        positions = by_sentence[ranges(starts[flat], counts)].astype(np.int64)
        owners = np.repeat(np.arange(len(flat)), counts)
        at = np.zeros((len(query.terms), len(flat)), dtype=np.int64)
        held = np.zeros((len(query.terms), len(flat)), dtype=bool)
        spans = np.flatnonzero(query.sizes > 0)  # an empty span would shadow the next term's start
        first = self.postings.indptr[query.terms[spans]]
        order = np.argsort(first, kind="stable")
        by_first, first = spans[order], first[order]
        slot = np.searchsorted(first, positions, side="right") - 1
        inside = slot >= 0
        inside[inside] = positions[inside] < first[slot[inside]] + query.sizes[by_first[slot[inside]]]
        term = by_first[slot[inside]]
        at[term, owners[inside]] = positions[inside]
        held[term, owners[inside]] = True
        return at.reshape(len(query.terms), *ids.shape), held.reshape(len(query.terms), *ids.shape)

    def _lookup(self, term: int, ids: np.ndarray, values: np.ndarray) -> np.ndarray:
        """`values` (aligned with the postings) of `term` at sentences `ids`, 0 where the sentence lacks it."""
        at, held = self._locate(term, ids)
        return np.where(held, values[at], 0).astype(np.float32)

    def scores(self, query: str, stats: Statistics | None = None) -> np.ndarray:
        """BM25 score of every sentence for `query` (zeros when no query term is indexed)."""
        return self._scores(self._query(query, stats))

    def _scores(self, q: _Query) -> np.ndarray:
        scores = np.zeros(self.size, dtype=np.float64)  # see `_top_of`
        for term, factor in zip(q.terms, q.factors):
            span = self._span(term)
            scores[self.postings.indices[span]] += factor * q.weights[span]
        return scores

    def scores_of(self, query: str, ids: np.ndarray, stats: Statistics | None = None) -> np.ndarray:
        """BM25 scores of sentences `ids` only (the same values as `scores(query)[ids]`)."""
        return self._scores_of(self._query(query, stats), ids)

    def _scores_of(self, q: _Query, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        total = np.zeros(len(ids), dtype=np.float64)  # see `_top_of`
        for term, factor in zip(q.terms, q.factors):
            total += factor * self._lookup(term, ids, q.weights)
        return total

    def top(self, query: str, k: int, stats: Statistics | None = None,
            live: np.ndarray | None = None, floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """The `k` best-scoring sentences with a positive score, as (ids sorted ascending, their scores).

        Args:
            query: the question.
            k: how many.
            stats: corpus-wide statistics when this index is one segment of a corpus.
            live: False for deleted sentences, which are never returned.
            floor: a score the corpus-wide k-th best is known to reach (the other segments'
                results so far): sentences scoring below it may be left out.

        Exact, without scoring every sentence (stop words are kept, and "the" alone has ~600k
        postings at 1M sentences): MaxScore pruning (Turtle & Flood, 1995). The exact scores of
        the likeliest sentences holding the rarest terms give `floor`, a lower bound on the k-th
        best score. Terms whose largest contributions sum to less than `floor` are optional: a
        sentence holding only those cannot make the top k. So only the postings of the other,
        essential terms are read, and only sentences that can still reach `floor` are scored
        exactly. Ties at the k-th score keep the lower ids.
        """
        q = self._query(query, stats)
        terms, factors, sizes = q.terms, q.factors, q.sizes
        if not len(terms) or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if q.few and floor <= 0:
            gathered = self._gathered(q)
            return _top_of(gathered.ids, gathered.scores, k, live)
        # The other segments' floor is usually higher than this one's own, and costs nothing; with
        # it, MaxScore reads less than scoring every posting even when they are few (1M sentences
        # in 16 segments: BM25 top-k 8.4 -> 6.7 ms a question, the same results).
        floor = floor * (1 - 1e-5) if floor > 0 else self._floor(q, k, live)
        impacts = factors * q.ceiling[terms]
        by_impact = np.argsort(impacts, kind="stable")
        optional = by_impact[np.cumsum(impacts[by_impact]) < floor]
        essential = np.setdiff1d(np.arange(len(terms)), optional)
        if not len(essential):  # even holding every term, no sentence here reaches the floor
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if sizes[essential].sum() > DENSE_SHARE * self.size:
            return _top_of(np.arange(self.size), self._scores(q), k, live)  # too many to gather: a dense pass is cheaper
        ids, partial = self._holders(q, essential)
        # Optional terms, largest first: what is still to come shrinks fastest, and with it the
        # sentences that can still reach the floor.
        remaining = float(impacts[optional].sum())
        for term in optional[::-1]:
            hopeful = partial + remaining >= floor
            ids, partial = ids[hopeful], partial[hopeful]
            partial += factors[term] * self._lookup(int(terms[term]), ids, q.weights)
            remaining -= float(impacts[term])
        return _top_of(ids, partial, k, live)

    def _holders(self, q: _Query, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sentences holding any of the query's terms `which` (ascending), with the sum of those
        terms' scores.

        Slices and one concatenation: at 1M the essential terms hold up to ~250k postings, and
        copying contiguous runs beats gathering them by position (`_gather`) by ~20%.
        """
        spans = [self._span(int(term)) for term in q.terms[which]]
        holders = np.concatenate([self.postings.indices[span] for span in spans])
        partial = np.concatenate([factor * q.weights[span] for factor, span in zip(q.factors[which], spans)])
        return _merge(holders, partial, self.size)

    def _floor(self, q: _Query, k: int, live: np.ndarray | None) -> float:
        """A lower bound on the k-th best score of a live sentence: the k-th best exact score among
        the live sentences that score best on the rarest terms (0 when fewer than k hold them)."""
        by_size = np.argsort(q.sizes, kind="stable")
        rarest = by_size[: max(1, int(np.searchsorted(np.cumsum(q.sizes[by_size]), SEED_POSTINGS, side="right")))]
        ids, partial = self._holders(q, rarest)
        if live is not None:
            alive = live[ids]
            ids, partial = ids[alive], partial[alive]
        if len(ids) < k:
            return 0.0
        likely = np.sort(ids[top_k(partial, SEED_FACTOR * k)])
        exact = self._scores_of(q, likely)
        # Scores are float32 sums: a hair of slack keeps the bound safe against rounding.
        return float(np.partition(exact, len(exact) - k)[len(exact) - k]) * (1 - 1e-5)

    def candidate_scores(
        self, query: str, ids: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray], stats: Statistics | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of sentences `ids`, and of their contexts (sentence + paragraph neighbours) as if each
        were a document: the query terms' postings are located once for both (`_locate_terms`)."""
        q = self._query(query, stats)
        terms = q.terms
        ids = np.asarray(ids, dtype=np.int64)
        sentence, context = np.zeros(len(ids), dtype=np.float32), np.zeros(len(ids), dtype=np.float32)
        if not len(terms) or not len(ids):
            return sentence, context
        previous, following = neighbours
        members = np.stack([ids, previous[ids], following[ids]])  # (3, n); -1: no such neighbour
        present = members >= 0
        members = np.where(present, members, 0)
        lengths = (self.lengths[members] * present).sum(axis=0)
        at, held = self._locate_terms(q, members)  # (terms, 3, n)
        held &= present[None]
        sentence = (q.factors[:, None] * np.where(held[:, 0], q.weights[at[:, 0]], 0)).sum(axis=0).astype(np.float32)
        tf = np.where(held, self.postings.data[at], 0).sum(axis=1)  # (terms, n): counts in each context
        return sentence, self._context_bm25(q, tf, lengths)

    def _context_bm25(self, q: _Query, tf: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """BM25 of contexts whose counts of the query's terms are `tf` (terms, n) and whose
        lengths are `lengths` (n,), each context a document."""
        if q.stats is None:
            mean_length = self.context_length / self.size
            context_idf = _idf(self.context_df[q.terms], self.size)
        else:
            mean_length = q.stats.context_mean_length
            context_idf = np.array([q.stats.context_idf[t] for t in q.names], dtype=np.float32)
        weights = _saturation(tf, lengths[None, :], mean_length, self.k1, self.b)
        return ((context_idf * q.repeats)[:, None] * weights).sum(axis=0).astype(np.float32)

    def every_candidate_score(self, query: str, neighbours: tuple[np.ndarray, np.ndarray],
                              stats: Statistics | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`candidate_scores` of every sentence, to the bit (the same sums in the same order), from
        a dense (terms, sentences) table of the query's postings: on a small index that costs
        less than locating them per candidate, and it needs no candidates, so it can be taken
        before the dense search knows them (`qa.ranking.lexical_half`).

        `neighbours` are `Corpus.neighbours`: a sentence's previous and next are the adjacent
        rows (or -1), so a context's counts are three shifted slices, not three gathers.
        """
        q = self._query(query, stats)
        size = self.size
        if not len(q.terms) or not size:
            return np.zeros(size, dtype=np.float32), np.zeros(size, dtype=np.float32)
        positions = ranges(self.postings.indptr[q.terms], q.sizes)
        at = (np.repeat(np.arange(len(q.terms)), q.sizes), self.postings.indices[positions])
        weights = np.zeros((len(q.terms), size), dtype=np.float32)
        weights[at] = q.weights[positions]
        sentence = (q.factors[:, None] * weights).sum(axis=0).astype(np.float32)
        counts = np.zeros((len(q.terms), size), dtype=np.int32)
        counts[at] = self.postings.data[positions]
        has_previous, has_next = neighbours[0][1:] >= 0, neighbours[1][:-1] >= 0
        tf, lengths = counts.copy(), self.lengths.copy()
        tf[:, 1:] += counts[:, :-1] * has_previous
        tf[:, :-1] += counts[:, 1:] * has_next
        lengths[1:] += self.lengths[:-1] * has_previous
        lengths[:-1] += self.lengths[1:] * has_next
        return sentence, self._context_bm25(q, tf, lengths)

    def context_scores(self, query: str, ids: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """BM25 of the contexts of sentences `ids` (see `candidate_scores`)."""
        return self.candidate_scores(query, ids, neighbours)[1]

    # --- files -------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write the postings (CSC arrays), the vocabulary and the parameters into `folder` as plain files."""
        arrays = {
            "indptr": self.postings.indptr.astype(np.int64),
            "sentence_ids": self.postings.indices.astype(np.int32),
            "counts": self.postings.data.astype(np.int32),
            "context_df": self.context_df,
        }
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", array)
        (folder / TERMS_FILE).write_text(json.dumps(self.terms, ensure_ascii=False), encoding="utf-8")
        params = {"k1": self.k1, "b": self.b, "sentences": self.size, "context_length": self.context_length}
        (folder / PARAMS_FILE).write_text(json.dumps(params, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, size: int) -> "LexicalIndex":
        """Read what `save` wrote; `size` is the sentence count recorded in the manifest."""
        params = json.loads((folder / PARAMS_FILE).read_text(encoding="utf-8"))
        terms = json.loads((folder / TERMS_FILE).read_text(encoding="utf-8"))
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in _ARRAYS}
        if params["sentences"] != size or len(arrays["indptr"]) != len(terms) + 1:
            raise ValueError(f"BM25 files hold {params['sentences']} sentences, the manifest {size}")
        postings = sparse.csc_matrix((arrays["counts"], arrays["sentence_ids"], arrays["indptr"]), shape=(size, len(terms)))
        return cls(terms, postings, arrays["context_df"], int(params["context_length"]), params["k1"], params["b"])


@functools.lru_cache(maxsize=256)
def _query_terms(query: str) -> tuple[tuple[str, int], ...]:
    """The query's terms and their counts, in term order: read by every segment a question searches."""
    return tuple(sorted(Counter(tokenize(query)).items()))


def _merge(holders: np.ndarray, partial: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Postings (sentence ids in runs, one ascending run per term) and their score parts, summed
    per sentence: (ids ascending, total scores)."""
    if len(holders) > size // 16:  # many postings: a dense tally beats sorting them
        tally = np.bincount(holders, weights=partial, minlength=size)
        ids = np.flatnonzero(tally)
        return ids, tally[ids]
    order = np.argsort(holders, kind="stable")  # sorted runs, one per term: the merge is cheap
    holders, partial = holders[order], partial[order]
    firsts = np.flatnonzero(np.diff(holders, prepend=-1))
    return holders[firsts].astype(np.int64), np.add.reduceat(partial, firsts)


def _top_of(ids: np.ndarray, scores: np.ndarray, k: int, live: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`top`'s answer from sentences `ids` (ascending) and their exact scores, deleted ones left out.

    Every path sums a sentence's term scores in float64 (each term's is exact there) and ranks
    the sums rounded to float32: the same sentence then scores the same to the bit whether it was
    scored by a full scan or by MaxScore, in one segment or another, and exact ties (a line
    repeated in many articles) go to the lower id however the index is segmented.
    """
    if live is not None:
        alive = live[ids]
        ids, scores = ids[alive], scores[alive]
    scores = scores.astype(np.float32)
    best = _best(ids, scores, k)
    return best, scores[np.searchsorted(ids, best)]


def _best(ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The ids (ascending, as `ids` must be) of the `k` highest positive scores, ties to the lower id."""
    positive = scores > 0
    return np.sort(ids[positive][top_k(scores[positive], k)])


def _context_statistics(
    counts: sparse.csr_matrix, rows: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, int]:
    """Document frequencies and total length of the contexts of `rows`."""
    df = np.zeros(counts.shape[1], dtype=np.int64)
    length = 0
    for chunk in range(0, len(rows), _CONTEXT_CHUNK):
        contexts = _context_rows(rows[chunk : chunk + _CONTEXT_CHUNK], neighbours, counts.shape[0]) @ counts
        df += np.bincount(contexts.indices, minlength=counts.shape[1])
        length += int(contexts.sum())
    return df, length
