"""`qa eval squad`: metric code against hand-computed values, and the command on a real slice."""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import json
import os
from dataclasses import asdict
from pathlib import Path

for _key, _value in (("HF_HUB_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"), ("GRADIO_ANALYTICS_ENABLED", "False"),
                     ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_key, _value)

import numpy as np
import pytest

from qa.cli import main
from qa.config import Settings
from qa.evaluation import metrics
from qa.evaluation.squad import HELD_OUT, TUNING, load_squad, split_halves, write_articles

SHARED = Path(__file__).resolve().parents[2] / "shared"
SQUAD_DEV = SHARED / "eval" / "squad-dev-v1.1.json.gz"

# Two unrelated topics; every answerable question nearly repeats its gold sentence, so the
# engine must put that sentence first. "Chess_history" sorts first: it is the tuning half.
CHESS = [
    "Chess is a board game played between two players. The modern rules of chess were settled in southern "
    "Europe around 1475. The first official world champion was Wilhelm Steinitz, who won the title in 1886.",
    "The Elo rating system ranks players by their results. It was invented by the physicist Arpad Elo in 1960. "
    "Computer programs have beaten the best human players since 1997, when Deep Blue defeated Garry Kasparov.",
]
VOLCANO = [
    "A volcano is a rupture in the crust of a planet that lets hot lava escape. Mount Etna in Sicily is one of "
    "the most active volcanoes in Europe. The eruption of Mount Vesuvius in 79 AD buried the city of Pompeii "
    "under ash.",
    "Volcanic Eruption Index",  # a one-line block without a full stop: a heading, so not citable
    "Lava flows can reach temperatures of 1200 degrees Celsius. Volcanic ash clouds can disrupt air traffic "
    "across whole continents.",
]
# (paragraph, question, answer text)
CHESS_QUESTIONS = [
    (0, "Who was the first official world champion of chess?", "Wilhelm Steinitz"),
    (0, "When were the modern rules of chess settled in southern Europe?", "around 1475"),
    (1, "Which physicist invented the rating system in 1960?", "Arpad Elo"),
    (1, "When did Deep Blue defeat Garry Kasparov?", "1997"),
]
VOLCANO_QUESTIONS = [
    (0, "Which city did the eruption of Mount Vesuvius bury under ash?", "Pompeii"),
    (0, "Where is Mount Etna, one of the most active volcanoes in Europe?", "Sicily"),
    (1, "What is the name of the Volcanic Eruption Index?", "Volcanic Eruption Index"),  # unreachable gold
    (2, "What temperatures can lava flows reach?", "1200 degrees Celsius"),
    (2, "What can volcanic ash clouds disrupt?", "air traffic"),
    (2, "What can volcanic ash clouds disrupt? ", "air traffic"),  # same question after strip: counted once
]


def _squad_article(title: str, contexts: list[str], qas: list[tuple[int, str, str]]) -> dict:
    paragraphs = [{"context": c, "qas": []} for c in contexts]
    for n, (p, question, answer) in enumerate(qas):
        start = contexts[p].index(answer)
        paragraphs[p]["qas"].append({"id": f"{title}-{n}", "question": question,
                                     "answers": [{"answer_start": start, "text": answer}]})
    return {"title": title, "paragraphs": paragraphs}


@pytest.fixture(scope="module")
def tiny_squad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = {"version": "1.1", "data": [_squad_article("Volcano_basics", VOLCANO, VOLCANO_QUESTIONS),
                                       _squad_article("Chess_history", CHESS, CHESS_QUESTIONS)]}
    path = tmp_path_factory.mktemp("squad") / "tiny.json.gz"
    path.write_bytes(gzip.compress(json.dumps(data).encode("utf-8")))
    return path


@pytest.fixture(scope="module")
def tiny_result(tiny_squad: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("out") / "tiny.json"
    assert main(["eval", "squad", str(tiny_squad), "--json", str(out), "--per-question"]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


# --- metrics, by hand ---------------------------------------------------------


def test_rank_metrics_match_hand_computed_values() -> None:
    ranks = np.array([1, 2, 0, 5, 3, 7])
    assert metrics.mrr(ranks) == pytest.approx((1 + 1 / 2 + 0 + 1 / 5 + 1 / 3 + 1 / 7) / 6)
    assert metrics.recall_at(ranks, 1) == pytest.approx(1 / 6)
    assert metrics.recall_at(ranks, 5) == pytest.approx(4 / 6)
    assert metrics.abstain_rate(np.array([0.2, 0.45, 0.9, 0.44]), 0.45) == pytest.approx(2 / 4)
    confidences = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 1.0])
    assert metrics.threshold_for_abstain_rate(confidences, 0.2) == 0.3  # only 0.1 and 0.2 fall below it


