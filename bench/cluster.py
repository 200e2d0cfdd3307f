"""`python -m bench.cluster`: build throughput on a Ray cluster and the router's overhead (docs/scale.md).

On a local cluster on 127.0.0.1 (a head and one worker node, one CPU each, started and stopped
here): the same SQuAD articles built with 1 and 2 embedding actors, each time with a cold
embedding cache; the fixed overhead of a build (one small article); a 3-shard Ray Serve
deployment answering the articles' questions against `Index.answer` in this process (p50/p95
per question); and the shard replicas' resident memory. Throughput for 8 and 32 workers is
projected from the per-worker figure: a projection, not a measurement.

    python -m bench.cluster [--articles 8] [--questions 200] [--shards 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad-dev-v1.1.json.gz"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _shard_memory(folder: Path) -> list[float]:
    """Resident MB of each shard replica of the cluster whose Ray folder is `folder` (this machine)."""
    import psutil

    sizes = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(str(folder) in part for part in process.info["cmdline"] or []):
                for child in process.children(recursive=True):
                    if "shard-" in " ".join(child.cmdline()):
                        sizes.append(child.memory_info().rss / 2**20)
        except psutil.Error:
            continue
    return sizes


def run(articles: int, questions: int, shards: int) -> dict[str, Any]:
    """Every figure of the module docstring, as a dict."""
    from qa import Index
    from qa.cluster.build import build_on_cluster
    from qa.cluster.runtime import LocalCluster
    from qa.evaluation.squad import load_squad

    squad = load_squad(SQUAD, articles)
    work = Path(tempfile.mkdtemp(prefix="qa-bench-", dir="/tmp"))
    source = work / "articles"
    source.mkdir()
    for article in squad.articles:
        (source / f"{article.file_name}.txt").write_text(article.text, encoding="utf-8", newline="")
    tiny = work / "tiny"
    tiny.mkdir()
    (tiny / "one.txt").write_text("One article\n\nA single sentence to index.\n", encoding="utf-8")
    figures: dict[str, Any] = {"articles": articles}
    cluster = LocalCluster(work / "ray", workers=1, cpus=1)
    started = time.perf_counter()
    cluster.start()
    figures["cluster_start_s"] = round(time.perf_counter() - started, 1)
    try:
        started = time.perf_counter()
        build_on_cluster(tiny, work / "tiny-index", cluster.address, workers=1)
        figures["fixed_overhead_s"] = round(time.perf_counter() - started, 1)
        for workers in (1, 2):
            shutil.rmtree(work / "ray" / "cache", ignore_errors=True)  # cold: every text encoded
            started = time.perf_counter()
            index = build_on_cluster(source, work / f"index-{workers}", cluster.address, workers=workers,
                                     segments=max(shards, 4))
            seconds = time.perf_counter() - started
            figures[f"build_{workers}_workers_s"] = round(seconds, 1)
            figures[f"sentences_per_s_{workers}_workers"] = round(len(index) / seconds, 1)
        figures["sentences"] = len(index)
        figures["recipe"] = index.recipe
        per_worker = len(index) / max(figures["build_1_workers_s"] - figures["fixed_overhead_s"], 1e-9)
        figures["per_worker_sentences_per_s"] = round(per_worker, 1)
        for workers in (8, 32):
            figures[f"projected_sentences_per_s_{workers}_workers"] = round(per_worker * workers, 0)

        from qa.cluster.serve import deploy, shutdown

        handle = deploy(cluster.address, index.path, shards)
        asked = [q.text for q in squad.questions][:: max(1, len(squad.questions) // questions)][:questions]
        local, routed = [], []
        for question in asked:
            started = time.perf_counter()
            expected = index.answer(question)
            local.append(time.perf_counter() - started)
            started = time.perf_counter()
            got = handle.answer.remote(question).result()
            routed.append(time.perf_counter() - started)
            assert got.citations == expected.citations and got.related == expected.related, question
        figures["questions"] = len(asked)
        figures["local_answer_p50_ms"] = round(1000 * statistics.median(local), 1)
        figures["serve_answer_p50_ms"] = round(1000 * statistics.median(routed), 1)
        figures["serve_answer_p95_ms"] = round(1000 * _percentile(routed, 0.95), 1)
        overhead = [r - l for r, l in zip(routed, local)]
        figures["router_overhead_p50_ms"] = round(1000 * statistics.median(overhead), 1)
        figures["router_overhead_p95_ms"] = round(1000 * _percentile(overhead, 0.95), 1)
        figures["shard_replica_rss_mb"] = [round(size) for size in _shard_memory(work / "ray")]
        figures["index_mb"] = round(sum(f.stat().st_size for f in index.path.rglob("*") if f.is_file()) / 2**20, 1)
        shutdown()
    finally:
        import ray

        ray.shutdown()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def markdown(f: dict[str, Any]) -> list[str]:
    """The figures of `run` as a Markdown table (docs/scale.md quotes it)."""
    rss = f.get("shard_replica_rss_mb") or [0]
    rows = [
        ("local cluster start (head + 1 worker node)", f"{f['cluster_start_s']} s"),
        ("fixed overhead of a build (one 1-sentence article)", f"{f['fixed_overhead_s']} s"),
        (f"build of {f['articles']} SQuAD articles ({f['sentences']:,} sentences), 1 worker",
         f"{f['build_1_workers_s']} s, {f['sentences_per_s_1_workers']} sentences/s"),
        ("the same, 2 workers (same 2 cores)", f"{f['build_2_workers_s']} s, {f['sentences_per_s_2_workers']} sentences/s"),
        ("per worker, over the fixed overhead", f"{f['per_worker_sentences_per_s']} sentences/s (recipe {f.get('recipe', 'full')})"),
        ("projected, 8 / 32 workers (projection)",
         f"{f['projected_sentences_per_s_8_workers']:.0f} / {f['projected_sentences_per_s_32_workers']:.0f} sentences/s"),
        (f"`answer()` in process, p50 ({f['questions']} questions)", f"{f['local_answer_p50_ms']} ms"),
        ("Ray Serve router over 3 shards, p50 / p95", f"{f['serve_answer_p50_ms']} / {f['serve_answer_p95_ms']} ms"),
        ("router overhead over `answer()`, p50 / p95", f"{f['router_overhead_p50_ms']} / {f['router_overhead_p95_ms']} ms"),
        ("shard replica resident memory", f"{min(rss)}-{max(rss)} MB each ({f['index_mb']} MB index)"),
    ]
    return ["| cluster figure | measured |", "|---|---|", *[f"| {name} | {value} |" for name, value in rows]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=8)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--shards", type=int, default=3)
    args = parser.parse_args()
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(key, value)
    figures = run(args.articles, args.questions, args.shards)
    print(json.dumps(figures, indent=2))
    print("\n".join(markdown(figures)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
