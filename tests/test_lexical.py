"""The incremental BM25 index: same scores as bm25s, and add/remove equal to a fresh build.

bm25s is the oracle: it indexes a whole corpus at once, which is what our index must agree
with after any sequence of appends and removals.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from qa.acronyms import acronym_expander, find_definitions
from qa.articles import parse_article
from qa.corpus import Corpus
from qa import bm25
from qa.bm25 import LexicalIndex
from qa.lexical import tokenize

from conftest import SEEDS

QUESTIONS = [
    "How many industrial robots were installed in China in 2022?",
    "Why could OpenAI's block help domestic LLM developers train their models?",
    "Which company blocked its API?",
    "When did the Normans conquer England in 1066?",
    "the the the of",  # repeated and very common terms
    "zebra quantum",  # not indexed at all
]

OTHER_ARTICLES = {
    "normans": "The Normans\n\nThe Normans conquered England in 1066. William led them.\n\n"
    "Their language was Norman French. It shaped English law (EL) and the courts.",
    "robots": "Robots in factories\n\nChina installed 290,300 industrial robots in 2022. "
    "Japan installed fewer.\n\nThe International Federation of Robotics (IFR) counts them. IFR data is yearly.",
    "short": "A note\n\nOne sentence only.",
}


def _corpus(names: list[str]) -> Corpus:
    articles = [parse_article(p.read_text(encoding="utf-8"), name=p.stem) for p in sorted(SEEDS.glob("*.txt"))]
    articles += [parse_article(OTHER_ARTICLES[n], name=n) for n in names]
    return Corpus.from_articles(articles)


def _bm25s(texts: list[str]):
    bm25s = pytest.importorskip("bm25s")
    retriever = bm25s.BM25(k1=0.5, b=0.35)
    retriever.index([tokenize(t) or ["\u2205"] for t in texts], show_progress=False)
    return retriever


def _oracle_scores(retriever, query: str, size: int) -> np.ndarray:
    ids = retriever.get_tokens_ids(tokenize(query))
    return np.asarray(retriever.get_scores_from_ids(ids)) if ids else np.zeros(size)


def _context_texts(corpus: Corpus) -> list[str]:
    return corpus.embedding_texts()[2]


# The postings of a question's terms are gathered once when few (one bisection of them all);
# otherwise candidates are looked up through their own postings (`sentence_postings`). Both must
# give the same scores.
LOOKUPS = pytest.mark.parametrize("gather_all", [100_000, 0], ids=["gathered", "by-sentence"])


@LOOKUPS
def test_scores_equal_bm25s_for_sentences_and_their_contexts(gather_all: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bm25, "FULL_SCAN_POSTINGS", gather_all)
    corpus = _corpus(["normans", "robots"])
    lexical = LexicalIndex.build(corpus.lexical_texts(), corpus.neighbours)
    sentences, contexts = _bm25s(corpus.lexical_texts()), _bm25s(_context_texts(corpus))
    every = np.arange(len(corpus))
    for question in QUESTIONS:
        np.testing.assert_allclose(lexical.scores(question), _oracle_scores(sentences, question, len(corpus)), atol=1e-5)
        expected = _oracle_scores(contexts, question, len(corpus))
        np.testing.assert_allclose(lexical.context_scores(question, every, corpus.neighbours), expected, atol=1e-5)
    assert lexical.scores("How many industrial robots were installed in China in 2022?").max() > 0


@LOOKUPS
def test_every_sentences_scores_at_once_equal_the_candidates_to_the_bit(gather_all: int,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`every_candidate_score` (taken beside the encode) stands in for `candidate_scores`, so the
    ranking it feeds must not move by one bit, under the index's own statistics or a corpus's."""
    monkeypatch.setattr(bm25, "FULL_SCAN_POSTINGS", gather_all)
    corpus = _corpus(["normans", "robots", "short"])
    lexical = LexicalIndex.build(corpus.lexical_texts(), corpus.neighbours)
    every = np.arange(len(corpus))
    contexts = _bm25s(_context_texts(corpus))
    for question in QUESTIONS:
        stats = bm25.Statistics(len(corpus) + 5, lexical.mean_length * 1.3, lexical.context_length / len(corpus),
                                {t: 0.7 for t in tokenize(question)}, {t: 1.1 for t in tokenize(question)})
        for given in (None, stats):
            sentence, context = lexical.every_candidate_score(question, corpus.neighbours, given)
            expected = lexical.candidate_scores(question, every, corpus.neighbours, given)
            assert sentence.dtype == context.dtype == np.float32
            np.testing.assert_array_equal(sentence, expected[0])
            np.testing.assert_array_equal(context, expected[1])
        np.testing.assert_allclose(lexical.every_candidate_score(question, corpus.neighbours)[1],
                                   _oracle_scores(contexts, question, len(corpus)), atol=1e-5)
    assert lexical.every_candidate_score("How many industrial robots?", corpus.neighbours)[1].max() > 0
    assert LexicalIndex.empty().every_candidate_score("anything", (np.zeros(0), np.zeros(0)))[0].shape == (0,)


