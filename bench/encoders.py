"""Faster encoders, measured: int8 dynamic quantisation in PyTorch and ONNX Runtime, vs float32.

Adoption rule (issue 5): a variant replaces the float32 encoder only if it encodes at least
1.5x as many texts per second and its SQuAD-dev MRR (ReQA protocol: every sentence of the dev
set is a candidate, one ranking per unique question) is at most 0.01 lower.

Throughput is timed on the same SQuAD sentences for every variant, in alternating chunks, so a
change in machine load hits all variants alike.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from bench.corpora import squad_articles, squad_gold

if TYPE_CHECKING:
    from bench.speed import Run

EncodeFn = Callable[[Sequence[str]], np.ndarray]
SPEED_TEXTS = 2000
CHUNKS = 4
MIN_SPEEDUP, MAX_MRR_DROP = 1.5, 0.01


def _float32(model: Any, batch_size: int) -> EncodeFn:
    def encode(texts: Sequence[str]) -> np.ndarray:
        return model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)

    return encode


def _int8_dynamic(model: Any, batch_size: int) -> EncodeFn:
    """Linear layers with int8 weights, activations quantised on the fly (torch.ao quantize_dynamic)."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    quantised = quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    return _float32(quantised, batch_size)


def _onnxruntime(model: Any, batch_size: int, folder: Path, int8: bool = False) -> EncodeFn:
    """The transformer exported to ONNX, run by ONNX Runtime; mean pooling + L2 norm as the model does.

    With `int8`, the exported graph's weights are quantised by ONNX Runtime's own dynamic quantiser.
    """
    import onnxruntime
    import torch

    from qa.onnx_encoder import export_onnx

    tokenizer = model.tokenizer
    file = folder / "encoder.onnx"
    dimension = (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()
    export_onnx(model, file)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(file), str(folder / "encoder-int8.onnx"), weight_type=QuantType.QInt8)
        file = folder / "encoder-int8.onnx"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def encode(texts: Sequence[str]) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")  # like sentence-transformers: less padding
        out = np.empty((len(texts), dimension), dtype=np.float32)
        for first in range(0, len(texts), batch_size):
            rows = order[first : first + batch_size]
            batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                              max_length=model.max_seq_length, return_tensors="np")
            hidden = session.run(None, {n: batch[n].astype(np.int64) for n in names})[0]
            mask = batch["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out

    return encode


def _mrr(sentences: np.ndarray, questions: np.ndarray, gold: list[set[int]]) -> float:
    """Mean reciprocal rank of the first gold sentence, over all candidates (ties: lower id first)."""
    total = 0.0
    for first in range(0, len(questions), 512):
        scores = questions[first : first + 512] @ sentences.T
        for row, wanted in zip(scores, gold[first : first + 512]):
            best = max(row[list(wanted)])
            total += 1.0 / (1 + int((row > best).sum()))
    return total / len(questions)


def compare(run: "Run") -> dict[str, Any]:
    """Throughput and SQuAD-dev MRR of each encoder variant, and whether the rule adopts it.

    The corpus is every sentence of the SQuAD dev articles as qa segments them, encoded alone
    (dense-only ReQA, the protocol of ../shared/eval/README.md); no index is built.
    """
    from qa.corpus import Corpus
    from qa.encoder import DEFAULT_MODEL, Encoder, _load_model

    items = squad_articles(run.articles)
    corpus = Corpus.from_articles([item.article for item in items])
    texts = corpus.texts()
    questions, gold = squad_gold(items, corpus)
    model, batch_size = _load_model(DEFAULT_MODEL), Encoder().batch_size
    variants: dict[str, Any] = {"float32": _float32(model, batch_size), "int8-dynamic": _int8_dynamic(model, batch_size)}
    for name, int8 in (("onnxruntime", False), ("onnxruntime-int8", True)):
        try:
            variants[name] = _onnxruntime(model, batch_size, run.work, int8=int8)
        except Exception as exc:  # not installed, or the export failed: say which in the report
            variants[name] = f"{type(exc).__name__}: {str(exc)[:200]}"

    runnable = {name: fn for name, fn in variants.items() if callable(fn)}
    sample = texts[:: max(1, len(texts) // SPEED_TEXTS)][:SPEED_TEXTS]
    for fn in runnable.values():
        fn(sample[:64])  # warm-up: first calls allocate
    seconds = dict.fromkeys(runnable, 0.0)
    for chunk in np.array_split(np.arange(len(sample)), CHUNKS):
        for name, fn in runnable.items():
            start = time.perf_counter()
            fn([sample[i] for i in chunk])
            seconds[name] += time.perf_counter() - start

    out: dict[str, Any] = {"speed_texts": len(sample), "mrr_questions": len(questions),
                           "mrr_sentences": len(texts), "variants": {}}
    base_mrr = None
    for name, fn in variants.items():
        if not callable(fn):
            out["variants"][name] = {"error": fn}
            continue
        mrr = _mrr(fn(texts), fn(questions), gold)
        base_mrr = mrr if base_mrr is None else base_mrr
        speedup = seconds["float32"] / seconds[name]
        out["variants"][name] = {
            "texts_per_s": round(len(sample) / seconds[name], 1), "speedup": round(speedup, 2),
            "mrr": round(mrr, 4), "mrr_change": round(mrr - base_mrr, 4),
            "adopt": name != "float32" and speedup >= MIN_SPEEDUP and base_mrr - mrr <= MAX_MRR_DROP,
        }
    out["rule"] = f"adopt if speed-up >= {MIN_SPEEDUP}x and MRR drop <= {MAX_MRR_DROP}"
    return out
