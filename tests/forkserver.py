"""Run many short `qa` commands, and kill -9 them, without paying Python's start-up each time.

A kill test runs a command dozens of times and kills it at a random moment of its life. Started
afresh, each run spent most of that life starting Python and importing numpy, FAISS, ONNX
Runtime and qa, so most kills landed before the command had done anything. `ForkServer` starts
one helper process that imports those modules once (and hashes the model's weights once), then
forks a child per command: the child runs the same code a `python -m qa.cli ...` process runs,
in a process of its own, and is killed with a real SIGKILL. The helper creates no thread and no
ONNX session before it forks (a forked copy of a running thread pool would hang); each child
loads the model itself, as a fresh process does.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _preload() -> None:
    """Import what every qa command imports, and what each one would otherwise compute first."""
    import faiss  # noqa: F401
    import numpy  # noqa: F401
    import scipy.sparse  # noqa: F401
    import tokenizers  # noqa: F401

    import qa.cli
    import qa.index
    import qa.store
    from qa.encoder import DEFAULT_MODEL, model_fingerprint
    from qa.onnx_encoder import import_onnxruntime

    qa.cli._offline()
    import_onnxruntime()
    model_fingerprint(DEFAULT_MODEL)


def _child(request: dict[str, Any]) -> None:
    """The forked command: its output goes to `log` (or nowhere); never returns."""
    status = 1
    try:
        out = os.open(request.get("log") or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for fd in (1, 2):
            os.dup2(out, fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the process ends with os._exit
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        if "argv" in request:
            from qa.cli import main

            status = main(request["argv"])
        else:
            exec(compile(request["code"], "<forked>", "exec"), {"__name__": "__forked__"})  # noqa: S102 - test code
            status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported in the log, as a fresh process would print it
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _wait(pid: int, timeout: float | None) -> bool:
    """True once `pid` has ended, False if it still runs after `timeout` seconds."""
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def serve() -> None:
    """The helper's loop: one JSON request a line on stdin, one JSON reply a line on stdout."""
    _preload()
    if threading.active_count() != 1:
        raise RuntimeError("the fork server started a thread before forking; children could hang")
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(request)
        killed = not _wait(pid, request.get("timeout"))
        if killed:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        reply = {"returncode": os.waitstatus_to_exitcode(status), "seconds": time.monotonic() - start}
        print(json.dumps(reply), flush=True)


class ForkServer:
    """Client of a `serve()` helper process; use as a context manager."""

    def __init__(self) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import forkserver; forkserver.serve()"
        self._process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        hello = self._process.stdout.readline()
        assert hello.startswith('{"ready"'), f"the fork server did not start (exit {self._process.poll()})"

    def run(self, request: dict[str, Any], kill_after: float | None = None) -> tuple[int, float]:
        """Run one request (`argv` of `qa`, or Python `code`), SIGKILLed after `kill_after` seconds
        if still running; returns its exit status (-9 when killed, as `subprocess` reports it) and
        how long it lived."""
        self._process.stdin.write(json.dumps({**request, "timeout": kill_after}) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        assert line, f"the fork server ended (exit {self._process.poll()})"
        reply = json.loads(line)
        return reply["returncode"], reply["seconds"]

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=60)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
