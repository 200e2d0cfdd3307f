"""Words a turn may use for what its article says in other words ("start" for "Beginning").

The turn checks of `qa.turns` ask whether a cited sentence mentions each of the turn's own words,
so a follow-up such as "And when does it start?" found "Beginning Tuesday, ..." and then refused
it for lacking "start". A Lucene analyser handles this with a synonym filter over a synonym file;
here the same idea is a short table of groups of interchangeable words and phrases, read only by
the turn checks (ranking and BM25 are untouched, so no score changes).

The table is small on purpose: a group belongs here only when every member can stand for every
other in a question about news (when something starts or ends, what it costs). "end" is not a
synonym of "start", so "And when does it end?" still abstains on an article that gives only the
start, and names are never grouped, so a turn that names another country or company is not
matched by this table.
"""

from __future__ import annotations

import functools
from typing import Sequence

from qa.lexical import tokenize

GROUPS: tuple[tuple[str, ...], ...] = (
    ("start", "begin", "commence", "kick off", "take effect", "come into effect", "go into effect"),
    ("end", "finish", "conclude", "expire", "cease"),
    ("cost", "price", "fee"),
)


@functools.lru_cache(maxsize=1)
def _table() -> tuple[dict[tuple[str, ...], tuple[frozenset[str], ...]], int]:
    """Each entry's stemmed tokens -> the stem sets of every entry of its group (itself included),
    and the token count of the longest entry."""
    table: dict[tuple[str, ...], tuple[frozenset[str], ...]] = {}
    for group in GROUPS:
        forms = tuple(frozenset(tokenize(entry)) for entry in group)
        for entry in group:
            table[tuple(tokenize(entry))] = forms
    return table, max(map(len, table))


def covered(tokens: Sequence[str], stems: frozenset[str]) -> bool:
    """Are all `tokens` (stemmed, in order) in `stems`, a token or run of tokens that is an entry
    of a group counting as present when any entry of its group is?"""
    if stems.issuperset(tokens):  # the common case, one set operation: no synonym is needed
        return True
    table, longest = _table()
    position = 0
    while position < len(tokens):
        for length in range(min(longest, len(tokens) - position), 0, -1):
            forms = table.get(tuple(tokens[position : position + length]))
            if forms is not None and any(form <= stems for form in forms):
                position += length
                break
        else:
            if tokens[position] not in stems:
                return False
            position += 1
    return True