def test_extend_then_remove_equals_a_fresh_build() -> None:
    first, full = _corpus(["normans"]), _corpus(["normans", "robots", "short"])
    grown = LexicalIndex.build(first.lexical_texts(), first.neighbours).extend(
        full.lexical_texts(start=len(first)), full.neighbours
    )
    fresh = LexicalIndex.build(full.lexical_texts(), full.neighbours)
    assert sorted(grown.terms) == sorted(fresh.terms) and grown.context_length == fresh.context_length

    shrunk_corpus, keep = full.without_article(1)  # the Normans: its rows sit in the middle
    shrunk = grown.without(keep, full.neighbours)
    rebuilt = LexicalIndex.build(shrunk_corpus.lexical_texts(), shrunk_corpus.neighbours)
    for question in QUESTIONS:
        np.testing.assert_allclose(grown.scores(question), fresh.scores(question), atol=1e-6)
        np.testing.assert_allclose(shrunk.scores(question), rebuilt.scores(question), atol=1e-6)
        every = np.arange(len(shrunk_corpus))
        np.testing.assert_allclose(
            shrunk.context_scores(question, every, shrunk_corpus.neighbours),
            rebuilt.context_scores(question, every, shrunk_corpus.neighbours),
            atol=1e-6,
        )
    assert shrunk.scores("When did the Normans conquer England in 1066?").max() < fresh.scores(
        "When did the Normans conquer England in 1066?"
    ).max()


def test_concatenate_equals_a_fresh_build_with_and_without_deleted_rows() -> None:
    first, full = _corpus(["normans"]), _corpus(["normans", "robots", "short"])
    second = Corpus.from_articles(list(full.articles[len(first.articles):]))
    parts = [LexicalIndex.build(c.lexical_texts(), c.neighbours) for c in (first, second)]
    fresh = LexicalIndex.build(full.lexical_texts(), full.neighbours)
    every_row = [(part, np.ones(part.size, dtype=bool)) for part in parts]
    joined = LexicalIndex.concatenate(every_row, full.neighbours)  # context frequencies summed
    shrunk_corpus, keep = full.without_article(1)  # the Normans: the last article of the first part
    merged = LexicalIndex.concatenate([(parts[0], keep[: parts[0].size]), every_row[1]], shrunk_corpus.neighbours)
    rebuilt = LexicalIndex.build(shrunk_corpus.lexical_texts(), shrunk_corpus.neighbours)
    for made, expected in ((joined, fresh), (merged, rebuilt)):
        assert made.context_length == expected.context_length
        by_term = dict(zip(expected.terms, expected.context_df.tolist()))
        assert {t: by_term.get(t, 0) for t in made.terms} == dict(zip(made.terms, made.context_df.tolist()))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    corpus = _corpus(["robots"])
    lexical = LexicalIndex.build(corpus.lexical_texts(), corpus.neighbours)
    lexical.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path, len(corpus))
    for question in QUESTIONS:
        np.testing.assert_array_equal(loaded.scores(question), lexical.scores(question))
    with pytest.raises(ValueError, match="manifest"):
        LexicalIndex.load(tmp_path, len(corpus) + 1)


def test_empty_index_scores_nothing() -> None:
    empty = LexicalIndex.empty()
    assert empty.scores("anything").shape == (0,)
    assert empty.context_scores("anything", np.zeros(0, dtype=np.int64), (np.zeros(0), np.zeros(0))).shape == (0,)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("China installed 290,300 robots in 2022", ["china", "instal", "290300", "robot", "in", "2022"]),
        ("OpenAI’s API don't", ["openai", "api", "don't"]),  # curly apostrophe read as straight
        ("x² is 10.5% ²", ["x²", "is", "10.5", "²"]),  # a lone "²" counts as a number
        ("成吉思汗 Khan", ["khan", "成", "吉", "思", "汗", "成吉", "吉思", "思汗"]),
    ],
)
def test_tokenize(text: str, expected: list[str]) -> None:
    assert Counter(tokenize(text)) == Counter(expected)