def test_auroc_matches_hand_computed_value_with_ties() -> None:
    # Positives 0.9, 0.4, 0.6 against negatives 0.5, 0.4, 0.1: 3 + (0 + 0.5 + 1) + 3 = 7.5 of 9 pairs.
    scores = np.array([0.9, 0.5, 0.4, 0.4, 0.6, 0.1])
    positive = np.array([True, False, True, False, True, False])
    assert metrics.auroc(scores, positive) == pytest.approx(7.5 / 9)
    assert metrics.auroc(scores, ~positive) == pytest.approx(1.5 / 9)
    assert np.isnan(metrics.auroc(scores, np.ones(6, dtype=bool)))


def test_first_hit_needs_the_gold_article_and_a_span_holding_the_offset() -> None:
    articles = np.array([1, 0, 0, 0])
    starts = np.array([10, 0, 10, 30])
    ends = np.array([30, 10, 30, 50])
    assert metrics.first_hit_rank(articles, starts, ends, [(0, 12)]) == 3  # rank 1 is the right span, wrong article
    assert metrics.first_hit_rank(articles, starts, ends, [(0, 30)]) == 4  # end is exclusive
    assert metrics.first_hit_rank(articles, starts, ends, [(0, 45), (0, 5)]) == 2  # the best of several golds
    assert metrics.first_hit_rank(articles, starts, ends, [(2, 12)]) == 0


# --- the SQuAD loader -----------------------------------------------------------


def test_loader_lays_out_articles_and_maps_gold_offsets(tiny_squad: Path) -> None:
    squad = load_squad(tiny_squad)
    volcano, chess = squad.articles
    assert volcano.text == "Volcano basics\n\n" + "\n\n".join(VOLCANO)
    assert (chess.half, volcano.half) == (TUNING, HELD_OUT)
    assert squad.question_rows == 10 and len(squad.questions) == 9
    answers = {q: a for _, q, a in CHESS_QUESTIONS + VOLCANO_QUESTIONS}
    for question in squad.questions:
        (gold,) = question.golds  # the repeated question keeps one gold, not two equal ones
        text = squad.articles[gold.article].text
        assert text[gold.offset : gold.offset + len(answers[question.text])] == answers[question.text]
    assert load_squad(tiny_squad, articles=1).articles[0].title == "Volcano_basics"


def test_fixed_split_alternates_over_sorted_titles() -> None:
    assert split_halves(["d", "b", "a", "c"]) == [HELD_OUT, HELD_OUT, TUNING, TUNING]


# --- the command on the tiny file ---------------------------------------------


def test_eval_figures_on_tiny_file_are_the_hand_computed_ones(tiny_result: dict) -> None:
    # 9 unique questions; all but the heading one are found first; that one can never be found.
    data, retrieval = tiny_result["data"], tiny_result["retrieval"]
    assert (data["articles"], data["unique_questions"], data["gold_unreachable"]) == (2, 9, 1)
    assert [q["rank"] for q in tiny_result["questions"]] == [1, 1, 0, 1, 1, 1, 1, 1, 1]
    for key, count, mrr in (("all", 9, 8 / 9), ("tuning_half", 4, 1.0), ("held_out_half", 5, 4 / 5)):
        row = retrieval[key]
        assert row["questions"] == count
        assert row["mrr"] == pytest.approx(mrr) and row["r@1"] == pytest.approx(mrr)
        assert row["r@5"] == pytest.approx(mrr)
    assert retrieval["all"]["not_in_candidates"] == 1


