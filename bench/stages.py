"""The benchmark stages; each takes the shared `Run` and returns its figures as a dict."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.corpora import generated_corpus, squad_articles, squad_questions
from bench.measure import OFFLINE_ENV, disk_size, run_json

if TYPE_CHECKING:
    from bench.speed import Run
    from qa.index import Index

ROOT = Path(__file__).resolve().parent.parent
# A merge of the 16 segments of a generated corpus is measured up to this size (at 1M it
# rewrites 4.6 GB of vectors: minutes, and not what a user's add waits for).
MERGE_AT_SCALE_UP_TO = 200_000


def _recording_encoder() -> Any:
    """The real encoder, also noting every text it encodes and the seconds spent in the model's encode."""
    from qa.encoder import DEFAULT_MODEL, Encoder

    class Recording(Encoder):
        def __init__(self) -> None:
            super().__init__(DEFAULT_MODEL)
            self.texts: list[str] = []
            self.seconds = 0.0

        def encode(self, texts: Any, progress: bool = False) -> np.ndarray:
            self.texts.extend(texts)
            start = time.perf_counter()
            try:
                return super().encode(texts, progress=progress)
            finally:
                self.seconds += time.perf_counter() - start

    return Recording()


def _new_index(path: Path) -> "Index":
    """An empty Index at `path`, ready for `add_articles` (what `Index.build` starts from)."""
    from qa.index import Index

    return Index.empty(path, _recording_encoder())


def _squad_build(run: "Run", path: Path) -> tuple["Index", float]:
    """Parse the SQuAD articles and add them to a fresh index, as a user's build would."""
    start = time.perf_counter()
    items = squad_articles(run.articles)
    index = _new_index(path)
    report = index.add_articles([item.article for item in items])
    if not report.ok or len(report.added) != len(items):
        raise RuntimeError(f"SQuAD build went wrong: {report}")
    return index, time.perf_counter() - start


def _warm_encoder() -> None:
    """Load the runtime (and export the ONNX model once) outside the clocks: load is not throughput.

    A question-sized and a build-sized batch, so both of the ONNX Runtime sessions exist.
    """
    from qa.encoder import DEFAULT_MODEL, Encoder

    encoder = Encoder(DEFAULT_MODEL)
    encoder.encode(["warm up"])
    encoder.encode([f"warm up {i}" for i in range(16)])


def _ensure_squad(run: "Run") -> None:
    if not (run.squad_index / "manifest.json").is_file():
        _warm_encoder()
        _squad_build(run, run.squad_index)


def build(run: "Run") -> dict[str, Any]:
    """Cold build (empty cache) vs the model's own `encode` on exactly the texts the build encoded.

    The floor is the wall time spent inside the model's `encode` during the build: the same
    calls, on the same unique texts, as a standalone encode, measured at the same moment, so machine load weighs
    on both sides alike, and without encoding everything twice (the build encodes ~3 texts per
    sentence, so a second pass would take minutes). The floor includes tokenising and pooling:
    it is everything `Encoder.encode` does, whichever runtime (ONNX Runtime by default) runs it.
    """
    import faiss  # noqa: F401  (imported before the clocks: library import is not throughput)
    import scipy.sparse  # noqa: F401

    _warm_encoder()
    index, build_s = _squad_build(run, run.squad_index)
    texts, encode_s = index.encoder.texts, index.encoder.seconds
    sentences = len(index)
    return {
        "articles": len(index.articles()), "sentences": sentences, "texts_encoded": len(texts),
        "texts_per_sentence": round(len(texts) / sentences, 2),
        "build_s": round(build_s, 2), "encode_s": round(encode_s, 2), "overhead_s": round(build_s - encode_s, 2),
        "build_sentences_per_s": round(sentences / build_s, 1), "encode_texts_per_s": round(len(texts) / encode_s, 1),
        "ratio": round(encode_s / build_s, 3), "target": ">= 0.90", "disk_mib": round(disk_size(run.squad_index) / 2**20, 1),
    }


def recipes(run: "Run") -> dict[str, Any]:
    """Cold builds of SQuAD dev with every build recipe (qa/slots.py), each with an empty cache,
    beside one plain sentence-transformers encode of the same sentences (bench/build_cost.py)."""
    import tempfile

    from bench.build_cost import measure_recipes

    _warm_encoder()  # the exported model every fresh cache links to
    articles = [item.article for item in squad_articles(run.articles)]
    with tempfile.TemporaryDirectory(prefix="recipes-", dir=run.work) as scratch:
        return measure_recipes(articles, rounds=1, scratch=Path(scratch))