def test_acronyms_found_from_the_bracket_back() -> None:
    text = (
        "Large language models (LLMs) power chatbots. The Federal Bureau of Investigation (FBI) said so. "
        "9abc Deutsche Bank (DB) too. Prices rose (ABC). Too many words before (XYZ) here."
    )
    assert find_definitions(text) == {"LLM": "Large language models", "FBI": "Federal Bureau of Investigation",
                                      "DB": "Deutsche Bank"}
    expand = acronym_expander(text)
    assert expand("LLMs and the FBI") == "LLMs (Large language models) and the FBI (Federal Bureau of Investigation)"
    assert expand("the FBI (again)") == "the FBI (again)"  # already bracketed: left alone


@pytest.mark.parametrize(
    "gather_all, seed, dense_share, path",
    [
        (100_000, 20_000, 0.25, "gather"),  # few postings: every holder of a query term is scored
        (10, 5, 100.0, "maxscore"),  # a floor from the rarest term, then only essential postings
        (10, 100_000, 100.0, "maxscore"),  # the floor from every term's holders
        (10, 5, 0.0, "dense"),  # too many essential postings: every sentence is scored
    ],
)
def test_top_k_and_scores_of_equal_scoring_everything(
    gather_all: int, seed: int, dense_share: float, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bm25, "FULL_SCAN_POSTINGS", gather_all)
    monkeypatch.setattr(bm25, "SEED_POSTINGS", seed)
    monkeypatch.setattr(bm25, "DENSE_SHARE", dense_share)
    corpus = _corpus(["normans", "robots", "short"])
    lexical = LexicalIndex.build(corpus.lexical_texts(), corpus.neighbours)
    dense_passes, gathered = [], []  # per top(): the query's terms, and how many each postings gather read
    score_query, holders = lexical._scores, lexical._holders

    def score_everything(question: str) -> np.ndarray:
        return score_query(lexical._query(question))

    monkeypatch.setattr(lexical, "_scores", lambda q: dense_passes.append(q.text) or score_query(q))
    monkeypatch.setattr(lexical, "_holders", lambda q, which: gathered.append(len(which)) or holders(q, which))
    some = np.array([0, 3, 5, len(corpus) - 1])
    pruned = 0
    for question in QUESTIONS:
        every = score_everything(question)
        np.testing.assert_allclose(lexical.scores_of(question, some), every[some], atol=1e-6)
        asked = len(lexical._query(question).terms)
        for k in (1, 3, 10):
            gathered.clear()
            ids, scores = lexical.top(question, k)
            # Best k positive scores, ties to the lower id: the same set a sort of everything gives.
            expected = [i for i in sorted(range(len(corpus)), key=lambda i: (-every[i], i)) if every[i] > 0][:k]
            assert ids.tolist() == sorted(expected), question
            np.testing.assert_allclose(scores, every[ids], atol=1e-6)
            pruned += bool(gathered) and path == "maxscore" and gathered[-1] < asked
    if path == "dense":
        assert len(dense_passes) == 3 * sum(1 for q in QUESTIONS if lexical._query(q).terms.size)
    else:
        assert not dense_passes
    if path == "maxscore":
        assert pruned > 0  # some query's optional terms were never gathered


@LOOKUPS
def test_candidate_scores_hold_the_sentence_scores(gather_all: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bm25, "FULL_SCAN_POSTINGS", gather_all)
    corpus = _corpus(["normans", "robots"])
    lexical = LexicalIndex.build(corpus.lexical_texts(), corpus.neighbours)
    ids = np.array([1, 2, len(corpus) - 2])
    for question in QUESTIONS:
        sentence, context = lexical.candidate_scores(question, ids, corpus.neighbours)
        np.testing.assert_allclose(sentence, lexical.scores(question)[ids], atol=1e-6)
        # The context side is checked against bm25s in test_scores_equal_bm25s_for_sentences_and_their_contexts.
        assert context.shape == sentence.shape
