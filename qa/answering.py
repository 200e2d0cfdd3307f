"""Answers: pick the best sentences from ranked hits, drop repeats, cite each, or abstain."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from qa.confidence import confidence as answer_confidence
from qa.config import Settings
from qa.corpus import END, POSITION, START, Corpus
from qa.ingest.pdf import page_of
from qa.ranking import Hit

ABSTAIN_MESSAGE = "The indexed articles do not answer this question."


@dataclass(frozen=True)
class Citation:
    """A quoted sentence and exactly where it is: `article text[start:end] == sentence`."""

    article_id: str
    title: str
    sentence: str
    start: int
    end: int
    score: float
    sentence_index: int = 0
    date: str | None = None
    source: str = ""
    page: int | None = None  # 1-based PDF page of the sentence's start; None for other formats


@dataclass(frozen=True)
class Answer:
    """What the engine says to a question.

    Attributes:
        question: the question as asked.
        text: the answer, quoted sentences each followed by its [n] marker, or the abstain message.
        citations: the quoted sentences, best first; empty when abstaining.
        abstained: True when the articles do not answer the question.
        confidence: log-odds that the articles answer the question (qa.confidence), compared with the abstain threshold.
        related: when abstaining, the closest passages (not an answer).
        query: the text actually searched (differs from the question for resolved follow-ups).
    """

    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    abstained: bool = False
    confidence: float = 0.0
    related: list[Citation] = field(default_factory=list)
    query: str = ""


def cite(corpus: Corpus, hit: Hit) -> Citation:
    """The citation of one ranked sentence."""
    row = corpus.table[hit.sentence_id]
    article = corpus.article_of(hit.sentence_id)
    return Citation(
        article_id=article.id,
        title=article.title,
        sentence=corpus.sentence(hit.sentence_id),
        start=int(row[START]),
        end=int(row[END]),
        score=round(hit.score, 4),
        sentence_index=int(row[POSITION]),
        date=article.date,
        source=article.source,
        page=page_of(article, int(row[START])),
    )


def _normalised(text: str) -> str:
    # Case, punctuation and quote style differ between re-publications of one wire story.
    return " ".join(re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", text).casefold()).split())


def select(
    hits: list[Hit], corpus: Corpus, embeddings: np.ndarray, *, limit: int, ratio: float, near_duplicate: float
) -> list[Hit]:
    """Up to `limit` hits: the best first, then runners-up within `ratio` of it that say something new."""
    chosen: list[Hit] = []
    seen_texts: set[str] = set()
    seen_exact: set[str] = set()  # verbatim copies (syndicated stories) are skipped before any other work
    for hit in hits:
        if len(chosen) >= limit or (chosen and hit.score < ratio * chosen[0].score):
            break
        exact = corpus.sentence(hit.sentence_id)
        if exact in seen_exact:
            continue
        seen_exact.add(exact)
        text = _normalised(exact)
        vector = embeddings[hit.sentence_id]
        repeats = text in seen_texts or any(
            float(vector @ embeddings[c.sentence_id]) >= near_duplicate for c in chosen
        )
        if not repeats:
            chosen.append(hit)
            seen_texts.add(text)
    return chosen


def assess(query: str, hits: list[Hit], corpus: Corpus, settings: Settings) -> tuple[float, bool]:
    """The answer's confidence (`qa.confidence`), and whether to abstain: the one decision `compose` and `qa eval` share.

    Args:
        query: the text that was searched (the resolved question).
        hits: its ranked hits, best first.
        corpus: the corpus the hits point into.
        settings: supplies `abstain_threshold`.
    """
    value = answer_confidence(query, hits, corpus)
    return value, value < settings.abstain_threshold


def compose(
    question: str,
    query: str,
    hits: list[Hit],
    corpus: Corpus,
    embeddings: np.ndarray,
    settings: Settings,
    max_citations: int | None = None,
) -> Answer:
    """Turn ranked hits into an Answer; abstain when the best is below the threshold."""
    confidence, abstained = assess(query, hits, corpus, settings)
    if abstained:
        nearest = select(hits, corpus, embeddings, limit=settings.related_count, ratio=0.0,
                         near_duplicate=settings.near_duplicate)
        related = [cite(corpus, h) for h in nearest]
        return Answer(question, ABSTAIN_MESSAGE, [], True, round(confidence, 4), related, query)
    chosen = select(hits, corpus, embeddings, limit=max_citations or settings.max_citations,
                    ratio=settings.support_ratio, near_duplicate=settings.near_duplicate)
    citations = [cite(corpus, h) for h in chosen]
    text = " ".join(f"{c.sentence} [{n}]" for n, c in enumerate(citations, start=1))
    return Answer(question, text, citations, False, round(confidence, 4), [], query)
