"""The fast recipe's derived slot vectors (qa/slots.py) mean what the ranking assumes they mean."""

from __future__ import annotations

import numpy as np
import pytest

from qa.encoder import Encoder
from qa.ranking import _paragraph_features
from qa.slots import derived_slots


def test_title_slot_cosine_is_three_dot_products() -> None:
    s, t, q = Encoder().encode(["The installation of industrial robots in China reached 290,300 units.",
                                "Robots in Chinese factories", "How many robots were installed in China?"])
    slots = derived_slots(s[None], t[None], np.array([-1]), np.array([-1]))
    expected = (q @ s + q @ t) / np.sqrt(2 + 2 * (s @ t))
    assert slots[0, : len(s)] @ q == pytest.approx(expected, abs=1e-6)
    assert slots[0, len(s):] @ q == pytest.approx(q @ s, abs=1e-6)  # no neighbours: the sentence alone


def test_context_slot_is_the_rankings_neighbour_mean(seed_index) -> None:
    state = seed_index._state
    vectors = np.asarray(state.embeddings, dtype=np.float32)
    previous, following = state.corpus.neighbours
    titles = Encoder().encode([state.corpus.articles[0].title])[np.zeros(len(vectors), dtype=np.int64)]
    slots = derived_slots(vectors, titles, previous, following)
    query = seed_index.encoder.encode(["How many industrial robots were installed in China in 2022?"])[0]
    ids = np.arange(len(vectors))
    mean = _paragraph_features(state, ids, query)[1]  # read from the vectors, not the flat shortcut
    assert ((previous >= 0) | (following >= 0)).any()
    np.testing.assert_allclose(slots[:, vectors.shape[1]:] @ query, mean, atol=1e-5)


def test_rows_must_match() -> None:
    with pytest.raises(ValueError, match="must match"):
        derived_slots(np.ones((2, 4)), np.ones((1, 4)), np.array([-1, -1]), np.array([-1, -1]))
