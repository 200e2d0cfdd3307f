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
    from qa.corpus import Corpus
    from qa.index import Index

ROOT = Path(__file__).resolve().parent.parent
# Above this an add mostly measures writing a whole new generation of vector files (4.6 GB at
# 1M: every generation is complete, so a crash never leaves a half index); skipped for time.
ADD_AT_SCALE_UP_TO = 200_000


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
    """A generated corpus of `size` sentences: build, disk, recall@10 vs exact, latency and RSS."""
    from qa.dense import DenseIndex, load_vectors
    from qa.index import DENSE_FILE, EMBEDDINGS_FILE, Index

    _ensure_squad(run)
    base = Index.load(run.squad_index)
    texts, matrices = base._state.corpus.texts(), [np.asarray(v) for v in base._state.vectors]
    start = time.perf_counter()
    corpus, generated = generated_corpus(size, texts, matrices, seed=size)
    generate_s = time.perf_counter() - start
    path = run.work / f"generated-{size}"
    index = _new_index(path)
    start = time.perf_counter()
    _commit_generated(index, corpus, generated)
    build_s = time.perf_counter() - start
    disk = disk_size(path)
    del index
    generated = generated[0]  # the sentence vectors: what the dense index searches

    questions = json.loads(_questions_file(run).read_text(encoding="utf-8"))
    queries = base.encoder.encode(questions)
    folder = path / json.loads((path / "manifest.json").read_text())["data"]
    stored = load_vectors(folder / EMBEDDINGS_FILE)
    dense = DenseIndex.load(folder / DENSE_FILE, vectors=stored)
    exact = _exact_top(generated, queries, 10)
    del generated
    recall = float(np.mean([len(set(dense.search(q, 10)[1]) & set(row)) / 10 for q, row in zip(queries, exact)]))
    bare = DenseIndex.load(folder / DENSE_FILE)  # no exact re-scoring: the quantised scores alone
    recall_bare = float(np.mean([len(set(bare.search(q, 10)[1]) & set(row)) / 10 for q, row in zip(queries, exact)]))
    served = run_json("bench.serve", str(path), str(_questions_file(run)))
    added = _add_one(path) if size <= ADD_AT_SCALE_UP_TO else None
    if not run.keep:
        shutil.rmtree(path, ignore_errors=True)
    return {
        "sentences": size, "articles": len(corpus.articles), "generate_s": round(generate_s, 1),
        "build_s": round(build_s, 1), "disk_mib": round(disk / 2**20, 1),
        "dense": dense.describe(), "recall_at_10": round(recall, 4), "recall_at_10_no_rescore": round(recall_bare, 4),
        **served, "add": added, "targets": {"recall_at_10": ">= 0.95", "p50_ratio": "<= 3", "peak_rss_mib": "<= 1536"},
    }


def _commit_generated(index: "Index", corpus: "Corpus", vectors: list[np.ndarray]) -> None:
    """Write a generated corpus and its vectors as one index generation: what a build does after encoding."""
    from collections import Counter

    from qa.dense import DenseIndex
    from qa.ingest.dedup import NearDuplicates
    from qa.bm25 import LexicalIndex
    from qa.cues import CueTable

    lexical = LexicalIndex.build(corpus.lexical_texts(), corpus.neighbours)
    cues = CueTable.empty().extend(corpus.texts())
    signatures = NearDuplicates(corpus.articles).signatures
    scripts = Counter({"LATIN": len(corpus.articles)})
    index._commit(corpus, vectors, {"created": "generated"}, DenseIndex.build(vectors[0]), lexical, cues, signatures, scripts)


def _add_one(path: Path) -> dict[str, Any]:
    """Time adding the seed article to the index at `path` (to show how an add grows with size)."""
    from qa.articles import find_article_files, read_article
    from qa.index import Index

    article = read_article(next(iter(find_article_files(ROOT / "seeds"))))
    index = Index.load(path)
    index.encoder.encode([article.title])
    start = time.perf_counter()
    index.add_articles([article])
    return {"add_s": round(time.perf_counter() - start, 2), "dense": index.manifest["dense"]["kind"]}


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
