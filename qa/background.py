"""One small thread pool per process, for work that overlaps a question's other half.

A question's dense half (encode it, search the vectors) and its BM25 half need nothing from each
other until they are fused: the ONNX session that encodes questions uses one core and releases
the GIL, as FAISS and most numpy kernels do, so the two run side by side on a second core.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

_Result = TypeVar("_Result")
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def in_background(work: Callable[..., _Result], *args: Any) -> "Future[_Result]":
    """Start `work(*args)` on the process's pool (made on first use); `.result()` collects it."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0)), thread_name_prefix="qa-background")
    return _pool.submit(work, *args)
