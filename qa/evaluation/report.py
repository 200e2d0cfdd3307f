"""The evaluation report: a readable table, the JSON file, and what machine produced them."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

# The issue's targets for the full SQuAD dev set; shown beside the figures, never enforced here.
TARGETS = {"mrr": 0.82, "r@1": 0.74, "r@5": 0.92}
ABSTENTION_TARGETS = {"auroc": 0.90, "answerable_max": 0.10, "out_of_corpus_min": 0.80}
# Issue 17: the figures users see (first citation right; abstention on an answerable question is a miss).
ANSWER_TARGETS = {"answered_right": 0.76, "abstained_answerable_max": 0.05, "held_out_half_min": 0.90,
                  "other_out_of_corpus_min": 0.95}
OUT_OF_CORPUS_LABELS = {
    "held_out_half": "held-out half, asked of the tuning half",
    "other_articles": "SQuAD questions, asked of {asked_of}",
    "other_questions": "{file}, asked of all articles",
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine() -> dict[str, Any]:
    """CPU, cores, memory, OS, Python and torch threads: what the timings depend on."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores_usable": cores,
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "gpu": bool(torch.cuda.is_available()),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def code_version() -> dict[str, Any]:
    """The git commit of the checkout and whether it had uncommitted changes (None outside git)."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def _json_safe(value: Any) -> Any:
    """NaN (an empty group) is not valid JSON: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    """Write the report as indented JSON (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(result), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _num(value: float | None, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def _line(label: str, value: str, target: str) -> str:
    return f"  {label:<40}{value:>7}   target {target}"


def _answers_lines(answers: dict[str, Any]) -> list[str]:
    """The user-visible figures: one row per question set."""
    lines = ["", "What users see (first citation right or wrong, or an abstention; an abstention on an answerable "
             "question is a miss):",
             f"  {'answerable questions':<52}{'count':>7}{'right':>8}{'wrong':>8}{'abstain':>9}"]
    labels = {"all": "all, asked of all articles", "tuning_half": "  tuning half's", "held_out_half": "  held-out half's",
              "tuning_half_index": "tuning half's, asked of the tuning half alone"}
    for key, label in labels.items():
        row = answers["answerable"][key]
        lines.append(f"  {label:<52}{row['questions']:>7,}{_num(row['answered_right'], True):>8}"
                     f"{_num(row['answered_wrong'], True):>8}{_num(row['abstained'], True):>9}")
    lines.append(f"  {'target (all)':<52}{'':>7}{'>= ' + format(ANSWER_TARGETS['answered_right'], '.0%'):>8}{'':>8}"
                 f"{'<= ' + format(ANSWER_TARGETS['abstained_answerable_max'], '.0%'):>9}")
    lines.append(f"  {'out-of-corpus questions':<52}{'count':>7}{'abstain':>8}{'answered (wrong)':>18}   target")
    sets = answers["out_of_corpus"]
    for key, row in sorted(sets.items(), key=lambda item: list(OUT_OF_CORPUS_LABELS).index(item[0])
                           if item[0] in OUT_OF_CORPUS_LABELS else len(OUT_OF_CORPUS_LABELS)):
        label = OUT_OF_CORPUS_LABELS.get(key, key).format(asked_of=Path(str(row.get("asked_of", ""))).name + "/",
                                                         file=Path(str(row.get("file", ""))).name)
        target = ANSWER_TARGETS["held_out_half_min" if key == "held_out_half" else "other_out_of_corpus_min"]
        lines.append(f"  {label[:52]:<52}{row['questions']:>7,}{_num(row['abstained'], True):>8}"
                     f"{_num(row['answered_wrong'], True):>18}   abstain >= {target:.0%}")
    return lines


def format_table(result: dict[str, Any]) -> str:
    """The report as plain text: retrieval by half, then abstention, each beside its target."""
    data, retrieval, abstention = result["data"], result["retrieval"], result["abstention"]
    lines = [
        f"SQuAD (ReQA protocol): {data['articles']} articles, {data['paragraphs']:,} paragraphs, "
        f"{data['sentences']:,} sentences, {data['unique_questions']:,} unique questions",
        "",
        f"{'questions of':<16}{'count':>7}{'MRR':>8}{'R@1':>8}{'R@5':>8}{'R@10':>8}{'abstain':>9}",
    ]
    for key, label in (("all", "all articles"), ("tuning_half", "tuning half"), ("held_out_half", "held-out half")):
        row = retrieval[key]
        lines.append(f"{label:<16}{row['questions']:>7,}{_num(row['mrr']):>8}{_num(row['r@1']):>8}"
                     f"{_num(row['r@5']):>8}{_num(row['r@10']):>8}{_num(row['abstain_rate'], True):>9}")
    lines.append(f"{'target (all)':<16}{'':>7}{_num(TARGETS['mrr']):>8}{_num(TARGETS['r@1']):>8}"
                 f"{_num(TARGETS['r@5']):>8}")
    lines.append(f"gold answer in no citable sentence: {data['gold_unreachable']:,} questions; "
                 f"gold not among the candidates: {retrieval['all']['not_in_candidates']:,}")
    answerable, outside = abstention["answerable"], abstention["out_of_corpus"]
    point = abstention["at_10pct_answerable"]
    lines += [
        "",
        f"Abstention (index = tuning half; threshold {abstention['threshold']}):",
        _line("AUROC, answerable vs out-of-corpus", _num(abstention["auroc"]),
              f">= {ABSTENTION_TARGETS['auroc']:.2f}"),
        _line(f"abstains on answerable ({answerable['questions']:,})", _num(answerable["abstain_rate"], True),
              f"<= {ABSTENTION_TARGETS['answerable_max']:.0%}"),
        _line(f"abstains on out-of-corpus ({outside['questions']:,})", _num(outside["abstain_rate"], True),
              f">= {ABSTENTION_TARGETS['out_of_corpus_min']:.0%}"),
        f"  (a threshold of {_num(point['threshold'])} would abstain on 10% of answerable and "
        f"{_num(point['out_of_corpus_abstain_rate'], True)} of out-of-corpus questions)",
        *(_answers_lines(result["answers"]) if "answers" in result else []),
        "",
        f"model {result['model'].get('name')} ({result['model'].get('fingerprint')}); "
        f"{result['elapsed_seconds']:.0f} s wall, {result.get('cpu_seconds', 0):.0f} s CPU, "
        f"{result['machine']['cores_usable']} cores, load average {result['machine'].get('load_average_at_end')}",
    ]
    return "\n".join(lines)
