"""The Index: build, load, add, remove, answer. One object, a few verbs, a folder on disk."""

from __future__ import annotations

import functools
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from qa import questions, storage, turns
from qa.answering import Answer, compose
from qa.articles import ARTICLE_SUFFIXES, Article
from qa.config import Settings, default_index_path, default_source_path
from qa.corpus import Corpus
from qa.cues import CueTable
from qa.dense import DenseIndex, load_vectors
from qa.encoder import DEFAULT_MODEL, Encoder
from qa.errors import (
    ArticleNotFoundError,
    IndexCorruptError,
    ModelMismatchError,
    NoArticlesError,
)
from qa.bm25 import LexicalIndex
from qa.ranking import Hit, neighbour_dots, rank

# Row i of each file is sentence i. The sentence vectors stand alone: the dense index and the
# flat similarity product read them. Its "title: sentence" and in-context vectors sit side by
# side in one file (2 x dimension floats a row), so a candidate's pair is one read at IVF size.
VECTOR_FILES = ("embeddings.npy", "title-context-embeddings.npy")
EMBEDDINGS_FILE = VECTOR_FILES[0]
DENSE_FILE = "dense.faiss"
LEXICAL_FOLDER = "bm25"
CUES_FOLDER = "cues"
SIGNATURES_FILE = "minhash.npy"  # near-duplicate signatures of the articles, row = article row


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


