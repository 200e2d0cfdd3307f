"""Reading units (`qa.store.units`): small segments joined in memory answer as when read apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import model_only_cache
from test_dense import RandomEncoder, article

from qa import dense, overlap, vectors
from qa.index import Index
from qa.store import snapshot, units

QUESTIONS = ["How much did item 7 of batch 3 weigh?", "Which batch had an item of 3105 grams?",
             "What does report 31 note about item 12?", "How heavy was item 2 of batch 45?", "grams"]


@pytest.fixture
def four_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An index of two approximate (IVF) segments and then two small flat ones, none merged."""
    monkeypatch.setattr(dense, "FLAT_LIMIT", 400)
    monkeypatch.setattr(vectors, "READ_ROWS_FROM", 400)  # the IVF segments' vectors read by row, as at scale
    # Stand-in vectors carry the real model's fingerprint: a private cache keeps them from the session's.
    monkeypatch.setenv("QA_CACHE_DIR", str(model_only_cache(tmp_path / "cache")))
    index = Index.empty(tmp_path / "index", RandomEncoder())
    index.merge_policy = None
    for batch in ([article(n) for n in range(30)], [article(n) for n in range(30, 60)], [article(60)], [article(61)]):
        index.add_articles(batch)
    assert [s["dense"] for s in index.manifest["segments"]] == [dense.LARGE_KIND] * 2 + ["flat"] * 2
    return tmp_path / "index"


def _hits(index: Index) -> list[tuple[list[int], list[float]]]:
    found = [index.search(question)[1] for question in QUESTIONS]
    return [([h.sentence_id for h in hits], [h.score for h in hits]) for hits in found]


@pytest.mark.parametrize("exact_up_to", [snapshot.EXACT_UP_TO, 0], ids=["exact-cosines", "dense-indexes"])
def test_joined_segments_answer_as_the_segments_read_apart(
        four_segments: Path, monkeypatch: pytest.MonkeyPatch, exact_up_to: int) -> None:
    monkeypatch.setattr(snapshot, "EXACT_UP_TO", exact_up_to)
    joined = Index.load(four_segments)
    assert len(joined._state.units) == 1
    parts = joined._state.units[0].data.dense.parts
    # The IVF members keep their own indexes; the two flat ones are searched as one flat index.
    assert [(p.index.kind, p.index.size, p.first) for p in parts] == [
        (dense.LARGE_KIND, 600, 0), (dense.LARGE_KIND, 600, 600), ("flat", 40, 1200)]
    assert len(joined._state.dense_searches) == 3
    monkeypatch.setattr(units, "JOIN_UP_TO", 0)
    apart = Index.load(four_segments)
    assert len(apart._state.units) == 4
    for (ids_joined, scores_joined), (ids_apart, scores_apart) in zip(_hits(joined), _hits(apart), strict=True):
        assert ids_joined == ids_apart and ids_joined
        np.testing.assert_allclose(scores_joined, scores_apart, atol=1e-5)


def test_a_segment_with_deletions_is_read_alone_and_its_rows_stay_hidden(four_segments: Path) -> None:
    index = Index.load(four_segments)
    index.remove("batch-45")
    assert [len(u) for u in index._state.units] == [600, 600, 40]  # the second segment now has dead rows
    cited = index.answer(QUESTIONS[3])
    assert all(c.article_id != "batch-45" for c in cited.citations + cited.related)


