"""Lexical retrieval: BM25 over stemmed word tokens and CJK character bigrams, kept incrementally.

Measured on SQuAD dev (bench/recipes.py): Snowball stemming +0.03 MRR; removing stop words
hurts (-0.01), so they are kept; k1=0.5, b=0.35 beat the usual 1.5/0.75 by +0.03 on short
sentences.

The scores are bm25s's "lucene" BM25 (tests check them against bm25s), but the index is ours:
bm25s can only index a whole corpus at once (xhluca/bm25s#5), so adding one article to 10k
sentences re-tokenised everything (4 s). Here the stored truth is each sentence's term counts;
an add tokenises only the new sentences and re-derives the weights, which is vectorised
arithmetic over the counts. A sentence's context (it and its paragraph neighbours) is the sum of
their count rows, so context BM25 needs no second index: it is scored for the candidates only,
with its document frequencies kept up to date on add and remove.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import sparse

# Numbers keep their inner separators ("61.1", "290,300") so a figure matches as one token;
# CJK runs are matched separately because they have no spaces between words.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]+|\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’][^\W\d_]+)?|\d+")
_CJK_RUN = re.compile(rf"^[{_CJK}]+$")
_CJK_ANY = re.compile(rf"[{_CJK}]")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")

DEFAULT_K1 = 0.5
DEFAULT_B = 0.35


@functools.lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer  # PyStemmer: Snowball stemmers in C

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-cased, Snowball-stemmed word tokens and whole numbers; CJK runs become character n-grams.

    The order of the tokens carries no meaning (BM25 counts them).
    """
    lowered = text.lower()
    if not _CJK_ANY.search(lowered):
        # Two C-level findall passes instead of a Python loop per token: 3x faster builds.
        words = _WORD.findall(lowered.replace("’", "'"))
        numbers = [n.replace(",", "") for n in _NUMBER.findall(lowered)]
        if any(w[0].isdigit() for w in words):  # "²" is a letter to the regex but a digit to Python
            numbers += [w for w in words if w[0].isdigit()]
            words = [w for w in words if not w[0].isdigit()]
        return (_stemmer().stemWords(words) if words else []) + numbers
    words: list[str] = []
    numbers: list[str] = []
    cjk: list[str] = []
    for match in _TOKEN.finditer(lowered):
        token = match.group()
        if _CJK_RUN.match(token):
            # Unigrams find one-character words, bigrams give word-like precision.
            cjk.extend(token)
            cjk.extend(token[i : i + 2] for i in range(len(token) - 1))
        elif token[0].isdigit():
            numbers.append(token.replace(",", ""))
        else:
            words.append(token.replace("’", "'"))
    return (_stemmer().stemWords(words) if words else []) + numbers + cjk


@functools.lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def phrase_pairs(text: str) -> set[tuple[str, str]]:
    """Adjacent pairs of stemmed words ("train their", "their model"), except stop-word-only pairs."""
    words = [m.group().replace(",", "") for m in _TOKEN.finditer(text.lower()) if not _CJK_RUN.match(m.group())]
    stopwords = _stopwords()
    stems = _stemmer().stemWords(words) if words else []
    return {
        (stems[i], stems[i + 1])
        for i in range(len(stems) - 1)
        if not (words[i] in stopwords and words[i + 1] in stopwords)
    }


def phrase_matches(question: str, texts: Sequence[str]) -> np.ndarray:
    """How many of the question's word pairs each text contains: a cheap term-proximity signal."""
    asked = phrase_pairs(question)
    if not asked:
        return np.zeros(len(texts), dtype=np.float32)
    return np.array([len(asked & phrase_pairs(t)) for t in texts], dtype=np.float32)


def coverage(question: str, texts: Sequence[str]) -> np.ndarray:
    """Share of the question's distinct terms that each text contains (0 when it has none)."""
    asked = set(tokenize(question))
    if not asked:
        return np.zeros(len(texts), dtype=np.float32)
    return np.array([len(asked & set(tokenize(t))) / len(asked) for t in texts], dtype=np.float32)


PARAMS_FILE = "params.json"
TERMS_FILE = "terms.json"
_ARRAYS = ("indptr", "term_ids", "counts", "context_df")
_CONTEXT_CHUNK = 100_000


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
    columns = np.stack([rows, previous[rows], following[rows]], axis=1)
    owner = np.repeat(np.arange(len(rows)), 3)
    columns = columns.ravel()
    present = columns >= 0
    ones = np.ones(int(present.sum()), dtype=np.int32)
    return sparse.csr_matrix((ones, (owner[present], columns[present])), shape=(len(rows), size))


