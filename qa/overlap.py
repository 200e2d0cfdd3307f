"""Work a question needs that can run while the question is being encoded.

A question's encode runs the model on one thread (`qa.encoder`: two made a single question
slower on a busy 2-core machine) with the GIL released, so a second core sits idle for those
milliseconds. The BM25 half of ranking needs no query vector (`qa.ranking.lexical_top`), so on a
large index `Index` starts it on a helper thread, encodes, then takes its result: the question
waits for the longer of the two instead of their sum (at 1M sentences in 16 segments, ~6 ms of
~28). Then the dense search of a many-segment index runs half its segments on a helper thread
(`Snapshot.dense_top_scored`, as Lucene's IndexSearcher searches segment slices on an executor:
FAISS and the row reads release the GIL). What is computed does not change, only when.

Two things make that pay (measured, docs/speed.md):
- Only above `OVERLAP_FROM` sentences. Below it the BM25 half costs under a millisecond, and
  handing it to a thread, plus the GIL it then holds while the encode wants it, costs as much.
- Only when idle BLAS threads sleep (`quiet_blas_threads`). OpenBLAS threads spin for a while
  after each product; the spinning one took the core the overlapped work needed and made both
  the encode and BM25 twice as slow, so the overlap lost more than it won. OpenBLAS reads its
  setting once, when numpy loads it: a serving process (`app.py`, `qa` commands) asks for it
  before importing numpy, and a program that did not is answered one step after the other.
"""

from __future__ import annotations

import functools
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")
OVERLAP_FROM = 50_000  # sentences; at 10k overlapping measured no gain (docs/speed.md)
# Two: the app answers a few chats at once, and one helper would queue their BM25 phases.
HELPER_THREADS = 2
# OpenBLAS's idle-thread spin, as log2 of CPU cycles; 4 is its least: the threads sleep at once.
# A question's products are small, and measured no slower for it (docs/speed.md).
BLAS_TIMEOUT_VARIABLE = "OPENBLAS_THREAD_TIMEOUT"
QUIET_BLAS_TIMEOUT = "4"


@functools.cache
def _helpers(pid: int) -> ThreadPoolExecutor:
    """This process's helper threads, started on first use (a forked child gets its own: the
    parent's threads do not exist in it, and a pool copied from the parent would wait for them)."""
    return ThreadPoolExecutor(max_workers=HELPER_THREADS, thread_name_prefix="qa-overlap")


def start(work: Callable[..., T], *args: Any) -> Future[T]:
    """Run `work(*args)` on a helper thread; `.result()` of what this returns waits for it (and
    raises what it raised)."""
    return _helpers(os.getpid()).submit(work, *args)


def quiet_blas_threads() -> None:
    """Have OpenBLAS put idle threads to sleep at once instead of spinning (see the module
    docstring). Does nothing once numpy is imported (OpenBLAS has read its settings: `pays` must
    not believe a value set too late); a value the user set wins."""
    if "numpy" not in sys.modules:
        os.environ.setdefault(BLAS_TIMEOUT_VARIABLE, QUIET_BLAS_TIMEOUT)


def pays(sentences: int) -> bool:
    """Whether running a question's work on helper threads (its BM25 half beside its encode, half
    the segments' dense searches beside the other half) saves time on an index of `sentences`
    live sentences in this process."""
    quiet = os.environ.get(BLAS_TIMEOUT_VARIABLE) is not None or os.environ.get("OPENBLAS_NUM_THREADS") == "1"
    return quiet and sentences >= OVERLAP_FROM
