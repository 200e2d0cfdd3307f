"""Start the chat app: `python app.py [--host H] [--port P] [--index DIR]` (or `make run`).

Binds 127.0.0.1:7860 by default (`QA_HOST`, `QA_PORT`); serves the index at `QA_INDEX` or
`index/`. Runs fully offline: no share link, no analytics, no model-hub calls.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence


def _offline() -> None:
    # Set before gradio or sentence-transformers are imported: they read these at import time.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
    from qa.errors import QAError
    from qa.index import Index

    try:
        index = Index.load(args.index)
        # Load the model once before serving: the first chats would otherwise race to load it.
        index.encoder.encode(["warm up"])
        if args.ray:
            from qa.cluster.backend import ClusterIndex

            index = ClusterIndex(index, args.ray, args.shards)  # type: ignore[assignment]
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from qa.webapp import build_app, launch_options

    print(f"serving {len(index.articles())} articles ({len(index)} sentences) from {index.path}", flush=True)
    build_app(index).launch(**launch_options(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
