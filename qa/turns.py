"""One chat turn: what to search for, and which of the sentences found can answer it.

The ranker scores how close a sentence is to the searched text; this module checks that the
sentence fits what the turn itself asks:

- A follow-up ("And in the US?") is searched joined with the previous turn, which supplies the
  topic. The earlier turn's words can carry a confident answer whatever the new turn says
  ("What about Brazil?" would get the China sentence back), so each of the turn's own content
  terms ("US", "United States", "Orlin dam") must be in the cited sentence or in its article's
  title (the title names what every sentence of its article is about); sentences that miss one
  cannot answer the turn. When no such sentence is confident after the joined search, the turn is
  searched alone, as a fresh question: a turn that names another article's subject is answered
  from that article. Otherwise the answer abstains.
- A fresh question whose own words beyond its subject ("Who *wrote* the Orlin dam *article*?")
  appear nowhere in the top sentence's article is not answered by it: the article is about the
  subject but says nothing of what is asked (docs/quality.md).
- An amount-of-money question prefers sentences stating money (`qa.cues.MONEY_PREFERENCE`).
"""

from __future__ import annotations

import functools
import re
from typing import Callable, Sequence

from qa import cues, questions, synonyms
from qa.answering import assess
from qa.confidence import NO_HITS
from qa.config import Settings
from qa.corpus import Corpus
from qa.lexical import tokenize
from qa.ranking import Hit

Ranker = Callable[[str], list[Hit]]
_ACRONYM = re.compile(r"\b[A-Z](?:\.?[A-Z&])+s?\b\.?")  # US, U.S., R&D, LLMs
_WORD = re.compile(r"[^\W\d_]+")
_LINKING = frozenset({"of", "and", "the", "for", "&"})  # skipped by initials: "Bank of England" -> BE
_LONGEST_INITIALISM = 6
# A fresh question with at least this many words (beyond its subject) that the top sentence's
# article never uses is not answered from it (one word is often a paraphrase: docs/quality.md).
MIN_UNSEEN_WORDS = 2


def _acronym_key(acronym: str) -> str:
    """'U.S.' -> 'US', 'LLMs' -> 'LLM': the letters an initialism is compared by."""
    letters = acronym.replace(".", "")
    return letters[:-1] if len(letters) > 2 and letters.endswith("s") else letters


def _initials(words: Sequence[str]) -> str:
    return "".join(w[0] for w in words if w.lower() not in _LINKING).upper()


class Vocabulary:
    """What `mentions` reads of a text: its stems, its acronyms, and each word's initial ("" for a
    linking word), from which the initials of any run of words follow. Each is made when first
    read: most checks need the stems alone (an unseen 1M-corpus article: 0.86 -> 0.3 ms)."""

    def __init__(self, text: str) -> None:
        self.text = text

    @functools.cached_property
    def stems(self) -> frozenset[str]:
        return frozenset(tokenize(self.text))

    @functools.cached_property
    def acronyms(self) -> frozenset[str]:
        return frozenset(_acronym_key(a.group()) for a in _ACRONYM.finditer(self.text))

    @functools.cached_property
    def initials(self) -> tuple[str, ...]:
        return tuple("" if w.lower() in _LINKING else w[0].upper() for w in _WORD.findall(self.text))

    def spells_out(self, key: str) -> bool:
        """Is `key` the initials of a run of 2 to 6 words ("US" of "the United States")?

        Checked for one key by walking from each word whose initial starts it, not by listing
        every run's initials: an article of 10,000 words would make 50,000 strings a question.
        A one-word match counts when a linking word beside it makes the run two words long.
        """
        if key != key.upper():  # initials are upper-cased: a key with a lower-case letter is none
            return False
        initials = self.initials
        for first, initial in enumerate(initials):
            if not initial or not key.startswith(initial):
                continue
            spelled, last = initial, first
            while spelled != key and last + 1 < min(first + _LONGEST_INITIALISM, len(initials)):
                last += 1
                spelled += initials[last]
                if not key.startswith(spelled):
                    break
            if spelled != key:
                continue
            if last > first or _linking_beside(initials, first):
                return True
        return False


def _linking_beside(initials: tuple[str, ...], position: int) -> bool:
    return any(0 <= p < len(initials) and not initials[p] for p in (position - 1, position + 1))


def _vocabulary(text: str) -> Vocabulary:
    """The stems of `text`, its acronyms, and the initial of each of its words (as read)."""
    return Vocabulary(text)


# Sentences are many and short, articles few and long: separate caches keep memory bounded.
_sentence_vocabulary = functools.lru_cache(maxsize=4096)(_vocabulary)
_article_vocabulary = functools.lru_cache(maxsize=64)(_vocabulary)


