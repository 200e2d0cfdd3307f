"""Start the chat app: `python app.py [--host H] [--port P] [--index DIR]` (or `make run`).

Binds 127.0.0.1:7860 by default (`QA_HOST`, `QA_PORT`); serves the index at `QA_INDEX` or
`index/`. Runs fully offline: no share link, no analytics, no model-hub calls.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from pathlib import Path
from typing import Sequence


def _offline() -> None:
    # Set before gradio or sentence-transformers are imported: they read these at import time.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from qa.overlap import quiet_blas_threads

    quiet_blas_threads()  # before numpy loads OpenBLAS: lets a large index overlap BM25 with the encode


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Chat with the indexed articles in a browser, offline.")
    parser.add_argument("--host", default=os.environ.get("QA_HOST", "127.0.0.1"),
                        help="address to bind (default: 127.0.0.1 or $QA_HOST; 0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("QA_PORT", "7860")),
                        help="port (default: 7860 or $QA_PORT)")
    parser.add_argument("--index", type=Path, default=None, help="index folder (default: index/ or $QA_INDEX)")
    parser.add_argument("--ray", metavar="ADDRESS", default=None,
                        help="answer through shards on the Ray cluster at ADDRESS (needs qa[cluster]; docs/scale.md)")
    parser.add_argument("--shards", type=int, default=2, help="with --ray: shards to serve the index as (default: 2)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Load the index, warm the model up and serve the app until interrupted."""
    _offline()
    args = _parser().parse_args(argv)
    problem = _bind_problem(args.host, args.port)  # before the model loads: say it in a second, not a minute
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from qa.errors import QAError
    from qa.index import Index

    try:
        index = Index.load(args.index)
        # Load the model once before serving: the first chats would otherwise race to load it.
        if args.ray:
            from qa.cluster.backend import ClusterIndex

            index.encoder.encode(["warm up"])  # questions are encoded here and ranked on the cluster
            index = ClusterIndex(index, args.ray, args.shards)  # type: ignore[assignment]
        else:
            index.warm_up()
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from qa.webapp import build_app, launch_options

    print(f"serving {len(index.articles())} articles ({len(index)} sentences) from {index.path}", flush=True)
    app = build_app(index)
    try:
        app.launch(prevent_thread_lock=True, **launch_options(args.host, args.port))
    except OSError as exc:  # taken between the check and the bind, or an address this machine does not have
        print(f"error: cannot serve on {args.host}:{args.port} ({exc.strerror or exc}). "
              "Pass --port N / --host H or set QA_PORT / QA_HOST.", file=sys.stderr)
        return 2
    print(f"Open http://{args.host}:{args.port} in a browser (Ctrl+C stops the app).", flush=True)
    try:
        app.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


def _bind_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot be served (what to pass instead), or None when it can be bound now."""
    try:
        with socket.create_server((host, port)):
            return None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (f"port {port} is in use on {host}. Pass --port N or set QA_PORT to a free port "
                    "(or stop the program that holds it).")
        return f"cannot serve on {host}:{port} ({exc.strerror or exc}). Pass --host H / --port N or set QA_HOST / QA_PORT."


if __name__ == "__main__":
    sys.exit(main())
