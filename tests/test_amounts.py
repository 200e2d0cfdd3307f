"""Amount questions prefer sentences that state an amount (issue 12, part 4: the Orlin dam page)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from qa import Index
from qa.cues import CueTable, asks_amount, asks_money, cue_features, holds_money

ARTICLES = Path(__file__).parent / "data" / "followups" / "articles"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    source = tmp_path_factory.mktemp("amounts") / "articles"
    shutil.copytree(ARTICLES, source)
    return Index.build(source, tmp_path_factory.mktemp("amounts-index") / "index")


def test_cost_question_quotes_the_cost_sentence(index: Index) -> None:
    # The HTML page's completion sentence names the dam and a year; the cost sentence only says "the project".
    result = index.answer("How much did the Orlin dam cost?")
    assert not result.abstained
    assert result.citations[0].sentence == "The project cost 2.1 billion euros."
    assert result.citations[0].article_id == "orlin-dam"


def test_question_about_what_the_article_never_says_abstains(index: Index) -> None:
    result = index.answer("Who wrote the Orlin dam article?")
    assert result.abstained, f"cited {result.citations[:1]}"
    assert result.related


def test_amount_questions_and_money_sentences_are_told_apart() -> None:
    assert asks_money("How much did the Orlin dam cost?") and asks_money("What was the price of a ticket?")
    assert asks_amount("How much of the water is lost?") and not asks_money("How much of the water is lost?")
    assert not asks_amount("Who paid for the dam?") and not asks_amount("What happened to the budget?")
    assert holds_money("The project cost 2.1 billion euros.") and holds_money("Ads cost $5 million.")
    assert not holds_money("The wall holds 1.3 billion cubic metres.") and not holds_money("It opened in 2024.")


def test_years_and_count_words_are_no_amount() -> None:
    sentences = ["The dam was completed in March 2024, six years after work began.", "The project cost 2.1 billion euros."]
    question = "How much did the Orlin dam cost?"
    features = cue_features(question, sentences)
    assert features[:, 0].tolist() == [0.0, 1.0]
    table = CueTable.empty().extend(sentences)
    np.testing.assert_array_equal(table.features(question, np.arange(2)), features)
    # A "how many" question still counts every number.
    assert cue_features("How many years did the work take?", sentences)[:, 0].tolist() == [1.0, 1.0]
