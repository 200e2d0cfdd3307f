"""Every row of ../shared/eval/seed-questions.jsonl, against the committed seed index."""

from __future__ import annotations

import pytest

from conftest import needs_shared_eval, seed_questions

ROWS = seed_questions()

# Rows the engine gets wrong today, with why. strict=True: the day one passes, this list must shrink.
KNOWN_MISSES = {
    "Why could OpenAI's block help domestic LLM developers train their models?": (
        "ranks 3rd: the sentence about OpenAI exiting the market matches the headline and the question's "
        "wording better for the encoder; no measured lever fixes it without breaking other rows"
    ),
}


def _marked(row: dict) -> object:
    reason = KNOWN_MISSES.get(row["question"])
    return pytest.param(row, marks=pytest.mark.xfail(reason=reason, strict=True)) if reason else row


@needs_shared_eval
@pytest.mark.parametrize("row", [_marked(r) for r in ROWS], ids=[r["question"][:48] for r in ROWS] or None)
def test_seed_question(seed_index, row: dict) -> None:
    result = seed_index.answer(row["question"], history=row.get("history"))
    if row.get("abstain"):
        assert result.abstained, f"should abstain, but cited {result.citations[:1]}"
        assert result.citations == []
        assert result.related, "an abstention still shows the closest passages"
        assert "do not answer" in result.text
    else:
        assert not result.abstained, f"abstained (confidence {result.confidence})"
        assert row["expect"] in result.citations[0].sentence
        assert result.text.startswith(result.citations[0].sentence)


@needs_shared_eval
def test_seed_file_has_all_kinds() -> None:
    # Guards the parametrisation above against an empty or unexpected file.
    assert len(ROWS) >= 10
    assert any(r.get("abstain") for r in ROWS) and any(r.get("history") for r in ROWS)


def test_follow_up_needs_history(seed_index) -> None:
    alone = seed_index.answer("And in the US?")
    followed = seed_index.answer("And in the US?", history=["How many industrial robots were installed in China in 2022?"])
    assert "robots" in followed.query and followed.query != alone.query
    assert "39,500" in followed.citations[0].sentence


def test_default_answer_uses_project_index(monkeypatch, seed_index_copy) -> None:
    import qa

    monkeypatch.setenv("QA_INDEX", str(seed_index_copy))
    result = qa.answer("How many industrial robots were installed in China in 2022?")
    assert isinstance(result, qa.Answer) and isinstance(result.citations[0], qa.Citation)
    assert "290,300" in result.citations[0].sentence
