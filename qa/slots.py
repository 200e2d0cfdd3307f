"""The "fast" build recipe's title and context vectors, derived instead of encoded (issue 14).

The ranking reads two stored unit vectors per sentence besides its own (the "title" and
"context" slots of `title-context-embeddings.npy`). The full recipe encodes a text for each
("title: sentence", and the sentence between its paragraph neighbours): about five
sentence-lengths of tokens per sentence. The fast recipe encodes each sentence once and each
article's title once, and stores

    title slot    unit(s + t)              s: the sentence's vector, t: its article title's
    context slot  unit(prev + s + next)    the paragraph neighbours' own vectors (those that exist)

so the ranking's cosine with the title slot is (q.s + q.t) / sqrt(2 + 2 s.t): three dot
products, with the norm fixed at build time. The ranking code and the file layout stay as they
are. Measured on SQuAD dev by `python -m bench.build_recipes` (docs/quality.md, "Build recipes").
"""

from __future__ import annotations

import numpy as np


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def derived_slots(sentence: np.ndarray, title: np.ndarray, previous: np.ndarray, following: np.ndarray) -> np.ndarray:
    """The fast recipe's (n, 2 x d) slot matrix, in `title-context-embeddings.npy` layout.

    Args:
        sentence: (n, d) unit vectors of the sentences.
        title: (n, d) unit vector of each sentence's article title.
        previous, following: (n,) row in `sentence` of each sentence's previous / next sentence
            in its paragraph, -1 where there is none (a paragraph's neighbours are always in the
            same article, so a block of new articles is self-contained).
    """
    sentence = np.asarray(sentence, dtype=np.float32)
    if not (len(title) == len(previous) == len(following) == len(sentence)):
        raise ValueError("sentence, title and neighbour rows must match")
    context = sentence.copy()
    for neighbour in (previous, following):
        has = neighbour >= 0
        context[has] += sentence[neighbour[has]]
    titled = _unit(sentence + np.asarray(title, dtype=np.float32))
    return np.ascontiguousarray(np.hstack([titled, _unit(context)]), dtype=np.float32)
