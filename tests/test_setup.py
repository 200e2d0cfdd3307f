"""The Makefile's promises, checked with `make -n` (what it would run) in a scratch copy of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(project: Path, target: str) -> str:
    """What `make TARGET` would run in `project`, without running it."""
    run = subprocess.run(["make", "-n", target], cwd=project, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The Makefile, pyproject.toml and seeds/ in a scratch folder, with a venv that looks installed."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    for stamp in ("bin/python", ".installed-run", ".installed-test"):
        (tmp_path / ".venv" / stamp).touch()
    return tmp_path


def test_make_run_builds_the_index_when_missing_and_when_a_seed_changes(project: Path) -> None:
    assert "qa build --source seeds --index index" in dry_run(project, "run")
    manifest = project / "index" / "manifest.json"
    manifest.parent.mkdir()
    manifest.touch()
    assert "qa build" not in dry_run(project, "run")  # built and seeds unchanged: no rebuild
    seed = next((project / "seeds").iterdir())
    later = time.time() + 5
    os.utime(seed, (later, later))  # a seed edited after the build
    assert "qa build --source seeds --index index" in dry_run(project, "run")


def test_make_run_installs_only_what_running_needs_and_says_so(project: Path) -> None:
    for stamp in (".installed-run", ".installed-test"):
        (project / ".venv" / stamp).unlink()
    run = dry_run(project, "run")
    assert "pip install --progress-bar off -e ." in run and "[test" not in run and "cluster" not in run
    assert "--quiet" not in run and "several minutes" in run
    assert "-e '.[test,cluster]'" in dry_run(project, "test")  # the cluster tests run in make test too


def test_index_folder_is_not_tracked() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "index"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert tracked.stdout == ""
    ignored = subprocess.run(["git", "check-ignore", "-q", "index/manifest.json"], cwd=ROOT)
    assert ignored.returncode == 0  # `qa add` and the app write there without touching tracked files