def test_abstention_figures_on_tiny_file_follow_from_the_confidences(tiny_result: dict) -> None:
    abstention, rows = tiny_result["abstention"], tiny_result["questions"]
    threshold = Settings().abstain_threshold
    assert abstention["threshold"] == threshold
    answerable = [r["tuning_half_index"]["confidence"] for r in rows if r["answerable_in_tuning_half"]]
    outside = [r["tuning_half_index"]["confidence"] for r in rows if not r["answerable_in_tuning_half"]]
    assert (abstention["answerable"]["questions"], abstention["out_of_corpus"]["questions"]) == (4, 5)
    # Out-of-corpus questions have no gold in the half index: they can only be "not found".
    assert all(r["tuning_half_index"]["rank"] == 0 for r in rows if not r["answerable_in_tuning_half"])
    pairs = [1.0 if a > o else 0.5 if a == o else 0.0 for a, o in itertools.product(answerable, outside)]
    assert abstention["auroc"] == pytest.approx(sum(pairs) / len(pairs))
    assert abstention["out_of_corpus"]["abstain_rate"] == pytest.approx(sum(c < threshold for c in outside) / 5)
    assert abstention["answerable"]["abstain_rate"] == 0.0  # near-verbatim questions are answered
    # With 4 answerable questions, "at most 10% abstain" means none: the threshold is their lowest confidence.
    point = abstention["at_10pct_answerable"]
    assert point["threshold"] == pytest.approx(min(answerable))
    assert point["out_of_corpus_abstain_rate"] == pytest.approx(sum(c < min(answerable) for c in outside) / 5)


def test_batched_ranking_is_what_index_search_and_answer_use(tiny_squad: Path, tmp_path: Path) -> None:
    from qa.evaluation.run import decision, rank_many, resolved_questions
    from qa.index import Index

    squad = load_squad(tiny_squad)
    folders = write_articles(squad, tmp_path / "articles")
    index = Index.build(folders[TUNING], tmp_path / "index")
    index.add(folders[HELD_OUT])
    encoder = index.encoder
    texts = resolved_questions([q.text for q in squad.questions], index.settings)
    batched_hits = list(rank_many(index, texts, encoder.encode(texts)))  # one batch of vectors
    assert index.encoder is encoder  # the stand-in encoder is gone once the questions are done
    for text, batched in zip(texts, batched_hits):
        _, single = index.search(text)  # the question encoded on its own, as a user's is
        assert [h.sentence_id for h in batched] == [h.sentence_id for h in single]
        assert [h.score for h in batched] == pytest.approx([h.score for h in single], abs=1e-5)
        # The eval's abstain rule must stay the one `answer` applies.
        answer = index.answer(text)
        confidence, abstained = decision(index, text, batched)
        assert answer.confidence == pytest.approx(confidence, abs=1e-4)
        assert answer.abstained == abstained


def test_set_overrides_settings_and_fusion_weights() -> None:
    from qa.evaluation.command import parse_settings

    settings = parse_settings(["candidates=50", "weights.bm25=0.25", "abstain_threshold=1.5"])
    assert (settings.candidates, settings.weights.bm25, settings.abstain_threshold) == (50, 0.25, 1.5)
    assert settings.weights.sentence == Settings().weights.sentence


