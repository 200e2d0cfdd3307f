"""kill -9 in the middle of a write leaves the previous index loadable and unchanged."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, SEED_INDEX, write_article
from qa import Index

SEED_QUESTION = "How many industrial robots were installed in China in 2022?"


def snapshot(path: Path) -> dict[str, str]:
    """Hash of every committed file: the commit point plus the segments and deletion files it names."""
    from qa.store import referenced

    index = Index.load(path)
    named = [path / name for name in sorted(referenced(index.manifest))]
    files = [p for p in named if p.is_file()] + sorted(f for p in named if p.is_dir() for f in p.rglob("*") if f.is_file())
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def many_articles(folder: Path, count: int) -> Path:
    run = uuid.uuid4().hex[:8]  # text never seen before: nothing can come from an embedding cache
    for n in range(count):
        body = "\n\n".join(
            f"Report {n}-{run} paragraph {p} notes that the harbour at site {n} moved {n * 100 + p} containers "
            f"in week {p}. Officials in district {n} said traffic grew by {p + 3} percent year on year."
            for p in range(12)
        )
        write_article(folder, f"harbour-{n:03d}", f"Harbour Report {n}", body)
    return folder


@pytest.fixture()
def index_copy(tmp_path: Path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(SEED_INDEX, target, ignore=shutil.ignore_patterns(".write.lock"))
    return target


def start_add(index: Path, source: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "qa.cli", "add", "--index", str(index), str(source)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def assert_unchanged(index: Path, before: dict[str, str]) -> None:
    assert snapshot(index) == before
    reloaded = Index.load(index)
    assert [a.id for a in reloaded.articles()] == ["openai-api-block-chinese-ai-startups"]
    assert "290,300" in reloaded.answer(SEED_QUESTION).citations[0].sentence


def test_kill_while_embedding(tmp_path: Path, index_copy: Path) -> None:
    before = snapshot(index_copy)
    process = start_add(index_copy, many_articles(tmp_path / "in", 40))
    # Wait for the model runtime to be loaded, then for the encoding it was loaded for to be
    # under way (~2,900 new texts: tens of seconds of work, of which 3 s have passed at the kill).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        maps = Path(f"/proc/{process.pid}/maps").read_text()
        if "onnxruntime" in maps or "libtorch_cpu" in maps:
            time.sleep(3.0)
            break
        time.sleep(0.05)
    assert process.poll() is None, "the add finished before it could be killed; make the input larger"
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert_unchanged(index_copy, before)


def test_kill_while_writing_files(tmp_path: Path, index_copy: Path) -> None:
    before = snapshot(index_copy)
    # 12 articles (~870 texts): the segment's files take tens of ms to write and sync whatever
    # the input's size, while every text must be embedded first, so more input only adds waiting.
    process = start_add(index_copy, many_articles(tmp_path / "in", 12))
    deadline = time.monotonic() + 180
    killed = False
    while time.monotonic() < deadline and process.poll() is None:
        if any(index_copy.glob("seg-*.partial")):
            process.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.001)
    assert killed, "never saw the new generation being written"
    assert process.wait() == -signal.SIGKILL
    assert_unchanged(index_copy, before)
    # The next write sweeps the leftovers and succeeds.
    report = Index.load(index_copy).add(write_article(tmp_path / "one", "pier", "Pier Works",
                                                      "The new pier opened in June with 12 berths."))
    assert report.added == ["pier"]
    listed = {s["name"] for s in Index.load(index_copy).manifest["segments"]}
    assert not list(index_copy.glob("*.partial")) and {p.name for p in index_copy.glob("seg-*")} | {
        p.name for p in index_copy.glob("data-*")} == listed


def test_crash_just_before_the_manifest_swap(tmp_path: Path, index_copy: Path) -> None:
    # Deterministic worst moment: every data file written and synced, manifest not yet replaced.
    before = snapshot(index_copy)
    article = write_article(tmp_path / "in", "pier", "Pier Works", "The new pier opened in June with 12 berths.")
    script = (
        "import os, signal, qa.store.files as s\n"
        "real = os.replace\n"
        "def dying_replace(src, dst):\n"
        "    if str(dst).endswith('manifest.json'):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(src, dst)\n"
        "s.os.replace = dying_replace\n"
        "from qa.cli import main\n"
        f"main(['add', '--index', {str(index_copy)!r}, {str(article)!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=300)
    assert result.returncode == -signal.SIGKILL
    assert list(index_copy.glob("seg-*")) and (index_copy / "manifest.json.partial").exists()
    assert_unchanged(index_copy, before)
