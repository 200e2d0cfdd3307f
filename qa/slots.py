"""Build recipes: what is encoded for each sentence, and how its stored vectors are made (issue 14).

The ranking reads three unit vectors per sentence: its own (`embeddings.npy`) and two "slots"
(`title-context-embeddings.npy`): a title slot and a context slot. A recipe decides where the
slots come from:

    full    encodes "title: sentence" and the sentence between its paragraph neighbours: three
            texts, about five sentence-lengths of tokens per sentence (the first recipe).
    titled  encodes "title: sentence" only; the context slot is unit(prev + s + next), made from
            the paragraph neighbours' own vectors: two texts, about 2.1 sentence-lengths.
    fast    encodes each sentence once and each article's title once; the title slot is
            unit(s + t), whose cosine with a question is (q.s + q.t) / sqrt(2 + 2 s.t).

The ranking code and the file layout are the same for every recipe; an index records its recipe
in its commit point and every later write follows it. Measured on SQuAD dev by
`python -m bench.build_recipes` (docs/quality.md, "Build recipes").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qa.config import DEFAULT_RECIPE, LEGACY_RECIPE, RECIPES
from qa.corpus import ARTICLE

if TYPE_CHECKING:
    from qa.corpus import Corpus

__all__ = ["DEFAULT_RECIPE", "LEGACY_RECIPE", "RECIPES", "check_recipe", "stored_vectors", "texts_to_encode"]


def check_recipe(name: str) -> str:
    """`name` when it is a known recipe.

    Raises:
        ValueError: naming the recipes there are.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown build recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return name


def texts_to_encode(corpus: Corpus, recipe: str) -> list[str]:
    """Everything `recipe` encodes for `corpus` (a block of new articles, ids from 0), sentences first."""
    check_recipe(recipe)
    sentences, titled, in_context = corpus.embedding_texts()
    if recipe == "full":
        return sentences + titled + in_context
    if recipe == "titled":
        return sentences + titled
    return sentences + corpus.title_texts()  # fast


def stored_vectors(corpus: Corpus, recipe: str, encoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (n, d) sentence vectors and (n, 2 x d) slots of `corpus`, from the vectors of
    `texts_to_encode(corpus, recipe)`, row for row."""
    check_recipe(recipe)
    count = len(corpus)
    sentence = np.ascontiguousarray(encoded[:count], dtype=np.float32)
    if recipe == "full":
        return sentence, np.hstack([encoded[count : 2 * count], encoded[2 * count : 3 * count]])
    context = _neighbour_sum(sentence, *corpus.neighbours)
    if recipe == "titled":
        titled = encoded[count : 2 * count]
    else:  # fast
        titled = _unit(sentence + encoded[count:][corpus.table[:, ARTICLE]])
    return sentence, np.ascontiguousarray(np.hstack([titled, context]), dtype=np.float32)


def _neighbour_sum(sentence: np.ndarray, previous: np.ndarray, following: np.ndarray) -> np.ndarray:
    """unit(prev + s + next) per sentence, counting only the neighbours that exist (-1: none)."""
    context = sentence.copy()
    for neighbour in (previous, following):
        has = neighbour >= 0
        context[has] += sentence[neighbour[has]]
    return _unit(context)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)).astype(np.float32)