def test_a_later_snapshot_reuses_the_joins_an_add_left_unchanged(
        four_segments: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(units, "JOIN_UP_TO", 1200)  # the two IVF segments make one run, full
    index = Index.load(four_segments)
    index.merge_policy = None
    index.warm_up()  # joins now, before any question
    before = index._state
    assert "units" in before.__dict__ and [len(u) for u in before.units] == [1200, 40]
    index.add_articles([article(62)])
    after = index._state
    assert after.units[0] is before.units[0]  # not joined again
    assert [len(u) for u in after.units] == [1200, 60]  # the last run took the new segment
    assert index.search("How much did item 4 of batch 62 weigh?")[1][0].sentence_id >= 1240


def test_an_approximate_segment_reads_title_and_context_rows_by_row(
        four_segments: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors, "READ_ROWS_FROM", 10**6)  # every matrix small enough to map
    index = Index.load(four_segments)
    ivf, flat = index._state.segments[0].data, index._state.segments[2].data
    # Mapped, the pages a question touched would stay in the resident set; these rows are only
    # ever read for candidates, never multiplied whole.
    assert isinstance(ivf.title_context_embeddings, vectors.StoredVectors)
    assert isinstance(ivf.embeddings, np.ndarray)  # mapped: an exact search of a small corpus multiplies them
    assert isinstance(flat.title_context_embeddings, np.ndarray) and isinstance(flat.embeddings, np.ndarray)
    hits = index.search(QUESTIONS[0])[1]
    assert hits and index._state.title_context_embeddings[[hits[0].sentence_id]].shape == (1, 768)


def test_a_run_of_flat_segments_reads_title_and_context_rows_from_one_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_CACHE_DIR", str(model_only_cache(tmp_path / "cache")))
    index = Index.empty(tmp_path / "index", RandomEncoder())
    index.merge_policy = None
    for batch in ([article(n) for n in range(3)], [article(3)], [article(4), article(5)]):
        index.add_articles(batch)
    state = Index.load(tmp_path / "index")._state
    assert len(state.segments) == 3 and len(state.units) == 1
    joined = state.title_context_embeddings
    assert isinstance(joined, np.ndarray) and joined.flags["C_CONTIGUOUS"]  # one array, not one per segment
    every = np.concatenate([np.asarray(s.data.title_context_embeddings) for s in state.segments])
    np.testing.assert_array_equal(joined, every)
    ids = np.array([0, 7, len(every) - 1])
    np.testing.assert_array_equal(joined[ids], every[ids])


def test_segments_probed_on_two_threads_give_what_one_thread_gives(
        four_segments: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Half the segments are probed on a helper thread and every re-score runs on the asking one
    (`Snapshot.dense_top_scored`): the top-k must be exactly that of one thread doing it all."""
    monkeypatch.setattr(snapshot, "EXACT_UP_TO", 0)
    monkeypatch.setattr(units, "JOIN_UP_TO", 0)  # four units, four dense searches: two per thread
    index = Index.load(four_segments)
    state = index._state
    assert len(state.dense_searches) == 4
    started = []
    real_start = overlap.start
    monkeypatch.setattr(overlap, "start", lambda work, *args, **kw: started.append(work) or real_start(work, *args, **kw))
    queries = index.encoder.encode(QUESTIONS)
    for split in (False, True):
        monkeypatch.setattr(overlap, "pays", lambda: split)
        found = [state.dense_top_scored(query, 30, None) for query in queries]
        if not split:
            one_thread = found
    assert len(started) == len(QUESTIONS)  # each question's second half went to the helper
    for (ids, scores), (ids_one, scores_one) in zip(found, one_thread, strict=True):
        np.testing.assert_array_equal(ids, ids_one)
        np.testing.assert_array_equal(scores, scores_one)
        assert len(ids) == 30 and (np.diff(scores) <= 0).all()


def test_warm_up_indexes_the_postings_of_large_units_by_sentence(
        four_segments: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first question must not wait to build `LexicalIndex.sentence_postings` (~0.5 s at 1M):
    `Index.warm_up` builds them for the units whose questions cannot gather their terms' postings."""
    from qa import bm25

    monkeypatch.setattr(units, "JOIN_UP_TO", 0)
    index = Index.load(four_segments)
    sizes = [u.data.lexical.postings.nnz for u in index._state.units]
    monkeypatch.setattr(bm25, "FULL_SCAN_POSTINGS", sorted(sizes)[1])  # the two largest units only
    monkeypatch.setattr(snapshot, "FULL_SCAN_POSTINGS", sorted(sizes)[1])
    index.warm_up()
    built = ["sentence_postings" in u.data.lexical.__dict__ for u in index._state.units]
    assert built == [size > sorted(sizes)[1] for size in sizes] and sum(built) == 2
