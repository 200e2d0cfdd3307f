"""Ranking shortcuts must not change what users see: the first hits are exact."""

from __future__ import annotations

from dataclasses import replace

import pytest

from qa import ranking
from qa.config import Settings
from qa.cues import asks_for_cue

CUE_QUESTIONS = [
    "How many industrial robots were installed in China in 2022?",
    "What percentage of AI patents did the US hold?",
    "When was the Global Digital Economy White Paper released?",
    "Who released the Global Digital Economy White Paper?",
]


@pytest.mark.parametrize("question", CUE_QUESTIONS)
def test_cues_skipped_only_where_they_cannot_reach_the_top(seed_index, question: str, monkeypatch) -> None:
    assert asks_for_cue(question)
    state, vector = seed_index._state, seed_index.encoder.encode([question])[0]
    # Cues strong enough to lift a sentence from far down into the top three.
    strong = replace(Settings(), weights=replace(Settings().weights, cue_number=4.0, cue_date=4.0, cue_person=4.0))
    monkeypatch.setattr(ranking, "EXACT_TOP", 10**9)  # every candidate gets its cues
    everything = ranking.rank(question, vector, state, strong)
    monkeypatch.setattr(ranking, "EXACT_TOP", 3)
    shortcut = ranking.rank(question, vector, state, strong)
    assert len(shortcut) == len(everything) > 3
    assert shortcut[:3] == everything[:3]
    assert {h.sentence_id for h in shortcut} == {h.sentence_id for h in everything}
