"""Ranking shortcuts must not change what users see: precomputed and derived features equal
what computing them from the text and the vectors gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa import ranking
from qa.cues import CueTable, asks_for_cue, cue_features

CUE_QUESTIONS = [
    "How many industrial robots were installed in China in 2022?",
    "What percentage of AI patents did the US hold?",
    "When was the Global Digital Economy White Paper released?",
    "Who released the Global Digital Economy White Paper?",
]


def test_cue_table_gives_what_extracting_from_the_text_gives(seed_index) -> None:
    """The cue tokens stored at index time give, for every sentence, the features the regexes
    give on its text; a question that asks for no cue gets none."""
    state = seed_index._state
    ids = np.arange(len(state.corpus))
    texts = state.corpus.sentences(ids)
    for question in [*CUE_QUESTIONS, "Who won in 1066 and when?", "Why did robot sales grow?"]:
        from_table = state.cue_features(question, ids)
        np.testing.assert_array_equal(from_table, cue_features(question, texts), err_msg=question)
        assert from_table.any() == asks_for_cue(question), question
    some = np.array([len(ids) - 1, 0, 5])  # any order, as candidates come
    np.testing.assert_array_equal(state.cue_features(CUE_QUESTIONS[0], some), cue_features(CUE_QUESTIONS[0], state.corpus.sentences(some)))


def test_cue_table_grows_shrinks_and_round_trips(tmp_path: Path) -> None:
    first = ["In 1066 William, Duke of Normandy, won.", "Nothing here."]
    second = ["China installed 290,300 robots in March 2022.", "Three firms, led by Fanuc, made half."]
    grown = CueTable.empty().extend(first).extend(second)
    fresh = CueTable.empty().extend(first + second)
    question = "Who made how many robots, and when?"
    np.testing.assert_array_equal(grown.features(question, np.arange(4)), fresh.features(question, np.arange(4)))
    np.testing.assert_array_equal(fresh.features(question, np.arange(4)), cue_features(question, first + second))
    shrunk = grown.without(np.array([True, False, False, True]))
    np.testing.assert_array_equal(shrunk.features(question, np.arange(2)), cue_features(question, [first[0], second[1]]))
    shrunk.save(tmp_path)
    loaded = CueTable.load(tmp_path, 2)
    np.testing.assert_array_equal(loaded.features(question, np.arange(2)), shrunk.features(question, np.arange(2)))
    with pytest.raises(ValueError, match="holds 2 sentences"):
        CueTable.load(tmp_path, 3)


def test_a_cue_the_question_already_holds_is_no_cue() -> None:
    table = CueTable.empty().extend(["Sales grew in 2022.", "Sales grew by 12% in 2022.", "Sales grew."])
    # number and date cues: "2022" is in the question, so only the 12% is new
    features = table.features("How many robots were sold in 2022, and when?", np.arange(3))
    np.testing.assert_array_equal(features[:, :2], [[0, 0], [1, 0], [0, 0]])
    np.testing.assert_array_equal(table.features("When were robots sold?", np.arange(3))[:, 1], [1, 1, 0])


def test_paragraph_features_from_similarities_equal_those_from_vectors(seed_index) -> None:
    """The flat shortcut (cosines from the full similarity vector, the mean from neighbour dot
    products) gives what reading every paragraph's vectors gives."""
    state = seed_index._state
    question = "How many industrial robots were installed in China in 2022?"
    vector = seed_index.encoder.encode([question])[0]
    similarities = state.similarities(vector)
    assert similarities is not None
    ids = np.arange(len(state.corpus))  # every sentence: first, middle and last of paragraphs, one-sentence ones
    shortcut = ranking._paragraph_features(state, ids, vector, similarities)
    from_vectors = ranking._paragraph_features(state, ids, vector)
    for name, fast, slow in zip(("sentence", "mean", "paragraph", "neighbour"), shortcut, from_vectors):
        np.testing.assert_allclose(fast, slow, atol=1e-5, err_msg=name)


def test_the_fast_array_helpers_equal_numpys_own() -> None:
    """`sorted_union` is `np.union1d`, and the z-scores are those of `np.std`, to the bit (fusion
    ranks by them: a last-bit change could reorder a tie)."""
    from qa.arrays import sorted_union

    rng = np.random.default_rng(7)
    for size in [0, 1, 2, 3, 50, 173]:
        first, second = rng.integers(0, 200, size), rng.integers(0, 200, rng.integers(0, 60))
        assert np.array_equal(sorted_union(first, second), np.union1d(first, second))
        values = (rng.random(size) * rng.choice([0.0, 1.0, 40.0])).astype(np.float32)
        if size:
            values[rng.random(size) < 0.3] = 0
            spread = values.std()
            expected = (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)
        else:
            expected = values
        np.testing.assert_array_equal(ranking._zscores(values), expected)
