"""The encoder's runtimes: ONNX Runtime gives sentence-transformers' vectors without importing torch.

Real model, real files: each test points QA_CACHE_DIR at its own folder, so exports are real too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa.encoder import BACKEND_ENV, DEFAULT_MODEL, Encoder, resolve_model
from qa.errors import ModelLoadError, QAError
from qa.onnx_encoder import ONNX_FILE, OnnxUnavailable, read_pipeline

LONG = " ".join(f"Paragraph sentence {i} says the harbour dredging cost 4.2 million euros." for i in range(40))
TEXTS = [
    "", " ", "?", "Hi.", "How many industrial robots were installed in China in 2022?", "And in the US?",
    "The installation of industrial robots in China reached 290,300 units in 2022.",
    "Café owners in Zürich raised prices by 4.5% — naïve forecasts said 2%.",
    "Москва и Санкт-Петербург", "東京の人口は約1400万人です。", "مرحبا بالعالم", "Emoji 🙂🚀 in text",
    "  leading and trailing spaces  ", "tab\tseparated\twords", "line\nbreaks\nhere", "ALL CAPS HEADLINE",
    "e-mail: someone@example.org, url https://example.org/a?b=c", "1234567890 3.14159 -42 1e9",
    LONG, LONG + " This tail is past the 256-token limit and must not change the vector.",
] + [f"Article {i}: the council approved {i * 7} new homes near the river in {2000 + i}." for i in range(30)]


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache root holding the default model's exported ONNX file."""
    root = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QA_CACHE_DIR", str(root))
        patch.delenv(BACKEND_ENV, raising=False)
        assert Encoder(backend="onnx").runtime == "onnx"  # exports and validates
    return root


