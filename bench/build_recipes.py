"""Which build recipe keeps `qa eval squad` quality while encoding each sentence once (issue 14).

Run from /work/main with a warm embedding cache (a `qa eval squad` run fills it):

    nice -n 5 .venv/bin/python -m bench.build_recipes --late     # bench/results/build-recipes.json

Protocol: `qa eval squad`'s own (qa/evaluation/run.py): the tuning half is indexed with
`Index.build`, the held-out half with `Index.add`, and every unique question is ranked against
both snapshots. The candidates and every weight-independent feature come from the engine's
ranking code (bench/fusion_pool.py); a recipe changes only the two stored slot vectors
(bench/slot_recipes.py). For each recipe the fusion weights are re-tuned on the tuning half's
questions with bench/recipes.py's coordinate ascent (its grid, anchor and passes), started from
today's weights. Abstention is measured two ways on the tuning-half index: the top hit's
pool-independent score (docs/quality.md's figures), with the threshold re-set so answerable
questions abstain as often as today's recipe at 4.85; and the engine's calibrated confidence
(qa/confidence.py, coefficients as fitted for today's recipe) at its default threshold. The best
recipes the engine builds (qa/slots.py) are checked through it: `Index.answer` on the seed
questions here, and `qa eval squad --recipe NAME` for the whole protocol.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import fusion_pool as fp
from bench import slot_recipes as sr
from qa.cache import cached_encode
from qa.config import FusionWeights, Settings
from qa.evaluation import metrics
from qa.evaluation.run import article_rows, resolved_questions
from qa.evaluation.squad import HELD_OUT, TUNING, load_squad, write_articles
from qa.index import Index

DATA = Path("/work/shared/eval/squad-dev-v1.1.json.gz")
SEEDS = Path("/work/shared/eval/seed-questions.jsonl")
RESULTS = Path(__file__).resolve().parent / "results" / "build-recipes.json"
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "build-recipes"
# The abstain threshold of docs/quality.md's figures, on the scale of the top hit's pool-independent
# score (`Hit.confidence`); since commit 4fbdbb6 the engine abstains on a calibrated score instead
# (qa/confidence.py), which takes `Hit.confidence` as one of its inputs.
HIT_THRESHOLD = 4.85
PASSES: list[int | None] = [None]  # --passes


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Setup:
    """The two snapshots of `qa eval squad`, the questions, and their candidate pools."""

    def __init__(self, folder: Path, settings: Settings, articles: int | None = None, late: bool = False) -> None:
        self.index_snapshots(folder, settings, articles)
        _log("extracting candidate pools (engine ranking code, once per question and snapshot)")
        self.pools = {name: fp.extract(state, self.texts, self.vectors, self._golds(rows), settings)
                      for name, state, rows in (("full", self.full_state, self.full_rows),
                                                ("tuning", self.tuning_state, self.tuning_rows))}
        encode = lambda texts: cached_encode(self.index.encoder, texts)  # noqa: E731
        vectors = None
        if late:
            from bench.late_chunks import late_vectors

            _log("late chunking: one pass over each titled paragraph")
            vectors = late_vectors(self.full_state.corpus, CACHE / f"late-{len(self.full_state.corpus)}.npz")
        self.parts = {"full": sr.parts_of(self.full_state, self.index.encoder, encode, vectors),
                      "tuning": sr.parts_of(self.tuning_state, self.index.encoder, encode, vectors)}

    def index_snapshots(self, folder: Path, settings: Settings, articles: int | None) -> None:
        """Index the halves as `qa eval squad` does (every vector from the embedding cache when warm)."""
        self.squad = load_squad(DATA, articles)
        files = write_articles(self.squad, folder / "articles")
        self.index = Index.build(files[TUNING], folder / "index", settings=settings, recipe="full")  # old_slots: encoded
        self.tuning_state = self.index._state
        self.texts = resolved_questions([q.text for q in self.squad.questions], settings)
        self.vectors = cached_encode(self.index.encoder, [t or "" for t in self.texts])
        self.tuning_rows = article_rows(self.index, self.squad, {TUNING})
        self.index.add(files[HELD_OUT])
        self.full_state = self.index._state
        self.full_rows = article_rows(self.index, self.squad, {TUNING, HELD_OUT})
        halves = np.array([self.squad.articles[q.article].half for q in self.squad.questions])
        self.tuning_questions = np.flatnonzero(halves == TUNING)
        self.held_out_questions = np.flatnonzero(halves == HELD_OUT)
        self.answerable = np.array([any(self.squad.articles[g.article].half == TUNING for g in q.golds)
                                    for q in self.squad.questions])

    def _golds(self, rows: dict[int, int]) -> list[list[tuple[int, int]]]:
        return [[(rows[g.article], g.offset) for g in q.golds if g.article in rows] for q in self.squad.questions]


def load_setup(folder: Path, settings: Settings, articles: int | None, late: bool) -> Setup:
    """A Setup, with its candidate pools from .cache/build-recipes when an earlier run extracted them."""
    import pickle

    file = CACHE / f"setup-{articles or 'all'}-{'late' if late else 'plain'}.pkl"
    if file.is_file():
        with file.open("rb") as handle:
            setup = pickle.load(handle)
        setup.index_snapshots(folder, settings, articles)  # the snapshots' corpora and index, not kept in the file
        return setup
    setup = Setup(folder, settings, articles, late)
    index, setup.index = setup.index, None
    kept = {k: getattr(setup, k) for k in ("full_state", "tuning_state")}
    setup.full_state = setup.tuning_state = None  # memory-mapped files of a temporary folder: not kept
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("wb") as handle:
        pickle.dump(setup, handle, protocol=5)
    setup.index = index
    for k, v in kept.items():
        setattr(setup, k, v)
    return setup


def _retrieval(rank: np.ndarray) -> dict[str, float]:
    return {"mrr": round(metrics.mrr(rank), 4), "r@1": round(metrics.recall_at(rank, 1), 4),
            "r@5": round(metrics.recall_at(rank, 5), 4), "r@10": round(metrics.recall_at(rank, 10), 4)}


def calibrated(setup: Setup, name: str, fused: np.ndarray, absolute: np.ndarray) -> np.ndarray:
    """`Answer.confidence` (qa/confidence.py, its fitted coefficients) of every question on one snapshot."""
    from qa.confidence import NO_HITS, confidence
    from qa.ranking import Hit

    pool, corpus = setup.pools[name], getattr(setup, f"{name}_state").corpus
    order = np.lexsort((pool.ids, -fused, pool.question))
    out = np.full(pool.questions, NO_HITS)
    for q in np.flatnonzero(np.diff(pool.offsets) > 0):
        rows = order[pool.offsets[q]: pool.offsets[q + 1]]
        top = rows[0]
        dense_max = float(pool.base["sentence"][rows].max())
        hits = [Hit(int(pool.ids[top]), float(fused[top]), float(absolute[top]), float(pool.base["sentence"][top]), 0.0)]
        if len(rows) > 1:
            hits.append(Hit(int(pool.ids[rows[1]]), float(fused[rows[1]]), 0.0, dense_max, 0.0))
        else:  # the maximum of the hits' cosines is all the score reads of the rest
            hits[0] = hits[0]._replace(dense=dense_max)
        out[q] = confidence(setup.texts[q], hits, corpus)
    return out


def _abstention(values: np.ndarray, answerable: np.ndarray, threshold: float) -> dict[str, float]:
    ten = metrics.threshold_for_abstain_rate(values[answerable], 0.10)
    return {"threshold": round(float(threshold), 3), "auroc": round(metrics.auroc(values, answerable), 4),
            "answerable": round(metrics.abstain_rate(values[answerable], threshold), 4),
            "out_of_corpus": round(metrics.abstain_rate(values[~answerable], threshold), 4),
            "at_10pct_answerable": {"threshold": round(ten, 3),
                                    "out_of_corpus": round(metrics.abstain_rate(values[~answerable], ten), 4)}}


def figures(setup: Setup, recipe: sr.Slots, weights: dict[str, float], rate: float | None,
            threshold: float | None = None) -> dict[str, Any]:
    """Retrieval on the full snapshot; abstention on the tuning one (answerable = tuning-half
    questions, out of corpus = held-out half's), two ways: the top hit's pool-independent score
    at `threshold` or, if None, at the threshold where answerable questions abstain at `rate`;
    and the engine's calibrated confidence (qa/confidence.py as fitted today) at its default threshold."""
    out: dict[str, Any] = {}
    scored = {}
    for name in ("full", "tuning"):
        pool = setup.pools[name]
        scored[name] = fp.scores(pool, pool.slot_features(sr.slots(recipe, setup.parts[name]), setup.vectors), weights)
    full = setup.pools["full"]
    rank = fp.ranks(full, scored["full"][0])
    hit_full = fp.top_confidences(full, *scored["full"])
    hit_tuning = fp.top_confidences(setup.pools["tuning"], *scored["tuning"])
    ans = setup.answerable
    if threshold is None:
        threshold = metrics.threshold_for_abstain_rate(hit_tuning[ans], rate)
    default = Settings().abstain_threshold
    calibrated_full = calibrated(setup, "full", *scored["full"])
    out["all"] = {**_retrieval(rank), "abstain_hit_score": round(metrics.abstain_rate(hit_full, threshold), 4),
                  "abstain_calibrated": round(metrics.abstain_rate(calibrated_full, default), 4)}
    out["tuning_half"] = _retrieval(rank[setup.tuning_questions])
    out["held_out_half"] = _retrieval(rank[setup.held_out_questions])
    out["abstention"] = _abstention(hit_tuning, ans, threshold)
    out["abstention_calibrated"] = _abstention(calibrated(setup, "tuning", *scored["tuning"]), ans, default)
    return out


def run_recipe(setup: Setup, name: str, recipe: sr.Slots, rate: float,
               weights: dict[str, float] | None = None) -> dict[str, Any]:
    """Tune the weights for one recipe on the tuning half (bench/recipes.py's coordinate ascent,
    started from today's weights), then measure it; `weights` skips the tuning."""
    full = setup.pools["full"]
    if weights is None:
        slot = full.slot_features(sr.slots(recipe, setup.parts["full"]), setup.vectors)
        weights, tuned = fp.tune(full, slot, setup.tuning_questions, start=fp.weights_dict(FusionWeights()), passes=PASSES[0])
    else:
        tuned = None
    row = {"recipe": name, "weights": {k: v for k, v in weights.items() if v},
           "tuning_half_mrr_tuned": None if tuned is None else round(tuned, 4), **figures(setup, recipe, weights, rate)}
    a, h, ab, cb = row["all"], row["held_out_half"], row["abstention"], row["abstention_calibrated"]
    _log(f"{name:34s} MRR {a['mrr']:.4f} R@1 {a['r@1']:.4f} R@5 {a['r@5']:.4f} | held-out {h['mrr']:.4f} | "
         f"hit score: AUROC {ab['auroc']:.3f} abstain {a['abstain_hit_score']:.3f} ans {ab['answerable']:.3f} "
         f"ooc {ab['out_of_corpus']:.3f} | calibrated: AUROC {cb['auroc']:.3f} abstain {a['abstain_calibrated']:.3f} "
         f"ans {cb['answerable']:.3f} ooc {cb['out_of_corpus']:.3f}")
    return row


def seed_check(recipe: str, settings: Settings, folder: Path) -> dict[str, Any]:
    """Every seed question through `Index.answer` on the seed articles built with engine recipe `recipe`."""
    index = Index.build(Path(__file__).resolve().parent.parent / "seeds", folder, settings=settings, recipe=recipe)
    rows = [json.loads(line) for line in SEEDS.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = []
    for row in rows:
        answer = index.answer(row["question"], history=row.get("history"))
        passed = answer.abstained if row.get("abstain") else (
            not answer.abstained and row["expect"] in answer.citations[0].sentence)
        out.append({"question": row["question"], "abstain_expected": bool(row.get("abstain")),
                    "abstained": bool(answer.abstained), "confidence": round(float(answer.confidence), 3),
                    "passed": bool(passed)})
    return {"passed": sum(r["passed"] for r in out), "rows": len(out), "questions": out}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--articles", type=int, default=None, help="only the first N articles (a quick check)")
    parser.add_argument("--late", action="store_true", help="also measure late-chunked slots (bench/late_chunks.py)")
    parser.add_argument("--more", action="store_true", help="also the variants that lost on 4 articles")
    parser.add_argument("--ablations", action="store_true",
                        help="also one slot encoded, the other derived (which slot loses; a middle recipe)")
    parser.add_argument("--passes", type=int, default=None, help="coordinate-ascent passes (default: as bench/recipes.py)")
    args = parser.parse_args(argv)
    PASSES[0] = args.passes
    started = time.time()
    settings = Settings()
    today = fp.weights_dict(settings.weights)
    with tempfile.TemporaryDirectory(prefix="build-recipes-") as tmp:
        setup = load_setup(Path(tmp), settings, args.articles, args.late)
        _log(f"{setup.pools['full'].questions} questions, {len(setup.pools['full'].ids):,} candidates; "
             f"CJK questions (scored differently, ignored): {setup.pools['full'].cjk}")
        full_today = sr.TITLE_RECIPES["full (today)"]
        reference = figures(setup, full_today, today, None, threshold=HIT_THRESHOLD)
        rate = reference["abstention"]["answerable"]  # the re-set thresholds keep this rate
        _log(f"today (defaults, hit-score threshold {HIT_THRESHOLD}): {json.dumps(reference)}")
        fast = sr.TITLE_RECIPES["fast: unit(s+t), unit(p+s+n)"]
        rows = [run_recipe(setup, "fast, today's weights (not re-tuned)", fast, rate, today),
                run_recipe(setup, "fast: unit(s+t), unit(p+s+n)", fast, rate)]
        if args.more:  # on 4 articles: no better than the plain fast recipe (0.787 vs 0.790 MRR)
            titled_context = sr.context_recipes(lambda p: fast(p)[0])["context unit(p+s+n+t)"]
            rows.append(run_recipe(setup, "fast: unit(s+t), unit(p+s+n+t)", titled_context, rate))
        if args.ablations:  # each encodes one extra text per sentence: "title: sentence" or the context
            for name in ("ablation: encoded title slot, fast context", "ablation: fast title, encoded context slot"):
                rows.append(run_recipe(setup, name, sr.TITLE_RECIPES[name], rate))
        if args.late:
            late = sr.LATE_RECIPES["late: titled span | context span"]
            rows.append(run_recipe(setup, "late: titled span | context span", late, rate))
        families = {"fast (sentence encoded once, one title per article)":
                    [r for r in rows if r["tuning_half_mrr_tuned"] and r["recipe"].startswith(("fast", "title"))],
                    "one slot encoded (sentence and one extra text)":
                    [r for r in rows if r["tuning_half_mrr_tuned"] and r["recipe"].startswith("ablation")],
                    "late (plus one pass per titled paragraph)": [r for r in rows if r["recipe"].startswith("late:")]}
        winners = {}
        for family, members in families.items():
            if not members:
                continue
            best = max(members, key=lambda r: r["tuning_half_mrr_tuned"])
            chosen = Settings(weights=FusionWeights(**{**{k: 0.0 for k in today}, **best["weights"]}))
            _log(f"best {family} on the tuning half: {best['recipe']}; checking it through the engine")
            engine_recipe = sr.ENGINE_RECIPES.get(best["recipe"])
            winners[family] = {"recipe": best["recipe"], "engine_recipe": engine_recipe,
                               "settings": {"weights": best["weights"],
                                            "hit_score_threshold": best["abstention"]["threshold"]},
                               "seed_questions": seed_check(engine_recipe, chosen, Path(tmp) / f"seeds-{len(winners)}")
                               if engine_recipe else None}  # `qa eval squad --recipe` measures an engine recipe whole
            if engine_recipe:
                _log(f"seed questions: {winners[family]['seed_questions']['passed']}/{winners[family]['seed_questions']['rows']}")
        seeds_today = seed_check("full", settings, Path(tmp) / "seed-index-today")
    result = {
        "command": "nice -n 5 .venv/bin/python -m bench.build_recipes" + (f" --articles {args.articles}" if args.articles else "")
                   + (" --late" if args.late else "")
        + (f" --passes {args.passes}" if args.passes else "") + (" --more" if args.more else "") + (" --ablations" if args.ablations else ""),
        "protocol": __doc__.split("\n\n")[3].replace("\n", " "),
        "today": {"weights": today, "hit_score_threshold": HIT_THRESHOLD, **reference, "seed_questions": seeds_today},
        "recipes": rows,
        "winners": winners,
        "questions": setup.pools["full"].questions, "candidates": int(len(setup.pools["full"].ids)),
        "elapsed_seconds": round(time.time() - started),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    _log(f"seed questions with today's recipe: {seeds_today['passed']}/{seeds_today['rows']}")
    _log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
