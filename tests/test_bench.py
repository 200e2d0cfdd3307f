"""Smoke test of the speed benchmark on a tiny corpus: it runs end to end and reports sane figures.

No figure is compared with a time limit here (speed belongs in the benchmark, not in tests);
the test checks that every stage ran and that what it reports is consistent.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SQUAD_DEV

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SQUAD_DEV.is_file(), reason=f"SQuAD dev not found at {SQUAD_DEV}: clone next to shared/"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--articles", "2", "--questions", "8", "--sizes", "3000",
         "--stages", "build,rebuild,add,answer,segments,scale", "--out", str(out), "--keep"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    kept = re.search(r"kept (\S+)", done.stderr)
    if kept:  # the scratch folder, kept so that its embeddings can be shared below
        share_embeddings(Path(kept.group(1)) / "cache")
        shutil.rmtree(kept.group(1), ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| figure | measured |" in done.stdout  # the table is printed
    assert (out / "speed.md").read_text().startswith("Machine:")
    return json.loads((out / "speed.json").read_text())


def share_embeddings(bench_cache: Path) -> None:
    """Put the vectors the benchmark computed (its cold build of the first two SQuAD dev articles)
    into the session's embedding cache. The benchmark starts from an empty cache of its own, as
    it must; the tests after it that index the same articles (the proximity sweep here, the
    cluster, eval and segment tests) then read those vectors instead of computing them again."""
    embeddings = bench_cache / "embeddings"
    if embeddings.is_dir():
        shutil.copytree(embeddings, Path(os.environ["QA_CACHE_DIR"]) / "embeddings", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".*"))


def test_every_stage_reports(report: dict) -> None:
    assert set(report["stages"]) == {"build", "rebuild", "add", "answer", "segments", "scale_3000"}
    assert report["machine"]["cores"] >= 1 and "torch" in report["machine"]["versions"]


def test_build_figures_are_consistent(report: dict) -> None:
    build = report["stages"]["build"]
    assert build["articles"] == 2 and build["texts_encoded"] >= build["sentences"] > 50
    assert build["ratio"] == pytest.approx(build["encode_s"] / build["build_s"], abs=0.01)
    assert report["stages"]["rebuild"]["texts_encoded"] == 0  # the cache: nothing is encoded twice


def test_add_and_answer_figures(report: dict) -> None:
    add = report["stages"]["add"]
    assert add["article_sentences"] > 0 and add["index_sentences"] == report["stages"]["build"]["sentences"]
    assert add["texts_encoded"] >= add["article_sentences"]  # only the new article's texts
    answer = report["stages"]["answer"]
    assert answer["answer"]["count"] == answer["encode"]["count"] == 8
    assert answer["memory"]["peak_rss_mib"] >= answer["after_load"]["rss_mib"] > 100  # the model is in there


def test_scale_figures(report: dict) -> None:
    scale = report["stages"]["scale_3000"]
    assert scale["sentences"] == 3000 and set(scale["dense_kinds"]) == {"flat"}
    assert len(scale["segments"]) == 16 and sum(scale["segments"]) == 3000
    assert scale["recall_at_10"] == 1.0  # flat search is exact, and merging segments' candidates loses nothing
    assert scale["disk_mib"] > 3000 * 384 * 4 / 2**20  # at least the float32 vectors
    assert scale["answer"]["count"] == 8
    merge = scale["merge"]
    assert merge["after"]["identical"] == merge["after"]["questions"] == 8  # a merge changes no answer


def test_change_figures(report: dict) -> None:
    for change in (report["stages"]["segments"]["change"], report["stages"]["scale_3000"]["change"]):
        assert change["article_sentences"] == 16 and change["texts_encoded"] == 32  # titled: 2 texts a sentence
        # An add writes its own segment (16 sentences: vectors, postings...) and a commit point, no more.
        assert 16 * 384 * 4 * 3 < change["add_bytes"] < 1_000_000
        assert 0 < change["remove_bytes"] < 10_000  # a deletion file and a commit point
    assert report["stages"]["segments"]["segments"] == 2  # two articles, one add each (at most 16)


def test_the_recipes_stage_builds_with_every_recipe_against_the_plain_encode(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    done = subprocess.run([sys.executable, "-m", "bench", "--articles", "1", "--stages", "recipes", "--out", str(tmp_path)],
                          check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((tmp_path / "build-cost.json").read_text())["stages"]["recipes"]
    timings, load = figures["timings"], figures["per_sentence"]
    assert figures["default_recipe"] == "titled"
    for recipe, texts in (("full", 3), ("titled", 2), ("fast", 1)):
        assert timings[f"{recipe}: cold build (empty cache)"]["wall_s"] > 0
        assert abs(load[recipe]["texts_per_sentence"] - texts) < 0.1  # repeats and titles move it a little
    assert load["full"]["tokens"] > load["titled"]["tokens"] > load["fast"]["tokens"] >= load["plain"]["tokens"]
    assert "Cold build, recipe `titled` (default)" in (tmp_path / "build-cost.md").read_text()


def test_proximity_sweep_runs_on_a_slice(tmp_path: Path) -> None:
    """bench.proximity (the term-proximity lever in docs/quality.md) on two articles."""
    from bench.proximity import WEIGHTS, content_pairs, main, triples

    assert content_pairs("Domestic LLM developers train their models") == {
        ("domest", "llm"), ("llm", "develop"), ("develop", "train"), ("train", "model")}
    assert ("train", "their", "model") in triples("they train their models") and ("the", "of", "a") not in triples(
        "the of a")
    # The first two dev articles whole, with every 8th of their 1,046 questions: the sweep's code
    # paths are the same, ranking 131 questions instead of all of them.
    data = json.loads(gzip.decompress(SQUAD_DEV.read_bytes()))
    data["data"] = data["data"][:2]
    for paragraph in (p for article in data["data"] for p in article["paragraphs"]):
        paragraph["qas"] = paragraph["qas"][::8]
    sample = tmp_path / "squad-sample.json"
    sample.write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "proximity.json"
    assert main(["--data", str(sample), "--articles", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 3 * len(WEIGHTS)
    baseline = {round(r["mrr_full"], 9) for r in rows if r["weight"] == 0.0}
    assert len(baseline) == 1 and 0.3 < baseline.pop() <= 1.0  # weight 0 is the engine's own ranking
