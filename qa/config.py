"""Settings with measured defaults, and where the default index lives."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# What a build encodes per sentence (qa/slots.py): the names, here so the CLI lists them cheaply.
RECIPES = ("full", "titled", "fast")
DEFAULT_RECIPE = "titled"
LEGACY_RECIPE = "full"  # what a commit point that names no recipe (written before recipes) was built with


@dataclass(frozen=True)
class FusionWeights:
    """Weights of the ranking features (qa/ranking.py), tuned on half of SQuAD dev (bench/recipes.py)."""

    sentence: float = 1.0
    title: float = 5.0
    context: float = 3.0
    mean: float = 0.1
    paragraph: float = 1.5
    neighbour: float = 0.3
    bm25: float = 0.5
    bm25_context: float = 0.5
    cue_number: float = 1.0
    cue_date: float = 1.0
    cue_person: float = 0.5
    phrase: float = 0.0


@dataclass(frozen=True)
class Settings:
    """Knobs of retrieval and answering. Defaults are the measured ones (see docs/quality.md).

    Attributes:
        max_citations: most sentences quoted in one answer.
        abstain_threshold: below this confidence (qa.confidence: log-odds that the articles
            answer the question) the engine abstains.
        support_ratio: a further sentence is quoted only if its score is at least this share of the top one.
        candidates: how many sentences each retriever (dense, BM25) proposes before fusion.
        weights: the fusion weights.
        near_duplicate: cosine above which two sentences count as the same statement.
        related_count: passages shown as "related" when abstaining.
        max_question_chars: longer questions are refused.
    """

    max_citations: int = 3
    abstain_threshold: float = -0.5
    support_ratio: float = 0.9
    candidates: int = 100
    weights: FusionWeights = field(default_factory=FusionWeights)
    near_duplicate: float = 0.92
    related_count: int = 3
    max_question_chars: int = 2000

    def __post_init__(self) -> None:
        if self.max_citations < 1:
            raise ValueError("max_citations must be at least 1")
        if self.candidates < 1:
            raise ValueError("candidates must be at least 1")
        if not 0 < self.support_ratio <= 1:
            raise ValueError("support_ratio must be in (0, 1]")

    def updated(self, **changes: Any) -> "Settings":
        """A copy with some fields changed (unknown names are an error)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        return replace(self, **changes)


def default_index_path() -> Path:
    """`QA_INDEX` when set, else the project's `index/` folder."""
    return Path(os.environ.get("QA_INDEX") or PROJECT_ROOT / "index")


def default_source_path() -> Path:
    """The project's `seeds/` folder."""
    return PROJECT_ROOT / "seeds"
