"""The answer confidence (qa/confidence.py): its features on the seed index, and its weights are the measured ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa import confidence

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "confidence.json"


def test_names_skip_sentence_starts_and_function_words() -> None:
    assert confidence.question_names("Who won the 2018 FIFA World Cup?") == ["fifa", "world", "cup"]
    assert confidence.question_names("What share did China hold? What about the United States?") == [
        "china", "united", "states"]
    assert confidence.question_names('"Why" did Tesla go?') == ["tesla"]


def test_content_terms_drop_function_words_and_possessives() -> None:
    assert confidence.content_terms("Which report measured China's share of LLMs?") == {
        "report", "measur", "china", "share", "llms"}
    assert confidence.content_terms("世界人工智能") >= {"人工", "智能"}  # CJK: character n-grams, as BM25 reads them


def test_features_tell_an_answered_question_from_an_unrelated_one(seed_index) -> None:
    corpus = seed_index._state.corpus
    query, hits = seed_index.search("How many industrial robots were installed in China in 2022?")
    answered = dict(zip(confidence.FEATURES, confidence.features(query, hits, corpus)))
    query, hits = seed_index.search("Who won the 2018 FIFA World Cup?")
    unrelated = dict(zip(confidence.FEATURES, confidence.features(query, hits, corpus)))
    assert answered["coverage"] == 1.0 and answered["names_absent"] == 0
    assert unrelated["coverage"] == 0.0 and unrelated["names_absent"] == 3  # FIFA, World, Cup
    assert confidence.score(answered.values()) > seed_index.settings.abstain_threshold > confidence.score(unrelated.values())
    assert confidence.confidence("anything", [], corpus) == confidence.NO_HITS


def test_a_top_hit_the_turn_rules_marked_forces_no_hits_whatever_the_score(seed_index) -> None:
    corpus = seed_index._state.corpus
    query, hits = seed_index.search("How many industrial robots were installed in China in 2022?")
    assert confidence.confidence(query, hits, corpus) > seed_index.settings.abstain_threshold
    marked = [hits[0]._replace(confidence=confidence.NO_HITS), *hits[1:]]  # as qa.turns marks it
    assert confidence.confidence(query, marked, corpus) == confidence.NO_HITS


@pytest.mark.skipif(not RESULTS.is_file(), reason="bench/results/confidence.json not written yet")
def test_weights_and_threshold_are_the_ones_bench_confidence_fitted() -> None:
    from qa.config import Settings

    (engine,) = [row for row in json.loads(RESULTS.read_text(encoding="utf-8"))["levers"] if "seed_constrained" in row]
    model = engine["model"]
    assert tuple(model["columns"]) == confidence.FEATURES
    assert tuple(model["means"]) == confidence.MEANS and tuple(model["scales"]) == confidence.SCALES
    assert tuple(model["weights"]) == confidence.WEIGHTS and model["intercept"] == confidence.INTERCEPT
    assert engine["seed_constrained"]["threshold"] == Settings().abstain_threshold
