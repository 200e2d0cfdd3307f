"""The dense index: type by size, exactness and tie order, ANN recall, files, appends, stored rows.

Vectors here are random unit vectors (no model needed): the structures do not care what made them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import model_only_cache

from qa import dense, vectors
from qa.dense import DenseIndex, StoredVectors, choose_kind, load_vectors


def unit(count: int, dimension: int = 32, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def clustered(count: int, dimension: int = 32, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres: shaped like sentence embeddings, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    centres = unit(50, dimension, seed + 1)
    noise = rng.standard_normal((count, dimension)).astype(np.float32) * (0.5 / np.sqrt(dimension))
    vectors = centres[rng.integers(0, 50, count)] + noise
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def exact_top(vectors: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    scores = vectors @ query
    return np.lexsort((np.arange(len(vectors)), -scores))[:k]


def test_kind_follows_size() -> None:
    assert choose_kind(0) == ("flat", {})
    assert choose_kind(dense.FLAT_LIMIT - 1)[0] == "flat"
    kind, params = choose_kind(dense.FLAT_LIMIT)
    assert kind == dense.LARGE_KIND
    assert 8 <= params["nprobe"] <= params["nlist"]
    assert choose_kind(65_536)[1]["nlist"] == 256
    assert choose_kind(1_000_000)[1]["nlist"] == 1024  # ~sqrt(n) cells, a power of two


def test_a_segment_of_a_larger_corpus_probes_and_rescores_its_share() -> None:
    vectors = clustered(4000)
    index = DenseIndex.build(vectors, kind=dense.LARGE_KIND, nlist=16, nprobe=4, refine=4, min_rescored=256)
    # Alone: twice its own share of the cells (as a segment probes twice its corpus's share, so a
    # merge keeps the effort), and its own rows.
    assert index.segment_effort(10) == (8, 256)
    assert index.segment_effort(10, corpus_size=4000) == (8, 256)
    # One 250th of a 1M corpus, whose own index would probe 64 of 1024 cells and re-score 400
    # rows: 2 x 1/16 of its 16 cells, and the floor of rows.
    assert index.segment_effort(10, corpus_size=1_000_000) == (2, dense.MIN_SEGMENT_RESCORED)
    assert index.segment_effort(100, corpus_size=8000) == (16, 200)  # half the corpus: half the rows
    scores, ids = index.search(vectors[1234], 10, corpus_size=1_000_000)
    assert ids[0] == 1234 and len(ids) == 10 and np.all(np.diff(scores) <= 1e-6)


def test_flat_is_exact_and_breaks_ties_by_lower_id() -> None:
    vectors = unit(500)
    vectors[[40, 7, 300]] = vectors[123]  # four identical rows: the same score
    index = DenseIndex.build(vectors)
    assert index.kind == "flat" and index.size == 500
    scores, ids = index.search(vectors[123], 10)
    assert list(ids[:4]) == [7, 40, 123, 300]
    assert list(ids) == list(exact_top(vectors, vectors[123], 10))
    assert np.all(np.diff(scores) <= 1e-6)


def test_search_handles_empty_and_small_indexes() -> None:
    empty = DenseIndex.build(np.zeros((0, 16), dtype=np.float32))
    assert empty.size == 0 and len(empty.search(unit(1, 16)[0], 5)[1]) == 0
    scores, ids = DenseIndex.build(unit(3, 16)).search(unit(1, 16, seed=9)[0], 10)
    assert sorted(ids) == [0, 1, 2] and len(scores) == 3


def test_ivf_recall_against_exact_search() -> None:
    vectors, queries = clustered(6000), clustered(50, seed=7)
    index = DenseIndex.build(vectors, kind=dense.LARGE_KIND, nlist=32, nprobe=8)  # probes 16 of 32 cells
    assert index.kind == dense.LARGE_KIND and index.params["trained_size"] == 6000
    assert index.segment_effort(10)[0] == 16
    recall = np.mean([len(set(index.search(q, 10)[1]) & set(exact_top(vectors, q, 10))) / 10 for q in queries])
    assert recall >= 0.95
    # Scanning every cell with exact re-scoring is exact search again.
    index.params["nprobe"] = 16
    assert index.segment_effort(10)[0] == 32
    for q in queries[:10]:
        assert list(index.search(q, 10)[1]) == list(exact_top(vectors, q, 10))


def test_ivf_rescoring_uses_the_float_vectors() -> None:
    vectors, query = clustered(3000), clustered(1, seed=3)[0]
    index = DenseIndex.build(vectors, kind=dense.LARGE_KIND, nlist=16, nprobe=16)
    scores, ids = index.search(query, 5)
    np.testing.assert_allclose(scores, vectors[ids] @ query, rtol=1e-6)  # exact cosines, not 8-bit ones
    bare = index.with_vectors(None)  # type: ignore[arg-type]
    bare_scores, _ = bare.search(query, 5)
    assert not np.allclose(bare_scores, scores, rtol=0, atol=1e-7)


def test_building_twice_gives_the_same_results() -> None:
    vectors, queries = clustered(4000), clustered(20, seed=5)
    first = DenseIndex.build(vectors, kind=dense.LARGE_KIND, nlist=32, nprobe=4)
    second = DenseIndex.build(vectors, kind=dense.LARGE_KIND, nlist=32, nprobe=4)
    for q in queries:
        assert list(first.search(q, 10)[1]) == list(second.search(q, 10)[1])


def test_save_and_load_keep_kind_and_params(tmp_path: Path) -> None:
    vectors, query = clustered(3000), clustered(1, seed=4)[0]
    index = DenseIndex.build(vectors, kind=dense.LARGE_KIND, nlist=16, nprobe=5)
    index.save(tmp_path / "dense.faiss")
    meta = json.loads((tmp_path / "dense.faiss.json").read_text())
    assert meta["kind"] == dense.LARGE_KIND and meta["params"]["nlist"] == 16 and meta["params"]["nprobe"] == 5
    loaded = DenseIndex.load(tmp_path / "dense.faiss", vectors=vectors)
    assert (loaded.kind, loaded.params, loaded.size) == (index.kind, index.params, index.size)
    assert list(loaded.search(query, 10)[1]) == list(index.search(query, 10)[1])


def test_a_file_without_sidecar_loads_as_flat(tmp_path: Path) -> None:
    vectors = unit(100)
    DenseIndex.build(vectors).save(tmp_path / "dense.faiss")
    (tmp_path / "dense.faiss.json").unlink()  # as written before the sidecar existed
    loaded = DenseIndex.load(tmp_path / "dense.faiss")
    assert loaded.kind == "flat" and list(loaded.search(vectors[3], 1)[1]) == [3]


def test_extend_appends_without_touching_the_old_snapshot() -> None:
    vectors = unit(300)
    old = DenseIndex.build(vectors[:200])
    new = old.extend(vectors)
    assert (old.size, new.size) == (200, 300)
    assert list(new.search(vectors[250], 1)[1]) == [250]
    assert 250 not in old.search(vectors[250], 200)[1]
    with pytest.raises(ValueError):
        new.extend(vectors[:100])


def test_extend_reuses_ivf_cells_until_the_index_outgrows_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dense, "FLAT_LIMIT", 2000)
    vectors = clustered(9000)
    index = DenseIndex.build(vectors[:4000], kind=dense.LARGE_KIND, nlist=16, nprobe=16)
    grown = index.extend(vectors[:7000])
    assert grown.kind == dense.LARGE_KIND and grown.params["trained_size"] == 4000  # same cells, more rows
    assert grown.params["nlist"] == 16 and list(grown.search(vectors[6500], 1)[1]) == [6500]
    retrained = grown.extend(vectors)  # past twice the training size: new cells for the new shape
    assert retrained.params["trained_size"] == 9000 and retrained.params["nlist"] == 128
    assert list(retrained.search(vectors[8999], 1)[1]) == [8999]


def test_extend_switches_kind_when_the_size_crosses_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dense, "FLAT_LIMIT", 2000)
    vectors = clustered(2500)
    small = DenseIndex.build(vectors[:1500])
    assert small.kind == "flat"
    large = small.extend(vectors)
    assert large.kind == dense.LARGE_KIND and large.size == 2500 and large.params["trained_size"] == 2500
    assert list(large.search(vectors[2400], 1)[1]) == [2400]


@pytest.fixture()
def stored(tmp_path: Path) -> tuple[np.ndarray, StoredVectors]:
    vectors = unit(1000, 24)
    np.save(tmp_path / "embeddings.npy", vectors)
    return vectors, StoredVectors.open(tmp_path / "embeddings.npy")


def test_stored_vectors_read_rows_like_an_array(stored: tuple[np.ndarray, StoredVectors]) -> None:
    vectors, rows = stored
    assert len(rows) == 1000 and rows.shape == (1000, 24)
    np.testing.assert_array_equal(rows[5], vectors[5])
    np.testing.assert_array_equal(rows[-1], vectors[-1])
    np.testing.assert_array_equal(rows[10:20], vectors[10:20])
    picks = np.array([999, 3, 4, 5, 3, 500, 0])  # unsorted, repeated, runs of neighbours
    np.testing.assert_array_equal(rows[picks], vectors[picks])
    mask = np.zeros(1000, dtype=bool)
    mask[[1, 2, 700]] = True
    np.testing.assert_array_equal(rows[mask], vectors[mask])
    np.testing.assert_array_equal(np.asarray(rows), vectors)
    assert rows[np.array([], dtype=np.int64)].shape == (0, 24)
    with pytest.raises(IndexError):
        rows[np.array([1000])]


def test_load_vectors_maps_small_files_and_reads_large_ones_by_row(tmp_path: Path, monkeypatch) -> None:
    np.save(tmp_path / "embeddings.npy", unit(300))
    assert isinstance(load_vectors(tmp_path / "embeddings.npy"), np.ndarray)
    monkeypatch.setattr(vectors, "READ_ROWS_FROM", 100)
    assert isinstance(load_vectors(tmp_path / "embeddings.npy"), StoredVectors)


def test_stored_vectors_refuse_other_arrays(tmp_path: Path) -> None:
    np.save(tmp_path / "ints.npy", np.zeros((4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="float32"):
        StoredVectors.open(tmp_path / "ints.npy")


class RandomEncoder:
    """The real model's name and fingerprint, but vectors from a hash of the text (no model run).

    Enough for the index structures; questions are still encoded by the real model on `answer`.
    """

    def __init__(self) -> None:
        from qa.encoder import DEFAULT_MODEL, Encoder

        real = Encoder(DEFAULT_MODEL)
        self.model_name, self.fingerprint, self.dimension = real.model_name, real.fingerprint, 384
        self.batch_size = real.batch_size

    def encode(self, texts, progress: bool = False) -> np.ndarray:
        import hashlib

        rows = [np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little"))
                .standard_normal(self.dimension) for t in texts]
        vectors = np.asarray(rows, dtype=np.float32).reshape(-1, self.dimension)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def article(n: int, sentences: int = 20):
    from qa.articles import parse_article

    body = " ".join(f"Report {n} notes that item {k} of batch {n} weighed {n * 100 + k} grams." for k in range(sentences))
    return parse_article(f"Batch report {n}\n\n{body}\n", name=f"batch-{n}")


def test_an_index_past_the_limit_uses_ivf_and_reads_vectors_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa.index import Index

    monkeypatch.setattr(dense, "FLAT_LIMIT", 400)
    monkeypatch.setattr(vectors, "READ_ROWS_FROM", 400)
    # A private cache: the stand-in vectors carry the real model's fingerprint and must not reach
    # the session's embeddings. It holds the exported model, so questions do not export it again.
    monkeypatch.setenv("QA_CACHE_DIR", str(model_only_cache(tmp_path / "cache")))
    index = Index.empty(tmp_path / "index", RandomEncoder())
    index.add_articles([article(n) for n in range(30)])
    first = index._state.segments[0]
    assert len(index) == 600 and index.manifest["segments"][0]["dense"] == dense.LARGE_KIND
    assert isinstance(first.data.embeddings, StoredVectors)  # the writer let its in-memory copy go

    index.add_articles([article(30)])  # a segment of its own: the trained one is not touched
    assert [s["dense"] for s in index.manifest["segments"]] == [dense.LARGE_KIND, "flat"]
    assert index._state.segments[0] is first and len(index) == 620

    loaded = Index.load(tmp_path / "index")
    assert loaded._state.segments[0].data.dense.kind == dense.LARGE_KIND
    assert isinstance(loaded._state.segments[0].data.embeddings, StoredVectors)
    row = 610
    np.testing.assert_array_equal(loaded._state.embeddings[row], RandomEncoder().encode([loaded._state.corpus.sentence(row)])[0])
    result = loaded.answer("How much did item 7 of batch 30 weigh?")
    for citation in result.citations + result.related:
        assert loaded.article(citation.article_id).text[citation.start : citation.end] == citation.sentence

    loaded.remove("batch-3")  # a deletion file: the IVF segment's rows stay, masked
    assert len(loaded) == 600 and loaded.manifest["segments"][0]["deleted_sentences"] == 20
    assert all(c.article_id != "batch-3" for c in loaded.answer("How much did item 7 of batch 3 weigh?").related)
