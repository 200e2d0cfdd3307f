"""A large index ranks a question's BM25 half while the question is encoded (qa/overlap.py):
the answers must be exactly those of doing one after the other."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from qa import Index, overlap

QUESTIONS = [
    "How much did the Orlin dam cost?",
    "Who opened the dam?",
    "What is the capital of France?",  # abstains
]


def _answers(index: Index) -> list:
    return [index.answer(q) for q in QUESTIONS] + [index.answer("And when?", history=[QUESTIONS[0]])]


def _record_starts(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """The arguments of every piece of work handed to a helper thread from now on (the real
    helper still runs it)."""
    started: list[tuple] = []
    start = overlap.start

    def recording_start(work, *args):
        started.append(args)
        return start(work, *args)

    monkeypatch.setattr(overlap, "start", recording_start)
    return started


def test_overlapped_ranking_answers_exactly_as_sequential(seed_index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(overlap.BLAS_TIMEOUT_VARIABLE, overlap.QUIET_BLAS_TIMEOUT)
    monkeypatch.setattr(overlap, "OVERLAP_FROM", 10**12)
    assert not overlap.pays(len(seed_index._state))
    sequential = _answers(seed_index)
    started = _record_starts(monkeypatch)
    monkeypatch.setattr(overlap, "OVERLAP_FROM", 0)
    assert overlap.pays(len(seed_index._state))
    overlapped = _answers(seed_index)
    assert [args[0] for args in started[: len(QUESTIONS)]] == QUESTIONS  # each question's BM25 half went to a helper
    assert overlapped == sequential


def test_no_overlap_while_blas_threads_spin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(overlap.BLAS_TIMEOUT_VARIABLE, raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert not overlap.pays(10**9)
    overlap.quiet_blas_threads()  # numpy is loaded in this process: too late, so nothing is claimed
    assert overlap.BLAS_TIMEOUT_VARIABLE not in os.environ and not overlap.pays(10**9)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread never spins beside the work
    assert overlap.pays(10**9) and not overlap.pays(overlap.OVERLAP_FROM - 1)


def test_entry_points_quiet_blas_before_numpy_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k not in (overlap.BLAS_TIMEOUT_VARIABLE, "OPENBLAS_NUM_THREADS")}
    # Set at all means numpy was not loaded yet when it was asked for (`quiet_blas_threads`).
    probe = "import os, {module}; {call}; print(os.environ.get('{variable}'))"
    for module, call in (("app", "app._offline()"), ("qa.cli", "qa.cli._offline()")):
        done = subprocess.run([sys.executable, "-c", probe.format(module=module, call=call, variable=overlap.BLAS_TIMEOUT_VARIABLE)],
                              capture_output=True, text=True, env=env, cwd=os.path.dirname(os.path.dirname(__file__)), timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[0] == overlap.QUIET_BLAS_TIMEOUT, (module, done.stdout)


def test_segments_searched_on_two_threads_answer_as_on_one(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above 50k sentences half the segments' dense searches run on a helper thread
    (`Snapshot.dense_top_scored`); here three small segments are made to take that path."""
    from conftest import copy_seed_index, write_article

    from qa.store import snapshot, units

    path = copy_seed_index(tmp_path / "index")
    index = Index.load(path)
    index.merge_policy = None
    index.add(write_article(tmp_path / "a", "pier", "Pier Works", "The new pier opened in June with 12 berths. "
                            "It cost 40 million euros and was built by Korvik Marine."))
    index.add(write_article(tmp_path / "b", "dam", "Orlin Dam", "The Orlin dam cost 2.1 billion euros. "
                            "It was opened in 2019 by the minister of energy."))
    monkeypatch.setattr(snapshot, "EXACT_UP_TO", 0)  # each segment searched on its own, as above 50k
    monkeypatch.setattr(units, "JOIN_UP_TO", 0)  # and read as its own unit
    monkeypatch.setenv(overlap.BLAS_TIMEOUT_VARIABLE, overlap.QUIET_BLAS_TIMEOUT)
    questions = [*QUESTIONS, "Who built the pier?", "What share of global AI patents did China hold in 2022?"]
    monkeypatch.setattr(overlap, "OVERLAP_FROM", 10**12)
    one_thread = Index.load(path)
    assert len(one_thread._state.units) == 3
    in_line = [one_thread.answer(q) for q in questions]
    started = _record_starts(monkeypatch)
    monkeypatch.setattr(overlap, "OVERLAP_FROM", 0)
    two_threads = Index.load(path)
    assert [two_threads.answer(q) for q in questions] == in_line
    assert [len(args) for args in started].count(3) >= len(questions)  # a (vector, k, units) dense half per question
