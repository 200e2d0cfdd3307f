"""Near-duplicate articles: the same story under another headline or with other boilerplate.

Each article becomes the set of its word 5-grams (CJK characters count as words). A MinHash
signature (128 hash permutations, numpy) screens every indexed article at once; the few
candidates are then compared exactly. An article is a near-duplicate of an indexed one when
their 5-gram sets overlap by Jaccard >= 0.5, or when 70 % of the smaller one's 5-grams are in
the larger one (a shortened re-publication). Unrelated news articles share almost no 5-grams
(Jaccard ~0.0-0.05); copies of one wire story under other headlines share 0.5-0.95.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qa.articles import Article

SHINGLE = 5
PERMUTATIONS = 128
SCREEN = 0.25  # estimated Jaccard worth an exact check (a 2:1 shortened copy is ~0.36)
JACCARD = 0.5
CONTAINMENT = 0.7
MIN_SHINGLES = 8  # below this an article is too short to call it anyone's copy

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W_]+")
# One fixed seed per permutation: signatures must not depend on the run.
_SEEDS = np.random.default_rng(20240605).integers(0, 1 << 63, PERMUTATIONS, dtype=np.uint64)


@dataclass(frozen=True)
class Match:
    """The indexed article a new one nearly duplicates, and how much they share."""

    article_id: str
    jaccard: float
    containment: float


def shingles(text: str) -> frozenset[int]:
    """CRC32 hashes of the word 5-grams of `text`, case- and punctuation-insensitive."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    if len(words) < SHINGLE:
        return frozenset({zlib.crc32(" ".join(words).encode())}) if words else frozenset()
    return frozenset(zlib.crc32(" ".join(words[i : i + SHINGLE]).encode()) for i in range(len(words) - SHINGLE + 1))


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a well-spread 64-bit hash (uint64 arrays wrap, as intended)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@functools.lru_cache(maxsize=50_000)
def _signature(text: str) -> np.ndarray:
    """The MinHash signature of a text (1 KB; cached because indexed texts recur on every add)."""
    hashes = shingles(text)
    if not hashes:
        return np.full(PERMUTATIONS, np.iinfo(np.uint64).max, dtype=np.uint64)
    values = np.fromiter(hashes, dtype=np.uint64, count=len(hashes))
    return _mix(values[:, None] ^ _SEEDS[None, :]).min(axis=0)


class NearDuplicates:
    """Finds which indexed article, if any, a new article nearly duplicates.

    Args:
        articles: the articles already indexed; more can be registered with `add`.
        signatures: their signatures, row for row, as `signatures` returned them before (an
            index stores them, so an add does not re-hash every indexed article); computed
            when not given.
    """

    def __init__(self, articles: Sequence[Article] = (), signatures: np.ndarray | None = None) -> None:
        if signatures is not None and signatures.shape != (len(articles), PERMUTATIONS):
            raise ValueError(f"{len(articles)} articles but signatures of shape {signatures.shape}")
        self._ids = [a.id for a in articles]
        self._texts = [a.text for a in articles]
        known = signatures if signatures is not None else [_signature(a.text) for a in articles]
        self._signatures = np.zeros((max(64, 2 * len(articles)), PERMUTATIONS), dtype=np.uint64)  # grows by doubling
        if len(articles):
            self._signatures[: len(articles)] = known

    @property
    def signatures(self) -> np.ndarray:
        """(registered articles, PERMUTATIONS) MinHash signatures, in registration order."""
        return self._signatures[: len(self._ids)]

    def add(self, article: Article) -> None:
        """Register an article so later ones are compared with it."""
        row = len(self._ids)
        if row == len(self._signatures):
            self._signatures = np.concatenate([self._signatures, np.zeros_like(self._signatures)])
        self._signatures[row] = _signature(article.text)
        self._ids.append(article.id)
        self._texts.append(article.text)

    def find(self, article: Article) -> Match | None:
        """The most similar registered article if it is a near-duplicate, else None."""
        mine = shingles(article.text)
        if len(mine) < MIN_SHINGLES or not self._ids:
            return None
        signature = _signature(article.text)
        estimates = (self._signatures[: len(self._ids)] == signature[None, :]).mean(axis=1)
        candidates = np.flatnonzero(estimates >= SCREEN)
        best: Match | None = None
        for row in candidates[np.argsort(-estimates[candidates], kind="stable")]:
            theirs = shingles(self._texts[row])
            if len(theirs) < MIN_SHINGLES:
                continue
            shared = len(mine & theirs)
            jaccard = shared / len(mine | theirs)
            containment = shared / min(len(mine), len(theirs))
            if (jaccard >= JACCARD or containment >= CONTAINMENT) and (best is None or jaccard > best.jaccard):
                best = Match(self._ids[row], round(jaccard, 3), round(containment, 3))
        return best
