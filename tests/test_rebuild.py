"""A rebuild loses nothing it was not asked to: added and pasted articles survive `qa build`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, write_article
from qa import Index
from qa.errors import NoArticlesError

QA = [sys.executable, "-m", "qa.cli"]
TURBINE_QUESTION = "How much did the Orkney tidal turbine produce?"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QA, *args], capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=600)


def ids(index_path: Path) -> list[str]:
    return [row.id for row in Index.load(index_path).articles()]


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    write_article(folder, "harbour-crane", "Harbour crane",
                  "The Velmar harbour crane lifted 41 tonnes in its first test. It was built in Gdansk.")
    write_article(folder, "pear-orchard", "Pear orchard",
                  "The Brisk orchard planted 900 pear trees in 2021. Its first harvest came in 2024.")
    return folder


@pytest.fixture()
def added(tmp_path: Path) -> Path:
    """An article that lives outside the source folder, as `qa add` takes it."""
    return write_article(tmp_path / "elsewhere", "tidal-power", "Tidal Power Trial",
                         "The tidal turbine off Orkney produced 2.1 gigawatt hours in its first year.")


def test_cli_rebuild_keeps_added_and_pasted_articles_then_drops_on_request(
        tmp_path: Path, source: Path, added: Path) -> None:
    index = tmp_path / "index"
    assert run_cli("build", "--source", str(source), "--index", str(index)).returncode == 0
    assert run_cli("add", "--index", str(index), str(added)).returncode == 0
    pasted = index / "pasted"  # where the app keeps pasted articles as files
    write_article(pasted, "korvik-lighthouse", "Korvik lighthouse", "The Korvik lighthouse was rebuilt in 1911.")
    before = Index.load(index).article("tidal-power")

    rebuilt = run_cli("build", "--source", str(source), "--index", str(index))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "kept 1 article not found in the source: tidal-power; pass --drop-missing to drop it" in rebuilt.stdout
    assert "kept      tidal-power" in rebuilt.stdout and "added     korvik-lighthouse" in rebuilt.stdout
    assert sorted(ids(index)) == ["harbour-crane", "korvik-lighthouse", "pear-orchard", "tidal-power"]
    loaded = Index.load(index)
    after = loaded.article("tidal-power")
    assert (after.text, after.title, after.date, after.source) == (before.text, before.title, before.date, before.source)
    answer = loaded.answer(TURBINE_QUESTION)
    cited = answer.citations[0]
    assert cited.article_id == "tidal-power" and "2.1 gigawatt" in cited.sentence
    assert loaded.article(cited.article_id).text[cited.start:cited.end] == cited.sentence

    dropped = run_cli("build", "--source", str(source), "--index", str(index), "--drop-missing")
    assert dropped.returncode == 0, dropped.stderr
    assert "dropped 1 article not found in the source (--drop-missing): tidal-power" in dropped.stdout
    assert sorted(ids(index)) == ["harbour-crane", "korvik-lighthouse", "pear-orchard"]  # pasted/ is a source


def test_api_rebuild_keeps_what_only_the_index_holds(tmp_path: Path, source: Path, added: Path) -> None:
    from qa.articles import parse_article

    index = Index.build(source, tmp_path / "index")
    index.add(added)
    index.add_articles([parse_article("Pasted note\n\nThe Ostra ferry carries 212 cars on each crossing.",
                                      name="pasted-note", source="pasted")])
    (source / "pear-orchard.txt").unlink()  # gone from the source since the last build

    rebuilt = Index.build(source, tmp_path / "index")
    assert sorted(rebuilt.build_report.kept) == ["pasted-note", "pear-orchard", "tidal-power"]
    assert rebuilt.build_report.dropped == [] and rebuilt.build_report.ok
    assert sorted(ids(tmp_path / "index")) == ["harbour-crane", "pasted-note", "pear-orchard", "tidal-power"]
    assert "212 cars" in rebuilt.answer("How many cars does the Ostra ferry carry?").citations[0].sentence

    dropped = Index.build(source, tmp_path / "index", drop_missing=True)
    assert sorted(dropped.build_report.dropped) == ["pasted-note", "pear-orchard", "tidal-power"]
    assert dropped.build_report.kept == []
    assert ids(tmp_path / "index") == ["harbour-crane"]


def test_edited_source_article_replaces_its_old_version(tmp_path: Path, source: Path) -> None:
    Index.build(source, tmp_path / "index")
    write_article(source, "harbour-crane", "Harbour crane", "The Velmar harbour crane lifted 44 tonnes in its second test.")
    rebuilt = Index.build(source, tmp_path / "index")
    assert rebuilt.build_report.kept == []
    assert "44 tonnes" in rebuilt.article("harbour-crane").text and len(rebuilt.articles()) == 2


def test_failed_rebuild_leaves_the_previous_index_intact(tmp_path: Path, source: Path, added: Path) -> None:
    index = Index.build(source, tmp_path / "index")
    index.add(added)
    manifest = (tmp_path / "index" / "manifest.json").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoArticlesError, match="left as it was"):
        Index.build(empty, tmp_path / "index")
    failed = run_cli("build", "--source", str(empty), "--index", str(tmp_path / "index"))
    assert failed.returncode == 2 and "left as it was" in failed.stderr
    assert (tmp_path / "index" / "manifest.json").read_text() == manifest
    assert sorted(ids(tmp_path / "index")) == ["harbour-crane", "pear-orchard", "tidal-power"]



def test_cli_remove_of_a_pasted_article_deletes_its_file_so_a_rebuild_does_not_bring_it_back(
        tmp_path: Path, source: Path) -> None:
    from qa.pasted import save_article

    index_path = tmp_path / "index"
    index = Index.build(source, index_path)
    pasted = Index.load(index_path)  # as the app does: add, then keep the text as a file
    article = write_article(tmp_path / "paste", "korvik-lighthouse", "Korvik lighthouse", "The Korvik lighthouse was rebuilt in 1911.")
    pasted.add(article)
    saved = save_article(index_path, pasted.article("korvik-lighthouse"))
    assert saved.is_file()
    removed = run_cli("remove", "--index", str(index_path), "korvik-lighthouse")
    assert removed.returncode == 0, removed.stderr
    assert not saved.exists()
    assert run_cli("build", "--source", str(source), "--index", str(index_path)).returncode == 0
    assert "korvik-lighthouse" not in ids(index_path) and len(index.articles()) == 2


def test_a_cluster_rebuild_refuses_to_drop_what_only_the_index_holds(tmp_path: Path, source: Path, added: Path) -> None:
    from qa.cluster.build import _refuse_to_drop
    from qa.errors import MissingArticlesError
    from qa.ingest import load_articles

    index_path = tmp_path / "index"
    Index.build(source, index_path).add(added)
    from_source = [a for a in load_articles(source)]
    with pytest.raises(MissingArticlesError, match=r"1 article\(s\) the source does not provide \(tidal-power\).*--drop-missing"):
        _refuse_to_drop(index_path, from_source)
    _refuse_to_drop(index_path, from_source + [a for a in load_articles(added)])  # all provided: no error
