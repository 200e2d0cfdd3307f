"""Question-type cues: a "how many" question wants a sentence with a number it does not already hold.

An amount question ("how much", "what did it cost", "price", "spend") wants an amount: a year or
a counted "two" is no answer to it, so for these only the other numbers count ("2.1 billion").

Each cue is 1 when the question asks for that kind of answer and the sentence holds a token of
that kind that the question lacks, else 0. Worth +0.003 MRR / +0.005 R@1 on SQuAD dev
(bench/recipes.py): small, but it decides ties such as "What percentage did the US hold?".

A sentence's cue tokens are extracted once, when it is indexed (`CueTable`): the regexes cost
~25 us a sentence, ~1 ms for a question's candidates, against a few table reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.arrays import ranges

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
_ASKS_AMOUNT = re.compile(
    r"\bhow (much|expensive)\b|\bwhat (?:was|is|were|are|will be|would be) (?:the |an? |its |their )?(?:\w+ ){0,2}"
    r"(cost|costs|price|prices|fee|fees|budget|salary|worth|revenue|value)\b",
    re.IGNORECASE,
)
_MONEY_QUESTION = re.compile(
    r"\b(cost|costs|costing|price|prices|priced|spend|spends|spent|spending|paid|pay|pays|paying|worth|budget|"
    r"budgets|expensive|fee|fees|money|revenue|salary|earn|earned|earns|afford)\b",
    re.IGNORECASE,
)
_CURRENCY = (r"(?:euros?|dollars?|pounds?|yen|yuan|renminbi|rupees?|francs?|kron(?:a|or|e|er)|pesos?|reais|"
             r"rubles?|roubles?|lira|lire|guilders?|shillings?|cents?|pence)")
# "$5 million", "€2bn", "2.1 billion euros", "340 million dollars".
_MONEY = re.compile(
    r"[$¢£¥€₹₩₽₺₪₫฿₴₦₱]\s?\d|\d[\d,.]*\s*(?:(?:hundred|thousand|million|billion|trillion|bn|m)\s+)?"
    + _CURRENCY + r"\b",
    re.IGNORECASE,
)
# How much an amount question prefers a sentence holding money, on the scale of the fused score
# (qa.ranking): on SQuAD dev's 98 money questions 1.5-3 all gain (MRR 0.814 -> 0.829-0.842),
# 4 and more lose. It orders candidates only; the confidence is left as it was.
MONEY_PREFERENCE = 3.0

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
# Not amounts: a year ("completed in 2024") or a count word ("two years").
_YEAR = re.compile(r"1\d{3}|20\d{2}")
_COUNT_WORDS = frozenset(_NUMBER_WORDS[: _NUMBER_WORDS.index("hundred")])
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


def _words(sentence: str) -> set[str]:
    if sentence.isascii():  # lower-casing the whole sentence first is 2x faster, and the same in ASCII
        return set(_WORD.findall(sentence.lower()))
    return set(map(str.lower, _WORD.findall(sentence)))


def _numbers(sentence: str) -> frozenset[str]:
    return frozenset({m.rstrip(".,").lower() for m in _DIGITS.findall(sentence)} | (_NUMBER_WORD_SET & _words(sentence)))


def _dates(sentence: str) -> frozenset[str]:
    if _DIGIT.search(sentence):
        tokens = {m.group().lower() for m in _DATE.finditer(sentence)}
    else:  # only month and era words can match
        tokens = set(_DATE_WORD_SET & _words(sentence))
    if not tokens & _MONTH_SET:  # "7" is a date only next to a month
        tokens = {t for t in tokens if not _DAY_NUMBER.fullmatch(t)}
    return frozenset(tokens)


def _names(sentence: str) -> frozenset[str]:
    capitalised = [m.group() for m in _CAPITALISED.finditer(sentence)]
    first = _WORD.match(sentence.lstrip("\"'([“‘"))
    if capitalised and first is not None and capitalised[0] == first.group():
        capitalised = capitalised[1:]  # a sentence-initial capital says nothing
    return frozenset(c.lower() for c in capitalised)


KINDS = 3  # number, date, person: the columns of `cue_features`
_EXTRACTORS = (_numbers, _dates, _names)


def _question_words(question: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(question)}


def is_amount(token: str) -> bool:
    """Can this number token (from `_numbers`) be an amount? Years and count words cannot."""
    return not (_YEAR.fullmatch(token) or token in _COUNT_WORDS)


def asks_amount(question: str) -> bool:
    """Does the question ask how much something is, costs or was paid? ("Who paid?" asks for a person.)"""
    return bool(_ASKS_AMOUNT.search(question)) and not (_ASKS_DATE.search(question) or _ASKS_PERSON.search(question))


def asks_money(question: str) -> bool:
    """Does the question ask what something cost, paid or earned ("How much did the dam cost?")?"""
    return asks_amount(question) and bool(_MONEY_QUESTION.search(question))


def holds_money(sentence: str) -> bool:
    """Does the sentence state an amount of money ("2.1 billion euros", "$5 million")?"""
    return _MONEY.search(sentence) is not None


def asked_cues(question: str) -> tuple[bool, bool, bool]:
    """Whether the question asks for (a number, a date, a person): a cue not asked for is always 0."""
    number = bool(_ASKS_NUMBER.search(question)) or asks_amount(question)
    return number, bool(_ASKS_DATE.search(question)), bool(_ASKS_PERSON.search(question))


def asks_for_cue(question: str) -> bool:
    """True when the question asks for a number, a date or a person (else every cue is 0)."""
    return any(asked_cues(question))


def cue_features(question: str, sentences: Sequence[str]) -> np.ndarray:
    """An (n, 3) 0/1 array: [number cue, date cue, person cue] for each sentence."""
    asks = asked_cues(question)
    features = np.zeros((len(sentences), 3), dtype=np.float32)
    if not any(asks):
        return features
    known = _question_words(question)
    amount = asks_amount(question)
    for column, (asked, extract) in enumerate(zip(asks, _EXTRACTORS)):
        if asked:
            wanted = (lambda s: {t for t in _numbers(s) if is_amount(t)}) if column == 0 and amount else extract
            features[:, column] = [bool(wanted(s) - known) for s in sentences]
    return features


TOKENS_FILE = "tokens.json"


class CueTable:
    """The cue tokens of every indexed sentence (what `_numbers`, `_dates`, `_names` extract).

    Immutable: `extend` and `without` return new tables. Saved as plain files: row
    KINDS * sentence + kind of a CSR table (`indptr.npy`, `token_ids.npy`) lists that sentence's
    tokens of that kind, as ids into `tokens.json`.
    """

    def __init__(self, tokens: list[str], indptr: np.ndarray, token_ids: np.ndarray) -> None:
        if len(indptr) % KINDS != 1 or indptr[-1] != len(token_ids):
            raise ValueError(f"cue table of {len(indptr)} row pointers and {len(token_ids)} tokens is inconsistent")
        self.tokens, self.indptr, self.token_ids = tokens, indptr, token_ids
        self.size = (len(indptr) - 1) // KINDS
        self._vocabulary = {token: i for i, token in enumerate(tokens)}
        self._not_amounts: np.ndarray | None = None  # ids of tokens `is_amount` rejects, made on first use

    @classmethod
    def empty(cls) -> "CueTable":
        """A table of no sentences."""
        return cls([], np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32))

    def extend(self, sentences: Sequence[str]) -> "CueTable":
        """A new table with `sentences` appended as the next sentence ids."""
        vocabulary = dict(self._vocabulary)
        ids: list[int] = []
        counts: list[int] = []
        seen: dict[str, tuple[list[int], list[int]]] = {}  # a text met again (wire copies) is not re-read
        for sentence in sentences:
            if sentence not in seen:
                kinds = [sorted(extract(sentence)) for extract in _EXTRACTORS]  # sorted: same files, same text
                seen[sentence] = ([vocabulary.setdefault(t, len(vocabulary)) for tokens in kinds for t in tokens],
                                  [len(tokens) for tokens in kinds])
            sentence_ids, sentence_counts = seen[sentence]
            ids.extend(sentence_ids)
            counts.extend(sentence_counts)
        indptr = np.concatenate([self.indptr, self.indptr[-1] + np.cumsum(counts, dtype=np.int64)])
        token_ids = np.concatenate([self.token_ids, np.asarray(ids, dtype=np.int32)])
        return CueTable(self.tokens + list(vocabulary)[len(self.tokens) :], indptr, token_ids)

    def without(self, keep: np.ndarray) -> "CueTable":
        """A new table with only the sentences where `keep` is True (tokens no longer used stay listed)."""
        rows = np.flatnonzero(np.repeat(keep, KINDS))
        lengths = np.diff(self.indptr)[rows]
        token_ids = self.token_ids[ranges(self.indptr[rows], lengths)]
        return CueTable(self.tokens, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), token_ids)

    @classmethod
    def concatenate(cls, tables: Sequence["CueTable"]) -> "CueTable":
        """One table of several, in order (a segment merge): token lists united, ids remapped."""
        vocabulary: dict[str, int] = {}
        indptrs, token_ids = [np.zeros(1, dtype=np.int64)], []
        for table in tables:
            mapping = np.array([vocabulary.setdefault(t, len(vocabulary)) for t in table.tokens], dtype=np.int32)
            token_ids.append(mapping[table.token_ids] if len(table.token_ids) else np.zeros(0, dtype=np.int32))
            indptrs.append(table.indptr[1:] + indptrs[-1][-1])
        ids = np.concatenate(token_ids) if token_ids else np.zeros(0, dtype=np.int32)
        return cls(list(vocabulary), np.concatenate(indptrs).astype(np.int64), ids.astype(np.int32))

    def features(self, question: str, ids: np.ndarray) -> np.ndarray:
        """`cue_features(question, sentences)` of sentences `ids`, from the table: (len(ids), KINDS) 0/1."""
        ids = np.asarray(ids, dtype=np.int64)
        features = np.zeros((len(ids), KINDS), dtype=np.float32)
        asked = np.flatnonzero(asked_cues(question))
        if not len(asked) or not len(ids):
            return features
        rows = (ids[:, None] * KINDS + asked[None, :]).ravel()
        lengths = self.indptr[rows + 1] - self.indptr[rows]
        held = self.token_ids[ranges(self.indptr[rows], lengths)]
        known = [self._vocabulary[w] for w in _question_words(question) if w in self._vocabulary]
        new = ~np.isin(held, known)  # a token the question already holds is no answer to it
        owner = np.repeat(np.arange(len(rows)), lengths)
        if asked[0] == 0 and asks_amount(question):  # the number column holds amounts only
            numbers = (owner % len(asked)) == 0
            new &= ~(numbers & np.isin(held, self._not_amount_ids()))
        has_new = np.bincount(owner[new], minlength=len(rows)) > 0
        features[:, asked] = has_new.reshape(len(ids), len(asked))
        return features

    def _not_amount_ids(self) -> np.ndarray:
        if self._not_amounts is None:  # the tokens never change: a table is immutable
            self._not_amounts = np.array([i for i, t in enumerate(self.tokens) if not is_amount(t)], dtype=np.int64)
        return self._not_amounts

    def save(self, folder: Path) -> None:
        """Write the table into `folder` as plain files."""
        np.save(folder / "indptr.npy", self.indptr)
        np.save(folder / "token_ids.npy", self.token_ids)
        (folder / TOKENS_FILE).write_text(json.dumps(self.tokens, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, size: int) -> "CueTable":
        """Read what `save` wrote; `size` is the sentence count recorded in the manifest."""
        tokens = json.loads((folder / TOKENS_FILE).read_text(encoding="utf-8"))
        indptr = np.load(folder / "indptr.npy", allow_pickle=False)
        table = cls(tokens, indptr, np.load(folder / "token_ids.npy", allow_pickle=False))
        if table.size != size:
            raise ValueError(f"cue table holds {table.size} sentences, the manifest {size}")
        return table
