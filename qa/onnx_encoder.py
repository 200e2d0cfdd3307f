"""ONNX Runtime encoder: the same vectors as sentence-transformers, without importing torch.

For a local sentence-transformers folder that is exactly Transformer -> Pooling (mean tokens) ->
Normalize. The transformer is exported once per model fingerprint to `<cache root>/onnx/
<fingerprint>/model.onnx`, checked against sentence-transformers on probe texts before it is
published; tokenising (`tokenizers`), mean pooling and normalising happen here in numpy.

ONNX Runtime (1.29 and later) ships telemetry on Linux: importing it starts an uploader that
looks up mobile.events.data.microsoft.com about 10, 15, 23 and 45 s later and writes a device id
under ~/.cache/Microsoft. `import_onnxruntime` switches it off before the library loads, and
every import of onnxruntime here goes through it.
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import json
import logging
import os
import secrets
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from qa.store.files import fsync_dir

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
SMALL_BATCH = 8  # up to this many texts (a question, a few follow-ups) run on one thread
TOKENIZE_WINDOW = 4096  # texts tokenised at once before batching by token count (bounds memory)
MAX_DIFF = 1e-4  # largest difference from sentence-transformers accepted at export
PROBES = ("", "Hi.", "How many industrial robots were installed in China in 2022?",
          "Ünïcödé: café, naïve, Zürich — 東京 и Москва 🙂", "  padded   with   spaces  ",
          "The quick brown fox jumps over the lazy dog. " * 60)  # > 256 tokens: truncation
_STAGES = ("Transformer", "Pooling", "Normalize")


# ORT 1.29-1.32 read ORT_DISABLE_TELEMETRY; later releases name it ORT_TELEMETRY_DISABLED. Either,
# set before the first import, stops the uploader from ever being created.
TELEMETRY_OFF = {"ORT_DISABLE_TELEMETRY": "1", "ORT_TELEMETRY_DISABLED": "1"}


def disable_telemetry() -> None:
    """Turn ONNX Runtime's telemetry off for this process and the processes it starts.

    Must run before onnxruntime is first imported: the library starts its uploader at import
    and `onnxruntime.disable_telemetry_events()` only mutes later events (measured: the DNS
    look-ups still happen). When it was imported earlier by someone else, that call is still
    made, and a warning names the problem.
    """
    os.environ.update(TELEMETRY_OFF)
    module = sys.modules.get("onnxruntime")
    if module is not None and not getattr(module, "_qa_telemetry_checked", False):
        log.warning("onnxruntime was imported before its telemetry could be switched off; "
                    "set ORT_DISABLE_TELEMETRY=1 in the environment to silence it completely")
        with contextlib.suppress(Exception):
            module.disable_telemetry_events()


def import_onnxruntime() -> Any:
    """The onnxruntime module, imported with its telemetry switched off (see `disable_telemetry`)."""
    disable_telemetry()
    import onnxruntime

    onnxruntime._qa_telemetry_checked = True  # imported by us, after the switch: no warning next time
    return onnxruntime


class OnnxUnavailable(Exception):
    """The ONNX path cannot serve this model; the message says why."""


@dataclass(frozen=True)
class Pipeline:
    """What the ONNX path needs to know of a sentence-transformers folder."""

    transformer: Path  # folder with config.json, tokenizer.json, weights
    max_seq_length: int
    lowercase: bool
    dimension: int


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OnnxUnavailable(f"{path}: {exc}") from None


def read_pipeline(folder: Path) -> Pipeline:
    """Check that `folder` is Transformer -> mean Pooling -> Normalize and read its settings.

    Raises:
        OnnxUnavailable: any other layout (CLS pooling, no Normalize, a prompt, a hub name...).
    """
    folder = Path(folder)
    if not (folder / "modules.json").is_file():
        raise OnnxUnavailable(f"{folder} is not a local sentence-transformers folder (no modules.json)")
    modules = _json(folder / "modules.json")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules] if isinstance(modules, list) else []
    if tuple(kinds) != _STAGES or not all(str(m["type"]).startswith("sentence_transformers.") for m in modules):
        raise OnnxUnavailable(f"pipeline is {kinds or modules}, not {' -> '.join(_STAGES)}")
    pooling = _json(folder / modules[1]["path"] / "config.json")
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    if modes != {"pooling_mode_mean_tokens"}:
        raise OnnxUnavailable(f"pooling is {sorted(modes)}, not mean tokens only")
    transformer = folder / modules[0]["path"]
    settings = _json(transformer / "sentence_bert_config.json")
    if (folder / "config_sentence_transformers.json").is_file() and \
            _json(folder / "config_sentence_transformers.json").get("default_prompt_name"):
        raise OnnxUnavailable("the model prepends a default prompt")
    if not (transformer / "tokenizer.json").is_file():
        raise OnnxUnavailable(f"no tokenizer.json in {transformer}")
    hidden = _json(transformer / "config.json").get("hidden_size")
    if not isinstance(hidden, int) or hidden != pooling.get("word_embedding_dimension", hidden):
        raise OnnxUnavailable(f"hidden size {hidden!r} does not match the pooling dimension")
    return Pipeline(transformer, int(settings["max_seq_length"]), bool(settings.get("do_lower_case")), hidden)


def export_onnx(model: Any, file: Path) -> None:
    """Export the transformer of a SentenceTransformer (its last hidden state) to `file`.

    Inputs are input_ids, attention_mask and, if the model takes it, token_type_ids (int64,
    batch x tokens); the output "hidden" is batch x tokens x hidden size. Pooling is left out.
    """
    import torch

    inner = model[0].auto_model
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(inner.forward).parameters:
        names.append("token_type_ids")

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, inputs))).last_hidden_state

    # Trace with padding in the batch: an all-ones mask lets transformers skip the mask branch.
    sample = model.tokenizer(["a short one", "a somewhat longer example sentence"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "hidden"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent branches
        torch.onnx.export(LastHidden().eval(), tuple(sample[n] for n in names), str(file), input_names=names,
                          output_names=["hidden"], dynamic_axes=axes, opset_version=17, dynamo=False)


class OnnxEncoder:
    """Encodes with an exported model: one-thread session for questions, all cores for builds."""

    def __init__(self, pipeline: Pipeline, file: Path) -> None:
        from tokenizers import Tokenizer

        self.pipeline, self.file = pipeline, Path(file)
        self._small = self._session(1)  # fails here, not mid-answer, if the file is broken
        self._large: Any = None  # the all-cores session, made on the first large batch
        self._lock = threading.Lock()
        self._inputs = [i.name for i in self._small.get_inputs()]
        shape = self._small.get_outputs()[0].shape
        if shape[-1] != pipeline.dimension:
            raise OnnxUnavailable(f"{file} outputs {shape}, expected {pipeline.dimension} columns")
        self._tokenizer = Tokenizer.from_file(str(pipeline.transformer / "tokenizer.json"))
        self._tokenizer.enable_truncation(pipeline.max_seq_length)
        self._pad_id = int((self._tokenizer.padding or {"pad_id": 0})["pad_id"])
        self._tokenizer.no_padding()  # `_batches` pads each batch to its longest text

    def _session(self, threads: int) -> Any:
        onnxruntime = import_onnxruntime()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        return onnxruntime.InferenceSession(str(self.file), options, providers=["CPUExecutionProvider"])

    def _session_for(self, count: int) -> Any:
        # ORT fixes threads per session. Two threads made a question 6x slower on a busy
        # 2-core machine (spin-waits), so small batches always use the one-thread session.
        if count <= SMALL_BATCH:
            return self._small
        with self._lock:
            if self._large is None:
                self._large = self._session(len(os.sched_getaffinity(0)))
            return self._large

    def encode(self, texts: Sequence[str], batch_size: int = 64,
               progress: bool | Callable[[int, int], None] = False,
               model_started: Callable[[], object] | None = None) -> np.ndarray:
        """Embed texts; returns an (n, dimension) float32 array of unit vectors.

        `progress`: True draws a tqdm bar; a callable is told (characters encoded, characters in all
        texts) after each batch: the longest texts go first, so characters track time, counts do not.
        `model_started`: called once, right before the first batch runs (ONNX Runtime then releases
        the GIL until the batch is done).
        """
        out = np.empty((len(texts), self.pipeline.dimension), dtype=np.float32)
        from tqdm.auto import tqdm

        session = self._session_for(len(texts))
        total_chars = sum(map(len, texts))
        done_chars = 0
        with tqdm(total=len(texts), desc="Encoding", unit="text", disable=progress is not True) as bar:
            for rows, ids, mask in self._batches(texts, batch_size):
                feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
                if model_started is not None:
                    model_started()
                    model_started = None
                hidden = session.run(None, {name: feeds[name] for name in self._inputs})[0]
                weights = mask.astype(np.float32)  # mean over real tokens only
                pooled = np.einsum("btd,bt->bd", hidden, weights) / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
                out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
                bar.update(len(rows))
                if callable(progress):
                    done_chars += sum(len(texts[i]) for i in rows)
                    progress(done_chars, total_chars)
        return out

    def _batches(self, texts: Sequence[str], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(rows of `texts`, their token ids padded to the longest, attention mask) per batch,
        longest texts first.

        Texts are tokenised a window at a time (in order of character length) and each window is
        batched by token count, so a batch pads to within a token or two of its texts: ordering
        by characters alone left 47% of the tokens run on SQuAD sentences as padding.
        """
        by_chars = np.argsort([-len(t) for t in texts], kind="stable")
        for first in range(0, len(texts), TOKENIZE_WINDOW):
            window = by_chars[first : first + TOKENIZE_WINDOW]
            batch = [texts[i] for i in window]
            encodings = self._tokenizer.encode_batch([t.lower() for t in batch] if self.pipeline.lowercase else batch)
            lengths = np.array([len(e.ids) for e in encodings])
            by_tokens = np.argsort(-lengths, kind="stable")
            for start in range(0, len(window), batch_size):
                members = by_tokens[start : start + batch_size]
                ids = np.full((len(members), int(lengths[members].max())), self._pad_id, dtype=np.int64)
                mask = np.zeros_like(ids)
                for row, member in enumerate(members.tolist()):
                    ids[row, : lengths[member]] = encodings[member].ids
                    mask[row, : lengths[member]] = 1
                yield window[members], ids, mask


