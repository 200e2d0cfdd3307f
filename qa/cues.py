"""Question-type cues: a "how many" question wants a sentence with a number it does not already hold.

Each cue is 1 when the question asks for that kind of answer and the sentence holds a token of
that kind that the question lacks, else 0. Worth +0.003 MRR / +0.005 R@1 on SQuAD dev
(bench/recipes.py): small, but it decides ties such as "What percentage did the US hold?".
"""

from __future__ import annotations

import functools
import re
from typing import Sequence

import numpy as np

_ASKS_NUMBER = re.compile(
    r"\bhow (many|much|long|far|old|large|big|tall|high|often|fast|wide|deep|heavy|few)\b"
    r"|\bwhat (percent|percentage|proportion|number|amount|fraction|share|population|size|temperature)\b"
    r"|\bpercent",
    re.IGNORECASE,
)
_ASKS_DATE = re.compile(
    r"\bwhen\b|\b(what|which|in what|in which) (year|years|date|day|month|century|decade|era|time period|period)\b"
    r"|\bwhat time\b",
    re.IGNORECASE,
)
_ASKS_PERSON = re.compile(r"\bwho(m|se)?\b", re.IGNORECASE)

_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty sixty "
    "seventy eighty ninety hundred hundreds thousand thousands million millions billion billions "
    "trillion dozen half percent"
).split()
_MONTHS = "january february march april may june july august september october november december".split()
# Number words and month names are a set lookup on the sentence's words rather than a regex
# alternation (3x faster; this runs for every candidate of every question).
_DIGITS = re.compile(r"\d[\d,.]*%?")
_NUMBER_WORD_SET = frozenset(_NUMBER_WORDS)
_DATE = re.compile(
    r"\b(?:1\d{3}|20\d{2}|\d{2,4}s|\d+(?:st|nd|rd|th) century|" + "|".join(_MONTHS)
    + r"|\d{1,2}(?:st|nd|rd|th)?|BC|AD|BCE|CE)\b",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")
_MONTH_SET = frozenset(_MONTHS)
_DATE_WORD_SET = _MONTH_SET | {"bc", "ad", "bce", "ce"}
_DAY_NUMBER = re.compile(r"\d{1,2}(?:st|nd|rd|th)?")
_WORD = re.compile(r"\w+")
_CAPITALISED = re.compile(r"\b[A-Z][\w'-]*")


# Extraction is a property of the sentence: cached, since the same candidates recur across questions.
_CACHED_SENTENCES = 50_000


def _words(sentence: str) -> set[str]:
    if sentence.isascii():  # lower-casing the whole sentence first is 2x faster, and the same in ASCII
        return set(_WORD.findall(sentence.lower()))
    return set(map(str.lower, _WORD.findall(sentence)))


@functools.lru_cache(maxsize=_CACHED_SENTENCES)
def _numbers(sentence: str) -> frozenset[str]:
    return frozenset({m.rstrip(".,").lower() for m in _DIGITS.findall(sentence)} | (_NUMBER_WORD_SET & _words(sentence)))


@functools.lru_cache(maxsize=_CACHED_SENTENCES)
def _dates(sentence: str) -> frozenset[str]:
    if _DIGIT.search(sentence):
        tokens = {m.group().lower() for m in _DATE.finditer(sentence)}
    else:  # only month and era words can match
        tokens = set(_DATE_WORD_SET & _words(sentence))
    if not tokens & _MONTH_SET:  # "7" is a date only next to a month
        tokens = {t for t in tokens if not _DAY_NUMBER.fullmatch(t)}
    return frozenset(tokens)


@functools.lru_cache(maxsize=_CACHED_SENTENCES)
def _names(sentence: str) -> frozenset[str]:
    capitalised = [m.group() for m in _CAPITALISED.finditer(sentence)]
    first = _WORD.match(sentence.lstrip("\"'([“‘"))
    if capitalised and first is not None and capitalised[0] == first.group():
        capitalised = capitalised[1:]  # a sentence-initial capital says nothing
    return frozenset(c.lower() for c in capitalised)


def asked_cues(question: str) -> tuple[bool, bool, bool]:
    """Whether the question asks for (a number, a date, a person): a cue not asked for is always 0."""
    return bool(_ASKS_NUMBER.search(question)), bool(_ASKS_DATE.search(question)), bool(_ASKS_PERSON.search(question))


def asks_for_cue(question: str) -> bool:
    """True when the question asks for a number, a date or a person (else every cue is 0)."""
    return any(asked_cues(question))


def cue_features(question: str, sentences: Sequence[str]) -> np.ndarray:
    """An (n, 3) 0/1 array: [number cue, date cue, person cue] for each sentence."""
    asks = asked_cues(question)
    features = np.zeros((len(sentences), 3), dtype=np.float32)
    if not any(asks):
        return features
    known = {w.lower() for w in _WORD.findall(question)}
    extractors = (_numbers, _dates, _names)
    for column, (asked, extract) in enumerate(zip(asks, extractors)):
        if asked:
            features[:, column] = [bool(extract(s) - known) for s in sentences]
    return features
