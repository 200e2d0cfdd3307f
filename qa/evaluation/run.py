"""Ask every question of a SQuAD file through the engine and measure the sentence it ranks first.

Two temporary indexes, built the way users build them (`Index.build` on a folder of article
files, then `Index.add` of a second folder): first the tuning half alone, whose questions are
answerable and the held-out half's out of corpus (abstention quality); then both halves (MRR,
R@k). Questions are encoded once, in one batch, then ranked by the engine's own `Index.search`
with those vectors looked up instead of encoded again.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from qa import questions
from qa.answering import assess
from qa.config import DEFAULT_RECIPE, Settings
from qa.corpus import ARTICLE, END, START
from qa.encoder import DEFAULT_MODEL
from qa.errors import QuestionError
from qa.evaluation import answers, metrics, ooc
from qa.evaluation.squad import HELD_OUT, TUNING, EvaluationDataError, SquadSet, load_squad, write_articles
from qa.index import Index
from qa.ranking import Hit

PROTOCOL = (
    "ReQA (Ahmad et al. 2019): every sentence of every paragraph is a candidate; a candidate is correct "
    "when it is in the question's paragraph and its [start, end) span holds a gold answer_start; "
    "MRR over the full candidate list (0 when no candidate is correct), R@k; unique question strings."
)


@dataclass(frozen=True)
class Outcome:
    """Per-question results against one index, in `SquadSet.questions` order."""

    ranks: np.ndarray  # 1-based rank of the first correct candidate, 0 if none
    confidences: np.ndarray  # `Answer.confidence` of each question (0 when nothing was ranked)
    abstained: np.ndarray  # `Answer.abstained` of each question (True when the engine refused it)
    candidates: np.ndarray  # how many candidates the engine ranked


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolved_questions(texts: Sequence[str], settings: Settings) -> list[str | None]:
    """What `Index.search` would retrieve with (no chat history), or None for a refused question."""
    resolved: list[str | None] = []
    for text in texts:
        try:
            resolved.append(questions.resolve(questions.validate(text, settings.max_question_chars), None))
        except QuestionError:
            resolved.append(None)
    return resolved


class _BatchedQuestions:
    """Stands in for `index.encoder` while the questions are searched: their vectors, made in one
    batch, are looked up instead of encoded one by one. Anything else goes to the real encoder."""

    def __init__(self, encoder: Any, texts: Sequence[str | None], vectors: np.ndarray) -> None:
        self._encoder = encoder
        self._vectors = {text: vector for text, vector in zip(texts, vectors) if text is not None}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if texts and all(text in self._vectors for text in texts):
            return np.stack([self._vectors[text] for text in texts])
        return self._encoder.encode(texts, progress=progress)


def rank_many(index: Index, texts: Sequence[str | None], vectors: np.ndarray) -> Iterator[list[Hit]]:
    """`index.search(text)` hits for each resolved question (no hits when the engine refuses it).

    This is the user's code path (validation, script check, ranking on the current snapshot);
    only the question vectors are given, so 10k questions are encoded in batches instead of one
    at a time. `tests/test_eval.py` checks that the hits equal those of a plain `index.search`.
    """
    real = index.encoder
    index.encoder = _BatchedQuestions(real, texts, vectors)
    try:
        for text in texts:
            if text is None:
                yield []
                continue
            try:
                yield index.search(text)[1]
            except QuestionError:  # e.g. a script no article uses: the engine cites nothing
                yield []
    finally:
        index.encoder = real


def decision(index: Index, query: str | None, hits: list[Hit]) -> tuple[float, bool]:
    """`Answer.confidence` and `Answer.abstained` for these hits: `qa.answering.assess`, as `compose` calls it."""
    if query is None:  # refused by validation: the user gets an error, never a citation
        return 0.0, True
    return assess(query, hits, index._state.corpus, index.settings)


def article_rows(index: Index, squad: SquadSet, halves: set[str]) -> dict[int, int]:
    """SquadSet article number -> row in the index's corpus, for the articles of the indexed halves.

    Matching is by text, so it also checks that every article came back byte-exact (else the
    gold offsets would point at the wrong characters).
    """
    by_text = {article.text: row for row, article in enumerate(index._state.corpus.articles)}
    rows: dict[int, int] = {}
    for number, article in enumerate(squad.articles):
        if article.half not in halves:
            continue
        if article.text not in by_text:
            raise EvaluationDataError(
                f"Article '{article.title}' is not in the index as written (its text changed on the way in, "
                "so gold offsets would be wrong). Report this as a bug in qa.articles / qa.ingest."
            )
        rows[number] = by_text[article.text]
    return rows


def measure(index: Index, squad: SquadSet | None, texts: Sequence[str | None], vectors: np.ndarray,
            rows: dict[int, int]) -> Outcome:
    """Rank every question against `index`, find where its first correct sentence lands, and
    decide as `Index.answer` would whether to abstain.

    `squad=None`: the questions are not SQuAD's (out of corpus): no candidate is correct.
    """
    table = index._state.corpus.table
    n = len(texts)
    ranks = np.zeros(n, dtype=np.int64)
    confidences = np.zeros(n, dtype=np.float64)
    abstained = np.ones(n, dtype=bool)
    candidates = np.zeros(n, dtype=np.int64)
    for i, hits in enumerate(rank_many(index, texts, vectors)):
        confidences[i], abstained[i] = decision(index, texts[i], hits)
        if not hits:
            continue
        ids = np.fromiter((h.sentence_id for h in hits), dtype=np.int64, count=len(hits))
        golds = [] if squad is None else [(rows[g.article], g.offset) for g in squad.questions[i].golds if g.article in rows]
        cited = table[ids]
        ranks[i] = metrics.first_hit_rank(cited[:, ARTICLE], cited[:, START], cited[:, END], golds)
        candidates[i] = len(hits)
    return Outcome(ranks, confidences, abstained, candidates)


def reachable(index: Index, squad: SquadSet, rows: dict[int, int]) -> np.ndarray:
    """Per question: does any citable sentence hold a gold answer start? (If not, no ranker can hit it.)"""
    table = index._state.corpus.table
    found = np.zeros(len(squad.questions), dtype=bool)
    for i, question in enumerate(squad.questions):
        golds = [(rows[g.article], g.offset) for g in question.golds if g.article in rows]
        found[i] = metrics.first_hit_rank(table[:, ARTICLE], table[:, START], table[:, END], golds) > 0
    return found


def _group(outcome: Outcome, mask: np.ndarray, threshold: float) -> dict[str, Any]:
    figures = metrics.summary(outcome.ranks[mask], outcome.confidences[mask], threshold)
    figures["abstain_rate"] = float(outcome.abstained[mask].mean()) if mask.any() else float("nan")
    figures["mean_candidates"] = float(outcome.candidates[mask].mean()) if mask.any() else float("nan")
    return figures


def evaluate_squad(
    path: str | Path,
    *,
    articles: int | None = None,
    model: str = DEFAULT_MODEL,
    recipe: str = DEFAULT_RECIPE,
    settings: Settings | None = None,
    progress: bool = False,
    per_question: bool = False,
    ooc_articles: str | Path | None = None,
    ooc_questions: str | Path | None = None,
    log: Callable[[str], None] = _stderr,
) -> dict[str, Any]:
    """Measure the engine on a SQuAD-format file; returns the report as a JSON-ready dict.

    Args:
        path: SQuAD v1.1-format .json or .json.gz.
        articles: only the first N articles of the file.
        model: the embedding model the temporary indexes are built with.
        recipe: what their builds encode per sentence (qa.slots).
        settings: engine settings (default: the measured defaults of `qa.config.Settings`).
        progress: show encoding progress bars.
        per_question: add a "questions" list (rank, confidence and decision of each question, for error analysis).
        ooc_articles: a folder of other articles; every question is also asked of them alone (out of corpus).
        ooc_questions: a JSONL file of questions the SQuAD articles do not answer, asked of all of them.
        log: where stage messages go.
    """
    from qa.cache import cached_encode, default_cache_dir
    from qa.evaluation.report import code_version, machine

    started = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    timings: dict[str, float] = {}
    settings = settings or Settings()
    squad = load_squad(path, articles)
    other_questions = ooc.load_questions(ooc_questions) if ooc_questions is not None else None
    if ooc_articles is not None and not Path(ooc_articles).is_dir():
        raise EvaluationDataError(f"--ooc-articles {ooc_articles}: not a folder. Give a folder of article files, "
                                  f"or '{ooc.SKIP}' to leave that set out.")
    halves = np.array([squad.articles[q.article].half for q in squad.questions])
    tuning_mask = halves == TUNING
    answerable = np.array([any(squad.articles[g.article].half == TUNING for g in q.golds) for q in squad.questions])
    log(f"{len(squad.articles)} articles, {squad.paragraphs:,} paragraphs, {len(squad.questions):,} unique questions")

    with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
        files = write_articles(squad, Path(tmp) / "articles")
        clock = time.perf_counter()
        tuning_count = sum(a.half == TUNING for a in squad.articles)
        log(f"indexing the tuning half ({tuning_count} articles)")
        index = Index.build(files[TUNING], Path(tmp) / "index", model=model, settings=settings, progress=progress,
                            recipe=recipe)
        if not index.build_report or not index.build_report.ok:
            raise EvaluationDataError(f"Some articles could not be indexed: {index.build_report}.")
        timings["index_tuning_half"] = time.perf_counter() - clock

        clock = time.perf_counter()
        texts = resolved_questions([q.text for q in squad.questions], settings)
        log(f"encoding {len(texts):,} questions")
        # Through the embedding cache, like the articles: a re-run while tuning re-encodes nothing.
        vectors = cached_encode(index.encoder, [t or "" for t in texts], progress=progress)
        timings["encode_questions"] = time.perf_counter() - clock

        clock = time.perf_counter()
        log("ranking every question against the tuning half (abstention)")
        half = measure(index, squad, texts, vectors, article_rows(index, squad, {TUNING}))
        timings["rank_against_tuning_half"] = time.perf_counter() - clock

        if HELD_OUT in files:
            clock = time.perf_counter()
            log(f"adding the held-out half ({len(squad.articles) - tuning_count} articles)")
            added = index.add(files[HELD_OUT], progress=progress)
            if not added.ok:
                raise EvaluationDataError(f"Some articles could not be indexed: {added.failed}.")
            timings["index_held_out_half"] = time.perf_counter() - clock
        clock = time.perf_counter()
        log("ranking every question against all articles")
        rows = article_rows(index, squad, set(files))
        full = measure(index, squad, texts, vectors, rows)
        gold_reachable = reachable(index, squad, rows)
        timings["rank_against_all"] = time.perf_counter() - clock
        others: dict[str, Outcome] = {}
        other_articles_count = 0
        if other_questions is not None:
            clock = time.perf_counter()
            log(f"asking {len(other_questions)} out-of-corpus questions of all articles")
            other_texts = resolved_questions(other_questions, settings)
            other_vectors = cached_encode(index.encoder, [t or "" for t in other_texts])
            others["other_questions"] = measure(index, None, other_texts, other_vectors, {})
            timings["other_questions"] = time.perf_counter() - clock
        if ooc_articles is not None:
            clock = time.perf_counter()
            log(f"asking every question of the articles in {ooc_articles} alone")
            alone = Index.build(ooc_articles, Path(tmp) / "other-articles-index", model=model, settings=settings,
                                recipe=recipe)
            if not alone.build_report or not alone.build_report.ok:
                raise EvaluationDataError(f"Some articles of {ooc_articles} could not be indexed: {alone.build_report}.")
            others["other_articles"] = measure(alone, None, texts, vectors, {})
            other_articles_count = len(alone.articles())
            timings["other_articles"] = time.perf_counter() - clock
        sentences = len(index)
        manifest = index.manifest
        fingerprint = index.encoder.fingerprint

    threshold = settings.abstain_threshold
    everyone = np.ones(len(squad.questions), dtype=bool)
    result = {
        "benchmark": "squad",
        "protocol": PROTOCOL,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {
            "path": squad.path, "sha256": squad.sha256, "version": squad.version,
            "articles": len(squad.articles), "articles_in_file": squad.articles_in_file,
            "paragraphs": squad.paragraphs, "question_rows": squad.question_rows,
            "unique_questions": len(squad.questions), "sentences": sentences,
            "gold_unreachable": int((~gold_reachable).sum()),
            "refused_questions": sum(t is None for t in texts),
            "split": "titles sorted; even positions = tuning half, odd = held-out half",
            "tuning_articles": [a.title for a in squad.articles if a.half == TUNING],
            "held_out_articles": [a.title for a in squad.articles if a.half == HELD_OUT],
        },
        "retrieval": {
            "all": _group(full, everyone, threshold),
            "tuning_half": _group(full, tuning_mask, threshold),
            "held_out_half": _group(full, ~tuning_mask, threshold),
        },
        "abstention": {
            "indexed": "tuning half only; answerable = questions with a gold answer in it, "
                       "out of corpus = the held-out half's questions",
            "threshold": threshold,
            "auroc": metrics.auroc(half.confidences, answerable),
            "answerable": {"questions": int(answerable.sum()),
                           "abstain_rate": float(half.abstained[answerable].mean()) if answerable.any() else float("nan")},
            "out_of_corpus": {"questions": int((~answerable).sum()),
                              "abstain_rate": float(half.abstained[~answerable].mean()) if (~answerable).any() else float("nan")},
            # Where the ROC curve crosses the answerable target: what a re-set threshold could give.
            "at_10pct_answerable": {
                "threshold": (point := metrics.threshold_for_abstain_rate(half.confidences[answerable], 0.10)),
                "out_of_corpus_abstain_rate": metrics.abstain_rate(half.confidences[~answerable], point),
            },
            "at_80pct_out_of_corpus": {
                "threshold": (low := metrics.threshold_for_abstain_rate(half.confidences[~answerable], 0.80)),
                "answerable_abstain_rate": metrics.abstain_rate(half.confidences[answerable], low),
            },
        },
        "answers": answers.user_figures(full, half, tuning_mask, answerable, others, {
            "other_articles": {"asked_of": str(ooc_articles), "articles": other_articles_count,
                               "questions_from": "every SQuAD question"},
            "other_questions": {"asked_of": "all SQuAD articles", "file": str(ooc_questions)},
        }),
        "settings": asdict(settings),
        "model": {**manifest.get("model", {}), "requested": model, "fingerprint": fingerprint},
        "recipe": recipe,
        "versions": manifest.get("versions", {}),
        "machine": {**machine(), "load_average_at_start": load_at_start},
        "code": code_version(),
        "embedding_cache": str(default_cache_dir()),  # timings from a fresh clone need an empty one
        "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
        "elapsed_seconds": round(time.perf_counter() - started, 1),
        # CPU time of this process: unlike wall time, barely moved by other jobs on a shared machine.
        "cpu_seconds": round(sum(os.times()[:2]), 1),
    }
    if per_question:
        result.update(answers.per_question(squad, halves, answerable, full, half, others, other_questions or []))
    return result
