"""The Index: build, load, add, remove, optimize, answer. One object, a few verbs, a folder on disk.

The folder is a store of immutable segments (`qa.store`): an add writes one new segment, a
remove a small deletion file, and each commits a new commit point; merges keep the segment
count bounded. Readers answer from a snapshot of one commit and never wait for a writer.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

from qa import overlap, questions, turns
from qa.answering import Answer, compose
from qa.articles import Article
from qa.bm25 import LexicalIndex
from qa.config import Settings, default_index_path, default_source_path
from qa.corpus import Corpus
from qa.cues import CueTable
from qa.dense import DenseIndex
from qa.encoder import DEFAULT_MODEL, Encoder
from qa.errors import (
    ArticleNotFoundError,
    IndexCorruptError,
    IndexLoadError,
    ModelMismatchError,
)
from qa.progress import Reporter, Tracker, reporter_for
from qa.ranking import Hit, lexical_half, rank
from qa.slots import DEFAULT_RECIPE, check_recipe, stored_vectors, texts_to_encode
from qa.store import (
    MANIFEST,
    MergePolicy,
    Segment,
    SegmentData,
    Snapshot,
    dead_article_rows,
    deletes_name,
    merge_segments,
    read_commit,
    read_segment_data,
    referenced,
    segment_name,
    sweep,
    write_commit,
    write_deletes,
    write_lock,
)
from qa.store.commit import FORMAT_VERSION, LEGACY_PREFIX, SEGMENT_PREFIX

if TYPE_CHECKING:
    from qa.ingest.dedup import NearDuplicates

# An add of many articles commits a segment each time this many sentences are ready, so an
# interrupted add keeps what it committed (re-running it skips those as already indexed).
BATCH_SENTENCES = 5_000


@dataclass(frozen=True)
class ArticleInfo:
    """One row of `Index.articles()`."""

    id: str
    title: str
    date: str | None
    source: str
    sentences: int


@dataclass
class AddReport:
    """What an add did, file by file. `ok` is False when anything failed to go in."""

    added: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    near_duplicates: list[str] = field(default_factory=list)  # added, but the same story as an indexed one

    @property
    def ok(self) -> bool:
        """True when every input was added or was already there."""
        return not self.failed


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    names = ("qa", "onnxruntime", "sentence-transformers", "faiss-cpu", "scipy", "numpy", "torch")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _script_counts(manifest: dict[str, Any]) -> Counter[str]:
    """How many indexed articles are written in each script."""
    return Counter(manifest.get("script_counts", {}))


def _scripts(articles: Iterable[Article]) -> Counter[str]:
    """How many of `articles` are written in each script."""
    return Counter(filter(None, map(questions.script_of, (a.text for a in articles))))


class Index:
    """A searchable collection of articles stored in one folder of segments.

    Use `Index.build(...)` or `Index.load(...)`; the constructor only stores its arguments.
    Reads are lock-free snapshots; writes are serialised and committed atomically to disk.

    Attributes:
        merge_policy: when to merge segments after a write; None leaves them unmerged.
    """

    def __init__(self, path: Path, encoder: Encoder, settings: Settings, state: Snapshot) -> None:
        self.path = path
        self.encoder = encoder
        self.settings = settings
        self.merge_policy: MergePolicy | None = MergePolicy()
        self._state = state
        self._write_lock = threading.Lock()
        self._manifest_file = os.fspath(self.path / MANIFEST)  # stat before every answer: no Path joins
        self._manifest_stamp = self._stamp()
        self.build_report: AddReport | None = None  # set by `build`: which files went in

    # --- opening ---------------------------------------------------------

    @classmethod
    def build(
        cls,
        source: str | Path | None = None,
        path: str | Path | None = None,
        *,
        model: str = DEFAULT_MODEL,
        settings: Settings | None = None,
        progress: bool | Reporter = False,
        drop_missing: bool = False,
        recipe: str = DEFAULT_RECIPE,
    ) -> "Index":
        """Index every article under `source` (default `seeds/`) into a fresh index at `path`.

        An index already at `path` stays loadable, and answers as before, until the new one is
        committed, in one commit point. Its articles that no source provides (added, pasted) are
        kept unless `drop_missing`; `<path>/pasted/` is read as a source too (see qa.rebuild).
        `build_report.kept`/`.dropped` name them. `progress`: True reports on stderr, a callable
        gets each `qa.progress.Status` (see `add`). `recipe`: what is encoded per sentence
        (qa.slots: "full", "titled" or "fast"; default `qa.config.DEFAULT_RECIPE`); later adds follow it.
        """
        from qa.rebuild import read_sources, with_missing

        source = Path(source) if source else default_source_path()
        path = Path(path) if path else default_index_path()
        index = cls.empty(path, Encoder(model), settings, recipe=recipe)
        parsed, index.build_report = read_sources(source, path)
        with index._write_lock, write_lock(path):
            articles = with_missing(parsed, path, index.build_report, drop_missing=drop_missing)
            index._add_batches(articles, index.build_report, progress, rebuild=True)
        return index

    @classmethod
    def empty(cls, path: str | Path, encoder: Encoder | None = None, settings: Settings | None = None, *,
              recipe: str = DEFAULT_RECIPE) -> "Index":
        """An index with no articles, to fill with `add`/`add_articles`; nothing is written before the first add."""
        encoder = encoder or Encoder()
        manifest = {"created": _now(), "generation": 0, "recipe": check_recipe(recipe), "segments": []}
        return cls(Path(path), encoder, settings or Settings(), Snapshot([], manifest, encoder.dimension))

    @classmethod
    def load(
        cls, path: str | Path | None = None, *, model: str | None = None, settings: Settings | None = None
    ) -> "Index":
        """Open the index at `path` (default `index/` or `QA_INDEX`).

        Raises:
            IndexMissingError, IndexCorruptError, IndexFormatError: the folder is not a usable index.
            ModelMismatchError: the index was built by another model than `model` or the local weights.
        """
        path = Path(path) if path else default_index_path()
        state = _read_snapshot(path)
        built_with = state.manifest["model"]
        encoder = Encoder(model or built_with["name"])
        if encoder.fingerprint != built_with["fingerprint"]:
            raise ModelMismatchError(
                f"The index at '{path}' was built with model '{built_with['name']}' "
                f"(fingerprint {built_with['fingerprint']}), but '{encoder.model_name}' here has fingerprint "
                f"{encoder.fingerprint}. Rebuild it with `qa build --index {path} --model {encoder.model_name}`, "
                "or load it with the model that built it."
            )
        return cls(path, encoder, settings or Settings(), state)

    def warm_up(self) -> None:
        """Load the model, join the index's small segments for reading (`qa.store.units`) and
        index the large units' postings by sentence (`LexicalIndex.sentence_postings`) now, so
        that the first question waits for none of it (at 1M sentences: ~0.1 s and ~0.5 s)."""
        self.encoder.encode(["warm up"])
        self._state.warm_up()

    def _stamp(self) -> int:
        try:
            return os.stat(self._manifest_file).st_mtime_ns
        except OSError:
            return 0

    def _refresh(self) -> None:
        """Pick up a commit made by another process (e.g. `qa add` while the app runs)."""
        stamp = self._stamp()
        if stamp and stamp != self._manifest_stamp:
            self._state = _read_snapshot(self.path, self._state)
            self._manifest_stamp = stamp

    # --- reading ---------------------------------------------------------

    def __len__(self) -> int:
        return len(self._state)

    @property
    def recipe(self) -> str:
        """What each sentence's vectors are made of (qa.slots); every write to this index follows it."""
        return self._state.manifest["recipe"]  # `read_commit` names the legacy one for older indexes

    @property
    def manifest(self) -> dict[str, Any]:
        """The commit point of the current snapshot (build metadata, segments)."""
        return self._state.manifest

    def articles(self) -> list[ArticleInfo]:
        """The indexed articles, in the order they were added (including writes by other processes)."""
        self._refresh()
        state = self._state
        per_article = np.bincount(state.corpus.table[:, 0], minlength=len(state.corpus.articles))
        return [ArticleInfo(a.id, a.title, a.date, a.source, int(per_article[row])) for row, a in state.live_articles()]

    def article(self, article_id: str) -> Article:
        """One article, text included."""
        state = self._state
        found = state.find_article(article_id)
        if found is None:
            raise ArticleNotFoundError(f"No article with id '{article_id}'. `qa list` shows the ids.")
        position, row = found
        return state.segments[position].data.corpus.articles[row]

    def search(self, query: str, history: Sequence[str] | None = None) -> tuple[str, list[Hit]]:
        """The resolved query and every candidate sentence for it, best first."""
        self._refresh()
        return self._search(self._state, query, history)

    def _search(self, state: Snapshot, query: str, history: Sequence[str] | None) -> tuple[str, list[Hit]]:
        question = questions.validate(query, self.settings.max_question_chars)
        questions.check_script(question, state.manifest.get("scripts", []))

        # A stand-in encoder (the evaluation's batch of vectors, a test's) has no model to wait for.
        overlapped = overlap.pays() and isinstance(self.encoder, Encoder)

        def ranked(text: str) -> list[Hit]:
            if not overlapped:
                return rank(text, self.encoder.encode([text])[0], state, self.settings)
            # BM25 needs no vector: it runs on a helper thread during the encode.
            vectors, lexical = overlap.encode_beside(self.encoder, [text], lexical_half, text, state, self.settings)
            return rank(text, vectors[0], state, self.settings, lexical)

        return turns.search(question, history, ranked, state.corpus, self.settings)  # follow-ups, answer fit

    def answer(
        self, question: str, history: Sequence[str] | None = None, max_citations: int | None = None
    ) -> Answer:
        """Answer from the articles with cited sentences, or abstain.

        Args:
            question: the user's question.
            history: earlier user turns of the same chat, oldest first (for follow-ups).
            max_citations: overrides `Settings.max_citations`.

        Raises:
            QuestionError: empty, too long, or in a script no article uses.
        """
        self._refresh()
        state = self._state
        resolved, hits = self._search(state, question, history)
        return compose(question.strip(), resolved, hits, state.corpus, state.embeddings, self.settings, max_citations)

    # --- writing ---------------------------------------------------------

    def add(self, paths: str | Path | Iterable[str | Path], progress: bool | Reporter = False) -> AddReport:
        """Add article files (.txt .md .html .pdf .jsonl), folders or http(s) URLs; only new articles are embedded.

        Bad files are reported in the returned AddReport (by name, with the reason) and the
        good ones still go in. Re-adding an indexed article is a no-op reported as a duplicate.
        Many articles are committed in batches of about `BATCH_SENTENCES` sentences.
        `progress` counts the sentences embedded over all batches: True shows it on stderr (a bar
        on a terminal, else a line every `QA_PROGRESS_INTERVAL` s), a callable gets each
        `qa.progress.Status`.
        """
        if isinstance(paths, (str, Path)):
            paths = [paths]
        return self._add_paths(list(paths), progress=progress)

    def add_articles(self, articles: Sequence[Article], progress: bool | Reporter = False) -> AddReport:
        """Add already-parsed articles (pasted text, other formats)."""
        report = AddReport()
        with self._write_lock, write_lock(self.path):
            self._refresh()
            self._add_batches(list(articles), report, progress, rebuild=False)
        return report

    def _add_paths(self, paths: list[str | Path], *, progress: bool | Reporter) -> AddReport:
        from qa.ingest import Failure, load_articles

        report = AddReport()
        parsed: list[Article] = []
        for root in paths:
            for item in load_articles(root):  # a URL, file, folder or JSONL batch: many items, some bad
                if isinstance(item, Failure):
                    report.failed.append((item.name, item.reason))
                else:
                    parsed.append(item)
        with self._write_lock, write_lock(self.path):
            self._refresh()
            self._add_batches(parsed, report, progress, rebuild=False)
        return report

    def _add_batches(self, articles: list[Article], report: AddReport, progress: bool | Reporter, *,
                     rebuild: bool) -> None:
        """Screen `articles` for repeats, then write them as segments of about `BATCH_SENTENCES`
        sentences. An add commits each segment as it is written; a rebuild commits them all at
        once at the end, so the index it replaces answers until then."""
        batch: list[Article] = []
        batch_sentences = 0
        written: list[tuple[str, SegmentData]] = []
        screened: list[str] = []
        reporter = reporter_for(progress)  # counting the sentences costs a split: only when someone listens
        tracker = Tracker(self._sentences_to_embed(articles) if reporter else 0, reporter)
        try:
            for article, near in self._screened(articles, report):
                screened.append(article.id)
                batch.append(article)
                batch_sentences += len(article.sentences())
                if batch_sentences >= BATCH_SENTENCES:
                    written.append(self._write_batch(batch, near, tracker, commit=not rebuild))
                    report.added.extend(a.id for a in batch)
                    batch, batch_sentences = [], 0
            if batch:
                written.append(self._write_batch(batch, near, tracker, commit=not rebuild))
                report.added.extend(a.id for a in batch)
            tracker.finish()
        except KeyboardInterrupt as exc:
            # What an add committed stays (a re-run skips it); a rebuild committed nothing yet. The
            # commit point on disk says what went in: the interrupt may land between a commit and
            # the report's bookkeeping.
            exc.committed = [] if rebuild else self._live_among(screened)  # type: ignore[attr-defined]
            raise
        finally:
            tracker.finish(complete=False)  # an error ends the job too (no-op after the finish above)
        if rebuild:
            added = [a for _, data in written for a in data.corpus.articles]
            self._commit([Segment(name, data) for name, data in written], replace_all=True, scripts=_scripts(added))
        elif written:
            self._merge_while_needed()

    def _sentences_to_embed(self, articles: list[Article]) -> int:
        """Sentences of `articles` that `_screened` will let through: all but texts already indexed."""
        seen = {a.sha256 for _, a in self._state.live_articles()}
        total = 0
        for article in articles:
            if article.sha256 not in seen:
                seen.add(article.sha256)
                total += len(article.sentences())
        return total

    def _live_among(self, ids: list[str]) -> list[str]:
        """Those of `ids` the index's commit point on disk holds now (none when there is none yet)."""
        try:
            live = {a.id for _, a in _read_snapshot(self.path, self._state).live_articles()}
        except IndexLoadError:
            return []
        return [i for i in ids if i in live]

    def _screened(self, articles: list[Article], report: AddReport) -> Iterator[tuple[Article, NearDuplicates]]:
        """Each of `articles` to index, with the near-duplicate finder that now holds its signature:
        texts already indexed are reported and skipped, a taken id gets a hash suffix, and a
        near-duplicate is flagged (kept: it may add facts; answers never quote a sentence twice)."""
        from qa.ingest.dedup import NearDuplicates

        live_articles, signatures = self._state.live_signatures()
        known = {a.sha256: a.id for a in live_articles}
        taken = {a.id for a in live_articles}
        near = NearDuplicates(live_articles, signatures)
        for article in articles:
            if article.sha256 in known:
                report.duplicates.append(f"{article.source or article.id}: already indexed as '{known[article.sha256]}'")
                continue
            if article.id in taken:  # same name, other text: keep both, apart
                article = Article(**{**article.__dict__, "id": f"{article.id}-{article.sha256[:6]}"})
            match = near.find(article)
            if match:
                article = Article(**{**article.__dict__, "meta": {**article.meta, "near_duplicate_of": match.article_id}})
                report.near_duplicates.append(
                    f"{article.source or article.id}: added as '{article.id}', but nearly the same text as "
                    f"'{match.article_id}' ({match.jaccard:.0%} shared 5-grams)")
            near.add(article)
            known[article.sha256] = article.id
            taken.add(article.id)
            yield article, near

    def _write_batch(self, articles: list[Article], near: NearDuplicates, tracker: Tracker, *,
                     commit: bool) -> tuple[str, SegmentData]:
        """Embed and index `articles` as one new segment folder; commit it unless told not to."""
        from qa.cache import cached_encode  # nothing is embedded twice: see qa/cache.py

        corpus = Corpus.empty().with_articles(articles)
        texts = texts_to_encode(corpus, self.recipe)
        encoded = cached_encode(self.encoder, texts, progress=tracker.part(len(corpus)))
        signatures = np.asarray(near.signatures[len(near.signatures) - len(articles):], dtype=np.uint64)
        segment = self._write_segment(new_segment_data(corpus, self.recipe, texts, encoded, signatures))
        if commit:
            self._commit([*self._state.segments, segment], scripts=_script_counts(self._state.manifest) + _scripts(articles))
        return segment.name, segment.data

    def _write_segment(self, data: SegmentData) -> Segment:
        """Write `data` as a new segment folder (not yet committed) and return it, its files mapped."""
        name = self._next_segment_name()
        data.write(self.path, name)
        return Segment(name, read_segment_data(self.path / name, len(data.corpus)))

    def _next_segment_name(self) -> str:
        """A segment name no commit has used, nor a killed writer left behind."""
        taken = [self._state.manifest.get("generation", 0)]
        for entry in self.path.glob(SEGMENT_PREFIX + "*") if self.path.is_dir() else []:
            digits = entry.name[len(SEGMENT_PREFIX):].split(".")[0]
            if digits.isdigit():
                taken.append(int(digits))
        return segment_name(max(taken) + 1)

    def remove(self, article_id: str) -> ArticleInfo:
        """Take an article out: its segment gets a new deletion file, nothing else is rewritten.

        A copy the app saved under `<index>/pasted/` is deleted too, so a rebuild does not bring it back.
        """
        from qa.pasted import delete_article_files

        with self._write_lock, write_lock(self.path):
            self._refresh()
            state = self._state
            found = state.find_article(article_id)
            if found is None:
                raise ArticleNotFoundError(f"No article with id '{article_id}'. `qa list` shows the ids.")
            position, row = found
            segment = state.segments[position]
            article = segment.data.corpus.articles[row]
            info = ArticleInfo(article.id, article.title, article.date, article.source,
                               len(segment.data.corpus.sentence_ids(row)))
            dead = np.union1d(segment.dead_articles, [row])
            segments = list(state.segments)
            if len(dead) == len(segment.data.corpus.articles):
                del segments[position]  # nothing of it is left to answer from
            else:
                segments[position] = segment.with_deletes(dead)
            self._commit(segments, deletes={position: dead} if len(segments) == len(state.segments) else None,
                         scripts=_script_counts(state.manifest) - _scripts([article]))
            delete_article_files(self.path, article.id)
            self._merge_while_needed()
        return info

    def optimize(self) -> None:
        """Merge every segment into one, dropping deleted rows (`qa optimize`)."""
        with self._write_lock, write_lock(self.path):
            self._refresh()
            segments = self._state.segments
            if len(segments) > 1 or any(len(s.dead_rows) for s in segments):
                self._merge(list(range(len(segments))))

    def _merge_while_needed(self) -> None:
        """Merge what the policy asks for, one commit per merge (readers keep their snapshot)."""
        while self.merge_policy is not None:
            segments = self._state.segments
            chosen = self.merge_policy.find_merge([len(s) for s in segments], [len(s.dead_rows) for s in segments])
            if not chosen:
                return
            self._merge(chosen)

    def _merge(self, positions: list[int]) -> None:
        """Replace the adjacent segments at `positions` by one merged segment, in their place."""
        segments = list(self._state.segments)
        segments[positions[0] : positions[-1] + 1] = [self._write_segment(merge_segments([segments[p] for p in positions]))]
        self._commit(segments)

    def _commit(self, segments: list[Segment], *, replace_all: bool = False,
                deletes: dict[int, np.ndarray] | None = None, scripts: Counter[str] | None = None) -> None:
        """Write a commit point listing `segments` (deletion files for `deletes`, by position), make
        it the index's, sweep what no commit needs any more, and swap the new snapshot in.

        `scripts`: articles per writing system after the change (unchanged when None); kept as
        counts so that no commit reads every article's text.
        """
        previous = self._state.manifest
        generation = max(int(previous.get("generation", 0)), *(_number(s.name) for s in segments), 0) + 1
        entries = {entry["name"]: entry for entry in previous.get("segments", [])} if not replace_all else {}
        listed = []
        for position, segment in enumerate(segments):
            entry = {"name": segment.name, "articles": len(segment.data.corpus.articles), "sentences": len(segment),
                     "deletes": entries.get(segment.name, {}).get("deletes"),
                     "deleted_articles": len(segment.dead_articles), "deleted_sentences": len(segment.dead_rows),
                     "dense": segment.data.dense.describe()["kind"]}
            if deletes and position in deletes:
                entry["deletes"] = deletes_name(segment.name, generation)
                write_deletes(self.path / entry["deletes"], deletes[position])
            listed.append(entry)
        scripts = +(scripts if scripts is not None else _script_counts(previous))  # + drops zero counts
        manifest = {
            "format_version": FORMAT_VERSION,
            "generation": generation,
            "model": {"name": self.encoder.model_name, "fingerprint": self.encoder.fingerprint,
                      "dimension": self.encoder.dimension},
            "recipe": self.recipe,
            "counts": {"articles": sum(len(s.data.corpus.articles) - len(s.dead_articles) for s in segments),
                       "sentences": sum(s.live_sentences for s in segments)},
            "created": previous.get("created") or _now(),
            "updated": _now(),
            "scripts": sorted(scripts),  # what check_script compares questions with
            "script_counts": dict(sorted(scripts.items())),
            "versions": _versions(),
            "segments": listed,
        }
        write_commit(self.path, manifest)
        sweep(self.path, referenced(manifest), (SEGMENT_PREFIX, LEGACY_PREFIX))
        self._state = Snapshot(segments, manifest, self.encoder.dimension, previous=self._state)
        self._manifest_stamp = self._stamp()