def test_onnx_vectors_equal_sentence_transformers(warm_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_CACHE_DIR", str(warm_cache))
    # Batches of 16: the longest batch still pads short texts to 256 tokens beside the long ones,
    # and the others are not all padded to 256 as one batch of 64 would be.
    onnx, torch = Encoder(backend="onnx", batch_size=16), Encoder(backend="torch", batch_size=16)
    assert (onnx.runtime, torch.runtime) == ("onnx", "torch")
    got, expected = onnx.encode(TEXTS), torch.encode(TEXTS)  # 50 texts: the all-cores session
    assert got.shape == expected.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert max_diff(got, expected) <= 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert max_diff(got[TEXTS.index(LONG)], got[-31]) <= 1e-6  # truncated at 256 tokens
    one_by_one = np.vstack([onnx.encode([text]) for text in TEXTS[:8]])  # the one-thread session
    assert max_diff(one_by_one, expected[:8]) <= 1e-4
    assert onnx.dimension == 384 and onnx.encode([]).shape == (0, 384)


def test_batches_are_cut_by_token_count_and_cover_every_text_once(warm_cache: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from qa.encoder import _runtime

    monkeypatch.setenv("QA_CACHE_DIR", str(warm_cache))
    runtime = _runtime(DEFAULT_MODEL, "onnx")
    texts = TEXTS * 3
    rows, padding, token_counts = [], 0, []
    for batch_rows, ids, mask in runtime._batches(texts, 16):
        lengths = mask.sum(axis=1)
        assert ids.shape == mask.shape and lengths.max() == ids.shape[1] and (lengths >= 2).all()  # [CLS] .. [SEP]
        assert (np.diff(lengths) <= 0).all()  # longest first within a batch
        padding += int((lengths.max() - lengths).sum())
        rows.extend(batch_rows.tolist())
        token_counts.extend(lengths.tolist())
    assert sorted(rows) == list(range(len(texts)))
    # The least padding any cut into batches of 16 can have: consecutive runs of the lengths sorted.
    ordered = sorted(token_counts, reverse=True)
    least = sum(max(ordered[i:i + 16]) * len(ordered[i:i + 16]) - sum(ordered[i:i + 16]) for i in range(0, len(ordered), 16))
    by_characters = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    counted = dict(zip(rows, token_counts))
    chars = [counted[i] for i in by_characters]
    old = sum(max(chars[i:i + 16]) * len(chars[i:i + 16]) - sum(chars[i:i + 16]) for i in range(0, len(chars), 16))
    assert padding == least < old
    single = np.vstack([runtime.encode([text]) for text in texts[:12]])  # no padding at all
    assert max_diff(runtime.encode(texts)[:12], single) <= 1e-5


def test_export_leaves_only_the_finished_file(warm_cache: Path) -> None:
    folders = list((warm_cache / "onnx").iterdir())
    assert [f.name for f in folders] == [Encoder().fingerprint]
    assert sorted(p.name for p in folders[0].iterdir()) == [".export.lock", ONNX_FILE]


def test_serving_with_warm_cache_imports_no_torch(warm_cache: Path, seed_index_copy: Path) -> None:
    code = f"""
import sys
from qa import Index
index = Index.load({str(seed_index_copy)!r})
answer = index.answer("How many industrial robots were installed in China in 2022?")
assert answer.citations and index.encoder.runtime == "onnx" and index.encoder.dimension == 384
loaded = [name for name in ("torch", "transformers", "sentence_transformers") if name in sys.modules]
assert not loaded, loaded
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != BACKEND_ENV} | {"QA_CACHE_DIR": str(warm_cache)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_corrupt_cached_model_is_exported_again(warm_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "cache"
    shutil.copytree(warm_cache, root)
    file = root / "onnx" / Encoder().fingerprint / ONNX_FILE
    whole = file.read_bytes()
    file.write_bytes(whole[: len(whole) // 3])  # torn, as if copied by a killed process
    monkeypatch.setenv("QA_CACHE_DIR", str(root))
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    with caplog.at_level(logging.WARNING):
        encoder = Encoder()
        assert encoder.runtime == "onnx"
    assert "unreadable" in caplog.text and file.stat().st_size == len(whole)
    monkeypatch.setenv("QA_CACHE_DIR", str(warm_cache))
    assert max_diff(encoder.encode(TEXTS[:12]), Encoder().encode(TEXTS[:12])) <= 1e-6


def test_unwritable_cache_falls_back_to_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "not-a-folder"
    root.write_text("a file where the cache folder should be")
    monkeypatch.setenv("QA_CACHE_DIR", str(root))
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    with caplog.at_level(logging.WARNING):
        encoder = Encoder()
        assert encoder.runtime == "torch"
    assert "not writable" in caplog.text and "sentence-transformers" in caplog.text
    assert encoder.encode(["a question?"]).shape == (1, 384)
    with pytest.raises(ModelLoadError, match="backend 'torch'"):
        Encoder(backend="onnx").runtime  # asked for explicitly: an error, not a silent fallback


def test_torch_backend_and_the_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV, "torch")
    assert Encoder().backend == "torch" and Encoder(backend="onnx").backend == "onnx"  # only "auto" yields
    encoder = Encoder()
    vectors = encoder.encode(["Who won?", "The harbour reopened in May."])
    assert encoder.runtime == "torch" and vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_unknown_backend_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="auto, onnx, torch") as raised:
        Encoder(backend="tensorrt")
    assert isinstance(raised.value, QAError)
    monkeypatch.setenv(BACKEND_ENV, "gpu")
    with pytest.raises(QAError, match=f"'gpu'.*{BACKEND_ENV}.*auto, onnx, torch"):
        Encoder()


def _model_copy(folder: Path, pooling: dict | None = None, normalize: bool = True) -> Path:
    """The default model folder with its small files copied (and changed) and its weights linked."""
    source = Path(resolve_model(DEFAULT_MODEL))
    folder.mkdir(parents=True)
    for path in source.rglob("*"):
        target = folder / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".safetensors":
            target.symlink_to(path)
        else:
            shutil.copy(path, target)
    if pooling:
        config = folder / "1_Pooling" / "config.json"
        config.write_text(json.dumps(json.loads(config.read_text()) | pooling))
    if not normalize:
        modules = folder / "modules.json"
        modules.write_text(json.dumps(json.loads(modules.read_text())[:2]))
    return folder


def test_other_pipelines_use_sentence_transformers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert read_pipeline(_model_copy(tmp_path / "same")).max_seq_length == 256
    cls = _model_copy(tmp_path / "cls", pooling={"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    unnormalised = _model_copy(tmp_path / "raw", normalize=False)
    for folder, reason in ((cls, "pooling"), (unnormalised, "Normalize")):
        with pytest.raises(OnnxUnavailable, match=reason):
            read_pipeline(folder)
        with caplog.at_level(logging.WARNING):
            assert Encoder(str(folder)).runtime == "torch"
        with pytest.raises(ModelLoadError, match=reason):
            Encoder(str(folder), backend="onnx").runtime
    assert Encoder("some-org/not-a-local-folder").runtime == "torch"
    assert not caplog.records  # not eligible is not a failure: no warning
