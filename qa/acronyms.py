"""Acronyms an article defines ("large language models (LLMs)"), spelled out where they recur.

News text defines an acronym once and then uses it; a question usually uses the words. The
expansion goes only into the texts the encoder and BM25 read, never into cited text.
"""

from __future__ import annotations

import re
from typing import Callable

# Up to eight words, then the acronym in brackets: "application programming interface (API)".
# Found from the bracket backwards: one regex scanning for the words at every position of an
# article took 4 ms per article (20 s for 100k sentences); brackets are rare.
_BRACKETED = re.compile(r"\(([A-Z][A-Za-z&]{1,9}?)(s?)\)")
_WORDS_BEFORE = re.compile(r"(?:[A-Za-z][\w’'-]*\s+){1,8}$")
_LOOK_BACK = 400  # characters: eight long words


def _initials_match(words: list[str], acronym: str) -> list[str] | None:
    """The shortest tail of `words` whose initials spell the acronym (case-insensitive)."""
    letters = [c for c in acronym.lower() if c.isalpha()]
    for size in range(len(letters), min(len(words), len(letters) + 2) + 1):
        tail = words[-size:]
        initials = [w[0].lower() for w in tail if w.lower() not in ("of", "and", "the", "for", "&")]
        if initials == letters:
            return tail
    return None


def find_definitions(text: str) -> dict[str, str]:
    """Acronym -> its spelled-out words, for every definition in `text`."""
    found: dict[str, str] = {}
    for match in _BRACKETED.finditer(text):
        words_before = _WORDS_BEFORE.search(text, max(0, match.start() - _LOOK_BACK), match.start())
        if not words_before:
            continue
        acronym = match.group(1)
        tail = _initials_match(words_before.group().split(), acronym)
        if tail:
            found.setdefault(acronym, " ".join(tail))
    return found


def acronym_expander(text: str) -> Callable[[str], str]:
    """A function that appends "(spelled out)" after each bare use of a defined acronym."""
    definitions = find_definitions(text)
    if not definitions:
        return lambda passage: passage
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(definitions, key=len, reverse=True))) + r")(s?)\b(?!\s*\()")

    def expand(passage: str) -> str:
        return pattern.sub(lambda m: f"{m.group(0)} ({definitions[m.group(1)]})", passage)

    return expand