def rebuild(run: "Run") -> dict[str, Any]:
    """The same build into a new folder: every vector comes from the cache."""
    _ensure_squad(run)
    index, rebuild_s = _squad_build(run, run.rebuilt_index)
    cold = run.results.get("build", {}).get("build_s")
    out: dict[str, Any] = {"rebuild_s": round(rebuild_s, 2), "texts_encoded": len(index.encoder.texts),
                           "target": ">= 20x faster than the cold build"}
    if cold:
        out["speedup"] = round(cold / rebuild_s, 1)
    return out


def add(run: "Run") -> dict[str, Any]:
    """One new article (the seed article, not in SQuAD) into the 10k index, vs encoding it alone."""
    from qa.articles import find_article_files, read_article
    from qa.index import Index

    _ensure_squad(run)
    article = read_article(next(iter(find_article_files(ROOT / "seeds"))))
    start = time.perf_counter()
    index = Index.load(run.squad_index)
    load_s = time.perf_counter() - start
    index.encoder = _recording_encoder()  # the same model, noting what the add encodes
    index.encoder.encode(["warm up"])
    index.encoder.texts.clear()
    index.encoder.seconds = 0.0
    start = time.perf_counter()
    report = index.add_articles([article])
    add_s = time.perf_counter() - start
    if report.added != [article.id]:
        raise RuntimeError(f"the add went wrong: {report}")
    encode_s = index.encoder.seconds  # inside the model's encode, as for the build
    return {"index_sentences": len(index) - len(article.sentences()), "article_sentences": len(article.sentences()),
            "texts_encoded": len(index.encoder.texts), "load_s": round(load_s, 2), "add_s": round(add_s, 3),
            "encode_s": round(encode_s, 3), "overhead_s": round(add_s - encode_s, 3), "target": "overhead < 1 s"}


def _questions_file(run: "Run") -> Path:
    file = run.work / "questions.json"
    if not file.is_file():
        file.write_text(json.dumps(squad_questions(run.questions)), encoding="utf-8")
    return file


def answer(run: "Run") -> dict[str, Any]:
    """answer() latency at 10k sentences in a fresh serving process, vs encoding the question."""
    _ensure_squad(run)
    path = run.rebuilt_index if (run.rebuilt_index / "manifest.json").is_file() else run.squad_index
    out = run_json("bench.serve", str(path), str(_questions_file(run)))
    out["target"] = "p50 ratio <= 1.5"
    return out


def scale(run: "Run", size: int) -> dict[str, Any]:
    """A generated corpus of `size` sentences in 16 segments (`bench.segments.layout`): build,
    disk, recall@10 vs exact, latency and RSS; the bytes and seconds of an add and a remove; at
    up to `MERGE_AT_SCALE_UP_TO` sentences also a merge of the 16 into one, answers before and after."""
    from bench.segments import answers, change_costs, commit_as_segments, compare, layout
    from qa.index import Index

    _ensure_squad(run)
    base = Index.load(run.squad_index)
    texts, matrices = base._state.corpus.texts(), [np.asarray(v) for v in base._state.vectors]
    start = time.perf_counter()
    corpus, generated = generated_corpus(size, texts, matrices, seed=size)
    generate_s = time.perf_counter() - start
    path = run.work / f"generated-{size}"
    index = _new_index(path)
    start = time.perf_counter()
    commit_as_segments(index, corpus, generated, layout(size))
    build_s = time.perf_counter() - start
    disk = disk_size(path)
    del index
    generated = generated[0]  # the sentence vectors: what the dense index searches

    questions = json.loads(_questions_file(run).read_text(encoding="utf-8"))
    queries = base.encoder.encode(questions)
    exact = _exact_top(generated, queries, 10)
    del generated
    loaded = Index.load(path)
    kinds = [s["dense"] for s in loaded.manifest["segments"]]
    recall = _recall(loaded, queries, exact)
    served = run_json("bench.serve", str(path), str(_questions_file(run)))
    out: dict[str, Any] = {
        "sentences": size, "articles": len(corpus.articles), "generate_s": round(generate_s, 1),
        "build_s": round(build_s, 1), "disk_mib": round(disk / 2**20, 1),
        "segments": [s["sentences"] for s in loaded.manifest["segments"]], "dense_kinds": kinds,
        "recall_at_10": round(recall, 4), **served, "change": change_costs(loaded),
        "targets": {"recall_at_10": ">= 0.95", "p50_ratio": "<= 3", "peak_rss_mib": "<= 1536"},
    }
    if size <= MERGE_AT_SCALE_UP_TO:
        before = answers(loaded, questions)
        start = time.perf_counter()
        loaded.optimize()
        out["merge"] = {"segments_merged": len(kinds), "merge_s": round(time.perf_counter() - start, 1),
                        "after": compare(answers(loaded, questions), before),
                        "dense_after": loaded.manifest["segments"][0]["dense"],
                        "recall_at_10_after": round(_recall(loaded, queries, exact), 4)}
    if not run.keep:
        shutil.rmtree(path, ignore_errors=True)
    return out


