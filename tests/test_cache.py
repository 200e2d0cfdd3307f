"""The embedding cache: hits and misses, one encode per text, concurrent writers, torn files.

Most tests use a counting stand-in for the encoder (the cache only needs `fingerprint`,
`dimension` and `encode`); the last one builds real indexes with the real model.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from qa import cache
from qa.cache import EmbeddingCache, cached_encode


class CountingEncoder:
    """Deterministic vectors from a text hash; remembers every text it was asked to encode."""

    def __init__(self, fingerprint: str = "fake-model", dimension: int = 8) -> None:
        self.fingerprint = fingerprint
        self.dimension = dimension
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self.seen.extend(texts)
        return np.stack([vector_of(t, self.dimension) for t in texts]) if texts else np.zeros((0, self.dimension))


def vector_of(text: str, dimension: int = 8) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


def texts(prefix: str, count: int) -> list[str]:
    return [f"{prefix} sentence number {i}." for i in range(count)]


def test_each_text_is_encoded_once(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    store = EmbeddingCache.for_encoder(encoder, tmp_path)
    batch = ["a", "b", "a", "c", "b"]
    first = store.encode(encoder, batch)
    assert encoder.seen == ["a", "b", "c"]  # repeats inside one batch too
    np.testing.assert_array_equal(first, np.stack([vector_of(t) for t in batch]))
    again = store.encode(encoder, ["c", "a", "d"])
    assert encoder.seen == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(again, np.stack([vector_of(t) for t in ["c", "a", "d"]]))


def test_get_reports_what_is_missing(tmp_path: Path) -> None:
    store = EmbeddingCache(tmp_path / "m", 8)
    store.put(["x", "y"], np.stack([vector_of("x"), vector_of("y")]))
    vectors, found = store.get(["y", "z", "x"])
    assert list(found) == [True, False, True]
    np.testing.assert_array_equal(vectors[0], vector_of("y"))
    assert not vectors[1].any()


def test_models_do_not_share_vectors(tmp_path: Path) -> None:
    one, other = CountingEncoder("model-one"), CountingEncoder("model-two")
    EmbeddingCache.for_encoder(one, tmp_path).encode(one, ["same text"])
    EmbeddingCache.for_encoder(other, tmp_path).encode(other, ["same text"])
    assert other.seen == ["same text"]
    assert sorted(p.name for p in (tmp_path / "embeddings").iterdir()) == ["model-one", "model-two"]


def test_default_folder_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("QA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_cache_dir() == tmp_path / "xdg" / "qa"
    encoder = CountingEncoder()
    cached_encode(encoder, ["hello"])
    assert list((tmp_path / "xdg" / "qa" / "embeddings" / "fake-model").glob("*.keys.npy"))


def test_torn_or_foreign_shards_are_skipped(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    store = EmbeddingCache.for_encoder(encoder, tmp_path)
    store.encode(encoder, texts("torn", 50))
    vecs = next(store.folder.glob("*.vecs.npy"))
    vecs.write_bytes(vecs.read_bytes()[:300])  # as if the machine died mid-write
    (store.folder / "junk.keys.npy").write_bytes(b"not a numpy file")
    result = store.encode(encoder, texts("torn", 50))
    assert len(encoder.seen) == 100  # everything encoded again, nothing read from the torn shard
    np.testing.assert_array_equal(result, np.stack([vector_of(t) for t in texts("torn", 50)]))


def test_small_shards_are_merged(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    store = EmbeddingCache.for_encoder(encoder, tmp_path)
    store.encode(encoder, texts("bulk", 500))
    for n in range(cache.MERGE_AT + 3):  # one shard per `add`
        store.encode(encoder, [f"added {n}"])
    shards = list(store.folder.glob("*.keys.npy"))
    assert len(shards) < cache.MERGE_AT
    assert not list(store.folder.glob(".*.tmp"))
    before = len(encoder.seen)
    store.encode(encoder, texts("bulk", 500) + [f"added {n}" for n in range(cache.MERGE_AT + 3)])
    assert len(encoder.seen) == before  # nothing lost in the merges


def test_an_unwritable_cache_still_encodes(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    encoder = CountingEncoder()
    store = EmbeddingCache.for_encoder(encoder, blocker)
    result = store.encode(encoder, ["one", "two"])
    np.testing.assert_array_equal(result, np.stack([vector_of("one"), vector_of("two")]))


def _writer(root: str, worker: int) -> None:
    encoder = CountingEncoder()
    store = EmbeddingCache.for_encoder(encoder, Path(root))
    for step in range(12):  # overlapping texts across workers, many small shards: merges race too
        store.encode(encoder, texts("shared", 40)[step * 3 : step * 3 + 6] + [f"w{worker} s{step}"])


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    encoder = CountingEncoder()
    store = EmbeddingCache.for_encoder(encoder, tmp_path)
    wanted = texts("shared", 40)[:39] + [f"w{w} s{s}" for w in range(4) for s in range(12)]
    vectors, found = store.get(wanted)
    assert found.all()
    np.testing.assert_array_equal(vectors, np.stack([vector_of(t) for t in wanted]))
    assert not list(store.folder.glob(".*.tmp"))


@pytest.fixture()
def article_folder(tmp_path: Path) -> Path:
    from conftest import write_article

    folder = tmp_path / "articles"
    write_article(folder, "kites", "Kite festival draws record crowds",
                  "More than 40,000 people attended the kite festival on Sunday. The largest kite was 30 metres long.")
    write_article(folder, "bridge", "New bridge opens downtown",
                  "The bridge cost 120 million dollars. It carries four lanes of traffic and a bicycle path.")
    return folder


def test_a_rebuild_encodes_nothing(article_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import model_only_cache

    from qa import Index

    # An empty embedding cache of its own (with the session's exported model, not exported again).
    monkeypatch.setenv("QA_CACHE_DIR", str(model_only_cache(tmp_path / "cache")))
    first = Index.build(article_folder, tmp_path / "one")
    shards = sorted(p.name for p in (tmp_path / "cache").rglob("*.keys.npy"))
    assert len(shards) == 1
    second = Index.build(article_folder, tmp_path / "two")
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*.keys.npy")) == shards  # all hits: no new shard
    np.testing.assert_array_equal(np.asarray(first._state.embeddings), np.asarray(second._state.embeddings))
    answer = second.answer("How long was the largest kite?")
    assert not answer.abstained and "30 metres" in answer.citations[0].sentence
