"""Ranking shortcuts must not change what users see: the first hits are exact."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
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
    # Cue weights from ordinary to strong enough to lift a sentence from far down to the top,
    # and several window sizes: a bound that is too tight shows up in some of these.
    for weight in (1.0, 2.0, 4.0, 8.0):
        settings = replace(Settings(), weights=replace(Settings().weights, cue_number=weight, cue_date=weight,
                                                       cue_person=weight))
        monkeypatch.setattr(ranking, "EXACT_TOP", 10**9)  # every candidate gets its cues
        everything = ranking.rank(question, vector, state, settings)
        for exact_top in (1, 3, 5):
            monkeypatch.setattr(ranking, "EXACT_TOP", exact_top)
            shortcut = ranking.rank(question, vector, state, settings)
            assert len(shortcut) == len(everything) > exact_top
            assert shortcut[:exact_top] == everything[:exact_top], (weight, exact_top)
            assert {h.sentence_id for h in shortcut} == {h.sentence_id for h in everything}


def test_paragraph_features_from_similarities_equal_those_from_vectors(seed_index) -> None:
    """The flat shortcut (cosines from the full similarity vector, the mean from neighbour dot
    products) gives what reading every paragraph's vectors gives."""
    state = seed_index._state
    question = "How many industrial robots were installed in China in 2022?"
    vector = seed_index.encoder.encode([question])[0]
    similarities = state.dense.similarities(vector)
    assert similarities is not None
    ids = np.arange(len(state.corpus))  # every sentence: first, middle and last of paragraphs, one-sentence ones
    shortcut = ranking._paragraph_features(state, ids, vector, similarities)
    from_vectors = ranking._paragraph_features(state, ids, vector)
    for name, fast, slow in zip(("sentence", "mean", "paragraph", "neighbour"), shortcut, from_vectors):
        np.testing.assert_allclose(fast, slow, atol=1e-5, err_msg=name)