def _recall(index: "Index", queries: np.ndarray, exact: np.ndarray) -> float:
    """Dense recall@10 of the index's segments, merged as a question's candidates are."""
    state = index._state
    found = [state.dense_top(q, 10, state.similarities(q)) for q in queries]
    return float(np.mean([len(set(f.tolist()) & set(row.tolist())) / 10 for f, row in zip(found, exact)]))


def segments(run: "Run") -> dict[str, Any]:
    """The SQuAD index as 16 segments (3 articles an add, no merges): answer() latency against the
    question encode, and the bytes and seconds of adding and removing one article at 10k."""
    from bench.segments import change_costs

    # With a warm embedding cache the adds below encode nothing: the model would load inside the
    # add's encode floor (`change_costs`) and read 0.50 s for 32 texts.
    _warm_encoder()
    items = squad_articles(run.articles)
    path = run.work / "squad-16-segments"
    index = _new_index(path)
    index.merge_policy = None
    per_add = -(-len(items) // 16)
    for first in range(0, len(items), per_add):
        index.add_articles([item.article for item in items[first : first + per_add]])
    out = {"segments": len(index.manifest["segments"]), "sentences": len(index)}
    out.update(run_json("bench.serve", str(path), str(_questions_file(run))))
    out["change"] = change_costs(index)
    out["target"] = "p50 ratio <= 1.5"
    return out


def _exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids per query (ties by lower id), in blocks so memory stays bounded."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    for first in range(0, len(vectors), 200_000):
        scores = queries @ vectors[first : first + 200_000].T
        ids = np.broadcast_to(np.arange(first, first + scores.shape[1]), scores.shape)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_ids = np.concatenate([best_ids, ids], axis=1)
        keep = np.lexsort((best_ids, -best_scores), axis=1)[:, :k]
        best_scores = np.take_along_axis(best_scores, keep, axis=1)
        best_ids = np.take_along_axis(best_ids, keep, axis=1)
    return best_ids


def coldstart(run: "Run") -> dict[str, Any]:
    """Seconds from `python app.py` (on the 10k index) to the first answer served over HTTP."""
    from gradio_client import Client  # imported before the clock starts: it is the user's browser

    _ensure_squad(run)
    path = run.rebuilt_index if (run.rebuilt_index / "manifest.json").is_file() else run.squad_index
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    question = squad_questions(1, seed=1)[0]
    env = {**os.environ, **OFFLINE_ENV}
    # True after a build in the same cache (the usual case); False means the one-off export is timed too.
    exported = any((Path(env.get("QA_CACHE_DIR", "")) / "onnx").glob("*/model.onnx")) if env.get("QA_CACHE_DIR") else None
    start = time.perf_counter()
    app = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--index", str(path)], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            if app.poll() is not None:
                raise RuntimeError(f"app.py exited ({app.returncode}): {app.stderr.read()[-2000:] if app.stderr else ''}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        up_s = time.perf_counter() - start
        client = Client(url, verbose=False)
        reply = client.predict(question, api_name="/chat")
        first_s = time.perf_counter() - start
    finally:
        app.terminate()
        try:
            app.wait(10)
        except subprocess.TimeoutExpired:
            app.kill()
    return {"listening_s": round(up_s, 2), "first_answer_s": round(first_s, 2), "question": question,
            "answered": bool(reply), "onnx_model_already_exported": exported, "target": "<= 10 s"}


def encoders(run: "Run") -> dict[str, Any]:
    """The float32 encoder against int8 dynamic quantisation (and ONNX Runtime if installed)."""
    from bench.encoders import compare

    return compare(run)


def cluster(run: "Run") -> dict[str, Any]:
    """Ray build throughput (1 and 2 workers), fixed overhead, router overhead: bench/cluster.py."""
    from bench.cluster import run as measure

    return measure(run.articles or 8, run.questions, 3)
