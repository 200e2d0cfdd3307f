"""What the segment store costs and keeps: bytes and seconds of a change, answers across layouts.

Used by the `segments` and `scale` stages of `python -m bench`, and on its own:

    python -m bench.segments [--questions 500]

builds the 48 SQuAD dev articles three ways (one build; 48 separate adds; those 48 segments
after `optimize`), runs `qa eval squad`'s measurement on each, and compares the answers to a
sample of questions: citations must be identical and scores equal within 1e-5.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from bench.measure import offline

if TYPE_CHECKING:
    from qa.corpus import Corpus
    from qa.index import Index

RESULTS = Path(__file__).resolve().parent / "results"


def files_state(path: Path) -> dict[str, tuple[int, int, int]]:
    """(size, inode, mtime) of every file below `path`."""
    out = {}
    for file in path.rglob("*"):
        if file.is_file():
            stat = file.stat()
            out[str(file.relative_to(path))] = (stat.st_size, stat.st_ino, stat.st_mtime_ns)
    return out


def written_bytes(path: Path, action: Callable[[], Any]) -> tuple[Any, int, float]:
    """Run `action`; return its result, the bytes of the files it created or replaced under
    `path`, and its seconds."""
    before = files_state(path)
    start = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - start
    after = files_state(path)
    return result, sum(size for name, (size, *_) in after.items() if before.get(name) != after[name]), seconds


def fresh_article(sentences: int = 16) -> Any:
    """A news-like article never seen before (nothing of it is in an embedding cache)."""
    from qa.articles import parse_article

    run = uuid.uuid4().hex[:8]
    body = "\n\n".join(
        " ".join(f"The port authority of Korvik-{run} reported that berth {p * 4 + k} handled "
                 f"{(p * 4 + k) * 130 + 7} containers in week {p + 1}." for k in range(4))
        for p in range(sentences // 4))
    return parse_article(f"Korvik port report {run}\n\n{body}\n", name=f"korvik-{run}")


def change_costs(index: "Index") -> dict[str, Any]:
    """Add a fresh 16-sentence article, then remove it: bytes written and seconds, against the
    floor of encoding that article's texts once with the same model."""
    article = fresh_article()
    texts = _embedding_texts(article, index.recipe)
    start = time.perf_counter()
    index.encoder.encode(texts)
    encode_s = time.perf_counter() - start
    article = fresh_article()  # another never-seen text: the add must encode too
    policy, index.merge_policy = index.merge_policy, None  # the change alone, no merge after it
    try:
        report, add_bytes, add_s = written_bytes(index.path, lambda: index.add_articles([article]))
        _, remove_bytes, remove_s = written_bytes(index.path, lambda: index.remove(report.added[0]))
    finally:
        index.merge_policy = policy
    return {"article_sentences": len(article.sentences()), "texts_encoded": len(texts),
            "add_s": round(add_s, 3), "encode_s": round(encode_s, 3), "add_over_encode_s": round(add_s - encode_s, 3),
            "add_bytes": add_bytes, "remove_s": round(remove_s, 3), "remove_bytes": remove_bytes,
            "targets": {"add_bytes": "<= 5 MB", "add_over_encode_s": "<= 1 s at 1M", "remove": "<= 1 s, <= 1 MB at 1M"}}


def _embedding_texts(article: Any, recipe: str) -> list[str]:
    """What an add of `article` encodes, by the index's build recipe."""
    from qa.corpus import Corpus
    from qa.slots import texts_to_encode

    return texts_to_encode(Corpus.empty().with_articles([article]), recipe)


