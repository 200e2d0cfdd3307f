"""Speed and scale benchmark: `python -m bench` (see docs/speed.md).

Every figure is measured in the same run as the floor it is built on (the model's own `encode`),
so the ratios hold on a busy machine. Stages:

    build      full build of SQuAD dev (48 articles, ~10k sentences) vs encoding the same texts
    recipes    cold builds of the same articles with each build recipe (full, titled, fast) vs one plain
               sentence-transformers encode of their sentences; an unchanged rebuild (bench/build_cost.py)
    rebuild    the same build again: the embedding cache means nothing is encoded
    add        one new article into the 10k index vs encoding that article alone
    answer     answer() p50/p95 over 200 questions vs encoding the question, in a serving process
    segments   the same 10k articles as 16 segments: answer() latency; bytes and seconds of an add and a remove
    scale      generated 100k / 1M sentence indexes in 16 segments: build, disk, ANN recall@10, latency,
               peak RSS, add and remove costs; at 100k a merge of the 16 into one
    coldstart  `python app.py` until the first answer is served
    encoders   int8 dynamic quantisation (and ONNX Runtime when installed) vs the float32 encoder

Writes bench/results/speed.json and bench/results/speed.md (`encoders` alone: encoders.json/.md;
`cluster` alone: cluster.json/.md; `recipes` alone: build-cost.json/.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from bench.measure import machine, offline

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("build", "recipes", "rebuild", "add", "answer", "segments", "scale", "coldstart", "encoders", "cluster")
# `encoders` (~5 min more) runs on its own: --stages encoders; `cluster` needs qa[cluster] (bench/cluster.py).
DEFAULT_STAGES = STAGES[:-2]
SIZES = (100_000, 1_000_000)


class Run:
    """What the stages share: a scratch folder, a private embedding cache, the SQuAD index."""

    def __init__(self, work: Path, articles: int | None, questions: int, keep: bool = False,
                 cache: Path | None = None) -> None:
        self.work = work
        self.keep = keep
        self.articles = articles
        self.questions = questions
        self.results: dict[str, Any] = {}
        self.squad_index = work / "squad"  # the cold build
        self.rebuilt_index = work / "squad-rebuilt"
        self.cold = cache is None
        # Empty by default: the first build is really cold. A warm one skips ~8 minutes of
        # embedding for stages that time answers and changes, not the build.
        os.environ["QA_CACHE_DIR"] = str(cache or work / "cache")

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _stage(name: str, run: Run, body: Callable[[Run], dict[str, Any]]) -> None:
    """Run one stage; a failure is recorded in the report and the other stages still run."""
    run.log(f"{name} ...")
    start = time.perf_counter()
    try:
        run.results[name] = body(run)
    except Exception as exc:  # a benchmark that dies at stage 5 of 7 should still report 1-4
        run.results[name] = {"error": f"{type(exc).__name__}: {exc}"[-2000:]}
        traceback.print_exc()
    run.results[name]["stage_s"] = round(time.perf_counter() - start, 1)
    run.log(f"{name} done in {run.results[name]['stage_s']} s")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen stages, print the table, write JSON and Markdown under bench/results/."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--stages", default=",".join(DEFAULT_STAGES),
                        help=f"comma-separated subset of {','.join(STAGES)} (default: all but encoders)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="generated corpus sizes for `scale`")
    parser.add_argument("--articles", type=int, default=None, help="use only the first N SQuAD articles")
    parser.add_argument("--questions", type=int, default=200, help="questions for latency figures")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder for speed.json and speed.md (encoders.json/.md when only `encoders` runs)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (indexes, cache)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="embedding cache to use (default: an empty one, so `build` is cold; with a warm one "
                             "the `build` and `rebuild` figures do not mean what their table says)")
    args = parser.parse_args(argv)
    offline()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(sorted(unknown))}; choose from {', '.join(STAGES)}")
    from bench import stages as body
    from bench.report import table

    work = Path(tempfile.mkdtemp(prefix="qa-bench-"))
    run = Run(work, args.articles, args.questions, args.keep, args.cache)
    started = time.perf_counter()
    report: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "embedding_cache": "empty (cold)" if run.cold else f"warm: {args.cache}",
                              "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])}
    try:
        for name in STAGES:
            if name not in stages:
                continue
            if name == "scale":
                for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
                    _stage(f"scale_{size}", run, lambda r, size=size: body.scale(r, size))
            else:
                _stage(name, run, getattr(body, name))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            run.log(f"kept {work}")
    report["stages"] = run.results
    report["total_s"] = round(time.perf_counter() - started, 1)
    failed = [name for name, figures in run.results.items() if "error" in figures]
    text = table(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    name = {"encoders": "encoders", "cluster": "cluster", "recipes": "build-cost"}.get(stages[0], "speed") if len(stages) == 1 else "speed"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / f"{name}.md").write_text(text + "\n", encoding="utf-8")
    if failed:
        run.log(f"failed stages: {', '.join(failed)}")
    return 1 if failed else 0
