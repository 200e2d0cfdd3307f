"""The Index: build, load, add, remove, answer. One object, a few verbs, a folder on disk."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from qa import questions, storage
from qa.answering import Answer, compose
from qa.articles import ARTICLE_SUFFIXES, Article
from qa.config import Settings, default_index_path, default_source_path
from qa.corpus import Corpus
from qa.dense import DenseIndex, load_vectors
from qa.encoder import DEFAULT_MODEL, Encoder
from qa.errors import (
    ArticleNotFoundError,
    IndexCorruptError,
    ModelMismatchError,
    NoArticlesError,
)
from qa.lexical import LexicalIndex
from qa.ranking import Hit, rank

# One vector file per text the encoder reads for a sentence (Corpus.embedding_texts), same order.
VECTOR_FILES = ("embeddings.npy", "title-embeddings.npy", "context-embeddings.npy")
EMBEDDINGS_FILE = VECTOR_FILES[0]
DENSE_FILE = "dense.faiss"
LEXICAL_FOLDER = "bm25"
CONTEXT_LEXICAL_FOLDER = "bm25-context"


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
    title_embeddings: np.ndarray  # row i: "title: sentence i"
    context_embeddings: np.ndarray  # row i: sentence i between its paragraph neighbours
    dense: DenseIndex
    lexical: LexicalIndex
    context_lexical: LexicalIndex
    manifest: dict[str, Any]

    @property
    def vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three vector matrices, in VECTOR_FILES order."""
        return self.embeddings, self.title_embeddings, self.context_embeddings


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    names = ("qa", "sentence-transformers", "faiss-cpu", "bm25s", "numpy", "torch")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _index_state(
    corpus: Corpus, vectors: Sequence[np.ndarray], manifest: dict[str, Any], dense: DenseIndex | None = None
) -> _State:
    dense = dense if dense is not None else DenseIndex.build(vectors[0])
    sentence_texts, _, context_texts = corpus.embedding_texts()
    lexical, context_lexical = LexicalIndex.build(sentence_texts), LexicalIndex.build(context_texts)
    return _State(corpus, *vectors, dense, lexical, context_lexical, manifest)


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
    ) -> "Index":
        """Index every article under `source` (default `seeds/`) into a fresh index at `path`.

        An index already at `path` stays loadable until the new one is committed.
        """
        source = Path(source) if source else default_source_path()
        path = Path(path) if path else default_index_path()
        encoder = Encoder(model)
        empty = np.zeros((0, encoder.dimension), dtype=np.float32)
        index = cls(path, encoder, settings or Settings(), _index_state(Corpus.empty(), [empty] * 3, {"created": _now()}))
        index.build_report = index._add_paths([source], progress=progress, rebuild=True)
        return index

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
            context_lexical = LexicalIndex.load(folder / CONTEXT_LEXICAL_FOLDER, count)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexCorruptError(
                f"The index at '{path}' is corrupt ({type(exc).__name__}: {exc}). "
                f"Rebuild it with `qa build --index {path}`."
            ) from None
        if not len(corpus) == dense.size == count or any(len(v) != count for v in vectors):
            raise IndexCorruptError(
                f"The index at '{path}' is inconsistent ({len(corpus)} sentences, {len(embeddings)} vectors, "
                f"{count} in the manifest). Rebuild it with `qa build --index {path}`."
            )
        return _State(corpus, *vectors, dense, lexical, context_lexical, manifest)

    def _stamp(self) -> int:
        try:
            return os.stat(self.path / storage.MANIFEST).st_mtime_ns
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
        resolved = questions.resolve(question, history)
        vector = self.encoder.encode([resolved])[0]
        hits = rank(resolved, vector, state, self.settings)
        return resolved, hits

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
        near = NearDuplicates(base.corpus.articles)
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

        texts = corpus.embedding_texts(start=len(base.corpus))
        fresh_vectors = cached_encode(self.encoder, [t for group in texts for t in group], progress=progress)
        new = len(corpus) - len(base.corpus)
        vectors = [
            np.concatenate([np.asarray(old).reshape(-1, fresh_vectors.shape[1]), fresh_vectors[k * new : (k + 1) * new]])
            for k, old in enumerate(base.vectors)
        ]
        self._commit(corpus, vectors, base.manifest, dense=base.dense.extend(vectors[0]))
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
            self._commit(corpus, [np.asarray(v)[keep] for v in base.vectors], base.manifest)
        return info

    def _commit(
        self, corpus: Corpus, vectors: Sequence[np.ndarray], previous: dict[str, Any], dense: DenseIndex | None = None
    ) -> None:
        """Write a new generation and swap it in, on disk and in memory."""
        vectors = [np.ascontiguousarray(v, dtype=np.float32) for v in vectors]
        embeddings = vectors[0]
        manifest = {
            "format_version": storage.FORMAT_VERSION,
            "model": {"name": self.encoder.model_name, "fingerprint": self.encoder.fingerprint,
                      "dimension": int(embeddings.shape[1]) if embeddings.size else self.encoder.dimension},
            "counts": {"articles": len(corpus.articles), "sentences": len(corpus)},
            "created": previous.get("created") or _now(),
            "updated": _now(),
            "scripts": sorted({s for a in corpus.articles if (s := questions.script_of(a.text))}),
            "versions": _versions(),
        }
        state = _index_state(corpus, vectors, manifest, dense)
        manifest["dense"] = state.dense.describe()
        with storage.new_generation(self.path) as (folder, name):
            corpus.save(folder)
            for file, matrix in zip(VECTOR_FILES, vectors):
                np.save(folder / file, matrix)
            state.dense.save(folder / DENSE_FILE)
            for sub, lexical in ((LEXICAL_FOLDER, state.lexical), (CONTEXT_LEXICAL_FOLDER, state.context_lexical)):
                (folder / sub).mkdir()
                lexical.save(folder / sub)
            manifest["data"] = name
        storage.commit(self.path, manifest)
        stored = [load_vectors(self.path / name / file) for file in VECTOR_FILES]  # let the in-memory copies go
        self._state = _State(corpus, *stored, state.dense.with_vectors(stored[0]), state.lexical,
                             state.context_lexical, manifest)
        self._manifest_stamp = self._stamp()
