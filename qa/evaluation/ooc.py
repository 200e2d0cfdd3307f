"""Out-of-corpus question sets for `qa eval squad`: questions the indexed articles do not answer.

Two kinds besides the held-out half of SQuAD:

- *other articles*: every SQuAD question asked of a folder of other articles alone (by default
  the project's `seeds/`, one news article: news against encyclopedia);
- *other questions*: a JSONL file of questions about topics the SQuAD articles do not cover,
  asked of all the SQuAD articles (by default `bench/data/ooc-news-questions.jsonl`, news-style
  questions written for this; its README says how).

An answer to any of them can only be wrong, so the figure is how often the engine abstains.
"""

from __future__ import annotations

import json
from pathlib import Path

from qa.config import PROJECT_ROOT, default_source_path
from qa.evaluation.squad import EvaluationDataError

DEFAULT_QUESTIONS = PROJECT_ROOT / "bench" / "data" / "ooc-news-questions.jsonl"
SKIP = "none"  # `--ooc-articles none` / `--ooc-questions none` leave that set out


def default_articles() -> Path | None:
    """The project's seed folder, when it is there (a checkout, not an installed package)."""
    folder = default_source_path()
    return folder if folder.is_dir() else None


def default_questions() -> Path | None:
    """The project's out-of-corpus news questions, when they are there."""
    return DEFAULT_QUESTIONS if DEFAULT_QUESTIONS.is_file() else None


def chosen(value: str | None, default: Path | None) -> Path | None:
    """The path a `--ooc-*` option names: its default when not given, None for `none`."""
    if value is None:
        return default
    return None if value.strip().lower() == SKIP else Path(value)


def load_questions(path: str | Path) -> list[str]:
    """The questions of a JSONL file, one `{"question": ...}` object a line (other keys are ignored).

    Raises:
        EvaluationDataError: the file is missing, a line is not such an object, or it has no questions.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EvaluationDataError(f"{path}: no such file. Give a JSONL file of {{\"question\": ...}} lines, "
                                  f"or '{SKIP}' to leave the set out.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationDataError(f"{path}: not a readable UTF-8 text file ({exc}).") from None
    found: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            question = row["question"]
        except (json.JSONDecodeError, TypeError, KeyError):
            raise EvaluationDataError(f"{path}, line {number}: expected a JSON object with a \"question\" "
                                      f"string, like {{\"question\": \"Who won the final?\"}}.") from None
        if not isinstance(question, str) or not question.strip():
            raise EvaluationDataError(f"{path}, line {number}: \"question\" must be a non-empty string.")
        found.append(question.strip())
    if not found:
        raise EvaluationDataError(f"{path}: no questions found. Put one {{\"question\": ...}} object a line.")
    return found