def load(pipeline: Pipeline, fingerprint: str, cache_root: Path, read_model: Callable[[], Any]) -> OnnxEncoder:
    """The encoder of a model's cached ONNX file, exported (and validated) first if need be.

    `read_model` returns the SentenceTransformer; it is called only to export. A cached file
    that fails to load is deleted and exported again.

    Raises:
        OnnxUnavailable: onnxruntime or tokenizers is missing, the cache cannot be written, or
            the export or its validation failed.
    """
    try:
        import_onnxruntime()
        import tokenizers  # noqa: F401
    except ImportError as exc:
        raise OnnxUnavailable(f"{exc.name} is not installed") from None
    folder = Path(cache_root) / "onnx" / fingerprint
    target = folder / ONNX_FILE
    if target.is_file():
        try:
            return OnnxEncoder(pipeline, target)
        except Exception as exc:  # ORT raises several types for a torn or corrupt file
            log.warning("cached ONNX model %s is unreadable (%s: %s); exporting it again",
                        target, type(exc).__name__, str(exc)[:200])
            with contextlib.suppress(OSError):
                target.unlink()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = (folder / ".export.lock").open("w")
    except OSError as exc:
        raise OnnxUnavailable(f"cache folder {folder} is not writable ({exc})") from None
    try:
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one exporter per model; the others wait, then reuse
            return _export(pipeline, target, read_model)
    except OnnxUnavailable:
        raise
    except Exception as exc:  # torch, onnx and ORT raise many types; all mean "no ONNX here"
        raise OnnxUnavailable(f"export to ONNX failed ({type(exc).__name__}: {str(exc)[:300]})") from exc


