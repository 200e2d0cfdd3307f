"""Lexical retrieval: BM25 (bm25s) over stemmed word tokens and CJK character bigrams.

Measured on SQuAD dev (bench/recipes.py): Snowball stemming +0.03 MRR; removing stop words
hurts (-0.01), so they are kept; k1=0.5, b=0.35 beat the usual 1.5/0.75 by +0.03 on short
sentences.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# Numbers keep their inner separators ("61.1", "290,300") so a figure matches as one token;
# CJK runs are matched separately because they have no spaces between words.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]+|\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’][^\W\d_]+)?|\d+")
_CJK_RUN = re.compile(rf"^[{_CJK}]+$")

DEFAULT_K1 = 0.5
DEFAULT_B = 0.35


@functools.lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer  # PyStemmer: Snowball stemmers in C

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-cased, Snowball-stemmed word tokens and whole numbers; CJK runs become character n-grams."""
    words: list[str] = []
    numbers: list[str] = []
    cjk: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
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


class LexicalIndex:
    """BM25 scores of every indexed sentence for a query (a thin layer over bm25s)."""

    def __init__(self, retriever: Any, size: int) -> None:
        self._retriever = retriever
        self.size = size

    @classmethod
    def build(cls, texts: Sequence[str], k1: float = DEFAULT_K1, b: float = DEFAULT_B) -> "LexicalIndex":
        """Index texts (one per sentence, in sentence-id order)."""
        import bm25s

        retriever = bm25s.BM25(k1=k1, b=b)
        tokens = [tokenize(text) or ["\u2205"] for text in texts]  # bm25s needs a token per doc
        if texts:
            retriever.index(tokens, show_progress=False)
        return cls(retriever, len(texts))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every sentence (zeros when no query term is in the vocabulary)."""
        if self.size == 0:
            return np.zeros(0, dtype=np.float32)
        ids = self._retriever.get_tokens_ids(tokenize(query))
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._retriever.get_scores_from_ids(ids), dtype=np.float32)

    def save(self, folder: Path) -> None:
        """Write the bm25s files into `folder`."""
        if self.size:
            self._retriever.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, size: int) -> "LexicalIndex":
        """Read what `save` wrote; `size` is the sentence count recorded in the manifest."""
        import bm25s

        if size == 0:
            return cls(None, 0)
        retriever = bm25s.BM25.load(str(folder), mmap=False, show_progress=False, verbosity=0)
        return cls(retriever, size)
