"""What a build costs per indexed sentence, against one plain encode of each sentence (issue 14).

Run from /work/main:  nice -n 5 .venv/bin/python -m bench.build_cost [--articles 6] [--rounds 2]
(`python -m bench --stages recipes` runs the same on all of SQuAD dev, one round.)

On the same SQuAD dev articles (the first N of the file) and in alternating rounds, so machine
load weighs on every variant alike:

- floor: sentence-transformers `encode` of the sentences alone (fp32, batch 64), the issue's
  unit; and the engine's own encoder (ONNX Runtime, `qa.encoder.Encoder`) on the same texts;
- a real cold build with each engine recipe (qa/slots.py: full, titled, fast): `add_articles`
  into an empty index with an empty embedding cache (the exported ONNX model linked in: export
  is a once-per-machine cost, as in the issue's measurement);
- an unchanged rebuild: the same build again, every vector from the cache;
- ONNX Runtime session settings (threads, batch size, length-sorted batches) on the sentences.

Texts and word pieces per sentence are counted with the model's tokenizer; "padded" counts
the tokens the model actually runs (batches of 64, padded to their longest, as the engine sorts).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from bench.corpora import squad_articles
from qa.corpus import Corpus
from qa.encoder import DEFAULT_MODEL, Encoder, _pipeline, model_fingerprint, resolve_model

RESULTS = Path(__file__).resolve().parent / "results" / "build-cost-articles.json"


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _timed(work: Callable[[], Any]) -> tuple[float, float]:
    """(wall, CPU) seconds of `work`: CPU barely moves with other jobs, wall is what a user waits."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def _tokenizer() -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_pipeline(DEFAULT_MODEL).transformer / "tokenizer.json"))
    tokenizer.enable_truncation(_pipeline(DEFAULT_MODEL).max_seq_length)
    tokenizer.no_padding()
    return tokenizer


def token_load(texts: Sequence[str], batch: int = 64) -> dict[str, int]:
    """Word pieces (with [CLS]/[SEP], truncated like the model) and padded tokens run in batches
    ordered by text length, as `qa.onnx_encoder.OnnxEncoder.encode` orders them."""
    lengths = np.array([len(e.ids) for e in _tokenizer().encode_batch([t.lower() for t in texts])])
    order = np.argsort([-len(t) for t in texts], kind="stable")
    padded = sum(int(lengths[order[i: i + batch]].max()) * len(order[i: i + batch]) for i in range(0, len(texts), batch))
    return {"texts": len(texts), "tokens": int(lengths.sum()), "padded_tokens": padded}


def recipe_texts(corpus: Corpus) -> dict[str, list[str]]:
    """The unique texts each recipe encodes (the embedding cache encodes a repeated text once)."""
    from qa.config import RECIPES
    from qa.slots import texts_to_encode

    return {"plain": corpus.texts(), **{recipe: list(dict.fromkeys(texts_to_encode(corpus, recipe))) for recipe in RECIPES}}


def _fresh_cache(root: Path) -> Path:
    """An empty embedding cache that already holds the exported ONNX model (linked, not copied)."""
    from qa.cache import default_cache_dir

    fingerprint = model_fingerprint(DEFAULT_MODEL)
    (root / "onnx" / fingerprint).mkdir(parents=True)
    (root / "onnx" / fingerprint / "model.onnx").symlink_to(default_cache_dir() / "onnx" / fingerprint / "model.onnx")
    return root


def _build(articles: list, folder: Path, recipe: str) -> None:
    from qa.index import Index

    index = Index.empty(folder, Encoder(), recipe=recipe)
    report = index.add_articles(articles)
    assert report.ok and len(report.added) == len(articles), report


def _warm(encoder: Encoder) -> None:
    encoder.encode(["warm up"])  # both ONNX Runtime sessions exist before any clock starts
    encoder.encode([f"warm up {i}" for i in range(16)])


FLOOR = "floor: sentence-transformers encode of the sentences (batch 64)"