def _export(pipeline: Pipeline, target: Path, read_model: Callable[[], Any]) -> OnnxEncoder:
    """Export, validate and publish `target` (the caller holds the export lock)."""
    if target.is_file():  # another process exported it while we waited
        with contextlib.suppress(Exception):
            return OnnxEncoder(pipeline, target)
    for stale in target.parent.glob(".*.tmp"):  # left by a killed exporter
        stale.unlink(missing_ok=True)
    # A temporary name in the same folder, synced, then renamed: readers see no file or a whole one.
    temp = target.with_name(f".{ONNX_FILE}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        model = read_model()
        export_onnx(model, temp)
        encoder = OnnxEncoder(pipeline, temp)
        _validate(model, encoder)
        with temp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, target)
        fsync_dir(target.parent)  # make the rename itself durable
    finally:
        temp.unlink(missing_ok=True)
    encoder.file = target  # its sessions are in memory; a later all-cores session reads the new name
    return encoder


def _validate(model: Any, encoder: OnnxEncoder) -> None:
    expected = model.encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    diff = float(np.abs(encoder.encode(PROBES) - expected).max())
    if not diff <= MAX_DIFF:
        raise OnnxUnavailable(f"exported model differs from sentence-transformers by {diff:.2e} (> {MAX_DIFF})")
