"""Questions: validation, the script they are written in, and resolving follow-ups from history."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Sequence

from qa.errors import EmptyQuestionError, QuestionScriptError, QuestionTooLongError

# Openings that mark a question as leaning on the previous one ("And in the US?").
_FOLLOW_UP_OPENING = re.compile(
    r"^\s*(and|but|also|what about|how about|what of|and what about|same for|compared (?:to|with))\b",
    re.IGNORECASE,
)
_PRONOUNS = re.compile(r"\b(it|its|they|them|their|this|that|these|those|there|he|she|his|her)\b", re.IGNORECASE)
_CONTENT_WORD = re.compile(r"[^\W\d_]{3,}|\d+")
_QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how and about the does did do is are was were "
    "many much for with in of to".split()
)
SHORT_QUESTION_WORDS = 3


def validate(question: str, max_chars: int) -> str:
    """The question stripped, or a typed error saying what to change."""
    if not isinstance(question, str) or not question.strip():
        raise EmptyQuestionError("The question is empty. Type a question about the indexed articles.")
    if len(question) > max_chars:
        raise QuestionTooLongError(
            f"The question is {len(question):,} characters long; the limit is {max_chars:,}. "
            "Ask a shorter question (one or two sentences)."
        )
    return question.strip()


def script_of(text: str) -> str | None:
    """The writing system most letters of `text` are in ('LATIN', 'CJK', 'CYRILLIC', ...), or None."""
    if text.isascii():  # the common case, decided in C
        return "LATIN" if any(c.isalpha() for c in text) else None
    counts: Counter[str] = Counter()
    # Look each distinct character up once (Counter runs in C): a whole article costs
    # ~100 lookups instead of one per character, which made every commit O(corpus) slow.
    for char, times in Counter(text).items():
        if char.isalpha():
            name = unicodedata.name(char, "")
            script = name.split(" ")[0] if name else ""
            if script in ("HIRAGANA", "KATAKANA", "HANGUL"):
                script = "CJK"  # one family for retrieval purposes: character n-grams
            counts[script] += times
    return counts.most_common(1)[0][0] if counts else None


def check_script(question: str, index_scripts: Sequence[str]) -> None:
    """Refuse a question in a script no indexed article uses: it could only match by accident."""
    script = script_of(question)
    if script and index_scripts and script not in index_scripts:
        raise QuestionScriptError(
            f"The question is written in {script.title()} script, but the indexed articles are in "
            f"{', '.join(s.title() for s in index_scripts)}. Ask in the articles' language, "
            "or add articles in this language first."
        )


def is_follow_up(question: str) -> bool:
    """Does the question need the earlier turns to be understood?"""
    if _FOLLOW_UP_OPENING.match(question):
        return True
    content = [w for w in _CONTENT_WORD.findall(question.lower()) if w not in _QUESTION_WORDS]
    return len(content) < SHORT_QUESTION_WORDS and bool(_PRONOUNS.search(question) or len(content) <= 1)


def resolve(question: str, history: Sequence[str] | None) -> str:
    """The text to retrieve with: the question itself, or the last user turn plus a follow-up.

    The earlier question supplies the topic ("industrial robots installed in 2022") and the
    follow-up supplies what changed ("in the US"); retrieval on both finds the sentence that
    answers the follow-up.
    """
    turns = [turn.strip() for turn in (history or []) if isinstance(turn, str) and turn.strip()]
    if not turns or not is_follow_up(question):
        return question
    # The previous turn may itself be a follow-up ("And in 2021?" after "And in the US?").
    return f"{resolve(turns[-1], turns[:-1])} {question}"