def measure_recipes(articles: list, rounds: int, scratch: Path) -> dict[str, Any]:
    """Median wall/CPU seconds of every variant over `rounds` alternating rounds."""
    from sentence_transformers import SentenceTransformer

    from qa.config import DEFAULT_RECIPE, RECIPES

    corpus = Corpus.from_articles(articles)
    texts = recipe_texts(corpus)
    model = SentenceTransformer(resolve_model(DEFAULT_MODEL), device="cpu")
    model.encode(["warm up"] * 16, batch_size=64)
    encoder = Encoder()
    _warm(encoder)
    default_cache = os.environ.get("QA_CACHE_DIR")
    runs: dict[str, list[tuple[float, float]]] = {}
    for number in range(rounds):
        runs.setdefault(FLOOR, []).append(_timed(
            lambda: model.encode(texts["plain"], batch_size=64, normalize_embeddings=True, convert_to_numpy=True)))
        runs.setdefault("floor: engine encoder (ONNX Runtime) on the sentences", []).append(
            _timed(lambda: encoder.encode(texts["plain"])))
        for recipe in RECIPES:
            cache = _fresh_cache(scratch / f"cache-{recipe}-{number}")
            os.environ["QA_CACHE_DIR"] = str(cache)  # the encoder and the cache both read it
            try:
                _warm(Encoder())
                runs.setdefault(f"{recipe}: cold build (empty cache)", []).append(
                    _timed(lambda: _build(articles, scratch / f"cold-{recipe}-{number}", recipe)))
                if recipe == DEFAULT_RECIPE:
                    runs.setdefault(f"{recipe}: unchanged rebuild (every vector cached)", []).append(
                        _timed(lambda: _build(articles, scratch / f"warm-{recipe}-{number}", recipe)))
            finally:
                if default_cache is None:
                    os.environ.pop("QA_CACHE_DIR", None)
                else:
                    os.environ["QA_CACHE_DIR"] = default_cache
        _log(f"round {number + 1}: " + ", ".join(f"{k.split(' (')[0]} {v[-1][0]:.1f}s" for k, v in runs.items()))
    median = {name: {"wall_s": round(statistics.median(w for w, _ in values), 2),
                     "cpu_s": round(statistics.median(c for _, c in values), 2),
                     "wall_s_each": [round(w, 2) for w, _ in values]} for name, values in runs.items()}
    floor = median[FLOOR]
    for values in median.values():
        values["ratio_to_floor"] = round(values["wall_s"] / floor["wall_s"], 2)
        values["cpu_ratio_to_floor"] = round(values["cpu_s"] / floor["cpu_s"], 2)
    sentences = len(corpus)
    return {"articles": len(articles), "sentences": sentences, "rounds": rounds, "default_recipe": DEFAULT_RECIPE,
            "timings": median,
            "per_sentence": {name: {**(load := token_load(texts[name])),
                                    "texts_per_sentence": round(load["texts"] / sentences, 3),
                                    "tokens_per_sentence": round(load["tokens"] / sentences, 1),
                                    "padded_tokens_per_sentence": round(load["padded_tokens"] / sentences, 1)}
                             for name in ("plain", *RECIPES)}}


def measure_onnx_settings(texts: Sequence[str], rounds: int) -> list[dict[str, Any]]:
    """Texts/s of ONNX Runtime sessions with other threads / batch sizes / orders, on the same texts."""
    from qa.cache import default_cache_dir
    from qa.onnx_encoder import OnnxEncoder, import_onnxruntime

    ort = import_onnxruntime()
    file = default_cache_dir() / "onnx" / model_fingerprint(DEFAULT_MODEL) / "model.onnx"
    cores = len(os.sched_getaffinity(0))
    variants = [(threads, batch, True) for threads in sorted({1, cores}) for batch in (16, 32, 64, 128)]
    variants.append((cores, 64, False))
    encoders: dict[int, OnnxEncoder] = {}
    for threads in sorted({1, cores}):
        encoder = OnnxEncoder(_pipeline(DEFAULT_MODEL), file)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3
        encoder._large = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        encoders[threads] = encoder
    shuffled = list(np.random.default_rng(0).permutation(np.array(texts, dtype=object)))
    seconds: dict[tuple[int, int, bool], list[float]] = {}
    for _ in range(rounds):
        for threads, batch, ordered in variants:
            encoder = encoders[threads]
            if ordered:
                work = lambda: encoder.encode(shuffled, batch_size=batch)  # noqa: E731  (sorts by length)
            else:  # one call per batch of the shuffled texts: each batch is sorted only within itself
                work = lambda: [encoder.encode(shuffled[i: i + batch], batch_size=batch) for i in range(0, len(shuffled), batch)]  # noqa: E731
            seconds.setdefault((threads, batch, ordered), []).append(_timed(work)[0])
    return [{"intra_op_threads": t, "batch": b, "length_sorted": o,
             "texts_per_s": round(len(texts) / statistics.median(s), 1), "wall_s_each": [round(x, 2) for x in s]}
            for (t, b, o), s in seconds.items()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=6, help="the first N SQuAD dev articles (default 6, as in the issue)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--onnx-texts", type=int, default=800, help="sentences for the ONNX Runtime settings (0: skip)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.time()
    articles = [item.article for item in squad_articles(args.articles)]
    load = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="build-cost-") as tmp:
        result = measure_recipes(articles, args.rounds, Path(tmp))
    if args.onnx_texts:
        sentences = Corpus.from_articles(articles).texts()[: args.onnx_texts]
        result["onnx_settings"] = measure_onnx_settings(sentences, args.rounds)
    result.update({"command": f"nice -n 5 .venv/bin/python -m bench.build_cost --articles {args.articles} --rounds {args.rounds}",
                   "load_average_at_start": load, "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                   "cores": len(os.sched_getaffinity(0)), "elapsed_seconds": round(time.time() - started)})
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
