"""Build recipes (qa/slots.py): the stored vectors mean what the ranking assumes, and an index keeps its recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_article

from qa.corpus import ARTICLE, Corpus
from qa.index import Index
from qa.ranking import _paragraph_features
from qa.slots import stored_vectors, texts_to_encode

QUESTION = "How many industrial robots were installed in China in 2022?"


@pytest.fixture(scope="module")
def seed_corpus(seed_index) -> Corpus:
    return Corpus.empty().with_articles(seed_index._state.corpus.articles)


def _vectors(index: Index, corpus: Corpus, recipe: str) -> tuple[np.ndarray, np.ndarray]:
    return stored_vectors(corpus, recipe, index.encoder.encode(texts_to_encode(corpus, recipe)))


def test_fast_title_slot_cosine_is_three_dot_products(seed_index, seed_corpus: Corpus) -> None:
    sentence, slots = _vectors(seed_index, seed_corpus, "fast")
    titles = seed_index.encoder.encode(seed_corpus.title_texts())[seed_corpus.table[:, ARTICLE]]
    q = seed_index.encoder.encode([QUESTION])[0]
    d = sentence.shape[1]
    expected = (sentence @ q + titles @ q) / np.sqrt(2 + 2 * np.einsum("ij,ij->i", sentence, titles))
    np.testing.assert_allclose(slots[:, :d] @ q, expected, atol=1e-5)


@pytest.mark.parametrize("recipe", ["titled", "fast"])
def test_derived_context_slot_is_the_rankings_neighbour_mean(seed_index, seed_corpus: Corpus, recipe: str) -> None:
    sentence, slots = _vectors(seed_index, seed_corpus, recipe)
    previous, following = seed_corpus.neighbours
    assert ((previous >= 0) | (following >= 0)).any() and ((previous < 0) | (following < 0)).any()
    q = seed_index.encoder.encode([QUESTION])[0]
    state = seed_index._state
    ids = np.arange(len(sentence))
    mean = _paragraph_features(state, ids, q)[1]  # read from the stored vectors, not the flat shortcut
    np.testing.assert_allclose(slots[:, sentence.shape[1]:] @ q, mean, atol=1e-5)


def test_titled_keeps_the_encoded_title_slot_and_every_recipe_the_sentence_vectors(seed_index, seed_corpus: Corpus) -> None:
    full = _vectors(seed_index, seed_corpus, "full")
    titled = _vectors(seed_index, seed_corpus, "titled")
    fast = _vectors(seed_index, seed_corpus, "fast")
    d = full[0].shape[1]
    np.testing.assert_array_equal(full[0], titled[0])
    np.testing.assert_array_equal(full[0], fast[0])
    np.testing.assert_array_equal(full[1][:, :d], titled[1][:, :d])
    assert not np.allclose(full[1][:, d:], titled[1][:, d:])  # the context slot is derived, not encoded
    count = len(seed_corpus)
    assert len(texts_to_encode(seed_corpus, "full")) == 3 * count
    assert len(texts_to_encode(seed_corpus, "titled")) == 2 * count
    assert len(texts_to_encode(seed_corpus, "fast")) == count + len(seed_corpus.articles)


def _stored_slots(index: Index, article_id: str) -> np.ndarray:
    state = index._state
    position, row = state.find_article(article_id)
    offset = int(state.offsets[position])
    ids = state.segments[position].data.corpus.sentence_ids(row) + offset
    return np.asarray(state.title_context_embeddings[ids], dtype=np.float32)


def _robots_index(tmp_path: Path, recipe: str) -> Index:
    """An index of one small article at `tmp_path/index`, built with `recipe`."""
    source = tmp_path / "articles"
    source.mkdir()
    write_article(source, "robots", "Robots in China", "China installed 290,300 industrial robots in 2022.\n\n"
                  "That was 7.4 times the number installed in the US. Most went to car plants.")
    return Index.build(source, tmp_path / "index", recipe=recipe)


def test_an_index_records_its_recipe_and_every_add_follows_it(tmp_path: Path) -> None:
    index = _robots_index(tmp_path, "fast")
    assert index.manifest["recipe"] == "fast"
    added = write_article(tmp_path, "tea", "Tea harvest", "The spring tea harvest in Fujian began early. "
                          "Growers blamed a warm March.\n\nPrices rose by a fifth.")
    Index.load(tmp_path / "index").add(added)
    reloaded = Index.load(tmp_path / "index")
    assert reloaded.recipe == "fast" and reloaded.manifest["recipe"] == "fast"
    corpus = Corpus.empty().with_articles([reloaded.article("tea")])
    expected = _vectors(reloaded, corpus, "fast")[1]
    np.testing.assert_allclose(_stored_slots(reloaded, "tea"), expected, atol=1e-6)
    assert not np.allclose(_stored_slots(reloaded, "tea"), _vectors(reloaded, corpus, "full")[1], atol=1e-3)


def test_a_commit_point_naming_no_recipe_was_built_with_the_full_one(tmp_path: Path) -> None:
    _robots_index(tmp_path, "full")
    manifest_file = tmp_path / "index" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest["recipe"]  # as every index written before recipes existed
    manifest_file.write_text(json.dumps(manifest))
    index = Index.load(tmp_path / "index")
    assert index.recipe == "full"
    index.add(write_article(tmp_path, "tea", "Tea harvest", "The spring tea harvest in Fujian began early.\n\n"
                            "Prices rose by a fifth."))
    reloaded = Index.load(tmp_path / "index")
    assert reloaded.manifest["recipe"] == "full"
    corpus = Corpus.empty().with_articles([reloaded.article("tea")])
    np.testing.assert_allclose(_stored_slots(reloaded, "tea"), _vectors(reloaded, corpus, "full")[1], atol=1e-6)


def test_an_unknown_recipe_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose one of: full, titled, fast"):
        Index.build(tmp_path, tmp_path / "index", recipe="quick")
    assert not (tmp_path / "index").exists()


def test_an_index_naming_a_recipe_this_qa_does_not_know_is_refused_with_the_fix(tmp_path: Path) -> None:
    from qa.errors import IndexFormatError

    _robots_index(tmp_path, "titled")
    manifest_file = tmp_path / "index" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["recipe"] = "late"  # a later qa's, say
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="recipe 'late', which this qa does not know.*qa build --index"):
        Index.load(tmp_path / "index")