@dataclass(frozen=True)
class _State:
    """An immutable snapshot: readers take one and never see a half-applied write."""

    corpus: Corpus
    embeddings: np.ndarray  # row i: sentence i alone; the dense index searches these
    title_context_embeddings: np.ndarray  # row i: "title: sentence i", then sentence i between its neighbours
    dense: DenseIndex
    lexical: LexicalIndex  # BM25 of sentences, and of their contexts for the candidates
    cues: CueTable  # each sentence's numbers, dates and names, for the question-type cues
    signatures: np.ndarray  # (articles, 128) MinHash signatures, read when an add checks near-duplicates
    manifest: dict[str, Any]

    @functools.cached_property
    def neighbour_dots(self) -> np.ndarray:
        """Dot products between paragraph neighbours' vectors (qa.ranking.neighbour_dots), computed
        on first use: ~10 ms at 10k sentences; only flat indexes, whose vectors are mapped, use them."""
        return neighbour_dots(self.embeddings, self.corpus.neighbours)

    @property
    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The vector matrices, in VECTOR_FILES order."""
        return self.embeddings, self.title_context_embeddings


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


def _empty_state(dimension: int, manifest: dict[str, Any]) -> _State:
    """The state of an index with no articles yet (what `Index.build` fills)."""
    from qa.ingest.dedup import PERMUTATIONS

    vectors = [np.zeros((0, dimension), dtype=np.float32), np.zeros((0, 2 * dimension), dtype=np.float32)]
    signatures = np.zeros((0, PERMUTATIONS), dtype=np.uint64)
    return _State(Corpus.empty(), *vectors, DenseIndex.build(vectors[0]), LexicalIndex.empty(), CueTable.empty(),
                  signatures, manifest)


class Index:
    """A searchable collection of articles stored in one folder.

    Use `Index.build(...)` or `Index.load(...)`; the constructor only stores its arguments.
    Reads are lock-free snapshots; writes are serialised and committed atomically to disk.
    """

    def __init__(self, path: Path, encoder: Encoder, settings: Settings, state: _State) -> None:
        self.path = path
        self.encoder = encoder
        self.settings = settings
        self._state = state
        self._write_lock = threading.Lock()
        self._manifest_file = os.fspath(self.path / storage.MANIFEST)  # stat before every answer: no Path joins
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
        progress: bool = False,
        drop_missing: bool = False,
    ) -> "Index":
        """Index every article under `source` (default `seeds/`) into a fresh index at `path`.

        An index already at `path` stays loadable until the new one is committed. Its articles
        that no source provides (added, pasted) are kept unless `drop_missing`; `<path>/pasted/`
        is read as a source too (see qa.rebuild). `build_report.kept`/`.dropped` name them.
        """
        from qa.rebuild import read_sources, with_missing

        source = Path(source) if source else default_source_path()
        path = Path(path) if path else default_index_path()
        index = cls.empty(path, Encoder(model), settings)
        parsed, index.build_report = read_sources(source, path)
        with index._write_lock, storage.write_lock(path):
            articles = with_missing(parsed, path, index.build_report, drop_missing=drop_missing)
            index._commit_additions(index._state, articles, index.build_report, progress, force=True)
        return index

    @classmethod
    def empty(cls, path: str | Path, encoder: Encoder | None = None, settings: Settings | None = None) -> "Index":
        """An index with no articles, to fill with `add`/`add_articles`; nothing is written before the first add."""
        encoder = encoder or Encoder()
        return cls(Path(path), encoder, settings or Settings(), _empty_state(encoder.dimension, {"created": _now()}))

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
        state = cls._read_state(path)
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

    @staticmethod
    def _read_state(path: Path) -> _State:
        manifest = storage.read_manifest(path)
        folder = storage.data_folder(path, manifest)
        try:
            corpus = Corpus.load(folder)
            vectors = [load_vectors(folder / name) for name in VECTOR_FILES]  # mapped, or read by row when large
            embeddings = vectors[0]
            count = manifest["counts"]["sentences"]
            dense = DenseIndex.load(folder / DENSE_FILE, vectors=embeddings)
            lexical = LexicalIndex.load(folder / LEXICAL_FOLDER, count)
            cues = CueTable.load(folder / CUES_FOLDER, count)
            signatures = np.load(folder / SIGNATURES_FILE, mmap_mode="r", allow_pickle=False)  # paged in by an add only
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexCorruptError(
                f"The index at '{path}' is corrupt ({type(exc).__name__}: {exc}). "
                f"Rebuild it with `qa build --index {path}`."
            ) from None
        if not len(corpus) == dense.size == count or any(len(v) != count for v in vectors) or len(signatures) != len(corpus.articles):
            raise IndexCorruptError(
                f"The index at '{path}' is inconsistent ({len(corpus)} sentences, {len(embeddings)} vectors, "
                f"{count} in the manifest). Rebuild it with `qa build --index {path}`."
            )
        return _State(corpus, *vectors, dense, lexical, cues, signatures, manifest)

    def _stamp(self) -> int:
        try:
            return os.stat(self._manifest_file).st_mtime_ns
        except OSError:
            return 0

    def _refresh(self) -> None:
        """Pick up a write made by another process (e.g. `qa add` while the app runs)."""
        stamp = self._stamp()
        if stamp and stamp != self._manifest_stamp:
            self._state = self._read_state(self.path)
            self._manifest_stamp = stamp

    # --- reading ---------------------------------------------------------

    def __len__(self) -> int:
        return len(self._state.corpus)

    @property
    def manifest(self) -> dict[str, Any]:
        """The build metadata of the current snapshot."""
        return self._state.manifest

    def articles(self) -> list[ArticleInfo]:
        """The indexed articles, in the order they were added (including writes by other processes)."""
        self._refresh()
        corpus = self._state.corpus
        return [
            ArticleInfo(a.id, a.title, a.date, a.source, len(corpus.sentence_ids(row)))
            for row, a in enumerate(corpus.articles)
        ]

    def article(self, article_id: str) -> Article:
        """One article, text included."""
        corpus = self._state.corpus
        row = corpus.index_of(article_id)
        if row is None:
            raise ArticleNotFoundError(f"No article with id '{article_id}'. `qa list` shows the ids.")
        return corpus.articles[row]

    def search(self, query: str, history: Sequence[str] | None = None) -> tuple[str, list[Hit]]:
        """The resolved query and every candidate sentence for it, best first."""
        self._refresh()
        return self._search(self._state, query, history)

    def _search(self, state: _State, query: str, history: Sequence[str] | None) -> tuple[str, list[Hit]]:
        question = questions.validate(query, self.settings.max_question_chars)
        questions.check_script(question, state.manifest.get("scripts", []))

        def ranked(text: str) -> list[Hit]:
            return rank(text, self.encoder.encode([text])[0], state, self.settings)

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

    def add(self, paths: str | Path | Iterable[str | Path], progress: bool = False) -> AddReport:
        """Add article files (.txt .md .html .pdf .jsonl), folders or http(s) URLs; only new articles are embedded.

        Bad files are reported in the returned AddReport (by name, with the reason) and the
        good ones still go in. Re-adding an indexed article is a no-op reported as a duplicate.
        """
        if isinstance(paths, (str, Path)):
            paths = [paths]
        return self._add_paths(list(paths), progress=progress, rebuild=False)

    def add_articles(self, articles: Sequence[Article], progress: bool = False) -> AddReport:
        """Add already-parsed articles (pasted text, other formats)."""
        report = AddReport()
        with self._write_lock, storage.write_lock(self.path):
            self._refresh()
            self._commit_additions(self._state, list(articles), report, progress)
        return report

    def _add_paths(self, paths: list[str | Path], *, progress: bool, rebuild: bool) -> AddReport:
        from qa.ingest import Failure, load_articles

        report = AddReport()
        parsed: list[Article] = []
        for root in paths:
            for item in load_articles(root):  # a URL, file, folder or JSONL batch: many items, some bad
                if isinstance(item, Failure):
                    report.failed.append((item.name, item.reason))
                else:
                    parsed.append(item)
        if rebuild and not parsed:
            raise NoArticlesError(
                f"No article could be indexed from {', '.join(map(str, paths))}: "
                + ("; ".join(f"{name}: {why}" for name, why in report.failed) or
                   f"no {', '.join(ARTICLE_SUFFIXES)} files found")
                + ". Point --source at a folder of articles. The existing index was left as it was."
            )
        with self._write_lock, storage.write_lock(self.path):
            if not rebuild:
                self._refresh()
            self._commit_additions(self._state, parsed, report, progress, force=rebuild)
        return report

    def _commit_additions(
        self, base: _State, articles: list[Article], report: AddReport, progress: bool, force: bool = False
    ) -> None:
        from qa.ingest.dedup import NearDuplicates

        known = {a.sha256: a.id for a in base.corpus.articles}
        taken = {a.id for a in base.corpus.articles}
        near = NearDuplicates(base.corpus.articles, base.signatures)
        fresh: list[Article] = []
        for article in articles:
            if article.sha256 in known:
                report.duplicates.append(f"{article.source or article.id}: already indexed as '{known[article.sha256]}'")
                continue
            if article.id in taken:  # same name, other text: keep both, apart
                article = Article(**{**article.__dict__, "id": f"{article.id}-{article.sha256[:6]}"})
            match = near.find(article)
            if match:  # kept (it may add facts), flagged; answers never quote the same sentence twice
                article = Article(**{**article.__dict__, "meta": {**article.meta, "near_duplicate_of": match.article_id}})
                report.near_duplicates.append(
                    f"{article.source or article.id}: added as '{article.id}', but nearly the same text as "
                    f"'{match.article_id}' ({match.jaccard:.0%} shared 5-grams)")
            near.add(article)
            known[article.sha256] = article.id
            taken.add(article.id)
            fresh.append(article)
        if not fresh and not force:
            return
        corpus = base.corpus.with_articles(fresh)
        from qa.cache import cached_encode  # nothing is embedded twice: see qa/cache.py

        texts = corpus.embedding_texts(start=len(base.corpus))  # the new sentences only
        encoded = cached_encode(self.encoder, [t for group in texts for t in group], progress=progress)
        new = len(corpus) - len(base.corpus)
        sentence, titled, in_context = (encoded[k * new : (k + 1) * new] for k in range(3))
        added = [sentence, np.hstack([titled, in_context])]  # VECTOR_FILES layout
        vectors = [
            np.concatenate([np.asarray(old).reshape(-1, more.shape[1]), more]) for old, more in zip(base.vectors, added)
        ]
        lexical = base.lexical.extend(texts[0], corpus.neighbours)
        cues = base.cues.extend(corpus.sentences(np.arange(len(base.corpus), len(corpus))))
        scripts = _script_counts(base.manifest) + Counter(filter(None, map(questions.script_of, (a.text for a in fresh))))
        self._commit(corpus, vectors, base.manifest, base.dense.extend(vectors[0]), lexical, cues, near.signatures, scripts)
        report.added.extend(a.id for a in fresh)

    def remove(self, article_id: str) -> ArticleInfo:
        """Take an article out of every structure; returns what was removed."""
        with self._write_lock, storage.write_lock(self.path):
            self._refresh()
            base = self._state
            row = base.corpus.index_of(article_id)
            if row is None:
                raise ArticleNotFoundError(f"No article with id '{article_id}'. `qa list` shows the ids.")
            info = self.articles()[row]
            corpus, keep = base.corpus.without_article(row)
            vectors = [np.asarray(v)[keep] for v in base.vectors]
            scripts = _script_counts(base.manifest) - Counter(filter(None, [questions.script_of(base.corpus.articles[row].text)]))
            self._commit(corpus, vectors, base.manifest, DenseIndex.build(vectors[0]),
                         base.lexical.without(keep, base.corpus.neighbours), base.cues.without(keep),
                         np.delete(base.signatures, row, axis=0), scripts)
        return info

    def _commit(
        self,
        corpus: Corpus,
        vectors: Sequence[np.ndarray],
        previous: dict[str, Any],
        dense: DenseIndex,
        lexical: LexicalIndex,
        cues: CueTable,
        signatures: np.ndarray,
        scripts: Counter[str],
    ) -> None:
        """Write a new generation and swap it in, on disk and in memory.

        Everything passed in was already updated for the change: nothing here is O(corpus) in Python.
        """
        vectors = [np.ascontiguousarray(v, dtype=np.float32) for v in vectors]
        embeddings = vectors[0]
        manifest = {
            "format_version": storage.FORMAT_VERSION,
            "model": {"name": self.encoder.model_name, "fingerprint": self.encoder.fingerprint,
                      "dimension": int(embeddings.shape[1]) if embeddings.size else self.encoder.dimension},
            "counts": {"articles": len(corpus.articles), "sentences": len(corpus)},
            "created": previous.get("created") or _now(),
            "updated": _now(),
            "scripts": sorted(scripts),  # what check_script compares questions with
            "script_counts": dict(sorted(scripts.items())),  # articles per script, so add/remove update it
            "versions": _versions(),
        }
        manifest["dense"] = dense.describe()
        with storage.new_generation(self.path) as (folder, name):
            corpus.save(folder)
            for file, matrix in zip(VECTOR_FILES, vectors):
                np.save(folder / file, matrix)
            dense.save(folder / DENSE_FILE)
            (folder / LEXICAL_FOLDER).mkdir()
            lexical.save(folder / LEXICAL_FOLDER)
            (folder / CUES_FOLDER).mkdir()
            cues.save(folder / CUES_FOLDER)
            np.save(folder / SIGNATURES_FILE, np.ascontiguousarray(signatures, dtype=np.uint64))
            manifest["data"] = name
        storage.commit(self.path, manifest)
        stored = [load_vectors(self.path / name / file) for file in VECTOR_FILES]  # let the in-memory copies go
        signatures = np.load(self.path / name / SIGNATURES_FILE, mmap_mode="r", allow_pickle=False)
        self._state = _State(corpus, *stored, dense.with_vectors(stored[0]), lexical, cues, signatures, manifest)
        self._manifest_stamp = self._stamp()
