"""A segment: an immutable folder of plain files holding some articles and all that answers from them.

    seg-000003/
      articles.jsonl                 the articles, full text included (citations slice it)
      sentences.npy                  (n, 5) int64: article row, start, end, paragraph, position
      embeddings.npy                 (n, d) float32 sentence vectors
      title-context-embeddings.npy   (n, 2d) float32: "title: sentence" and in-context vectors
      dense.faiss (+ .json)          the segment's own dense index: flat while small, IVF-PQ when large
      bm25/                          term postings (CSC arrays), vocabulary, context frequencies
      cues/                          each sentence's numbers, dates and names
      minhash.npy                    near-duplicate signatures, one row per article
      segment.json                   counts and when it was written

Rows are local: sentence row i of every file is the segment's sentence i. Nothing in a segment
changes after it is written; removals live in a deletion file beside it (`qa.store.deletes`),
which this object applies as a mask.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from qa.bm25 import LexicalIndex, _context_statistics
from qa.corpus import ARTICLE, Corpus
from qa.cues import CueTable
from qa.dense import DenseIndex, load_vectors
from qa.ranking import neighbour_dots
from qa.store.files import staged_folder
from qa.vectors import Vectors

VECTOR_FILES = ("embeddings.npy", "title-context-embeddings.npy")
DENSE_FILE = "dense.faiss"
LEXICAL_FOLDER = "bm25"
CUES_FOLDER = "cues"
SIGNATURES_FILE = "minhash.npy"
INFO_FILE = "segment.json"


@dataclass(frozen=True)
class SegmentData:
    """What a segment holds, in memory: the pieces every structure of the engine is built from."""

    corpus: Corpus
    embeddings: Vectors  # row i: sentence i alone; the dense index searches these
    title_context_embeddings: Vectors  # row i: "title: sentence i", then sentence i between its neighbours
    dense: DenseIndex
    lexical: LexicalIndex
    cues: CueTable
    signatures: np.ndarray  # (articles, 128) MinHash signatures

    def __len__(self) -> int:
        return len(self.corpus)

    def write(self, path: Path, name: str) -> None:
        """Write this segment as the folder `path/name` (staged, synced, renamed)."""
        with staged_folder(path, name) as folder:
            self.corpus.save(folder)
            for file, matrix in zip(VECTOR_FILES, (self.embeddings, self.title_context_embeddings)):
                np.save(folder / file, np.ascontiguousarray(np.asarray(matrix), dtype=np.float32))
            self.dense.save(folder / DENSE_FILE)
            (folder / LEXICAL_FOLDER).mkdir()
            self.lexical.save(folder / LEXICAL_FOLDER)
            (folder / CUES_FOLDER).mkdir()
            self.cues.save(folder / CUES_FOLDER)
            np.save(folder / SIGNATURES_FILE, np.ascontiguousarray(self.signatures, dtype=np.uint64))
            info = {"articles": len(self.corpus.articles), "sentences": len(self.corpus), "dense": self.dense.describe(),
                    "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            (folder / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def read_segment_data(folder: Path, sentences: int) -> SegmentData:
    """Read a segment folder; `sentences` is the count its commit entry records.

    Raises:
        ValueError, OSError, KeyError: the files are missing or disagree with each other.
    """
    corpus = Corpus.load(folder)
    embeddings = load_vectors(folder / VECTOR_FILES[0])  # mapped, or read by row when large
    dense = DenseIndex.load(folder / DENSE_FILE, vectors=embeddings)
    # Title and context rows are read for a question's candidates only, never multiplied whole:
    # an approximate segment's are read by row, as the pages its questions touched would count in
    # the resident set when mapped (at 1M, ~300 MB of them in the 14k-sentence segments).
    title_context = load_vectors(folder / VECTOR_FILES[1], by_row=dense.kind != "flat")
    lexical = LexicalIndex.load(folder / LEXICAL_FOLDER, sentences)
    cues = CueTable.load(folder / CUES_FOLDER, sentences)
    signatures = np.load(folder / SIGNATURES_FILE, mmap_mode="r", allow_pickle=False)  # paged in by an add only
    if not len(corpus) == dense.size == sentences == len(embeddings) == len(title_context):
        raise ValueError(f"{folder.name} holds {len(corpus)} sentences, {len(embeddings)} vectors, "
                         f"{dense.size} indexed; its commit entry says {sentences}")
    if len(signatures) != len(corpus.articles):
        raise ValueError(f"{folder.name} holds {len(corpus.articles)} articles but {len(signatures)} signatures")
    return SegmentData(corpus, embeddings, title_context, dense, lexical, cues, signatures)


class Segment:
    """A committed segment as readers see it: its data, less the articles its deletion file names.

    Args:
        name: the folder name, as the commit point lists it.
        data: the segment's files, read.
        dead_articles: local rows of removed articles (sorted); their sentences are never
            returned, counted in BM25 statistics or cited.
    """

    def __init__(self, name: str, data: SegmentData, dead_articles: np.ndarray | None = None) -> None:
        self.name = name
        self.data = data
        self.dead_articles = np.asarray(dead_articles if dead_articles is not None else [], dtype=np.int64)
        table = data.corpus.table
        if len(self.dead_articles):
            self.live: np.ndarray | None = ~np.isin(table[:, ARTICLE], self.dead_articles)
            self.dead_rows = np.flatnonzero(~self.live)
        else:
            self.live, self.dead_rows = None, np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.data.corpus)

    @property
    def live_sentences(self) -> int:
        """Sentences not deleted."""
        return len(self) - len(self.dead_rows)

    def with_deletes(self, dead_articles: np.ndarray) -> "Segment":
        """The same segment with another deletion set (the data is shared, not copied)."""
        return Segment(self.name, self.data, dead_articles)

    def live_articles(self) -> list[int]:
        """Local rows of the articles not deleted, in order."""
        dead = set(self.dead_articles.tolist())
        return [row for row in range(len(self.data.corpus.articles)) if row not in dead]

    @functools.cached_property
    def neighbour_dots(self) -> np.ndarray:
        """`qa.ranking.neighbour_dots` of this segment's vectors (flat segments only read them)."""
        return neighbour_dots(self.data.embeddings, self.data.corpus.neighbours)

    @functools.cached_property
    def lexical_totals(self) -> tuple[int, int, int]:
        """(live sentences, their total token count, their contexts' total token count)."""
        lexical = self.data.lexical
        dead_df, dead_context_df, dead_length, dead_context_length = self._dead_statistics
        return (self.live_sentences, int(lexical.lengths.sum()) - dead_length,
                lexical.context_length - dead_context_length)

    def frequencies(self, terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Live document frequencies of `terms` among sentences and among sentence contexts."""
        lexical = self.data.lexical
        df, context_df = lexical.frequencies(terms)
        if len(self.dead_rows):
            dead_df, dead_context_df, _, _ = self._dead_statistics
            local = lexical.term_ids(terms)
            present = local >= 0
            df[present] -= dead_df[local[present]]
            context_df[present] -= dead_context_df[local[present]]
        return df, context_df

    @functools.cached_property
    def _dead_statistics(self) -> tuple[np.ndarray, np.ndarray, int, int]:
        """What the deleted sentences add to the BM25 statistics: per local term, how many of
        them and of their contexts hold it; their token count and their contexts'. Computed from
        the postings once per deletion set (the segment itself never changes)."""
        lexical = self.data.lexical
        terms = len(lexical.terms)
        if not len(self.dead_rows):
            return np.zeros(terms, dtype=np.int64), np.zeros(terms, dtype=np.int64), 0, 0
        dead = lexical.only_rows(self.dead_rows)  # (sentences, terms) CSR holding the dead rows alone
        df = np.bincount(dead.indices, minlength=terms).astype(np.int64)
        # A deleted article goes whole, so a dead sentence's paragraph neighbours are dead too.
        context_df, context_length = _context_statistics(dead, self.dead_rows, self.data.corpus.neighbours)
        return df, context_df, int(lexical.lengths[self.dead_rows].sum()), context_length


def dead_article_rows(entry: dict[str, Any], path: Path) -> np.ndarray:
    """The deleted local article rows named by a commit entry (empty when it has no deletion file)."""
    from qa.store.deletes import read_deletes

    return read_deletes(path / entry["deletes"]) if entry.get("deletes") else np.zeros(0, dtype=np.int64)
