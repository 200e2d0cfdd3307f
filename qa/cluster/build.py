"""`qa build --ray` and `qa add --ray`: the same index a local build writes, made on a Ray cluster.

1. Read and split: the input files are cut into chunks, each read and split into sentences by a
   Ray task (a quarter CPU each, so they never wait behind the embedding actors).
2. Screen, on the driver, in input order: repeats, taken ids and near-duplicates, exactly as a
   local add does (`Index._screened`).
3. Embed on an actor pool (`ray.data.ActorPoolStrategy`): each actor loads our encoder once and
   encodes through the embedding cache of its machine. Ray does not keep row order, so every
   text carries its position and the vectors are put back by it.
4. Write: the articles, in input order, are cut into segments of adjacent articles, each written
   with `SegmentData.write`, and all committed by one commit point (`Index._commit`).

Sentence ids, and with them every tie in ranking, come out as in a local build: the articles are
in the same order, only cut into segments at other places.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from qa.articles import Article, find_article_files
from qa.cluster.runtime import connect
from qa.corpus import ARTICLE, Corpus
from qa.encoder import DEFAULT_MODEL, Encoder
from qa.errors import NoArticlesError, QAError
from qa.index import BATCH_SENTENCES, AddReport, Index, _script_counts, _scripts, new_segment_data
from qa.progress import Reporter, Tracker, WorkDone, reporter_for
from qa.slots import DEFAULT_RECIPE, texts_to_encode
from qa.store import write_lock

FILES_PER_TASK = 16
TEXTS_PER_BATCH = 256


def _read_files(items: Sequence[str]) -> list[tuple[str, Any]]:
    """Ray task: each input read into articles, each article with its sentence table, or a failure."""
    from qa.ingest import Failure, load_articles

    out: list[tuple[str, Any]] = []
    for item in items:
        for loaded in load_articles(item):
            if isinstance(loaded, Failure):
                out.append(("failed", (loaded.name, loaded.reason)))
            else:
                out.append(("article", (loaded, Corpus.from_articles([loaded]).table)))
    return out


class _Embed:
    """Actor of the embedding pool: one encoder (one model load) per actor, through the cache."""

    def __init__(self, model: str) -> None:
        from qa.cache import EmbeddingCache

        self.encoder = Encoder(model)
        self.cache = EmbeddingCache.for_encoder(self.encoder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.cache.encode(self.encoder, [str(text) for text in batch["text"]])
        return {"position": np.asarray(batch["position"], dtype=np.int64), "vector": vectors}


def read_articles(ray: Any, paths: Iterable[str | Path], report: AddReport) -> list[tuple[Article, np.ndarray]]:
    """Every article under `paths`, in the order a local add reads them, with its sentence table;
    failures go to `report`."""
    from qa.ingest import is_url

    items: list[str] = []
    for root in paths:
        if is_url(root) or "://" in str(root) or not Path(root).is_dir():
            items.append(str(root))  # a file, URL or missing path: the task reads (or reports) it
            continue
        try:
            items += [str(file) for file in find_article_files(root)]
        except QAError as exc:
            report.failed.append((str(root), str(exc)))
    task = ray.remote(num_cpus=0.25)(_read_files)
    chunks = [items[i : i + FILES_PER_TASK] for i in range(0, len(items), FILES_PER_TASK)]
    articles = []
    for done in ray.get([task.remote(chunk) for chunk in chunks]):  # ray.get keeps the order of the list
        for kind, value in done:
            if kind == "failed":
                report.failed.append(value)
            else:
                articles.append(value)
    return articles


def embed(ray: Any, texts: list[str], model: str, workers: int, dimension: int,
          progress: WorkDone | bool = False) -> np.ndarray:
    """Vectors of `texts`, row for row, encoded on a pool of `workers` actors; `progress` (an
    encoder's hook, see qa.progress) is told (texts back, texts in all) as batches come back."""
    if not texts:
        return np.zeros((0, dimension), dtype=np.float32)
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no progress report per block
    ray.data.DataContext.get_current().enable_progress_bars = False
    rows = ray.data.from_items([{"position": n, "text": text} for n, text in enumerate(texts)])
    encoded = rows.map_batches(_Embed, fn_constructor_kwargs={"model": model}, batch_size=TEXTS_PER_BATCH,
                               compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1)
    vectors = np.full((len(texts), dimension), np.nan, dtype=np.float32)
    back = 0
    for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
        vectors[batch["position"]] = np.stack(batch["vector"])  # output order is not kept: place by position
        back += len(batch["position"])
        if callable(progress):
            progress(back, len(texts))
    if np.isnan(vectors).any():
        raise QAError("The embedding pool returned fewer vectors than texts; the index was left as it was.")
    return vectors


def partition(sizes: Sequence[int], parts: int) -> list[range]:
    """Cut items (their sizes, in order) into at most `parts` runs of adjacent items of about equal size."""
    parts = max(1, min(parts, len(sizes)))
    total = np.cumsum(sizes)
    cuts = sorted({int(np.searchsorted(total, total[-1] * n / parts, side="left")) + 1 for n in range(1, parts)})
    bounds = [0, *[c for c in cuts if 0 < c < len(sizes)], len(sizes)]
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def _corpus(articles: list[Article], tables: list[np.ndarray]) -> Corpus:
    blocks = []
    for row, table in enumerate(tables):
        block = table.copy()
        block[:, ARTICLE] = row
        blocks.append(block)
    return Corpus(tuple(articles), np.concatenate(blocks) if blocks else np.zeros((0, 5), dtype=np.int64))


def add_on_cluster(index: Index, paths: Iterable[str | Path], address: str, *, rebuild: bool,
                   workers: int | None = None, segments: int | None = None, drop_missing: bool = False,
                   progress: bool | Reporter = False) -> AddReport:
    """Add (or, with `rebuild`, replace everything by) the articles under `paths`, on the cluster
    at `address`; one commit point at the end. `workers`: embedding actors (default: one per
    cluster CPU); `segments`: how many segments to cut the new articles into (default: one per
    `BATCH_SENTENCES` sentences). `progress`: as `Index.add`'s (sentences embedded, rate, ETA)."""
    ray = connect(address)
    paths = list(paths)
    report = AddReport()
    parsed = read_articles(ray, paths, report)
    if rebuild and not parsed:
        raise NoArticlesError(
            f"No article could be indexed from {', '.join(map(str, paths))}: "
            + ("; ".join(f"{name}: {why}" for name, why in report.failed) or "no article files found")
            + ". Point --source at a folder of articles. The existing index was left as it was.")
    tables = {article.sha256: table for article, table in parsed}
    with index._write_lock, write_lock(index.path):
        if not rebuild:
            index._refresh()
        elif not drop_missing:
            _refuse_to_drop(index.path, [article for article, _ in parsed])
        kept, near = [], None
        for article, near in index._screened([article for article, _ in parsed], report):
            kept.append(article)
        if not kept:
            return report
        signatures = np.asarray(near.signatures[len(near.signatures) - len(kept):], dtype=np.uint64)
        sizes = [len(tables[a.sha256]) for a in kept]
        runs = partition(sizes, segments or math.ceil(sum(sizes) / BATCH_SENTENCES))
        corpora = [_corpus(kept[run.start:run.stop], [tables[a.sha256] for a in kept[run.start:run.stop]]) for run in runs]
        texts = [texts_to_encode(corpus, index.recipe) for corpus in corpora]
        pool = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        sentences = sum(len(corpus) for corpus in corpora)
        tracker = Tracker(sentences, reporter_for(progress))
        try:
            vectors = embed(ray, [text for group in texts for text in group], index.encoder.model_name, pool,
                            index.encoder.dimension, tracker.part(sentences))
            tracker.finish()
        finally:
            tracker.finish(complete=False)
        written, first = [], 0
        for run, corpus, group in zip(runs, corpora, texts):
            data = new_segment_data(corpus, index.recipe, group, vectors[first : first + len(group)],
                                    signatures[run.start:run.stop])
            first += len(group)
            written.append(index._write_segment(data))
        scripts = _scripts(kept) if rebuild else _script_counts(index.manifest) + _scripts(kept)
        index._commit(written if rebuild else [*index._state.segments, *written], replace_all=rebuild, scripts=scripts)
        report.added.extend(a.id for a in kept)
        if not rebuild:
            index._merge_while_needed()
    return report


def build_on_cluster(source: str | Path, path: str | Path, address: str, *, model: str = DEFAULT_MODEL,
                     workers: int | None = None, segments: int | None = None, drop_missing: bool = False,
                     recipe: str = DEFAULT_RECIPE, progress: bool | Reporter = False) -> Index:
    """`Index.build` on the cluster at `address`: a fresh index of every article under `source`,
    its sentences encoded by `recipe` (qa.slots).

    Raises:
        MissingArticlesError: the index at `path` holds articles no source provides (added,
            pasted) and `drop_missing` is False: a cluster build does not re-index them, so it
            refuses rather than drop them (a local `qa build` keeps them).
    """
    index = Index.empty(Path(path), Encoder(model), recipe=recipe)
    index.build_report = add_on_cluster(index, [source], address, rebuild=True, workers=workers, segments=segments,
                                        drop_missing=drop_missing, progress=progress)
    return index


def _refuse_to_drop(path: Path, parsed: list[Article]) -> None:
    """Raise MissingArticlesError when the index at `path` holds articles `parsed` does not provide."""
    from qa.errors import MissingArticlesError
    from qa.rebuild import not_provided, previous_articles

    missing = [a.id for a in not_provided(previous_articles(path), parsed)]
    if missing:
        raise MissingArticlesError(
            f"The index at '{path}' holds {len(missing)} article(s) the source does not provide "
            f"({', '.join(missing[:10])}{', ...' if len(missing) > 10 else ''}). A cluster build would drop them: "
            "run `qa build` without --ray to keep them, or pass --drop-missing to drop them. Nothing was changed.")
