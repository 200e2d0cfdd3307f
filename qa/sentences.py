"""Paragraph and sentence splitting with exact character offsets.

Sentence boundaries come from a third-party segmenter (the *backend*); every
sentence string it returns is aligned back onto the original text, so the
spans are exact whatever the library does to whitespace or quotes. Small
shared steps run around every backend: a single newline is a hard wrap, not a
boundary; a bulleted/numbered line starts a sentence; Chinese/Japanese is cut
after 。！？ (libraries treat full-width punctuation inconsistently); closing
quotes and footnotes ("[3]", ":12") stay with their sentence; and no cut is
kept after a title such as "Dr." or "v.".

Backend choice (``python -m bench.splitters``; gold = 65 hand-labelled tricky
cases + the seed article; SQuAD v1.1 dev = 2,067 paragraphs, 16,983 answers;
disputes = 99 hand-labelled SQuAD boundaries on which the libraries disagree,
"noQ" = the 83 of them not inside a multi-sentence quotation):

    backend    gold exact  answers crossing  disputes (noQ)  sents/s (noisy)
    pysbd        61/66        26 (0.153%)      0.63 (0.75)       0.2k-0.7k
    syntok       62/66        24 (0.141%)      0.46 (0.36)       0.8k-3.5k
    blingfire    61/66        18 (0.106%)      0.87 (0.84)        7k-45k
    sentencex    62/66        21 (0.124%)      0.68 (0.80)       16k-90k
    regex        61/66        26 (0.153%)      0.83 (0.83)       14k-60k

DEFAULT_BACKEND is ``blingfire``: accuracy comes first, and on the gold set
the top backends are one case apart (noise), while blingfire splits the fewest
SQuAD answers and is clearly best on the disputed real-text boundaries. Its
speed is ample. Known weakness: it does not split before a sentence starting
with "Mr."/"J. K." ("He left. Mr. Smith stayed." stays one sentence).
Runner-up: ``sentencex`` (faster, never splits inside quotations).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Callable, Iterable

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "MAX_SENTENCE_CHARS", "split_paragraphs", "split_sentences"]

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("pysbd", "syntok", "blingfire", "sentencex", "regex")
DEFAULT_BACKEND = "blingfire"

# A blank line (possibly holding spaces/tabs) separates paragraphs.
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# A line starting with a bullet or an item number starts a new block; a plain
# newline does not, because hard-wrapped prose has newlines mid-sentence.
_LIST_ITEM = re.compile(r"\n(?=[ \t]*(?:[-*•‣◦▪–]|\(?\d{1,3}[.)]|\(?[a-z]\))[ \t])")
# Full-width terminators plus any closing quotes/brackets that follow them.
_CJK_END = re.compile(r"[。！？][。！？!?]*[”’」』）】〕》〉\"')]*")
# What directly follows a cut (no space) still belongs to the sentence it ends:
# closing quotes/brackets, extra terminators ("!.", "？？") and Wikipedia-style
# footnotes ("[3]", "[citation needed]", ":12"). A cut before them moves past them.
_CLOSERS = "”’」』）】〕》〉)]\"'.!?！？。"
_FOOTNOTE = r"\[[^\[\]\s][^\[\]]{0,40}\]|(?::\d{1,4}(?:[,–-]\d{1,4})*)+(?!\S)"
_TAIL = re.compile(rf"(?:[{re.escape(_CLOSERS)}]|{_FOOTNOTE})*")
# A lone list number or initial ("1.", "a)", "J.") is never a sentence on its own.
_MARKER_ONLY = re.compile(r"\(?(?:\d{1,3}|[A-Za-z])[.)]")

# Titles and "v." (Brown v. Board) precede a name, so no sentence ends there;
# some libraries cut after them anyway when the title starts a sentence.
_NO_CUT_AFTER = re.compile(r"(?<![\w.])(?:Mrs?|Ms|Dr|Prof|Rev|Hon|Sen|Rep|Gov|Gen|Capt|Sgt|vs?)\.$")

# The longest span a citation quotes. Text with no sentence ends (a log, a table flattened to
# one line, 351 KB of words) would otherwise be one "sentence" quoted whole in every answer.
# Longer runs are cut at a space, after a comma/semicolon/colon when the last half of the window
# has one. No real sentence is cut: SQuAD v1.1 dev's 10,247 sentences (uncapped) are at most
# 1,412 characters (then 1,222 and 1,160: semicolon lists of names); 2 exceed 1,200, none 1,500.
# tests/test_sentences.py re-measures it.
MAX_SENTENCE_CHARS = 2000
_CLAUSE_END = re.compile(r"[,;:]\s")

# Dependency-free fallback: cut after .!? (+ closers) before an upper-case start.
_REGEX_CUT = re.compile(rf"[.!?…]+[\"'”’)\]]*(?:{_FOOTNOTE})*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st sen rep gov gen col capt lt sgt inc ltd co corp "
    "vs etc e.g i.e no nos fig figs p pp vol ch sec art jan feb mar apr jun jul "
    "aug sep sept oct nov dec approx est dept univ ca u.s u.k u.n a.m p.m ph.d d.c".split()
)


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Shrink ``[start, end)`` to exclude surrounding whitespace; None if empty."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _cut(text: str, start: int, end: int, cuts: Iterable[int]) -> list[tuple[int, int]]:
    """Split ``[start, end)`` at the given absolute offsets into trimmed spans."""
    spans = []
    bounds = sorted({c for c in cuts if start < c < end})
    for a, b in zip([start, *bounds], [*bounds, end]):
        span = _trimmed(text, a, b)
        if span:
            spans.append(span)
    return spans


def split_paragraphs(text: str) -> list[tuple[int, int]]:
    """Split text into blank-line-separated blocks.

    Args:
        text: Any string.

    Returns:
        ``(start, end)`` spans of the non-empty paragraphs, whitespace-trimmed.
    """
    if not text:
        return []
    return _cut(text, 0, len(text), (m.start() for m in _PARAGRAPH_BREAK.finditer(text)))


def _split_regex(block: str) -> list[str]:
    """Rule-based splitter: the baseline backend and the fallback on errors."""
    pieces, last = [], 0
    for m in _REGEX_CUT.finditer(block):
        space = block.rfind(" ", last, m.start())  # blocks only hold " " as space
        word = block[max(space + 1, last):m.start()].lstrip("(\"'“‘").lower()
        # Skip known abbreviations and initials such as "J." in "J. K. Rowling".
        if not word or word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        pieces.append(block[last:m.end()])
        last = m.end()
    return [*pieces, block[last:]]


@lru_cache(maxsize=None)
def _backend(name: str) -> Callable[[str], list[str]]:
    """Build (once) a function mapping a block of text to sentence strings."""
    if name == "pysbd":
        import pysbd

        seg = pysbd.Segmenter(language="en", clean=False)
        return seg.segment
    if name == "syntok":
        import syntok.segmenter as syntok

        def split_syntok(block: str) -> list[str]:
            # Token values are normalised (e.g. "n't"), so slice by token offsets.
            starts = [s[0].offset for p in syntok.analyze(block) for s in p if s]
            return [block[a:b] for a, b in zip(starts, [*starts[1:], len(block)])]

        return split_syntok
    if name == "blingfire":
        import blingfire

        return lambda block: blingfire.text_to_sentences(block).split("\n")
    if name == "sentencex":
        import sentencex

        return lambda block: list(sentencex.segment("en", block))
    if name == "regex":
        return _split_regex
    raise ValueError(f"unknown sentence backend {name!r}; choose from {BACKENDS}")


def _match_loose(text: str, piece: str, pos: int, end: int) -> int | None:
    """Match ``piece`` at ``pos`` ignoring whitespace; return the end offset."""
    for ch in piece:
        if ch.isspace():
            continue
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end or text[pos] != ch:
            return None
        pos += 1
    return pos


def _align(text: str, start: int, end: int, pieces: Iterable[str]) -> list[int]:
    """Map the backend's sentence strings to end offsets in ``text[start:end]``.

    A piece that cannot be located (the library rewrote characters) yields no
    cut of its own; it ends where the next located piece starts. Nothing is lost.
    """
    # ``cursor`` follows the library's pieces; ``last`` is our last cut, which
    # may lie further on because _TAIL pulled closers/footnotes into it.
    cuts, cursor, last, missed = [], start, start, 0
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        pos = cursor
        while pos < end and text[pos].isspace():
            pos += 1
        if text.startswith(piece, pos, end):
            found: int | None = pos + len(piece)
        else:
            found = _match_loose(text, piece, pos, end)
            if found is None:
                # Resync after pieces we could not place, but never jump further
                # than their length: a far-away repeat would be a wrong match.
                idx = text.find(piece, pos, min(end, pos + missed + len(piece) + 8))
                found = idx + len(piece) if idx >= 0 else None
                if found is not None and idx > last:
                    cuts.append(idx)  # the library starts a sentence here
                    last = idx
        if found is None:
            missed += len(piece)
            continue
        missed, cursor = 0, found
        if _NO_CUT_AFTER.search(text, max(start, found - 6), found):
            continue
        cut = _TAIL.match(text, found, end).end()
        if cut > last and not _MARKER_ONLY.fullmatch(text[last:cut].strip()):
            cuts.append(cut)
            last = cut
    return cuts


def _capped(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into trimmed spans of at most ``limit`` characters.

    Each cut is the last clause end (", " "; " ": ") in the second half of the window, else
    its last whitespace, else (one unbroken run of letters) the window's end.
    """
    spans: list[tuple[int, int]] = []
    while end - start > limit:
        window_end = start + limit
        clauses = [m.end() for m in _CLAUSE_END.finditer(text, start + limit // 2, window_end)]
        cut = clauses[-1] if clauses else max(
            (i for i in range(window_end, start, -1) if text[i - 1].isspace() or text[i].isspace()),
            default=window_end)
        spans.extend(_cut(text, start, cut, ()))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    spans.extend(_cut(text, start, end, ()))
    return spans


def split_sentences(text: str, backend: str = DEFAULT_BACKEND) -> list[tuple[int, int]]:
    """Split text into sentences, never across a paragraph boundary.

    Args:
        text: Any string; empty or whitespace-only input gives ``[]``.
        backend: One of :data:`BACKENDS`.

    Returns:
        In-order, non-overlapping ``(start, end)`` spans such that
        ``text[start:end]`` is a whitespace-trimmed sentence of at most
        :data:`MAX_SENTENCE_CHARS` characters (a longer one is cut into
        pieces) and every non-whitespace character lies in exactly one span.

    Raises:
        ValueError: If ``backend`` is not a known name.
    """
    segment = _backend(backend)
    spans: list[tuple[int, int]] = []
    for p_start, p_end in split_paragraphs(text):
        item_cuts = [m.start() for m in _LIST_ITEM.finditer(text, p_start, p_end)]
        for b_start, b_end in _cut(text, p_start, p_end, item_cuts):
            # Inside a block a newline is just a hard wrap; some libraries would
            # cut there. Alignment matches whitespace loosely, so this is safe.
            block = re.sub(r"\s", " ", text[b_start:b_end])
            try:
                pieces = segment(block)
            except Exception:  # a library bug must not take the whole pipeline down
                log.warning("%s failed on a block; using regex fallback", backend, exc_info=True)
                pieces = _split_regex(block)
            cuts = _align(text, b_start, b_end, pieces)
            cuts += [m.end() for m in _CJK_END.finditer(text, b_start, b_end)]
            for start, end in _cut(text, b_start, b_end, cuts):
                spans.extend(_capped(text, start, end, MAX_SENTENCE_CHARS) if end - start > MAX_SENTENCE_CHARS
                             else [(start, end)])
    return spans
