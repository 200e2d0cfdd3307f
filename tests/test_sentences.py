"""Tests for qa.sentences: exact offsets, required intact cases, CJK, paragraphs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qa import sentences  # noqa: E402
from qa.sentences import (  # noqa: E402
    BACKENDS,
    DEFAULT_BACKEND,
    split_paragraphs,
    split_sentences,
)

SEED = Path(__file__).resolve().parent.parent / "seeds" / "openai-api-block-chinese-ai-startups.txt"

ODD_TEXTS = [
    "",
    "   \n\n\t ",
    "No terminal punctuation",
    "Title\n\nFirst para. Second sentence!\n   \n\nLast para?",
    "  Leading and trailing spaces.   Two spaces between.  ",
    "He said “stop.” Then left. 今天天气很好。我们去公园吧！",
    "Wrapped line\nin the middle. And\r\nWindows newlines.\r\n\r\nNext.",
    "....!!!???…",
    "😀 emoji. Zero\u200bwidth space. NUL \x00 char. Lone \ud800 surrogate.",
    "- a\n- b\n1. c\n(2) d",
    "Nested ((brackets. Unclosed “quote. Stray ” closer.) End.",
]


def texts(text: str, backend: str = DEFAULT_BACKEND) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text, backend)]


def assert_exact_cover(text: str, spans: list[tuple[int, int]]) -> None:
    """Spans are trimmed, ordered, disjoint and cover all non-whitespace."""
    cursor = 0
    for start, end in spans:
        assert cursor <= start < end <= len(text)
        assert text[start:end] == text[start:end].strip()
        assert not text[cursor:start].strip(), f"uncovered {text[cursor:start]!r}"
        cursor = end
    assert not text[cursor:].strip()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("text", ODD_TEXTS)
def test_offsets_are_exact_for_every_backend(backend: str, text: str) -> None:
    spans = split_sentences(text, backend)
    assert_exact_cover(text, spans)
    paragraphs = split_paragraphs(text)
    for start, end in spans:  # never across a blank line
        assert any(ps <= start and end <= pe for ps, pe in paragraphs)


def test_default_backend_is_listed() -> None:
    assert DEFAULT_BACKEND in BACKENDS
    assert {"pysbd", "syntok", "blingfire", "sentencex"} <= set(BACKENDS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("China accounted for 61.1 percent of AI patents. The U.S. held 20.9 percent.",
         ["China accounted for 61.1 percent of AI patents.", "The U.S. held 20.9 percent."]),
        ("Dr. Smith met the No. 5 team in the U.S. yesterday. It went well.",
         ["Dr. Smith met the No. 5 team in the U.S. yesterday.", "It went well."]),
        ("Many fruits, e.g. apples, are healthy. Eat them.",
         ["Many fruits, e.g. apples, are healthy.", "Eat them."]),
        ("The rod is 3.5 m long. It weighs 2 kg.", ["The rod is 3.5 m long.", "It weighs 2 kg."]),
        ("Startups, which are “unsupported” by OpenAI, lost access. Others did not.",
         ["Startups, which are “unsupported” by OpenAI, lost access.", "Others did not."]),
        ("He said “stop.” Then left.", ["He said “stop.”", "Then left."]),
        ("The city has 290,300 robots, i.e. 7.4 times more. Wow!",
         ["The city has 290,300 robots, i.e. 7.4 times more.", "Wow!"]),
    ],
)
def test_required_cases_stay_intact(text: str, expected: list[str]) -> None:
    assert texts(text) == expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("今天天气很好。我们去公园吧！你呢？", ["今天天气很好。", "我们去公园吧！", "你呢？"]),
        ("他说：“我们走吧！”然后离开了。", ["他说：“我们走吧！”", "然后离开了。"]),
        ("她问：「真的吗？」我点头。", ["她问：「真的吗？」", "我点头。"]),
        ("今天很热！！明天呢？？", ["今天很热！！", "明天呢？？"]),
        ("私は学生です。毎日大学に行きます。", ["私は学生です。", "毎日大学に行きます。"]),
        ("OpenAI于周二封锁API。这影响了初创公司。", ["OpenAI于周二封锁API。", "这影响了初创公司。"]),
    ],
)
def test_cjk_is_split_after_full_width_terminators(
    backend: str, text: str, expected: list[str]
) -> None:
    assert texts(text, backend) == expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n", "\u3000"])
def test_empty_and_blank_input(backend: str, text: str) -> None:
    assert split_sentences(text, backend) == []
    assert split_paragraphs(text) == []


def test_split_paragraphs_spans() -> None:
    text = "  Title  \n\nFirst para.\nStill first.\n \t\n\n\nSecond para\n"
    assert [text[s:e] for s, e in split_paragraphs(text)] == [
        "Title", "First para.\nStill first.", "Second para"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_blank_line_ends_a_sentence(backend: str) -> None:
    text = "A headline without a period\n\nThe body starts here. It ends here"
    assert texts(text, backend) == [
        "A headline without a period", "The body starts here.", "It ends here"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_newline_is_a_hard_wrap(backend: str) -> None:
    text = "This sentence is wrapped\nacross two lines. This one is not."
    assert texts(text, backend) == [
        "This sentence is wrapped\nacross two lines.", "This one is not."]


@pytest.mark.parametrize("backend", BACKENDS)
def test_list_items_are_sentences(backend: str) -> None:
    text = "Steps:\n1. Open the box.\n2. Remove the device.\n- Plug it in"
    assert texts(text, backend) == [
        "Steps:", "1. Open the box.", "2. Remove the device.", "- Plug it in"]


def test_footnote_stays_with_its_sentence() -> None:
    assert texts("Paris is big.[1] It is old.:12 Really.") == [
        "Paris is big.[1]", "It is old.:12", "Really."]


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_cut_after_titles(backend: str) -> None:
    assert texts("See FCC v. Pacifica Foundation. They were veterans. Dr. Lee came.", backend) == [
        "See FCC v. Pacifica Foundation.", "They were veterans.", "Dr. Lee came."]


@pytest.mark.skipif(not SEED.exists(), reason="seed article not present")
def test_seed_article() -> None:
    text = SEED.read_text(encoding="utf-8")
    got = texts(text)
    assert got[:3] == [
        "OpenAI’s API Block Spurs Innovation in Chinese AI Startups",
        "11/07/2024",
        "OpenAI’s Decision and Its Implications",
    ]
    assert ("In 2022, China accounted for 61.1 percent of the global AI patents, surpassing "
            "the 20.9 percent held by the US.") in got
    assert any(s.startswith("Quite a few AI startups") and "“unsupported”" in s for s in got)
    assert len(got) == 22


def test_unknown_backend_raises() -> None:
    with pytest.raises(ValueError):
        split_sentences("Hello.", backend="no-such-library")


def test_alignment_survives_rewritten_library_output() -> None:
    # Library output with normalised whitespace, ASCII quotes and a dropped
    # character must still map onto exact offsets of the original text.
    text = "Alpha beta. Gamma delta! He said “hi.” Epsilon. Zeta."
    pieces = ["Alpha  beta.", "Gamma\ndelta!", 'He said "hi."', "Epsilo.", "Zeta."]
    cuts = sentences._align(text, 0, len(text), pieces)
    spans = sentences._cut(text, 0, len(text), cuts)
    assert_exact_cover(text, spans)
    assert [text[s:e] for s, e in spans] == [
        "Alpha beta.", "Gamma delta!", "He said “hi.” Epsilon.", "Zeta."]


def test_library_crash_falls_back_to_regex(caplog: pytest.LogCaptureFixture) -> None:
    # blingfire encodes to UTF-8 and raises on a lone surrogate.
    text = "Dr. Smith left \ud800. Mr. Jones stayed."
    assert texts(text, "blingfire") == ["Dr. Smith left \ud800.", "Mr. Jones stayed."]
    assert "regex fallback" in caplog.text


# --- over-long "sentences" are cut, offsets stay exact ----------------------------------------------

def _words(count: int) -> str:
    """Text with no sentence end: words of varied length, one space apart."""
    vocabulary = ["river", "a", "harbour", "of", "transmission", "grain", "lighthouse", "to", "ferry", "kiosk"]
    return " ".join(vocabulary[(i * 7 + i // 3) % len(vocabulary)] for i in range(count))


@pytest.mark.parametrize("backend", BACKENDS)
def test_text_without_sentence_ends_is_cut_into_capped_pieces(backend: str) -> None:
    text = _words(45_000)  # ~351 KB, as in the issue: one "sentence" quoted whole, twice, per answer
    assert len(text) > 300_000
    spans = split_sentences(text, backend)
    assert_exact_cover(text, spans)
    assert max(e - s for s, e in spans) <= sentences.MAX_SENTENCE_CHARS
    assert len(spans) < 2 * len(text) / sentences.MAX_SENTENCE_CHARS  # pieces near the cap, not crumbs
    for start, end in spans:  # cut between words, never inside one
        assert start == 0 or text[start - 1].isspace()
        assert end == len(text) or text[end].isspace()


def test_long_run_prefers_a_clause_end_and_splits_unbroken_runs_at_the_cap() -> None:
    limit = sentences.MAX_SENTENCE_CHARS
    clause = "word " * (limit // 5 - 20) + "then, " + "more words " * (limit // 10)
    first = texts(clause)[0]
    assert first.endswith("then,") and len(first) <= limit
    unbroken = "x" * (limit * 2 + 7)  # no space at all: cut at the cap
    assert [len(t) for t in texts(unbroken)] == [limit, limit, 7]
    assert "".join(texts(unbroken)) == unbroken
    short = "A normal sentence stays whole. " * 3
    assert texts(short.strip()) == ["A normal sentence stays whole."] * 3


def test_cap_leaves_every_squad_dev_sentence_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Measured: no real sentence comes near the cap (SQuAD v1.1 dev, every paragraph, split uncapped)."""
    import gzip
    import json

    squad = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad-dev-v1.1.json.gz"
    if not squad.is_file():
        pytest.skip(f"SQuAD dev not found at {squad}")
    cap = sentences.MAX_SENTENCE_CHARS
    monkeypatch.setattr(sentences, "MAX_SENTENCE_CHARS", 10**9)  # the splitter's own lengths, nothing cut
    data = json.loads(gzip.decompress(squad.read_bytes()))
    lengths = [len(sentence) for article in data["data"] for paragraph in article["paragraphs"]
               for sentence in texts(paragraph["context"])]
    assert len(lengths) > 10_000
    assert max(lengths) < cap * 0.8, max(lengths)  # a margin, not a near miss