def new_segment_data(corpus: Corpus, recipe: str, texts: list[str], encoded: np.ndarray,
                     signatures: np.ndarray) -> SegmentData:
    """A segment of new articles (`corpus`, ids from 0) from the vectors of `texts`, which are
    `texts_to_encode(corpus, recipe)`; `signatures`: the articles' near-duplicate signatures."""
    count = len(corpus)
    sentence, slots = stored_vectors(corpus, recipe, encoded)
    return SegmentData(corpus, sentence, slots, DenseIndex.build(sentence),
                       LexicalIndex.build(texts[:count], corpus.neighbours),  # the sentences come first
                       CueTable.empty().extend(corpus.sentences(np.arange(count))), signatures)


def _number(name: str) -> int:
    digits = name.split("-", 1)[-1].split(".")[0]
    return int(digits) if digits.isdigit() else 0


def _read_snapshot(path: Path, previous: Snapshot | None = None) -> Snapshot:
    """The snapshot of the commit at `path`, reusing the segments `previous` already read.

    A writer may commit and sweep between reading the commit point and reading its segments:
    then the commit point is read again (a few times at most).
    """
    for attempt in range(3):
        manifest = read_commit(path)
        try:
            return _open_segments(path, manifest, previous)
        except IndexCorruptError:
            if attempt == 2 or read_commit(path).get("generation") == manifest.get("generation"):
                raise
    raise AssertionError("unreachable")


def _open_segments(path: Path, manifest: dict[str, Any], previous: Snapshot | None) -> Snapshot:
    known = {s.name: s for s in previous.segments} if previous else {}
    segments = []
    for entry in manifest["segments"]:
        try:
            dead = dead_article_rows(entry, path)
            old = known.get(entry["name"])
            if old is not None and np.array_equal(old.dead_articles, dead):
                segments.append(old)
            elif old is not None:
                segments.append(old.with_deletes(dead))
            else:
                segments.append(Segment(entry["name"], read_segment_data(path / entry["name"], entry["sentences"]), dead))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexCorruptError(
                f"The index at '{path}' is corrupt (segment {entry.get('name')}: {type(exc).__name__}: {exc}). "
                f"Rebuild it with `qa build --index {path}`."
            ) from None
    dimension = int(manifest.get("model", {}).get("dimension", 0))
    return Snapshot(segments, manifest, dimension, previous)
