"""What users see, per question set of `qa eval squad`: the first citation right or wrong, or an abstention.

An abstention on an answerable question is a miss; any answer to an out-of-corpus question is wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qa.evaluation import metrics

if TYPE_CHECKING:
    from qa.evaluation.run import Outcome
    from qa.evaluation.squad import SquadSet


def user_figures(full: Outcome, half: Outcome, tuning: np.ndarray, answerable: np.ndarray,
                 others: dict[str, Outcome], about: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The `answers` part of the report.

    Args:
        full: every question against all articles; `tuning` marks the tuning half's questions.
        half: every question against the tuning half alone; `answerable` marks those it answers.
        others: the other out-of-corpus sets by name ("other_articles", "other_questions").
        about: per other set, what it was asked of (copied into its figures).
    """
    out_of_corpus = {"held_out_half": {**metrics.out_of_corpus_figures(half.abstained[~answerable]),
                                       "asked_of": "the tuning half's articles alone"}}
    for name, outcome in others.items():
        out_of_corpus[name] = {**metrics.out_of_corpus_figures(outcome.abstained), **about[name]}
    return {
        "rule": "answered and right: not abstained and the first citation holds a gold answer; "
                "an abstention on an answerable question is a miss; any answer to an out-of-corpus question is wrong",
        "answerable": {
            "all": metrics.answered_figures(full.ranks, full.abstained),
            "tuning_half": metrics.answered_figures(full.ranks[tuning], full.abstained[tuning]),
            "held_out_half": metrics.answered_figures(full.ranks[~tuning], full.abstained[~tuning]),
            "tuning_half_index": metrics.answered_figures(half.ranks[answerable], half.abstained[answerable]),
        },
        "out_of_corpus": out_of_corpus,
    }


def per_question(squad: SquadSet, halves: np.ndarray, answerable: np.ndarray, full: Outcome, half: Outcome,
                 others: dict[str, Outcome], other_questions: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Each question's rank, confidence and decision in every index it was asked of (for error analysis)."""
    alone = others.get("other_articles")
    rows: dict[str, list[dict[str, Any]]] = {"questions": [
        {"question": q.text, "half": str(halves[i]), "answerable_in_tuning_half": bool(answerable[i]),
         "rank": int(full.ranks[i]), "confidence": float(full.confidences[i]), "abstained": bool(full.abstained[i]),
         "tuning_half_index": {"rank": int(half.ranks[i]), "confidence": float(half.confidences[i]),
                               "abstained": bool(half.abstained[i])},
         **({"other_articles": {"confidence": float(alone.confidences[i]), "abstained": bool(alone.abstained[i])}}
            if alone is not None else {})}
        for i, q in enumerate(squad.questions)
    ]}
    if "other_questions" in others:
        outcome = others["other_questions"]
        rows["other_questions"] = [{"question": q, "confidence": float(c), "abstained": bool(a)}
                                   for q, c, a in zip(other_questions, outcome.confidences, outcome.abstained)]
    return rows
