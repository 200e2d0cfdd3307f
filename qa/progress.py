"""Progress of long work (embedding the sentences of a build or an add), told the same way everywhere.

One `Tracker` counts the sentences embedded over a whole job, across every batch an add commits,
and hands each `Status` to a reporter:
- `LiveBar`: a tqdm bar, for a terminal;
- `PlainLines`: a line at most every `QA_PROGRESS_INTERVAL` seconds (default 10) and one at the
  end, for logs and pipes, e.g. `qa: embedded 12,000/48,000 sentences, 151 sentences/s, ETA 4m 0s`;
- any callable, e.g. the app's, which moves a Gradio progress bar.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from qa.errors import QAError

INTERVAL_ENV = "QA_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 10.0  # seconds between plain lines: a log a person can read, not a flood
LINE_PREFIX = "qa: "

# What an encoder calls after each of its batches: (work done, work in the whole call), in any unit.
WorkDone = Callable[[int, int], None]


@dataclass(frozen=True)
class Status:
    """Where a job stands: `done` of `total` sentences after `elapsed` seconds."""

    done: int
    total: int
    elapsed: float
    finished: bool = False  # the job ended (complete, or stopped by an error or Ctrl-C)
    # (elapsed, done) when the count first moved: the running rate starts there, so the model's
    # load (and a first-run ONNX export) does not make a long job's ETA look longer than it is.
    since: tuple[float, int] = (0.0, 0)

    @property
    def fraction(self) -> float:
        """Share of the job done, 0..1 (1 for an empty job)."""
        return min(1.0, self.done / self.total) if self.total else 1.0

    @property
    def rate(self) -> float | None:
        """Sentences per second: since the count first moved while running, over the whole job
        once finished; None before the first sentence is embedded."""
        start, first_done = self.since
        if not self.finished and self.elapsed > start and self.done > first_done:
            return (self.done - first_done) / (self.elapsed - start)
        return self.done / self.elapsed if self.done and self.elapsed > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the job's rate so far; None while the rate is unknown."""
        rate = self.rate
        return max(0, self.total - self.done) / rate if rate else None

    def describe(self) -> str:
        """One lower-case sentence for people, e.g. 'embedded 120/480 sentences, 15 sentences/s, ETA 24s'."""
        counted = f"{self.done:,}/{self.total:,} sentences"
        rate = f"{self.rate:,.0f} sentences/s" if self.rate else "rate not known yet"
        if self.finished and self.done >= self.total:
            return f"embedded {counted} in {duration_text(self.elapsed)}, {rate}"
        if self.finished:
            return f"stopped after embedding {counted} in {duration_text(self.elapsed)}, {rate}"
        if not self.done:
            return f"embedding {self.total:,} sentences"
        eta = self.eta
        return f"embedded {counted}, {rate}, ETA {duration_text(eta) if eta is not None else 'unknown'}"


Reporter = Callable[[Status], Any]


def duration_text(seconds: float) -> str:
    """'45s', '4m 0s', '2h 5m': whole units, the two largest."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


class Tracker:
    """Counts the sentences embedded over one job and reports each step.

    The job is cut into parts (one per committed batch); `part(n)` returns the hook an encoder calls
    while it embeds the part's texts, so the count moves inside a part and never restarts.
    A job with nothing to embed (every article already indexed) reports nothing.
    """

    def __init__(self, total: int, reporter: Reporter | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.reporter = reporter if total else None
        self._clock = clock
        self._started = clock()
        self._base = 0  # sentences of the parts already embedded
        self._part = 0  # sentences of the part being embedded
        self._done = 0
        self._finished = False
        self._since = (0.0, 0)
        self._report()

    @property
    def status(self) -> Status:
        """The job's status now."""
        return Status(self._done, self.total, self._clock() - self._started, self._finished, self._since)

    def part(self, sentences: int) -> WorkDone | bool:
        """Start the next part of `sentences` sentences (the previous one counts as done).

        Returns the encoder's progress argument: a hook, or False when nobody listens.
        """
        self._base += self._part
        self._part = sentences
        self._move_to(self._base)
        if self.reporter is None:
            return False

        def work_done(done: int, of: int) -> None:
            self._move_to(self._base + (sentences * done // of if of else sentences))

        return work_done

    def finish(self, complete: bool = True) -> None:
        """End the job and report once more; a `complete` job counts its last part as done.

        A second call does nothing, so a `finally` can close a job the normal path already closed.
        """
        if self._finished:
            return
        self._finished = True
        if complete:
            self._done = self._base + self._part
        self._report()

    def _move_to(self, done: int) -> None:
        if done != self._done:
            if not self._done:
                self._since = (self._clock() - self._started, done)
            self._done = done
            self._report()

    def _report(self) -> None:
        if self.reporter is not None:
            self.reporter(self.status)


class PlainLines:
    """Reporter writing a plain line at most every `interval` seconds, plus the first and last ones."""

    def __init__(self, stream: TextIO, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.interval = interval
        self._clock = clock
        self._last: float | None = None

    def __call__(self, status: Status) -> None:
        now = self._clock()
        if self._last is not None and not status.finished and now - self._last < self.interval:
            return
        self._last = now
        print(LINE_PREFIX + status.describe(), file=self.stream, flush=True)


class LiveBar:
    """Reporter drawing a tqdm bar (rate and ETA included) that closes when the job ends."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._bar: Any = None

    def __call__(self, status: Status) -> None:
        from tqdm.auto import tqdm

        if self._bar is None:
            self._bar = tqdm(total=status.total, desc="qa: embedding", unit=" sentences", file=self.stream)
        self._bar.update(status.done - self._bar.n)
        if status.finished:
            self._bar.close()


def interval_from_env() -> float:
    """Seconds between plain progress lines: `QA_PROGRESS_INTERVAL`, else DEFAULT_INTERVAL.

    Raises:
        QAError: the variable is not a number of seconds >= 0.
    """
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also catches nan
        raise QAError(f"{INTERVAL_ENV}={raw!r} is not a number of seconds: set it to e.g. 10, or unset it.")
    return seconds


def terminal_reporter(stream: TextIO | None = None) -> Reporter:
    """A live bar on a terminal, plain periodic lines anywhere else (logs, pipes, CI)."""
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    return LiveBar(stream) if isatty is not None and isatty() else PlainLines(stream, interval_from_env())


def reporter_for(progress: bool | Reporter) -> Reporter | None:
    """The reporter a `progress` argument asks for: True means stderr (see `terminal_reporter`)."""
    if progress is True:
        return terminal_reporter()
    return progress or None
