"""No network: the app, `qa ask`, `qa add` and `qa build` under strace make no outside connection or DNS query.

Every connect/sendto/sendmsg/sendmmsg of the process tree is recorded; any to an address other
than loopback, or any to port 53 (a name lookup, wherever the resolver lives), fails the test.
ONNX Runtime's telemetry looks its collector up about 10, 15, 23 and 45 s after the library is
imported, so the app is watched for a minute of chats and an add. A short CLI command ends
before the first look-up; for those the tell is the device id ONNX Runtime writes when its
telemetry starts (`$XDG_CACHE_HOME/Microsoft/DeveloperTools/.onnxruntime`).

The programs are run without the offline variables the Makefile exports (HF_HUB_OFFLINE,
GRADIO_ANALYTICS_ENABLED, ORT_*): staying offline is their job, not the caller's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, SEED_INDEX, write_article

def _strace_unusable() -> str | None:
    """Why strace cannot trace here (not installed, or ptrace forbidden in this container), else None."""
    if shutil.which("strace") is None:
        return "strace is not installed (apt-get install strace; .ci/run installs it)"
    probe = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"strace cannot trace in this environment (ptrace not permitted?): {probe.stderr.strip()[:200]}"
    return None


_UNUSABLE = _strace_unusable()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_UNUSABLE is not None, reason=_UNUSABLE or "")]

QA = str(Path(sys.executable).with_name("qa"))
APP_SECONDS = 60  # covers ORT's look-ups at about 10, 15, 23 and 45 s after its import
STARTUP_SECONDS = 240  # first start may export the ONNX model into the fresh cache
CALLER_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "GRADIO_ANALYTICS_ENABLED",
                            "ORT_DISABLE_TELEMETRY", "ORT_TELEMETRY_DISABLED")
_ADDRESS = re.compile(r"sa_family=AF_INET6?, sin6?_port=htons\((\d+)\).*?(?:inet_addr\(\"([^\"]+)\"\)|"
                      r"inet_pton\(AF_INET6, \"([^\"]+)\")")


# Name look-ups that leave the process by a local socket: systemd-resolved (nss-resolve). nscd is
# not flagged: glibc asks it for user names too (torch calls getpass.getuser()); where nscd
# caches host names, a look-up it answers is not seen here.
_RESOLVER_SOCKET = re.compile(r'sun_path="[^"]*systemd/resolve')


def outside_traffic(trace: Path) -> list[str]:
    """Lines of an strace log that reach beyond loopback or ask a resolver (DNS, nscd, resolved) anything."""
    bad = []
    for line in trace.read_text(errors="replace").splitlines():
        match = _ADDRESS.search(line)
        if match:
            port, address = int(match.group(1)), match.group(2) or match.group(3)
            if port == 53 or not ipaddress.ip_address(address).is_loopback:
                bad.append(line)
        elif _RESOLVER_SOCKET.search(line) or re.search(r"\\6mobile|\\6events|microsoft", line):
            bad.append(line)  # the last: a query sent on an already connected socket
    return bad


def strace(trace: Path) -> list[str]:
    return ["strace", "-f", "-qq", "-s", "64", "-o", str(trace), "-e", "trace=connect,sendto,sendmsg,sendmmsg"]


def clean_env(tmp_path: Path) -> dict[str, str]:
    """The test's environment minus the caller-side offline switches, with a private XDG cache."""
    env = {k: v for k, v in os.environ.items() if k not in CALLER_OFFLINE_VARIABLES}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")
    return env


def telemetry_files(env: dict[str, str]) -> list[str]:
    folder = Path(env["XDG_CACHE_HOME"]) / "Microsoft"
    return sorted(str(p) for p in folder.rglob("*")) if folder.exists() else []


def assert_offline(trace: Path, env: dict[str, str], what: str) -> None:
    assert trace.is_file(), f"{what}: strace wrote no log"
    bad = outside_traffic(trace)
    assert not bad, f"{what} reached beyond 127.0.0.1:\n" + "\n".join(bad[:10])
    files = telemetry_files(env)
    assert not files, f"{what} started ONNX Runtime's telemetry (it wrote {files})"


