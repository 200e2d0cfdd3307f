"""Build recipes: what goes into a sentence's "title" and "context" slots, and what it costs to encode.

The engine stores two extra unit vectors per sentence (`title-context-embeddings.npy`) and ranks
with their cosines to the question. Today both are encoded from their own texts ("title:
sentence", and the sentence between its neighbours), which costs ~5 sentence-lengths of tokens
per sentence. The cheap recipes here derive both slots from vectors encoded anyway: the
sentence's own vector, its neighbours' vectors, and one title vector per article. The cosine of
a question with unit(a + b) is (q.a + q.b) / |a + b|, so storing the normalised sum in the slot
gives exactly "three dot products over sqrt(2 + 2 s.t)", with no change to the ranking code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from qa.acronyms import acronym_expander
from qa.corpus import ARTICLE
from qa.encoder import Encoder


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class Parts:
    """Per-sentence vectors a recipe combines (rows = sentence ids of one snapshot)."""

    sentence: np.ndarray  # the stored sentence vectors
    old_slots: np.ndarray  # today's (n, 2 x d) slots: encoded "title: sentence" | encoded context
    previous: np.ndarray  # previous sentence's vector in the paragraph, zero when none
    following: np.ndarray  # next sentence's vector, zero when none
    title: np.ndarray  # the article title's vector, encoded once per article
    title_colon: np.ndarray  # the vector of "Title:" (the old text's prefix alone)
    tokens: dict[str, np.ndarray]  # word-piece counts (no special tokens): sentence, previous, following, title
    late: dict[str, np.ndarray] | None = None  # bench/late_chunks.py vectors, when measured


def title_texts(corpus: object) -> tuple[list[str], list[str]]:
    """Each article's title and "title:" as the encoder would read them (acronyms spelled out);
    the first is what the engine's fast recipe encodes (`Corpus.title_texts`)."""
    colon = [acronym_expander(article.text)(f"{article.title}:") for article in corpus.articles]
    return corpus.title_texts(), colon


def token_counts(encoder: Encoder, texts: list[str]) -> np.ndarray:
    """Word pieces per text (the model's own tokenizer, specials and truncation left out)."""
    from tokenizers import Tokenizer

    from qa.encoder import _pipeline

    tokenizer = Tokenizer.from_file(str(_pipeline(encoder.model_name).transformer / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return np.array([len(e.ids) - 2 for e in tokenizer.encode_batch(texts)], dtype=np.float32)


def parts_of(state: object, encoder: Encoder, encode: Callable[[list[str]], np.ndarray],
             late: dict[str, np.ndarray] | None = None) -> Parts:
    """The parts of snapshot `state`; `encode` embeds the (few) title texts, e.g. via the cache.
    `late`: late-chunked vectors of these sentences (rows of zeros, cut off by truncation, fall
    back to the sentence vector)."""
    corpus = state.corpus
    sentence = np.asarray(state.embeddings, dtype=np.float32)
    previous_ids, following_ids = corpus.neighbours
    previous = np.where((previous_ids >= 0)[:, None], sentence[np.maximum(previous_ids, 0)], 0).astype(np.float32)
    following = np.where((following_ids >= 0)[:, None], sentence[np.maximum(following_ids, 0)], 0).astype(np.float32)
    plain, colon = title_texts(corpus)
    titles = encode(plain + colon)
    article = corpus.table[:, ARTICLE]
    sentence_tokens = token_counts(encoder, corpus.embedding_texts()[0])
    title_tokens = token_counts(encoder, plain)[article]
    tokens = {"sentence": sentence_tokens, "title": title_tokens,
              "previous": np.where(previous_ids >= 0, sentence_tokens[np.maximum(previous_ids, 0)], 0),
              "following": np.where(following_ids >= 0, sentence_tokens[np.maximum(following_ids, 0)], 0)}
    if late is not None:
        late = {kind: np.where((np.abs(v[: len(sentence)]).sum(axis=1) > 0)[:, None], v[: len(sentence)], sentence)
                for kind, v in late.items()}
    return Parts(sentence, np.asarray(state.title_context_embeddings, dtype=np.float32), previous, following,
                 titles[: len(plain)][article], titles[len(plain):][article], tokens, late)


def _weighted(p: Parts, **share: float | str) -> np.ndarray:
    """unit(sum of parts x weight); a weight "tokens" weighs a part by its word-piece count, as mean
    pooling over the concatenated text would."""
    total = np.zeros_like(p.sentence)
    for name, weight in share.items():
        vectors = getattr(p, name)
        factor = p.tokens[name.replace("title_colon", "title")][:, None] if weight == "tokens" else weight
        total += vectors * factor
    return unit(total)


Slots = Callable[[Parts], tuple[np.ndarray, np.ndarray]]


def _fast_context(p: Parts) -> np.ndarray:
    return _weighted(p, previous=1.0, sentence=1.0, following=1.0)  # = the engine's `mean` feature


# Name -> (title slot, context slot). Encodes per sentence: "full" 3 texts; every other recipe
# the sentence alone, plus one title text per article.
TITLE_RECIPES: dict[str, Slots] = {
    "full (today)": lambda p: (p.old_slots[:, : p.sentence.shape[1]], p.old_slots[:, p.sentence.shape[1]:]),
    "fast: unit(s+t), unit(p+s+n)": lambda p: (_weighted(p, sentence=1.0, title=1.0), _fast_context(p)),
    "title 'Title:' text": lambda p: (_weighted(p, sentence=1.0, title_colon=1.0), _fast_context(p)),
    "title x1.5": lambda p: (_weighted(p, sentence=1.0, title=1.5), _fast_context(p)),
    "title token-weighted": lambda p: (_weighted(p, sentence="tokens", title="tokens"), _fast_context(p)),
    # Ablations: where does the loss come from? (The first two still encode one extra text per sentence.)
    "ablation: encoded title slot, fast context": lambda p: (p.old_slots[:, : p.sentence.shape[1]], _fast_context(p)),
    "ablation: fast title, encoded context slot": lambda p: (_weighted(p, sentence=1.0, title=1.0), p.old_slots[:, p.sentence.shape[1]:]),
}


# The bench's recipes that the engine builds (qa/slots.py), by the engine's name for them.
ENGINE_RECIPES = {"full (today)": "full", "fast: unit(s+t), unit(p+s+n)": "fast",
                  "ablation: encoded title slot, fast context": "titled"}


# One extra encoder pass over each titled paragraph (about one more sentence-length of tokens).
LATE_RECIPES: dict[str, Slots] = {
    "late: titled span | context span": lambda p: (p.late["titled"], p.late["context"]),
    "late: sentence span | context span": lambda p: (p.late["span"], p.late["context"]),
}


def context_recipes(title: Callable[[Parts], np.ndarray]) -> dict[str, Slots]:
    """Context-slot variants on top of a chosen title slot."""
    return {
        "context unit(0.5p+s+0.5n)": lambda p: (title(p), _weighted(p, previous=0.5, sentence=1.0, following=0.5)),
        "context unit(p+s+n+t)": lambda p: (title(p), _weighted(p, previous=1.0, sentence=1.0, following=1.0, title=1.0)),
    }


def slots(recipe: Slots, parts: Parts) -> np.ndarray:
    """The (n, 2 x d) matrix the engine would store for this recipe (VECTOR_FILES[1] layout)."""
    title, context = recipe(parts)
    return np.ascontiguousarray(np.hstack([title, context]), dtype=np.float32)
