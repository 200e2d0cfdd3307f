"""Shared fixtures. Tests use the real model, FAISS and files; nothing of qa is mocked."""

from __future__ import annotations

import atexit
import json
import os
import shutil
from pathlib import Path

# Before any library import: no test may try to reach a model hub or analytics server.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tempfile

import pytest

# Tests never read or fill the user's embedding cache: a warm cache would make timing-based
# tests (kill -9 while embedding) finish too early and hide encoding paths.
os.environ["QA_CACHE_DIR"] = tempfile.mkdtemp(prefix="qa-test-cache-")
atexit.register(shutil.rmtree, os.environ["QA_CACHE_DIR"], True)

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
# index/ is not in git (make builds it from seeds/, users add to it): tests build their own seed
# index once per session, here, on first use (see `built_seed_index`), and never touch index/.
SEED_INDEX = Path(tempfile.mkdtemp(prefix="qa-test-seed-index-")) / "index"
atexit.register(shutil.rmtree, SEED_INDEX.parent, True)
SHARED_EVAL = ROOT.parent / "shared" / "eval"
SEED_QUESTIONS = SHARED_EVAL / "seed-questions.jsonl"
SQUAD_DEV = SHARED_EVAL / "squad-dev-v1.1.json.gz"

needs_shared_eval = pytest.mark.skipif(
    not SEED_QUESTIONS.is_file(),
    reason=f"evaluation data not found at {SHARED_EVAL}: clone the project next to its shared/ folder",
)


def seed_questions() -> list[dict]:
    """Rows of ../shared/eval/seed-questions.jsonl (empty when the folder is absent)."""
    if not SEED_QUESTIONS.is_file():
        return []
    return [json.loads(line) for line in SEED_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def built_seed_index() -> Path:
    """SEED_INDEX, built from seeds/ the first time it is asked for (as `qa build` does)."""
    if not (SEED_INDEX / "manifest.json").is_file():
        from qa import Index

        Index.build(SEEDS, SEED_INDEX)
    return SEED_INDEX


@pytest.fixture(autouse=True)
def _seed_index_for_modules_that_use_it(request: pytest.FixtureRequest) -> None:
    """Build SEED_INDEX before a test whose module imported it; other tests pay nothing."""
    if getattr(request.module, "SEED_INDEX", None) == SEED_INDEX:
        built_seed_index()


def copy_seed_index(target: Path) -> Path:
    """A private, writable copy of the seed index at `target`."""
    shutil.copytree(built_seed_index(), target, ignore=shutil.ignore_patterns(".write.lock"))
    return target


@pytest.fixture(scope="session")
def seed_index_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the seed index, shared by read-only tests."""
    return copy_seed_index(tmp_path_factory.mktemp("seed") / "index")


@pytest.fixture(scope="session")
def seed_index(seed_index_copy: Path):
    """The seed index, loaded once for read-only tests."""
    from qa import Index

    return Index.load(seed_index_copy)


def model_only_cache(root: Path) -> Path:
    """A cache root at `root` holding the session's exported ONNX model and no embeddings.

    A process given it starts as one whose model was exported earlier (no torch import, no
    export), while every text it embeds is still embedded, not read from a cache.
    """
    from qa.encoder import Encoder

    Encoder().runtime  # noqa: B018 - exports into the session cache on first use
    exported = Path(os.environ["QA_CACHE_DIR"]) / "onnx"
    root.mkdir(parents=True, exist_ok=True)
    if exported.is_dir():  # absent when the torch backend is forced ($QA_ENCODER_BACKEND)
        shutil.copytree(exported, root / "onnx", ignore=shutil.ignore_patterns(".export.lock"))
    return root


def write_article(folder: Path, name: str, title: str, body: str, date: str | None = "2024-05-01") -> Path:
    """Write a small .txt article in the seed layout: title, date, body paragraphs."""
    folder.mkdir(parents=True, exist_ok=True)
    head = f"{title}\n\n{date}\n\n" if date else f"{title}\n\n"
    path = folder / f"{name}.txt"
    path.write_text(head + body.strip() + "\n", encoding="utf-8")
    return path
