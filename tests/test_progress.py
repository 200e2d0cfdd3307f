"""Progress of long work: the lines `qa add` prints into a pipe, the formatter, and the app's bar."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import ROOT, copy_seed_index, write_article

from qa import Index
from qa.article_admin import ArticleAdmin
from qa.errors import QAError
from qa.progress import INTERVAL_ENV, PlainLines, Status, Tracker, duration_text, interval_from_env, terminal_reporter

LINE = re.compile(r"qa: embedded ([\d,]+)/([\d,]+) sentences, ([\d,]+) sentences/s, ETA (\d+[hms].*)$")
FINAL = re.compile(r"qa: embedded ([\d,]+)/([\d,]+) sentences in (\d+[hms].*), ([\d,]+) sentences/s$")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_status_lines_say_count_rate_and_eta() -> None:
    assert Status(0, 48_000, 2.0).describe() == "embedding 48,000 sentences"
    assert Status(12_000, 48_000, 80.0).describe() == "embedded 12,000/48,000 sentences, 150 sentences/s, ETA 4m 0s"
    # The running rate counts from the first move of the count (after the model loaded), not from 0.
    assert Status(1_000, 2_000, 30.0, since=(20.0, 0)).describe() == (
        "embedded 1,000/2,000 sentences, 100 sentences/s, ETA 10s")
    assert Status(48_000, 48_000, 7_500.0, finished=True, since=(20.0, 0)).describe() == (
        "embedded 48,000/48,000 sentences in 2h 5m, 6 sentences/s")
    assert Status(10, 40, 4.0, finished=True).describe() == "stopped after embedding 10/40 sentences in 4s, 2 sentences/s"
    assert Status(0, 0, 0.0, finished=True).fraction == 1.0
    assert [duration_text(s) for s in (0.4, 59.6, 61, 3600)] == ["0s", "1m 0s", "1m 1s", "1h 0m"]


def test_plain_lines_come_at_most_once_per_interval_and_at_the_end() -> None:
    clock, out = Clock(), io.StringIO()
    tracker = Tracker(300, PlainLines(out, interval=10, clock=clock), clock=clock)
    for part in range(3):  # three committed batches of 100 sentences, each reported in 4 steps
        hook = tracker.part(100)
        for step in range(1, 5):
            clock.now += 2
            assert callable(hook)
            hook(step * 25, 100)
    tracker.finish()
    assert out.getvalue().splitlines() == [
        "qa: embedding 300 sentences",
        "qa: embedded 125/300 sentences, 12 sentences/s, ETA 14s",  # 10 s after the first line
        "qa: embedded 250/300 sentences, 12 sentences/s, ETA 4s",
        "qa: embedded 300/300 sentences in 24s, 12 sentences/s",
    ]


def test_an_interrupted_job_says_where_it_stopped() -> None:
    clock, out = Clock(), io.StringIO()
    tracker = Tracker(50, PlainLines(out, interval=0, clock=clock), clock=clock)
    hook = tracker.part(20)
    clock.now += 4
    hook(1, 2)  # type: ignore[operator]
    tracker.finish(complete=False)
    tracker.finish()  # a `finally` after the normal end changes nothing
    assert out.getvalue().splitlines()[-1] == "qa: stopped after embedding 10/50 sentences in 4s, 2 sentences/s"


def test_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "2.5")
    assert interval_from_env() == 2.5
    monkeypatch.delenv(INTERVAL_ENV)
    assert interval_from_env() == 10.0
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(INTERVAL_ENV, bad)
        with pytest.raises(QAError, match=f"{INTERVAL_ENV}=.* is not a number of seconds"):
            interval_from_env()


class Terminal(io.StringIO):
    """What a terminal's stderr says of itself."""

    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_live_bar_elsewhere_plain_lines() -> None:
    assert isinstance(terminal_reporter(io.StringIO()), PlainLines)
    screen = Terminal()
    tracker = Tracker(48, terminal_reporter(screen))
    for sentences in (20, 28):  # two committed batches: one bar over both (tqdm redraws it at most every 0.1 s)
        hook = tracker.part(sentences)
        hook(1, 1)  # type: ignore[operator]
    tracker.finish()
    frames = [frame for frame in screen.getvalue().split("\r") if frame.strip()]
    assert frames[0].startswith("qa: embedding:   0%") and "| 0/48 [" in frames[0], frames
    assert "100%" in frames[-1] and "| 48/48 [" in frames[-1] and frames[-1].endswith(" sentences/s]\n"), frames
    assert screen.getvalue().count("\n") == 1  # one line, redrawn in place, closed at the end