def mentions(vocabulary: Vocabulary, term: Sequence[str]) -> bool:
    """Does a text (its `_vocabulary`) mention `term`: all its words (stemmed, or a synonym from
    `qa.synonyms` for one), or it as an acronym ("United States" in a text saying "US"), or its
    spelled-out words ("US" in "the United States")?"""
    if synonyms.covered(tokenize(" ".join(term)), vocabulary.stems):  # "start" in a text saying "Beginning"
        return True
    if len(term) > 1 and _initials(term) in vocabulary.acronyms:
        return True
    return len(term) == 1 and vocabulary.spells_out(_acronym_key(term[0].rstrip(".")))


def supported(hits: Sequence[Hit], terms: Sequence[tuple[str, ...]], corpus: Corpus) -> list[bool]:
    """For each hit: does its sentence, read with its article's title, mention every term?"""
    return [
        all(mentions(_sentence_vocabulary(f"{corpus.article_of(h.sentence_id).title}\n{corpus.sentence(h.sentence_id)}"), t)
            for t in terms)
        for h in hits
    ]


def _fitting(query: str, hits: list[Hit], terms: Sequence[tuple[str, ...]], corpus: Corpus,
             settings: Settings) -> tuple[list[Hit], list[Hit], bool]:
    """The hits that mention every term, the others, and whether the first answer the turn (`assess`)."""
    flags = supported(hits, terms, corpus)
    fit = [h for h, ok in zip(hits, flags) if ok]
    unfit = [h for h, ok in zip(hits, flags) if not ok]
    return fit, unfit, bool(fit) and not assess(query, fit, corpus, settings)[1]


def _follow_up(question: str, joined: str, ranked: Ranker, corpus: Corpus,
               settings: Settings) -> tuple[str, list[Hit]]:
    hits = ranked(joined)
    terms = questions.own_terms(question)
    if not terms:  # the turn leaves everything open ("Why?")
        return joined, hits
    fit, unfit, answers = _fitting(joined, hits, terms, corpus, settings)
    if answers:
        return joined, fit
    # The earlier topic does not fit the turn: search the turn alone, as a fresh question.
    alone_fit, _, alone_answers = _fitting(question, ranked(question), terms, corpus, settings)
    if alone_answers:
        return question, alone_fit
    # Nothing answers the turn: the closest passages are shown as related, none can be quoted.
    return joined, [h._replace(confidence=NO_HITS) for h in fit + unfit]


def outside_article(question: str, hit: Hit, corpus: Corpus) -> bool:
    """True when the question asks about words its top sentence's article never uses (beyond its title)."""
    article = corpus.article_of(hit.sentence_id)
    title = set(tokenize(article.title))
    asked = {word for term in questions.own_terms(question) for word in term if not set(tokenize(word)) <= title}
    if len(asked) < MIN_UNSEEN_WORDS:
        return False
    # The sentence is part of its article: a word it mentions settles the question without
    # reading the whole article (an unseen article of a large corpus: ~0.7 ms).
    sentence = _sentence_vocabulary(corpus.sentence(hit.sentence_id))
    if any(mentions(sentence, (word,)) for word in asked):
        return False
    vocabulary = _article_vocabulary(article.text)
    return not any(mentions(vocabulary, (word,)) for word in asked)


def prefer_money(question: str, hits: list[Hit], corpus: Corpus) -> list[Hit]:
    """For a money question, hits stating money move up by `MONEY_PREFERENCE` (confidence unchanged)."""
    if not hits or not cues.asks_money(question):
        return hits
    texts = corpus.sentences([h.sentence_id for h in hits])
    moved = [h._replace(score=h.score + cues.MONEY_PREFERENCE) if cues.holds_money(t) else h for h, t in zip(hits, texts)]
    return sorted(moved, key=lambda h: (-h.score, h.sentence_id))


def search(question: str, history: Sequence[str] | None, rank: Ranker, corpus: Corpus,
           settings: Settings) -> tuple[str, list[Hit]]:
    """The text searched and its hits, best first, for a validated question and its chat history.

    `rank(text)` is the engine's ranking of every candidate sentence for `text`. A hit that cannot
    answer the turn gets confidence `NO_HITS`, so the answer abstains and shows it as related.
    """

    def ranked(text: str) -> list[Hit]:
        return prefer_money(text, rank(text), corpus)

    joined = questions.resolve(question, history)
    if joined != question:
        return _follow_up(question, joined, ranked, corpus, settings)
    hits = ranked(question)
    if hits and outside_article(question, hits[0], corpus):
        hits = [hits[0]._replace(confidence=NO_HITS), *hits[1:]]
    return question, hits


def searched_texts(question: str, history: Sequence[str] | None) -> list[str]:
    """Every text `search` may rank for this turn: the resolved text, then, for a follow-up, the
    turn alone (searched when the earlier topic does not fit it). A sharded engine asks for them at once."""
    joined = questions.resolve(question, history)
    return [joined] if joined == question else [joined, question]