class LexicalIndex:
    """BM25 over sentences, and over each sentence's paragraph context, that grows and shrinks in place.

    Immutable: `extend` and `without` return new indexes, so readers keep a consistent snapshot.

    Args:
        terms: the vocabulary, term id -> term.
        counts: (sentences, terms) CSR matrix of term counts, the stored truth.
        context_df: for each term, how many sentence contexts contain it.
        context_length: total token count of all sentence contexts (for their mean length).
    """

    def __init__(
        self,
        terms: list[str],
        counts: sparse.csr_matrix,
        context_df: np.ndarray,
        context_length: int,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
    ) -> None:
        if counts.shape[1] != len(terms) or len(context_df) != len(terms):
            raise ValueError(f"BM25 counts have {counts.shape[1]} terms, the vocabulary {len(terms)}")
        self.terms = terms
        self.counts = counts
        self.context_df = context_df
        self.context_length = context_length
        self.k1, self.b = k1, b
        self.size = counts.shape[0]
        self.lengths = np.asarray(counts.sum(axis=1)).ravel().astype(np.int64)
        self._vocabulary = {term: i for i, term in enumerate(terms)}
        self._postings: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def empty(cls, k1: float = DEFAULT_K1, b: float = DEFAULT_B) -> "LexicalIndex":
        """An index of no sentences."""
        return cls([], sparse.csr_matrix((0, 0), dtype=np.int32), np.zeros(0, dtype=np.int64), 0, k1, b)

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
        terms = list(self.terms)
        vocabulary = dict(self._vocabulary)
        token_ids: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = tokenize(text)
            token_ids.extend(vocabulary.setdefault(t, len(vocabulary)) for t in tokens)
            lengths[row] = len(tokens)
        terms.extend(list(vocabulary)[len(terms) :])
        width = len(terms)
        rows = np.repeat(np.arange(len(texts)), lengths)
        # COO -> CSR sums the repeated (sentence, term) pairs into counts.
        added = sparse.coo_matrix(
            (np.ones(len(rows), dtype=np.int32), (rows, np.asarray(token_ids, dtype=np.int64))), shape=(len(texts), width)
        ).tocsr()
        old = sparse.csr_matrix((self.counts.data, self.counts.indices, self.counts.indptr), shape=(self.size, width))
        counts = sparse.vstack([old, added], format="csr", dtype=np.int32)
        new_rows = np.arange(self.size, counts.shape[0])
        context_df, context_length = self._context_statistics(counts, new_rows, neighbours)
        context_df = np.pad(self.context_df, (0, width - len(self.context_df))) + context_df
        return LexicalIndex(terms, counts, context_df, self.context_length + context_length, self.k1, self.b)

    def without(self, keep: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray]) -> "LexicalIndex":
        """A new index with only the sentences where `keep` is True; `neighbours` of the current corpus."""
        removed = np.flatnonzero(~keep)
        context_df, context_length = self._context_statistics(self.counts, removed, neighbours)
        return LexicalIndex(
            self.terms, self.counts[keep], self.context_df - context_df, self.context_length - context_length, self.k1, self.b
        )

    @staticmethod
    def _context_statistics(
        counts: sparse.csr_matrix, rows: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, int]:
        """Document frequencies and total length of the contexts of `rows`."""
        df = np.zeros(counts.shape[1], dtype=np.int64)
        length = 0
        for chunk in range(0, len(rows), _CONTEXT_CHUNK):  # bounded memory at 1M sentences
            contexts = _context_rows(rows[chunk : chunk + _CONTEXT_CHUNK], neighbours, counts.shape[0]) @ counts
            df += np.bincount(contexts.indices, minlength=counts.shape[1])
            length += int(contexts.sum())
        return df, length

    # --- reading -----------------------------------------------------------

    def _query_terms(self, query: str) -> list[int]:
        # Repeated query terms count once per occurrence, as in bm25s.
        return [self._vocabulary[t] for t in tokenize(query) if t in self._vocabulary]

    def _term_postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Term-major (indptr, sentence ids, saturated tf, idf): what scoring a query reads."""
        if self._postings is None:  # built on first use; racing threads would only build it twice
            by_term = self.counts.tocsc()
            mean_length = float(self.lengths.mean()) if self.size else 0.0
            weights = _saturation(by_term.data, self.lengths[by_term.indices], mean_length, self.k1, self.b)
            idf = _idf(np.diff(by_term.indptr), self.size)
            self._postings = (by_term.indptr, by_term.indices, weights, idf)
        return self._postings

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every sentence for `query` (zeros when no query term is indexed)."""
        scores = np.zeros(self.size, dtype=np.float32)
        query_terms = self._query_terms(query)
        if not query_terms:
            return scores
        indptr, ids, weights, idf = self._term_postings()
        for term in query_terms:
            span = slice(indptr[term], indptr[term + 1])
            scores[ids[span]] += idf[term] * weights[span]
        return scores

    def context_scores(self, query: str, ids: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """BM25 of the contexts (sentence + paragraph neighbours) of sentences `ids`, as if each were a document."""
        query_terms = self._query_terms(query)
        if not query_terms or not len(ids):
            return np.zeros(len(ids), dtype=np.float32)
        terms, repeats = np.unique(query_terms, return_counts=True)
        contexts = _context_rows(np.asarray(ids), neighbours, self.size) @ self.counts
        lengths = np.asarray(contexts.sum(axis=1)).ravel()
        tf = contexts[:, terms].toarray()
        mean_length = self.context_length / self.size
        weights = _saturation(tf, lengths[:, None], mean_length, self.k1, self.b)
        return (weights * (_idf(self.context_df[terms], self.size) * repeats)[None, :]).sum(axis=1).astype(np.float32)

    # --- files -------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write the counts (CSR arrays), the vocabulary and the parameters into `folder` as plain files."""
        arrays = {
            "indptr": self.counts.indptr.astype(np.int64),
            "term_ids": self.counts.indices.astype(np.int32),
            "counts": self.counts.data.astype(np.int32),
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
        if params["sentences"] != size or len(arrays["indptr"]) != size + 1:
            raise ValueError(f"BM25 files hold {params['sentences']} sentences, the manifest {size}")
        counts = sparse.csr_matrix((arrays["counts"], arrays["term_ids"], arrays["indptr"]), shape=(size, len(terms)))
        return cls(terms, counts, arrays["context_df"], int(params["context_length"]), params["k1"], params["b"])
