"""Reaching a Ray cluster, offline and contained, and starting a small one on this machine.

What every Ray process of ours gets (`ray_env`): usage statistics off, the model hub offline,
and token authentication on. Ray 2.59+ turns token auth on for local clusters and then every
node and driver needs the cluster's token: we keep it in a file of our own (`RAY_AUTH_TOKEN_PATH`)
instead of Ray's default under the home folder. `LocalCluster` starts a head and worker nodes on
127.0.0.1 with `ray start` (no dashboard, Ray's temp folder where we say) and stops them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from qa.errors import QAError

OFFLINE = {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "TOKENIZERS_PARALLELISM": "false"}
# Seconds our local nodes get to exit after SIGTERM before they are killed.
STOP_GRACE_S = 5
FORWARDED = ("QA_ENCODER_BACKEND", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")


class ClusterError(QAError, RuntimeError):
    """Ray is missing or the cluster cannot be reached."""


def require_ray() -> Any:
    """The `ray` module, or a message saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError("Ray is not installed: `pip install 'qa[cluster]'` (ray[data,serve]) on every machine.") from None
    return ray


def ray_env(token_file: Path | None = None) -> dict[str, str]:
    """Environment of our Ray processes: offline, no usage stats, token auth with `token_file`."""
    env = dict(OFFLINE)
    if token_file is not None:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))
    return env


def connect(address: str) -> Any:
    """Join the cluster at `address` (`host:port` of its head) as a driver; returns `ray`.

    The token comes from `RAY_AUTH_TOKEN` / `RAY_AUTH_TOKEN_PATH` as Ray reads them. Workers get
    the offline settings; each machine keeps its own embedding cache (`QA_CACHE_DIR` of its
    `ray start`, else ~/.cache/qa).
    """
    os.environ.update(OFFLINE)
    ray = require_ray()
    if ray.is_initialized():
        return ray
    forwarded = {key: os.environ[key] for key in FORWARDED if os.environ.get(key)}
    try:
        ray.init(address=address, runtime_env={"env_vars": {**OFFLINE, **forwarded}}, log_to_driver=False,
                 logging_level="warning")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(
            f"Cannot reach the Ray cluster at '{address}' ({type(exc).__name__}: {str(exc).splitlines()[0]}). Start "
            "it with `ray start --head` (docs/scale.md), and give this process its token (RAY_AUTH_MODE=token, "
            "RAY_AUTH_TOKEN_PATH=...).") from None
    return ray


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalCluster:
    """A head and `workers` worker nodes on 127.0.0.1, each with `cpus` CPUs, started with `ray start`.

    Args:
        folder: holds the token file and each node's Ray temp folder (keep the path short:
            Ray's socket paths must fit in 107 bytes).
    """

    def __init__(self, folder: Path, workers: int = 1, cpus: int = 1) -> None:
        self.folder = Path(folder)
        self.workers, self.cpus = workers, cpus
        self.token_file = self.folder / "auth_token"
        self.address = ""
        # Each node's own embedding cache, as on separate machines.
        self.env = {**os.environ, **ray_env(self.token_file), "QA_CACHE_DIR": str(self.folder / "cache")}
        self._ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"

    def _start(self, *args: str) -> None:
        done = subprocess.run([self._ray, "start", *args], env=self.env, capture_output=True, text=True, timeout=180)
        if done.returncode:
            raise ClusterError(f"`ray start {' '.join(args)}` failed: {done.stderr.strip()[-800:]}")

    def start(self) -> "LocalCluster":
        """Start the head, then the workers; sets `address` and this process's token variables."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.token_file.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
        self.token_file.chmod(0o600)
        port = _free_port()
        self.address = f"127.0.0.1:{port}"
        common = ["--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus}", "--disable-usage-stats"]
        self._start("--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={self.folder / 'head'}",
                    *common)
        for worker in range(self.workers):
            self._start(f"--address={self.address}", f"--temp-dir={self.folder / f'w{worker}'}", *common)
        os.environ.update(ray_env(self.token_file))
        return self

    def stop(self) -> None:
        """Stop these nodes' processes, by id: those whose command line names our folder (GCS,
        raylets, their agents, the `ray start`s) and their children (the workers). Not `ray stop`,
        which would end every Ray process of the user on this machine, other clusters' too."""
        import ray  # noqa: F401 - puts the psutil Ray bundles on the import path
        import psutil

        folder = str(self.folder)
        # The head's client server names only the GCS address (host:port), not our folder.
        gcs_port = f":{self.address.rsplit(':', 1)[-1]}" if self.address else None
        ours: dict[int, Any] = {}
        for process in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):  # a process may end while we look
                command = process.info["cmdline"] or []
                client_server = gcs_port is not None and "ray.util.client.server" in command and any(
                    part.startswith("--address=") and part.endswith(gcs_port) for part in command)
                if client_server or any(folder in part for part in command):
                    for member in [process, *process.children(recursive=True)]:
                        ours[member.pid] = member
        for process in ours.values():
            with contextlib.suppress(psutil.Error):
                process.terminate()
        # Some (GCS, raylets, agents) ignore SIGTERM while they wait on each other: a short grace, then kill.
        _, alive = psutil.wait_procs(list(ours.values()), timeout=STOP_GRACE_S)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
