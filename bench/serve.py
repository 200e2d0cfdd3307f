"""A serving process, measured: load an index, answer questions, report latency and peak memory.

    python -m bench.serve INDEX QUESTIONS.json

Prints one JSON line: load seconds, answer/encode latency (see `bench.measure.answer_latency`)
and the process's peak resident set (VmHWM), which covers the model, the index and every
answer. Run in its own process so nothing the benchmark itself holds is counted, and set up as
`app.py` sets up its process (`qa.overlap.quiet_blas_threads`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from qa.overlap import quiet_blas_threads

    quiet_blas_threads()  # as app.py does, before numpy is loaded
    from bench.measure import answer_latency, memory, offline

    offline()
    index_path, questions_file = Path(argv[0]), Path(argv[1])
    questions = json.loads(questions_file.read_text(encoding="utf-8"))
    start = time.perf_counter()
    from qa.index import Index

    index = Index.load(index_path)
    index.warm_up()  # as app.py does: the model loads, and small segments are joined, before the first question
    loaded = time.perf_counter() - start
    result = {"load_s": round(loaded, 2), "after_load": memory(), **answer_latency(index, questions)}
    result["memory"] = memory()
    result["segment_kinds"] = [entry.get("dense", "flat") for entry in index.manifest["segments"]]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
