"""Work a question needs that can run while the question is being encoded.

A question's encode runs the model on one thread (`qa.encoder`: two made a single question
slower on a busy 2-core machine) with the GIL released, so a second core sits idle for those
milliseconds. The BM25 half of ranking needs no query vector (`qa.ranking.lexical_half`), so
`Index` hands it to a helper thread as the model starts (`encode_beside`), then takes its
result: the question waits for the longer of the two instead of their sum. Then the dense
search of an index too large for one exact product probes half its segments on a helper thread
(`Snapshot.dense_top_scored`, as Lucene's IndexSearcher searches segment slices on an executor:
FAISS releases the GIL), and re-scores every segment's rows on the asking thread (each row read
hands the GIL over). What is computed does not change, only when.

Two things make that pay (measured, docs/speed.md):
- The helper starts when the model does, not before: the encode's own Python steps (tokenising,
  padding) then do not wait for the GIL the helper holds. So timed, the overlap pays at every
  size measured, from 16 sentences (answer over encode 1.19 -> 1.14x) to 10k (1.53 -> 1.39x).
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
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:  # numpy must not load with this module: see `quiet_blas_threads`
    import numpy as np

    from qa.encoder import Encoder

T = TypeVar("T")
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


def start(work: Callable[..., T], *args: Any, after: threading.Event | None = None) -> Future[T]:
    """Run `work(*args)` on a helper thread, once `after` is set when given; `.result()` of what
    this returns waits for it (and raises what it raised)."""
    if after is None:
        return _helpers(os.getpid()).submit(work, *args)

    def when_set() -> T:
        after.wait()
        return work(*args)

    return _helpers(os.getpid()).submit(when_set)


def encode_beside(encoder: Encoder, texts: list[str], work: Callable[..., T], *args: Any) -> tuple[np.ndarray, T]:
    """`encoder.encode(texts)`, with `work(*args)` run on a helper thread meanwhile: both results.

    The work starts when the model does (`Encoder.encode(model_started=...)`), not before: the
    encode's own Python steps (tokenising, padding) want the GIL the work would hold, and
    started at once it made them twice as slow (0.3 -> 0.6 ms a question at 10k).
    """
    model_started = threading.Event()
    done = start(work, *args, after=model_started)
    try:
        vectors = encoder.encode(texts, model_started=model_started.set)
    finally:
        model_started.set()  # never leave the helper waiting, the encode having failed
    return vectors, done.result()


def quiet_blas_threads() -> None:
    """Have OpenBLAS put idle threads to sleep at once instead of spinning (see the module
    docstring). Does nothing once numpy is imported (OpenBLAS has read its settings: `pays` must
    not believe a value set too late); a value the user set wins."""
    if "numpy" not in sys.modules:
        os.environ.setdefault(BLAS_TIMEOUT_VARIABLE, QUIET_BLAS_TIMEOUT)


def pays() -> bool:
    """Whether running a question's work on helper threads (its BM25 half beside its encode, half
    the segments' dense probes beside the other half) saves time in this process."""
    return os.environ.get(BLAS_TIMEOUT_VARIABLE) is not None or os.environ.get("OPENBLAS_NUM_THREADS") == "1"