def test_eval_refuses_bad_input_with_a_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "squad", str(tmp_path / "missing.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"data": [{"paragraphs": []}]}', encoding="utf-8")
    assert main(["eval", "squad", str(tmp_path / "bad.json")]) == 2
    assert "SQuAD v1.1 format" in capsys.readouterr().err
    assert main(["eval", "squad", str(tmp_path / "bad.json"), "--set", "no_such_knob=1"]) == 2
    assert "qa.config.Settings" in capsys.readouterr().err


def test_eval_refuses_bad_out_of_corpus_sets_before_indexing(tiny_squad: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "squad", str(tiny_squad), "--ooc-questions", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"question": "Who won?"}\n["not", "an", "object"]\n', encoding="utf-8")
    assert main(["eval", "squad", str(tiny_squad), "--ooc-questions", str(tmp_path / "bad.jsonl")]) == 2
    assert "line 2" in capsys.readouterr().err
    assert main(["eval", "squad", str(tiny_squad), "--ooc-articles", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err


# --- the command on a real slice ----------------------------------------------


needs_squad = pytest.mark.skipif(not SQUAD_DEV.exists(), reason=f"SQuAD dev set not found at {SQUAD_DEV} (../shared/eval)")


@pytest.fixture(scope="module")
def slice_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict]:
    """`qa eval squad` on the first two SQuAD dev articles: printed table, JSON path, JSON."""
    out = tmp_path_factory.mktemp("slice") / "eval.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["eval", "squad", str(SQUAD_DEV), "--articles", "2", "--json", str(out), "--per-question"]) == 0
    return printed.getvalue(), out, json.loads(out.read_text(encoding="utf-8"))


@needs_squad
def test_qa_eval_on_a_two_article_slice_of_squad(slice_run: tuple[str, Path, dict]) -> None:
    table, out, result = slice_run
    assert "MRR" in table and "AUROC" in table and str(out) in table
    assert "What users see" in table and "news-questions" in table and "seeds/" in table

    raw = json.loads(gzip.decompress(SQUAD_DEV.read_bytes()))["data"][:2]
    unique = {qa["question"].strip() for a in raw for p in a["paragraphs"] for qa in p["qas"]}
    data, retrieval, abstention = result["data"], result["retrieval"], result["abstention"]
    assert (data["articles"], data["unique_questions"]) == (2, len(unique))
    assert data["paragraphs"] == sum(len(a["paragraphs"]) for a in raw)
    assert retrieval["tuning_half"]["questions"] + retrieval["held_out_half"]["questions"] == len(unique)
    assert abstention["answerable"]["questions"] + abstention["out_of_corpus"]["questions"] == len(unique)
    figures = retrieval["all"]
    assert 0 <= figures["r@1"] <= figures["r@5"] <= figures["r@10"] <= 1
    assert figures["r@1"] <= figures["mrr"] <= 1
    # A working engine finds most answers on two articles; a broken offset mapping scores near zero.
    assert figures["mrr"] > 0.5 and 0.5 <= abstention["auroc"] <= 1
    assert result["settings"] == asdict(Settings())
    assert result["model"]["fingerprint"] and result["machine"]["cores_usable"] >= 1


@needs_squad
def test_user_figures_follow_from_the_per_question_decisions(slice_run: tuple[str, Path, dict]) -> None:
    _, _, result = slice_run
    rows, answers = result["questions"], result["answers"]
    right = sum(not r["abstained"] and r["rank"] == 1 for r in rows)
    wrong = sum(not r["abstained"] and r["rank"] != 1 for r in rows)
    everyone = answers["answerable"]["all"]
    assert everyone["counts"] == {"answered_right": right, "answered_wrong": wrong,
                                  "abstained": len(rows) - right - wrong}
    assert everyone["answered_right"] == pytest.approx(right / len(rows))
    outside = [r for r in rows if not r["answerable_in_tuning_half"]]
    held_out = answers["out_of_corpus"]["held_out_half"]
    assert held_out["counts"]["abstained"] == sum(r["tuning_half_index"]["abstained"] for r in outside)
    assert held_out["abstained"] + held_out["answered_wrong"] == pytest.approx(1.0)
    seed = answers["out_of_corpus"]["other_articles"]
    assert (seed["questions"], seed["counts"]["abstained"]) == (len(rows), sum(r["other_articles"]["abstained"] for r in rows))
    news = answers["out_of_corpus"]["other_questions"]
    assert news["questions"] == len(result["other_questions"]) >= 60


@needs_squad
def test_eval_abstains_exactly_when_index_answer_does_on_real_questions(slice_run: tuple[str, Path, dict],
                                                                        tmp_path: Path) -> None:
    """Each per-question decision of `qa eval` is the one `Index.answer` makes, in every index it asks."""
    from qa.config import default_source_path
    from qa.index import Index

    _, _, result = slice_run
    sample = result["questions"][::10]  # 105 of the 1,046, spread over both articles
    folders = write_articles(load_squad(SQUAD_DEV, articles=2), tmp_path / "articles")
    index = Index.build(folders[TUNING], tmp_path / "index")  # as the eval builds it: tuning half first
    half_decisions = [r["tuning_half_index"]["abstained"] for r in sample]
    assert any(half_decisions) and not all(half_decisions)  # both decisions occur, so the check has teeth
    assert [index.answer(r["question"]).abstained for r in sample] == half_decisions
    index.add(folders[HELD_OUT])
    assert [index.answer(r["question"]).abstained for r in sample] == [r["abstained"] for r in sample]
    news = result["other_questions"]
    assert [index.answer(r["question"]).abstained for r in news] == [r["abstained"] for r in news]
    seed = Index.build(default_source_path(), tmp_path / "seed-index")
    assert [seed.answer(r["question"]).abstained for r in sample] == [r["other_articles"]["abstained"] for r in sample]
    for row in sample[:20]:
        assert index.answer(row["question"]).confidence == pytest.approx(row["confidence"], abs=1e-3)
