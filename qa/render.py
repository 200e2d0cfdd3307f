"""Rendering answers for the chat: quoted sentences with [n] markers and a Sources panel.

Article text is untrusted. The chat shows these messages as (sanitised) HTML with Markdown
rendering switched off, so `html.escape` on every piece of article text is enough for it to
show as the characters it is: `<script>`, tags, `[links](...)`, `*emphasis*` and `$$maths$$`
from an article are never executed nor rendered as markup. The user's own question is
untrusted too and escaped the same way (`format_question`). Only the tags written here
(<p>, <b>, <mark>, <code>, <blockquote>, <em>) are rendered.
"""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import Any, Callable, Sequence

from qa.answering import Answer, Citation
from qa.sentences import split_paragraphs

SOURCES_TITLE = "Sources"
RELATED_TITLE = "Related passages (not an answer)"
CONTEXT_CHARS = 320  # paragraph text kept on each side of a cited sentence

ArticleText = Callable[[str], "str | None"]


def escape(text: str) -> str:
    """`text` as inert HTML text (quotes need no escaping: text never goes into an attribute)."""
    return html.escape(text, quote=False)


def paragraph_around(text: str, start: int, end: int) -> tuple[str, str]:
    """The paragraph text before and after `text[start:end]`, each cut to CONTEXT_CHARS at a word."""
    p_start, p_end = start, end
    for s, e in split_paragraphs(text):
        if s <= start and end <= e:
            p_start, p_end = s, e
            break
    before, after = text[p_start:start], text[end:p_end]
    if len(before) > CONTEXT_CHARS:
        before = "… " + before[-CONTEXT_CHARS:].split(" ", 1)[-1]
    if len(after) > CONTEXT_CHARS:
        after = after[:CONTEXT_CHARS].rsplit(" ", 1)[0] + " …"
    return before, after


def _context(citation: Citation, article_text: ArticleText) -> str:
    """The cited sentence highlighted inside its paragraph (the sentence alone if the article changed)."""
    text = article_text(citation.article_id)
    sentence = f"<mark>{escape(citation.sentence)}</mark>"
    # The article may have been removed or replaced since the answer was made: then show the quote only.
    if text is None or text[citation.start : citation.end] != citation.sentence:
        return sentence
    before, after = paragraph_around(text, citation.start, citation.end)
    return f"{escape(before)}{sentence}{escape(after)}"


def format_source(number: int, citation: Citation, article_text: ArticleText) -> str:
    """One entry of a Sources panel: title, date, id and offsets, then the highlighted paragraph."""
    date = escape(citation.date) if citation.date else "no date"
    page = f" · p. {citation.page}" if citation.page else ""  # PDFs: the page the sentence starts on
    return (
        f"<p><b>[{number}] {escape(citation.title)}</b> · {date} · <code>{escape(citation.article_id)}</code>"
        f"{page} · characters {citation.start}–{citation.end}</p>"
        f"<blockquote>{_context(citation, article_text)}</blockquote>"
    )


def format_sources(citations: Sequence[Citation], article_text: ArticleText) -> str:
    """All entries of a Sources panel, numbered from 1."""
    return "".join(format_source(n, c, article_text) for n, c in enumerate(citations, start=1))


def format_answer(answer: Answer, article_text: ArticleText) -> list[dict[str, Any]]:
    """Chat messages for an Answer: the quoted sentences, then a collapsible panel of their sources.

    Args:
        answer: what the engine said.
        article_text: article id -> full text (None if it is gone), for the paragraph context.
    """
    if answer.abstained:
        closest = " The closest passages are listed below; they are not an answer." if answer.related else ""
        messages = [{"role": "assistant", "content": f"<p><b>{escape(answer.text)}</b>{closest}</p>"}]
        if answer.related:
            note = "<p><em>Closest passages only. They do not answer the question.</em></p>"
            messages.append({
                "role": "assistant",
                "content": note + format_sources(answer.related, article_text),
                # "done" folds the panel like Sources: an abstention stays one short line until opened.
                "metadata": {"title": RELATED_TITLE, "status": "done"},
            })
        return messages
    quoted = " ".join(f"{escape(c.sentence)} <b>[{n}]</b>" for n, c in enumerate(answer.citations, start=1))
    return [
        {"role": "assistant", "content": f"<p>{quoted}</p>"},
        {
            "role": "assistant",
            "content": format_sources(answer.citations, article_text),
            "metadata": {"title": f"{SOURCES_TITLE} ({len(answer.citations)})", "status": "done"},
        },
    ]


def format_question(question: str) -> dict[str, Any]:
    """The user's own turn as a chat message: escaped, so typed HTML shows as the characters typed."""
    return {"role": "user", "content": escape(question)}


def format_error(message: str) -> list[dict[str, Any]]:
    """A chat message for a question the engine refused (empty, too long, wrong script...)."""
    return [{"role": "assistant", "content": f"<p>⚠️ {escape(message)}</p>"}]


def answer_record(answer: Answer | None, error: str | None = None) -> dict[str, Any]:
    """The Answer as plain JSON for API clients (citations with exact offsets), or the error."""
    if answer is None:
        return {"error": error or "unknown error"}
    return asdict(answer)