def layout(size: int, segments: int = 16) -> list[int]:
    """Segment sizes of a `size`-sentence archive grown by adds under the default merge policy:
    seven of each of the two largest tiers and two small recent ones (16 segments)."""
    if segments != 16:
        return [size // segments] * (segments - 1) + [size - (size // segments) * (segments - 1)]
    small = max(size // 330, 20)
    middle = max(size // 71, 20)
    big = (size - 7 * middle - 2 * small) // 7
    return [big] * 7 + [middle] * 7 + [small, size - 7 * big - 7 * middle - small]


def commit_as_segments(index: "Index", corpus: "Corpus", vectors: Sequence[np.ndarray], sizes: Sequence[int]) -> None:
    """Write a generated corpus as segments of about `sizes` sentences (cut at article ends) and
    commit them at once: what many adds would have left, without encoding."""
    from qa.bm25 import LexicalIndex
    from qa.corpus import ARTICLE
    from qa.cues import CueTable
    from qa.dense import DenseIndex
    from qa.ingest.dedup import NearDuplicates
    from qa.store import Segment, SegmentData, read_segment_data

    article_of = corpus.table[:, ARTICLE]
    segments, first_article = [], 0
    cuts = np.cumsum(sizes)
    for n, cut in enumerate(cuts.tolist()):
        last_article = len(corpus.articles) if n == len(cuts) - 1 else int(article_of[min(cut, len(corpus)) - 1]) + 1
        rows = list(range(first_article, last_article))
        first_article = last_article
        if not rows:
            continue
        part, keep = corpus.only_articles(rows)
        ids = np.flatnonzero(keep)
        embeddings = np.ascontiguousarray(vectors[0][ids])
        data = SegmentData(part, embeddings, np.ascontiguousarray(vectors[1][ids]), DenseIndex.build(embeddings),
                           LexicalIndex.build(part.lexical_texts(), part.neighbours), CueTable.empty().extend(part.texts()),
                           NearDuplicates(part.articles).signatures)
        name = index._next_segment_name()
        data.write(index.path, name)
        segments.append(Segment(name, read_segment_data(index.path / name, len(part))))
    index._commit(segments, replace_all=True)


def answers(index: "Index", questions: Sequence[str]) -> list[dict[str, Any]]:
    """Each question's decision, citations and scores (related passages when abstaining)."""
    out = []
    for question in questions:
        result = index.answer(question)
        cited = result.related if result.abstained else result.citations
        out.append({"abstained": result.abstained, "cited": [(c.article_id, c.start, c.end) for c in cited],
                    "scores": [c.score for c in cited], "hits": [(h.sentence_id, h.score) for h in index.search(question)[1][:10]]})
    return out


def compare(one: list[dict[str, Any]], other: list[dict[str, Any]]) -> dict[str, Any]:
    """How far two runs of `answers` agree: identical citations, largest score difference."""
    same = sum(a["abstained"] == b["abstained"] and a["cited"] == b["cited"] for a, b in zip(one, other))
    gap = max((abs(x - y) for a, b in zip(one, other) for x, y in zip(a["scores"], b["scores"])), default=0.0)
    hit_gap = max((abs(x[1] - y[1]) for a, b in zip(one, other) for x, y in zip(a["hits"], b["hits"])
                   if x[0] == y[0]), default=0.0)
    return {"questions": len(one), "identical": same, "max_citation_score_difference": gap,
            "max_hit_score_difference": hit_gap}


def squad_layouts(questions: int = 500, seed: int = 0, recipe: str | None = None) -> dict[str, Any]:
    """SQuAD dev built once, by 48 adds and after optimize, each with build recipe `recipe` (the
    default one when None): `qa eval`'s figures and answer agreement."""
    from qa.evaluation import metrics
    from qa.evaluation.run import article_rows, measure, resolved_questions
    from qa.evaluation.squad import HELD_OUT, TUNING, load_squad, write_articles
    from qa.cache import cached_encode
    from qa.config import Settings
    from qa.index import Index
    from qa.slots import DEFAULT_RECIPE
    from bench.corpora import SQUAD_FILE as SQUAD_DEV

    squad = load_squad(SQUAD_DEV)
    settings = Settings()
    rng = np.random.default_rng(seed)
    sample = [squad.questions[i].text for i in np.sort(rng.choice(len(squad.questions), questions, replace=False))]
    recipe = recipe or DEFAULT_RECIPE
    out: dict[str, Any] = {"articles": len(squad.articles), "sample": questions, "recipe": recipe}
    with tempfile.TemporaryDirectory(prefix="qa-segments-") as tmp:
        files = write_articles(squad, Path(tmp) / "articles")
        ordered = sorted(files[TUNING].glob("*.txt")) + sorted(files[HELD_OUT].glob("*.txt"))
        built = Index.empty(Path(tmp) / "built", recipe=recipe)
        built.add_articles([_read(f) for f in ordered])
        piecemeal = Index.empty(Path(tmp) / "piecemeal", built.encoder, recipe=recipe)
        piecemeal.merge_policy = None
        for file in ordered:
            piecemeal.add(file)
        texts = resolved_questions([q.text for q in squad.questions], settings)
        vectors = cached_encode(built.encoder, [t or "" for t in texts])
        reference = answers(built, sample)

        def figures(index: "Index") -> dict[str, Any]:
            outcome = measure(index, squad, texts, vectors, article_rows(index, squad, {TUNING, HELD_OUT}))
            ranks = np.asarray(outcome.ranks)
            return {"segments": len(index.manifest["segments"]), "mrr": round(metrics.mrr(ranks), 4),
                    "recall_at_1": round(metrics.recall_at(ranks, 1), 4), "agreement": compare(answers(index, sample), reference)}

        out["one_build"] = figures(built)
        out["one_build"].pop("agreement")
        out["separate_adds"] = figures(piecemeal)
        start = time.perf_counter()
        piecemeal.optimize()
        out["optimize_s"] = round(time.perf_counter() - start, 2)
        out["after_optimize"] = figures(piecemeal)
    return out


def _read(file: Path) -> Any:
    from qa.articles import read_article

    return read_article(file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.segments", description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=500, help="questions whose answers are compared")
    parser.add_argument("--recipe", default=None, help="build recipe of the three indexes (default: the engine's)")
    parser.add_argument("--out", type=Path, default=RESULTS / "segments.json")
    args = parser.parse_args(argv)
    offline()
    report = squad_layouts(args.questions, recipe=args.recipe)
    rows = [("one build", report["one_build"], None), ("48 separate adds", report["separate_adds"], report["separate_adds"]["agreement"]),
            ("after optimize", report["after_optimize"], report["after_optimize"]["agreement"])]
    print("| layout | segments | MRR | R@1 | answers identical to one build | max score difference |")
    print("|---|---|---|---|---|---|")
    for name, f, agreement in rows:
        same = f"{agreement['identical']}/{agreement['questions']}" if agreement else "-"
        gap = f"{max(agreement['max_citation_score_difference'], agreement['max_hit_score_difference']):.1e}" if agreement else "-"
        print(f"| {name} | {f['segments']} | {f['mrr']:.4f} | {f['recall_at_1']:.4f} | {same} | {gap} |")
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
