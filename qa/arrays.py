"""Small numpy helpers shared by the index structures."""

from __future__ import annotations

import numpy as np


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of arange(start, start + length) for each pair, without a Python loop.

    Reads every posting of a few terms, every token of a few sentences, every member of a few
    paragraphs: one call instead of one per range.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    firsts = np.cumsum(lengths) - lengths  # where each range begins in the output
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(np.asarray(starts, dtype=np.int64) - firsts, lengths)


def sorted_union(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The distinct values of two integer arrays, ascending (as `np.union1d`, in three numpy
    calls instead of its dozen: a question unites its candidate ids twice)."""
    every = np.concatenate([first, second]).astype(np.int64)
    every.sort()
    if len(every) < 2:
        return every
    return every[np.concatenate([[True], every[1:] != every[:-1]])]
