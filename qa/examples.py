"""Example questions for the chat, drawn from the indexed articles and kept only if they are answered.

Candidates come from each article's section headings ("What does the article say about the gap
between the US and China?") and its title ("What does the article “Harbour dredging ends” say?"). A
heading's Title Case is undone using the article itself: a word stays capitalised only when the
article's sentences capitalise it mid-sentence (a name), so "Startups" becomes "startups" but
"Chinese" and "AI" stay. Every candidate is asked of the index, and only those it answers are offered.
"""

from __future__ import annotations

import re
from typing import Iterator

from qa.index import Index

MAX_EXAMPLES = 4
MAX_TRIES = 16  # candidates asked per refresh: the list is cheap even over thousands of articles
_HEADING = re.compile(r"^#*\s*[^\W\d_][^.!?:;]{2,80}\s[^.!?:;]{2,80}$")  # a short line of words, no stops
_TITLE_CASE_WORD = re.compile(r"\b[A-Z][a-z]+\b")
_MID_SENTENCE_CAPITAL = re.compile(r"(?<=[a-z0-9,;’'] )[A-Z][a-z]+\b")


def sentence_case(phrase: str, article_text: str) -> str:
    """`phrase` with its Title-Case words lower-cased, except names: words the article's own sentences
    capitalise in mid-sentence ("Chinese", "China"). Headings and the title are not looked at."""
    body = "\n".join(line for line in article_text.splitlines()[1:] if not _HEADING.match(line.strip()))
    names = set(_MID_SENTENCE_CAPITAL.findall(body))
    return _TITLE_CASE_WORD.sub(lambda m: m.group() if m.group() in names else m.group().lower(), phrase)


def headings(article_text: str) -> list[str]:
    """Section headings of an article: short lines of words without closing punctuation, after the title."""
    lines = article_text.splitlines()[1:]
    return [line.strip().lstrip("#").strip() for line in lines if _HEADING.match(line.strip())]


def candidates(index: Index) -> Iterator[str]:
    """Example questions to try, newest article first: one per article, then further headings."""
    infos = list(reversed(index.articles()))
    later: list[str] = []
    for info in infos:
        text = index.article(info.id).text
        topics = headings(text)
        if topics:
            yield f"What does the article say about {sentence_case(topics[0], text)}?"
            later += [f"What does the article say about {sentence_case(t, text)}?" for t in topics[1:]]
        else:
            yield f"What does the article “{info.title}” say?"
    yield from later


def answered_examples(index: Index, limit: int = MAX_EXAMPLES) -> list[str]:
    """Up to `limit` example questions that the index answers (it does not abstain on them)."""
    found: list[str] = []
    tried: set[str] = set()
    for question in candidates(index):
        if len(found) >= limit or len(tried) >= MAX_TRIES:
            break
        if question in tried:
            continue
        tried.add(question)
        if not index.answer(question, max_citations=1).abstained:
            found.append(question)
    return found
