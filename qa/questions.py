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
# English function words: what a turn says besides its subject ("what about the ..."). A turn's
# own content terms are its other words; they decide whether a follow-up's answer fits it.
_FUNCTION_WORDS = frozenset(
    "a an the and or but nor so yet if then than as at by for from in into of off on onto out over to "
    "up with within without about above after against along among around before behind below beside "
    "between beyond during except inside near since through toward towards under until upon via "
    "what which who whom whose when where why how whether "
    "is are was were be been being am do does did done doing have has had having "
    "can could may might must shall should will would "
    "i me my mine we us our ours you your yours he him his she her hers it its they them their theirs "
    "this that these those there here "
    "also too else instead again just only even still same other another any some all each every both "
    "either neither more most less much many few such very not no yes ok okay please "
    "tell say know mean compare compared".split()
)
_TERM_WORD = re.compile(r"[A-Z](?:\.[A-Z])+\.?|[^\W_]+(?:['’][^\W\d_]+)?")
_ACRONYM = re.compile(r"[A-Z][A-Z.&]*[A-Z]s?\.?")  # US, U.S., EU, LLMs
_NOT_CONTENT = _QUESTION_WORDS | _FUNCTION_WORDS
# A capitalised word that does not begin the text or a sentence of it: a name, a place, an acronym.
_CAPITALISED = re.compile(r"(?<![?.!]\s)(?<=\s)[A-Z][\w'’.&-]*")


def validate(question: str, max_chars: int) -> str:
    """The question stripped, or a typed error saying what to change."""
    if not isinstance(question, str) or not question.strip():
        raise EmptyQuestionError("The question is empty. Type a question about the indexed articles.")
    if not any(char.isalnum() for char in question):
        shown = question.strip() if len(question.strip()) <= 20 else question.strip()[:20] + "..."
        raise EmptyQuestionError(
            f"'{shown}' has no words to search for. Ask a question in words, "
            "for example \"How many robots were installed in China in 2022?\"."
        )
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
            f"The question is written in {_script_name(script)} script, but the indexed articles are in "
            f"{', '.join(map(_script_name, index_scripts))}. Ask in the articles' language, "
            "or add articles in this language first."
        )


def _script_name(script: str) -> str:
    """How a script is named in a message: 'Latin', 'Cyrillic', but 'CJK' (an abbreviation)."""
    return script if script == "CJK" else script.title()


def is_follow_up(question: str) -> bool:
    """Does the question need the earlier turns to be understood?"""
    if _FOLLOW_UP_OPENING.match(question):
        return True
    content = [w for w in _CONTENT_WORD.findall(question.lower()) if w not in _NOT_CONTENT]
    return len(content) < SHORT_QUESTION_WORDS and bool(_PRONOUNS.search(question) or len(content) <= 1)


def resolve(question: str, history: Sequence[str] | None) -> str:
    """The text to retrieve with: the question itself, or the last user turn plus a follow-up.

    The earlier question supplies the topic ("industrial robots installed in 2022") and the
    follow-up supplies what changed ("in the US"); retrieval on both finds the sentence that
    answers the follow-up. A follow-up that names something ("And the Tessel bridge?") replaces
    what the earlier turn named ("How much did the Orlin dam cost?" -> "How much did the dam cost?").
    """
    turns = [turn.strip() for turn in (history or []) if isinstance(turn, str) and turn.strip()]
    if not turns or not is_follow_up(question):
        return question
    # The previous turn may itself be a follow-up ("And in 2021?" after "And in the US?").
    earlier = resolve(turns[-1], turns[:-1])
    if _CAPITALISED.search(question.strip()):
        earlier = " ".join(_CAPITALISED.sub("", earlier).split())
    return f"{earlier} {question}"


def own_terms(turn: str) -> list[tuple[str, ...]]:
    """The turn's own content words, as runs of adjacent words ("United States", "repair cost").

    Function words are left out, and so is the word after "how" ("how big"): it names the kind
    of answer, not the subject. A function word written as an acronym ("US") is content.
    """
    runs: list[tuple[str, ...]] = []
    run: list[str] = []
    previous = ""
    for match in _TERM_WORD.finditer(turn):
        word = match.group()
        lowered = word.lower()
        acronym = _ACRONYM.fullmatch(word) is not None and len(word) > 1
        if (lowered in _FUNCTION_WORDS or previous == "how") and not acronym:
            if run:
                runs.append(tuple(run))
            run = []
        else:
            run.append(word)
        previous = lowered
    if run:
        runs.append(tuple(run))
    return runs