def run_traced(args: list[str], env: dict[str, str], trace: Path, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(strace(trace) + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), f"{args} failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done


def test_parser_sees_a_dns_query_and_an_outside_connect(tmp_path: Path) -> None:
    """The check itself: a look-up and a connect to a documentation address are caught, loopback is not."""
    trace = tmp_path / "probe.trace"
    probe = ("import socket\n"
             "try: socket.getaddrinfo('mobile.events.data.microsoft.com', 443)\nexcept OSError: pass\n"
             "s = socket.socket(); s.settimeout(0.2)\n"
             "try: s.connect(('203.0.113.5', 80))\nexcept OSError: pass\n"
             "l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(); c = socket.socket(); c.connect(l.getsockname())\n")
    quick = {**os.environ, "RES_OPTIONS": "timeout:1 attempts:1"}  # an unreachable DNS server gives up fast
    subprocess.run(strace(trace) + [sys.executable, "-c", probe], check=True, timeout=60, env=quick)
    bad = outside_traffic(trace)
    assert any("203.0.113.5" in line for line in bad)
    lookups = [line for line in trace.read_text().splitlines() if "htons(53)" in line or _RESOLVER_SOCKET.search(line)]
    assert lookups and all(line in bad for line in lookups), bad
    assert not any("127.0.0.1" in line and "htons(53)" not in line for line in bad)


def test_cli_commands_stay_offline(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    index = tmp_path / "index"
    shutil.copytree(SEED_INDEX, index, ignore=shutil.ignore_patterns(".write.lock"))
    source = tmp_path / "source"
    write_article(source, "harbour", "Harbour crane", "The Velmar harbour crane lifted 41 tonnes in its first test.")
    extra = write_article(tmp_path / "more", "orchard", "Orchard", "The Brisk orchard planted 900 pear trees in 2021.")
    commands = {
        "qa ask": [QA, "ask", "--index", str(index), "How many industrial robots were installed in China in 2022?"],
        "qa add": [QA, "add", "--index", str(index), str(extra)],
        "qa build": [QA, "build", "--index", str(tmp_path / "built"), "--source", str(source)],
    }
    for name, args in commands.items():
        trace = tmp_path / f"{name.replace(' ', '-')}.trace"
        run_traced(args, env, trace, tmp_path)
        assert_offline(trace, env, name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """End strace and the app (one process group); strace writes out its log as it ends."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_app_stays_offline_for_a_minute_of_chats_and_an_add(tmp_path: Path) -> None:
    from gradio_client import Client

    env = clean_env(tmp_path)
    port = _free_port()
    env.update(QA_PORT=str(port), GRADIO_TEMP_DIR=str(tmp_path / "gradio-tmp"))
    index = tmp_path / "index"
    shutil.copytree(SEED_INDEX, index, ignore=shutil.ignore_patterns(".write.lock"))
    trace, log_path = tmp_path / "app.trace", tmp_path / "app.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(strace(trace) + [sys.executable, str(ROOT / "app.py"), "--index", str(index)],
                                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert proc.poll() is None, f"app.py exited:\n{log_path.read_text()[-3000:]}"
            try:
                urllib.request.urlopen(url, timeout=5).close()  # the first page load
                break
            except OSError:
                assert time.monotonic() < deadline, f"app.py did not serve in time:\n{log_path.read_text()[-3000:]}"
                time.sleep(0.5)
        client = Client(url, verbose=False)
        end = time.monotonic() + APP_SECONDS
        status, _ = client.predict("Velmar crane", "The Velmar harbour crane lifted 41 tonnes in its first test.",
                                   api_name="/add_article")
        assert "velmar" in status.lower(), status
        questions = ["How many industrial robots were installed in China in 2022?", "And in the US?",
                     "How much did the Velmar crane lift?"]
        turn = 0
        while time.monotonic() < end:
            _, answer = client.predict(questions[turn % len(questions)], 3, api_name="/chat")
            assert "citations" in answer
            turn += 1
            time.sleep(5)
    finally:
        stop(proc)
    assert_offline(trace, env, "python app.py")