def test_qa_add_into_a_pipe_prints_progress_over_all_its_batches(tmp_path: Path) -> None:
    index_path = copy_seed_index(tmp_path / "index")
    folder, run = tmp_path / "bulletins", uuid.uuid4().hex[:6]  # new texts: the embedding cache cannot answer
    for n in range(12):
        write_article(folder, f"bulletin-{n:02d}", f"Bulletin {n} {run}",
                      f"Bulletin {n}-{run} says the ferry to pier {n} left at {n + 1} pm. It carried {n * 3} cars. "
                      f"The crossing took {n + 20} minutes. Harbour staff counted {n * 7} passengers.")
    # Commit every ~20 sentences, so the add has several batches; print every step (interval 0).
    script = ("import qa.index, sys; qa.index.BATCH_SENTENCES = 20\n"
              f"from qa.cli import main; sys.exit(main(['add', '--index', {str(index_path)!r}, {str(folder)!r}]))\n")
    env = {**os.environ, INTERVAL_ENV: "0"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    added = sum(a.sentences for a in Index.load(index_path).articles() if a.id.startswith("bulletin-"))
    lines = done.stderr.splitlines()
    assert lines[0] == f"qa: embedding {added} sentences", done.stderr
    running = [LINE.match(line) for line in lines[1:-1]]
    assert len(running) >= 2 and all(running), done.stderr  # each names count, rate and ETA
    counts = [int(m.group(1).replace(",", "")) for m in running if m]
    assert counts == sorted(set(counts)) and counts[-1] == added, counts  # rising over the whole add, no restart
    assert {int(m.group(2).replace(",", "")) for m in running if m} == {added}
    final = FINAL.match(lines[-1])
    assert final and final.group(1) == final.group(2) == f"{added:,}", lines[-1]
    assert "12 added" in done.stdout and "embedded" not in done.stdout  # the report stays on stdout, alone


def test_the_app_bar_moves_as_a_paste_is_embedded(tmp_path: Path) -> None:
    admin = ArticleAdmin(Index.load(copy_seed_index(tmp_path / "index")))
    run = uuid.uuid4().hex[:6]
    text = " ".join(f"Depot {n} of run {run} shipped {n * 11} crates of pears on day {n + 1}." for n in range(100))  # 200 texts: four batches
    moves: list[tuple[float, str]] = []
    status = admin.add_pasted("Pear depots", text, progress=lambda fraction, desc: moves.append((fraction, desc)))
    assert status.startswith("Added 'Pear depots'"), status
    fractions = [fraction for fraction, _ in moves]
    assert moves[0] == (0.0, "Embedding 100 sentences"), moves
    assert fractions == sorted(fractions) and len({f for f in fractions if 0 < f < 1}) >= 2, moves
    assert re.fullmatch(r"Embedded \d+/100 sentences, \d+ sentences/s, ETA \d+.*", moves[1][1]), moves
    assert moves[-1][0] == 1.0 and moves[-1][1].startswith("Embedded 100/100 sentences in"), moves


def test_a_job_with_nothing_to_embed_says_nothing() -> None:
    out = io.StringIO()
    tracker = Tracker(0, PlainLines(out, interval=0))
    assert tracker.part(0) is False
    tracker.finish()
    assert out.getvalue() == ""
