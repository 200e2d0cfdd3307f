"""An index ranks a question's BM25 half while the question is encoded (qa/overlap.py): the
answers must be exactly those of doing one after the other."""

from __future__ import annotations

import os
import subprocess
import sys
import time

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

    def recording_start(work, *args, **keywords):
        started.append(args)
        return start(work, *args, **keywords)

    monkeypatch.setattr(overlap, "start", recording_start)
    return started


def _spinning_blas(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a process that loaded numpy before asking for quiet BLAS threads: nothing overlaps."""
    monkeypatch.delenv(overlap.BLAS_TIMEOUT_VARIABLE, raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)


def test_overlapped_ranking_answers_exactly_as_sequential(seed_index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    _spinning_blas(monkeypatch)
    assert not overlap.pays()
    sequential = _answers(seed_index)
    started = _record_starts(monkeypatch)
    monkeypatch.setenv(overlap.BLAS_TIMEOUT_VARIABLE, overlap.QUIET_BLAS_TIMEOUT)
    assert overlap.pays()
    overlapped = _answers(seed_index)
    assert [args[0] for args in started[: len(QUESTIONS)]] == QUESTIONS  # each question's BM25 half went to a helper
    assert overlapped == sequential


def test_the_helper_starts_when_the_model_does(seed_index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    """Started earlier, the helper holds the GIL the encode's tokenising wants (0.3 -> 0.6 ms)."""
    events: list[str] = []
    encode = type(seed_index.encoder).encode

    def slow_to_start(self, texts, progress=False, model_started=None):
        time.sleep(0.2)  # tokenising, slowed down: a helper started at once would begin meanwhile

        def announced() -> None:
            events.append("model starts")
            model_started()

        return encode(self, texts, progress, model_started=announced if model_started else None)

    monkeypatch.setattr(type(seed_index.encoder), "encode", slow_to_start)
    work = lambda: events.append("helper works") or 7  # noqa: E731
    vectors, result = overlap.encode_beside(seed_index.encoder, ["Who opened the dam?"], work)
    assert events == ["model starts", "helper works"] and result == 7 and vectors.shape == (1, seed_index.encoder.dimension)


def test_a_failed_encode_leaves_no_helper_waiting(seed_index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, texts, progress=False, model_started=None):
        raise RuntimeError("model file unreadable")

    done = []
    monkeypatch.setattr(type(seed_index.encoder), "encode", broken)
    with pytest.raises(RuntimeError, match="unreadable"):
        overlap.encode_beside(seed_index.encoder, ["Who?"], done.append, "ran")
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert done == ["ran"]


def test_no_overlap_while_blas_threads_spin(monkeypatch: pytest.MonkeyPatch) -> None:
    _spinning_blas(monkeypatch)
    assert not overlap.pays()
    overlap.quiet_blas_threads()  # numpy is loaded in this process: too late, so nothing is claimed
    assert overlap.BLAS_TIMEOUT_VARIABLE not in os.environ and not overlap.pays()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread never spins beside the work
    assert overlap.pays()


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
    questions = [*QUESTIONS, "Who built the pier?", "What share of global AI patents did China hold in 2022?"]
    _spinning_blas(monkeypatch)
    one_thread = Index.load(path)
    assert len(one_thread._state.units) == 3
    in_line = [one_thread.answer(q) for q in questions]
    started = _record_starts(monkeypatch)
    monkeypatch.setenv(overlap.BLAS_TIMEOUT_VARIABLE, overlap.QUIET_BLAS_TIMEOUT)
    two_threads = Index.load(path)
    assert [two_threads.answer(q) for q in questions] == in_line
    assert [len(args) for args in started].count(3) >= len(questions)  # a (vector, k, units) dense half per question
