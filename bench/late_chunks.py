"""Slot vectors from one encoder pass over each titled paragraph ("late chunking").

Instead of encoding "title: sentence" and the sentence between its neighbours (two extra texts
per sentence), encode "Title: paragraph" once (windows of whole sentences when a paragraph
exceeds the model's 256 word pieces) and mean-pool the token states of each sentence's span:
every sentence then has vectors that saw its title and its paragraph, for about one
sentence-length of tokens more per sentence (Günther et al. 2024, "Late Chunking").

Per sentence three vectors are pooled from the same pass:
    span     the sentence's own tokens
    titled   the title's tokens and the sentence's (as "title: sentence" is pooled)
    context  the tokens from the previous sentence's start to the next one's end

Bench-only: the engine's encoder returns pooled vectors, not token states, so this opens its
own session on the engine's exported ONNX file (same weights, same tokenizer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qa.corpus import ARTICLE, END, START
from qa.encoder import DEFAULT_MODEL, _pipeline, model_fingerprint

BATCH = 16
KINDS = ("span", "titled", "context")


def _session() -> Any:
    from qa.cache import default_cache_dir
    from qa.onnx_encoder import import_onnxruntime

    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    file = default_cache_dir() / "onnx" / model_fingerprint(DEFAULT_MODEL) / "model.onnx"
    return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


def windows(corpus: Any, tokenizer: Any, limit: int) -> list[tuple[str, int, list[int], int]]:
    """(text, prefix length, sentence ids, char offset of the window in its article) per window:
    "Title: " then consecutive sentences of one paragraph, up to `limit` word pieces."""
    table = corpus.table
    key = table[:, ARTICLE] * (1 << 32) + table[:, 3]
    out = []
    first = 0
    while first < len(table):
        last = first
        while last + 1 < len(table) and key[last + 1] == key[first]:
            last += 1
        article = corpus.articles[int(table[first, ARTICLE])]
        prefix = f"{article.title}: "
        budget = limit - len(tokenizer.encode(prefix, add_special_tokens=False).ids) - 2
        members: list[int] = []
        used = 0
        for sid in range(first, last + 1):
            size = len(tokenizer.encode(article.text[table[sid, START]: table[sid, END]], add_special_tokens=False).ids)
            if members and used + size > budget:
                out.append(_window(article, prefix, members, table))
                members, used = [], 0
            members.append(sid)
            used += size
        out.append(_window(article, prefix, members, table))
        first = last + 1
    return out


def _window(article: Any, prefix: str, members: list[int], table: np.ndarray) -> tuple[str, int, list[int], int]:
    start, end = int(table[members[0], START]), int(table[members[-1], END])
    return prefix + article.text[start:end], len(prefix), members, start


def late_vectors(corpus: Any, cache: Path | None = None) -> dict[str, np.ndarray]:
    """{"span", "titled", "context"} -> (n, d) unit vectors, pooled from one pass per window."""
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        if len(stored["span"]) == len(corpus):
            return {kind: stored[kind] for kind in KINDS}
    from tokenizers import Tokenizer

    pipeline = _pipeline(DEFAULT_MODEL)
    tokenizer = Tokenizer.from_file(str(pipeline.transformer / "tokenizer.json"))
    tokenizer.enable_truncation(pipeline.max_seq_length)
    pad = tokenizer.padding or {"pad_id": 0, "pad_token": "[PAD]"}
    tokenizer.enable_padding(pad_id=pad["pad_id"], pad_token=pad["pad_token"])
    bare = Tokenizer.from_file(str(pipeline.transformer / "tokenizer.json"))
    bare.no_truncation()
    session = _session()
    names = [i.name for i in session.get_inputs()]
    found = windows(corpus, bare, pipeline.max_seq_length)
    table = corpus.table
    previous, following = corpus.neighbours
    out = {kind: np.zeros((len(corpus), pipeline.dimension), dtype=np.float32) for kind in KINDS}
    order = np.argsort([-len(w[0]) for w in found], kind="stable")
    for first in range(0, len(found), BATCH):
        batch = [found[i] for i in order[first: first + BATCH]]
        encodings = tokenizer.encode_batch([w[0].lower() if pipeline.lowercase else w[0] for w in batch])
        feeds = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                 "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                 "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
        hidden = session.run(None, {n: feeds[n] for n in names})[0]
        for row, ((text, prefix, members, origin), encoding) in enumerate(zip(batch, encodings)):
            offsets = np.array(encoding.offsets)
            real = (np.array(encoding.special_tokens_mask) == 0) & (np.array(encoding.attention_mask) == 1)
            in_title = real & (offsets[:, 1] <= prefix)

            def pooled(start: int, end: int, extra: np.ndarray | None = None) -> np.ndarray | None:
                lo, hi = prefix + start - origin, prefix + end - origin
                mask = real & (offsets[:, 0] >= lo) & (offsets[:, 1] <= hi)
                if extra is not None:
                    mask = mask | extra
                return hidden[row][mask].mean(axis=0) if mask.any() else None

            for sid in members:
                start, end = int(table[sid, START]), int(table[sid, END])
                span = pooled(start, end)
                if span is None:  # cut off by truncation: no late vector
                    continue
                out["span"][sid] = span
                out["titled"][sid] = pooled(start, end, in_title)
                lo = int(table[previous[sid], START]) if previous[sid] in members else start
                hi = int(table[following[sid], END]) if following[sid] in members else end
                out["context"][sid] = pooled(lo, hi)
    for kind in KINDS:
        out[kind] /= np.maximum(np.linalg.norm(out[kind], axis=1, keepdims=True), 1e-12)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **out)
    return out


def token_load(corpus: Any) -> dict[str, int]:
    """Texts and word pieces of the windows (one pass), for the cost table."""
    from tokenizers import Tokenizer

    pipeline = _pipeline(DEFAULT_MODEL)
    bare = Tokenizer.from_file(str(pipeline.transformer / "tokenizer.json"))
    bare.no_truncation()
    found = windows(corpus, bare, pipeline.max_seq_length)
    bare.enable_truncation(pipeline.max_seq_length)
    return {"texts": len(found), "tokens": int(sum(len(e.ids) for e in bare.encode_batch([w[0] for w in found])))}
