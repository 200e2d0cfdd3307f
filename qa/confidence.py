"""How sure the engine is that the articles answer a question: a calibrated logistic score.

The ranking's own confidence (`Hit.confidence`, the pool-independent part of the fused score)
says how well the best sentence matches; it cannot tell "the right article, a weak match" from
"a plausible sentence of an article about something else". Five features of the top hit against
the rest and against its article do (measured by `python -m bench.confidence`, docs/quality.md,
"Confidence"):

    hit          `Hit.confidence` of the top hit
    dense_max    the best question-sentence cosine among all candidates
    coverage     share of the question's content terms found in the top hit's paragraph
    margin       fused score of the top hit minus the second's
    names_absent capitalised question words (names) that its article never uses

The score is the log-odds that the question is answered by the indexed articles: a logistic
regression fitted on the SQuAD dev tuning half only (12 of its articles indexed, the other 12's
questions out of corpus). Features are standardised with the fitted means and deviations.
"""

from __future__ import annotations

import functools
import operator
import re
from typing import Any, Sequence

from qa.corpus import ARTICLE, END, START, Corpus
from qa.lexical import tokenize
from qa.ranking import Hit

FEATURES = ("hit", "dense_max", "coverage", "margin", "names_absent")
# Fitted by `python -m bench.confidence` (bench/results/confidence.json): per feature, the mean
# and standard deviation it is standardised with, and its weight; then the intercept.
MEANS = (5.3726, 0.5457, 0.5315, 1.4903, 0.5191)
SCALES = (2.2904, 0.1691, 0.2891, 1.6636, 0.8676)
WEIGHTS = (2.135, 1.705, 1.875, 0.839, -2.025)
INTERCEPT = 0.047
SINGLE_HIT_MARGIN = 5.0  # a lone candidate has no runner-up: count it as a clear winner
NO_HITS = -99.0  # nothing ranked (an empty index): a finite floor, so answers stay valid JSON

# Function words and question words carry no topic: "What did the US hold?" is about "US hold".
_QUESTION_WORDS = "what which who whom whose when where why how many much did does do is are was were about".split()
_CAPITALISED = re.compile(r"\b[A-Z]\w*")
_TERM = re.compile(r"[^\W_]{2,}|\d")  # words of 2+ letters or digits: the "s" of "China's" says nothing
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_WORD = re.compile(r"\w+")
_DENSE = operator.attrgetter("dense")


@functools.lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer  # PyStemmer: the Snowball stemmer BM25 uses

    return Stemmer.Stemmer("english")


@functools.lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset([*STOPWORDS_EN, *_QUESTION_WORDS])


@functools.lru_cache(maxsize=1)
def _stop_terms() -> frozenset[str]:
    return frozenset(_stemmer().stemWords(list(_stop_words())))


def content_terms(text: str) -> frozenset[str]:
    """The distinct stemmed words and numbers of `text` without function and question words.

    Each distinct word is stemmed once (a paragraph is read in ~50 us, 10x faster than the
    BM25 tokeniser); CJK text goes through the BM25 tokeniser for its character n-grams.
    """
    if _CJK.search(text):
        return frozenset(tokenize(text)) - _stop_terms()
    return frozenset(_stemmer().stemWords(list(set(_TERM.findall(text.lower()))))) - _stop_terms()


@functools.lru_cache(maxsize=512)
def _article_words(text: str) -> frozenset[str]:
    # Keyed by the article text (its hash is cached on the string): an article is read once.
    return frozenset(_WORD.findall(text.lower()))


def question_names(question: str) -> list[str]:
    """The question's capitalised words, lower-cased, except where a sentence starts and function words."""
    names = [m for m in _CAPITALISED.finditer(question) if question[: m.start()].rstrip()[-1:] not in ("", ".", "?", "!")]
    stop = _stop_words()
    return [n for n in (m.group().lower() for m in names) if n not in stop]


def paragraph_text(corpus: Corpus, sentence_id: int) -> str:
    """The text of the paragraph a sentence is in, from its first sentence to its last."""
    starts, ends = corpus.paragraph_bounds
    first, last = int(starts[sentence_id]), int(ends[sentence_id]) - 1
    table = corpus.table
    return corpus.articles[int(table[sentence_id, ARTICLE])].text[int(table[first, START]) : int(table[last, END])]


def features(query: str, hits: Sequence[Hit], corpus: Corpus) -> tuple[float, ...]:
    """The FEATURES of a question's ranked hits (best first; at least one)."""
    top = hits[0]
    asked = content_terms(query)
    coverage = len(asked & content_terms(paragraph_text(corpus, top.sentence_id))) / len(asked) if asked else 0.0
    margin = top.score - hits[1].score if len(hits) > 1 else SINGLE_HIT_MARGIN
    words = _article_words(corpus.article_of(top.sentence_id).text)
    absent = sum(name not in words for name in question_names(query))
    return (top.confidence, max(map(_DENSE, hits)), coverage, margin, float(absent))


def score(values: Sequence[float]) -> float:
    """The log-odds that the articles answer the question, from its FEATURES values."""
    return INTERCEPT + sum(w * (v - m) / s for v, m, s, w in zip(values, MEANS, SCALES, WEIGHTS))


def confidence(query: str, hits: Sequence[Hit], corpus: Corpus) -> float:
    """The answer's confidence (log-odds; compared with `Settings.abstain_threshold`): NO_HITS
    without hits, and when the turn rules (qa.turns) marked the top hit NO_HITS as unable to
    answer; the fitted score otherwise (those rows are left out of its fit)."""
    if not hits or hits[0].confidence <= NO_HITS:
        return NO_HITS
    return score(features(query, hits, corpus))
