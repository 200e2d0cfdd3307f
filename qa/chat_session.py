"""The app's chat: one question in, quoted and cited sentences out, with follow-ups per session.

The chat window shows HTML, so everything put in it is escaped first (qa.render), the user's own
question included: typed `<img src=...>` shows as those characters and loads nothing. The user's
turns are kept as typed in a per-session list (a `gr.State`), so follow-ups are resolved from
what was asked, never from the escaped HTML on screen.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from qa.errors import ArticleNotFoundError, QAError
from qa.examples import MAX_EXAMPLES, answered_examples
from qa.index import Index
from qa.render import answer_record, format_answer, format_error, format_question

MAX_CITATIONS = 8  # top of the "Sentences to cite" slider; API values outside 1..8 are clamped
KEEP_TURNS = 6  # earlier user turns handed to the engine for follow-ups


def clamp_citations(value: Any, default: int) -> int:
    """A citation count in 1..MAX_CITATIONS from whatever an API client sent (None, 0, 99, 2.7, "3")."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    if math.isnan(number):
        return default
    return min(max(int(round(number)), 1), MAX_CITATIONS)


class ChatSession:
    """Chat handlers over one live Index (the constructor only stores)."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._examples: tuple[tuple[str, ...], list[str]] | None = None  # (article ids, examples)

    def reply(self, message: str, turns: Sequence[str] | None, max_citations: Any = None
              ) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
        """Answer one turn: (the assistant messages, the Answer as JSON, the session's turns after it)."""
        message = message if isinstance(message, str) else ""
        earlier = [t for t in (turns or []) if isinstance(t, str)][-KEEP_TURNS:]
        try:
            answer = self.index.answer(message, history=earlier,
                                       max_citations=clamp_citations(max_citations, self.index.settings.max_citations))
        except QAError as exc:
            return format_error(str(exc)), answer_record(None, str(exc)), earlier
        return format_answer(answer, self.article_text), answer_record(answer), (earlier + [message])[-KEEP_TURNS:]

    def show_question(self, message: str, shown: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """The chat window with the user's question appended (escaped), before the answer arrives."""
        return list(shown or []) + [format_question(message)]

    def answer_shown(self, message: str, shown: Sequence[dict[str, Any]] | None, turns: Sequence[str] | None,
                     max_citations: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
        """The chat window with the answer to `message` appended; the record; the new turns."""
        messages, record, turns_after = self.reply(message, turns, max_citations)
        return list(shown or []) + messages, record, turns_after

    def article_text(self, article_id: str) -> str | None:
        """Full text of an indexed article, or None when it is not (or no longer) indexed."""
        try:
            return self.index.article(article_id).text
        except ArticleNotFoundError:
            return None

    def examples(self, limit: int = MAX_EXAMPLES) -> list[str]:
        """Example questions the index answers now; recomputed only when the set of articles changed."""
        ids = tuple(a.id for a in self.index.articles())
        if self._examples is None or self._examples[0] != ids:
            self._examples = (ids, answered_examples(self.index, limit))
        return list(self._examples[1])
