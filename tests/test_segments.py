"""The segment store: adds write one segment, removes a deletion file, merges keep answers identical."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SEEDS, SQUAD_DEV, copy_seed_index, write_article
from forkserver import ForkServer

from qa import Index
from qa.store import MergePolicy

ROBOTS = "How many industrial robots were installed in China in 2022?"


def squad_files(folder: Path, count: int) -> list[Path]:
    """The first `count` SQuAD dev articles as .txt files, in file order."""
    from qa.evaluation.squad import load_squad

    squad = load_squad(SQUAD_DEV, count)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for article in squad.articles:
        file = folder / f"{article.file_name}.txt"
        file.write_text(article.text, encoding="utf-8", newline="")
        files.append(file)
    return files


def squad_questions(count: int) -> list[str]:
    from qa.evaluation.squad import load_squad

    return [q.text for q in load_squad(SQUAD_DEV, count).questions]


def answers(index: Index, questions: list[str]) -> list[tuple[bool, list[tuple[str, int, int]], list[float]]]:
    """Per question: abstained, the cited (article, start, end) and the citation scores."""
    out = []
    for question in questions:
        result = index.answer(question)
        cited = result.related if result.abstained else result.citations
        out.append((result.abstained, [(c.article_id, c.start, c.end) for c in cited], [c.score for c in cited]))
    return out


def assert_same_answers(one: list, other: list) -> None:
    for (abstained_a, cited_a, scores_a), (abstained_b, cited_b, scores_b) in zip(one, other, strict=True):
        assert abstained_a == abstained_b and cited_a == cited_b
        np.testing.assert_allclose(scores_a, scores_b, atol=1e-4)  # scores are rounded to 4 places


@pytest.mark.slow
@pytest.mark.skipif(not SQUAD_DEV.is_file(), reason=f"SQuAD dev not found at {SQUAD_DEV}: clone next to shared/")
def test_one_segment_per_article_answers_like_one_build_and_like_its_merge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = squad_files(tmp_path / "articles", 2)
    built = Index.build(tmp_path / "articles", tmp_path / "built")
    assert len(built.manifest["segments"]) == 1
    piecemeal = Index.empty(tmp_path / "piecemeal", built.encoder)
    piecemeal.merge_policy = None
    for file in files:
        piecemeal.add(file)
    assert len(piecemeal.manifest["segments"]) == len(files) == 2
    questions = squad_questions(2)[::8]  # a spread sample of the 1,046: both articles, every part of them
    # Ranking scores themselves, not only the rounded citations: every candidate agrees.
    for question in questions[:40]:
        hits_one = built.search(question)[1]
        hits_many = piecemeal.search(question)[1]
        assert [h.sentence_id for h in hits_one] == [h.sentence_id for h in hits_many]
        np.testing.assert_allclose([h.score for h in hits_one], [h.score for h in hits_many], atol=1e-5)
    # Small segments are read joined (`Snapshot.units`); read apart, each is searched on its own
    # and the BM25 top-k of the later one is pruned by the earlier one's k-th score: same hits.
    from qa import bm25
    from qa.store import units

    monkeypatch.setattr(units, "JOIN_UP_TO", 0)
    monkeypatch.setattr(bm25, "FULL_SCAN_POSTINGS", 0)  # MaxScore even on small postings, as at scale
    apart = Index.load(tmp_path / "piecemeal")
    assert len(apart._state.units) == 2
    for question in questions[:40]:
        hits_one, hits_apart = built.search(question)[1], apart.search(question)[1]
        assert [h.sentence_id for h in hits_one] == [h.sentence_id for h in hits_apart]
        np.testing.assert_allclose([h.score for h in hits_one], [h.score for h in hits_apart], atol=1e-5)
    monkeypatch.undo()
    expected = answers(built, questions)
    assert_same_answers(answers(piecemeal, questions), expected)
    piecemeal.optimize()
    assert len(piecemeal.manifest["segments"]) == 1
    assert_same_answers(answers(Index.load(tmp_path / "piecemeal"), questions), expected)


def test_an_add_writes_one_segment_and_touches_no_other_file(tmp_path: Path) -> None:
    index = Index.build(SEEDS, tmp_path / "index")  # built, not copied: its write lock is there before the add
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "index").rglob("*") if p.is_file()}
    index.add(write_article(tmp_path / "in", "pier", "Pier Works", "The new pier opened in June with 12 berths."))
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "index").rglob("*") if p.is_file()}
    changed = {p.relative_to(tmp_path / "index").parts[0] for p in after if before.get(p) != after[p]}
    new_segment = index.manifest["segments"][-1]["name"]
    assert changed == {"manifest.json", new_segment}
    assert [s["articles"] for s in index.manifest["segments"]] == [1, 1]


def test_a_remove_writes_a_deletion_file_and_the_rows_are_gone_everywhere(tmp_path: Path) -> None:
    source = tmp_path / "in"
    shutil.copytree(SEEDS, source)
    write_article(source, "harbour", "Harbour Report", "The harbour at Korvik moved 4,100 containers in May. "
                  "Officials said traffic grew by 12 percent.\n\nThe new crane arrived in April.")
    write_article(source, "lighthouse", "Korvik Lighthouse", "The Korvik lighthouse was rebuilt in 1911. "
                  "Its lamp can be seen from 40 kilometres.")
    index = Index.build(source, tmp_path / "index")
    segment = index.manifest["segments"][0]["name"]
    question = "How many containers did the harbour at Korvik move in May?"
    assert index.answer(question).citations[0].article_id == "harbour"
    files_before = {p.name for p in (tmp_path / "index").iterdir()}
    index.remove("harbour")
    entry = index.manifest["segments"][0]
    assert entry["name"] == segment and entry["deleted_articles"] == 1 and entry["deleted_sentences"] == 3
    assert {p.name for p in (tmp_path / "index").iterdir()} - files_before == {entry["deletes"]}
    assert (tmp_path / "index" / entry["deletes"]).stat().st_size < 1024
    reloaded = Index.load(tmp_path / "index")
    assert sorted(a.id for a in reloaded.articles()) == ["lighthouse", "openai-api-block-chinese-ai-startups"]
    result = reloaded.answer(question)
    assert all(c.article_id != "harbour" for c in result.citations + result.related)
    # BM25 counts live rows only: the same as an index that never held the article.
    (source / "harbour.txt").unlink()
    fresh = Index.build(source, tmp_path / "fresh")
    for words in ("Korvik lighthouse rebuilt", "harbour containers", ROBOTS):
        mine, theirs = reloaded.search(words)[1], fresh.search(words)[1]
        assert [reloaded._state.corpus.sentence(h.sentence_id) for h in mine] == \
            [fresh._state.corpus.sentence(h.sentence_id) for h in theirs]
        np.testing.assert_allclose([h.lexical for h in mine], [h.lexical for h in theirs], rtol=1e-5)
    # A merge drops the deleted rows for good.
    reloaded.optimize()
    assert reloaded.manifest["segments"][0]["deleted_sentences"] == 0 and len(reloaded._state.corpus) == len(fresh)


def test_merge_policy_keeps_segments_few_and_merges_adjacent_ones() -> None:
    policy = MergePolicy(segments_per_tier=4, floor=100)
    assert policy.find_merge([10, 10, 10], [0, 0, 0]) is None
    assert policy.find_merge([5000, 10, 10, 10, 10], [0] * 5) == [1, 2, 3, 4]
    assert policy.find_merge([400, 400, 400, 400, 10], [0] * 5) == [0, 1, 2, 3]
    assert policy.find_merge([400, 10], [300, 0]) == [0]  # mostly deleted: rewritten alone
    sizes: list[int] = []
    rewritten = 0
    for _ in range(500):  # 500 adds of 100 rows: segments stay few, each row is rewritten ~log times
        sizes.append(100)
        while (chosen := policy.find_merge(sizes, [0] * len(sizes))) is not None:
            rewritten += sum(sizes[i] for i in chosen)
            sizes[chosen[0] : chosen[-1] + 1] = [sum(sizes[i] for i in chosen)]
        assert len(sizes) <= 4 * 5
    assert rewritten <= 5 * sum(sizes)  # log_4(500) ~ 4.5 tiers


def test_segmented_vectors_read_rows_as_one_matrix_would() -> None:
    from qa.store.units import SegmentedVectors

    parts = [np.arange(n * 3, dtype=np.float32).reshape(n, 3) + 100 * i for i, n in enumerate((4, 1, 5))]
    whole = np.concatenate(parts)
    vectors = SegmentedVectors(parts, np.array([0, 4, 5, 10]))
    for ids in ([0, 3, 4, 5, 9], [4], [2, 2, 7], [9, 0, 4, 4, 1], [], list(range(10))):
        np.testing.assert_array_equal(vectors[np.array(ids, dtype=np.int64)], whole[ids])
    np.testing.assert_array_equal(vectors[5], whole[5])
    for bad in ([3, 10], [-1, 2]):
        with pytest.raises(IndexError):
            vectors[np.array(bad)]


def test_writes_merge_segments_as_they_pile_up(tmp_path: Path) -> None:
    index = Index.load(copy_seed_index(tmp_path / "index"))
    index.merge_policy = MergePolicy(segments_per_tier=3, floor=1000)
    for n in range(5):
        index.add(write_article(tmp_path / "in", f"note-{n}", f"Note {n}", f"Note {n} says the ferry left at {n} pm."))
    assert len(index.manifest["segments"]) < 6 and len(index.articles()) == 6
    on_disk = sorted(p.name for p in (tmp_path / "index").glob("seg-*"))
    assert on_disk == sorted(s["name"] for s in index.manifest["segments"])
    assert "290,300" in Index.load(tmp_path / "index").answer(ROBOTS).citations[0].sentence


def format_6_index(path: Path) -> dict:
    """A seed index laid out as format 6 wrote it: one `data-NNNNNN` folder (a segment's files,
    which were a generation's) named by a manifest with a `data` key and no segment list."""
    index = Index.load(copy_seed_index(path))
    entry = index.manifest["segments"][0]
    (path / entry["name"]).rename(path / "data-000007")
    (path / "data-000007" / "segment.json").unlink()
    manifest = {key: value for key, value in index.manifest.items() if key not in ("segments", "generation")}
    manifest.update(format_version=6, data="data-000007", dense={"kind": "flat", "params": {}})
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def test_an_old_single_folder_index_loads_and_its_first_write_migrates_it(tmp_path: Path) -> None:
    old = tmp_path / "index"
    manifest = format_6_index(old)
    index = Index.load(old)
    assert "290,300" in index.answer(ROBOTS).citations[0].sentence
    index.add(write_article(tmp_path / "in", "pier", "Pier Works", "The new pier opened in June with 12 berths."))
    migrated = json.loads((old / "manifest.json").read_text())
    assert migrated["format_version"] == 7
    assert [s["name"] for s in migrated["segments"]] == [manifest["data"], migrated["segments"][1]["name"]]
    assert "290,300" in Index.load(old).answer(ROBOTS).citations[0].sentence
    assert (old / "data-000007" / "embeddings.npy").is_file()  # the old folder is kept as a segment, not rewritten


def test_a_reader_keeps_its_snapshot_and_sees_the_next_commit(tmp_path: Path) -> None:
    writer = Index.load(copy_seed_index(tmp_path / "index"))
    reader = Index.load(tmp_path / "index")
    snapshot = reader._state
    writer.add(write_article(tmp_path / "in", "pier", "Pier Works", "The new pier opened in June with 12 berths."))
    writer.optimize()  # the reader's segment folder is swept; its snapshot still answers
    hits = reader._search(snapshot, ROBOTS, None)[1]
    assert "290,300" in snapshot.corpus.sentence(hits[0].sentence_id)
    assert [a.id for a in reader.articles()] == ["openai-api-block-chinese-ai-startups", "pier"]


# --- kill -9 at random moments ------------------------------------------------------------
# Each command runs in a process forked from one that imported qa and its libraries once
# (tests/forkserver.py): the kills land in the command's own work, not in Python's start-up.

KILLS = int(os.environ.get("QA_CRASH_KILLS", "20"))


def _lifetime(server: ForkServer, request: dict, log: Path, runs: int = 1, reset: Callable[[], None] = lambda: None) -> float:
    """How long the command lives when nobody kills it (it must succeed): the median of `runs`
    runs, each after `reset()`, so one run slowed by the shared machine does not skew the kills."""
    lives = []
    for _ in range(runs):
        reset()
        status, seconds = server.run({**request, "log": str(log)})
        assert status == 0, log.read_text()[-3000:]
        lives.append(seconds)
    return statistics.median(lives)


def _article_ids(path: Path) -> set[str]:
    return {a.id for a in Index.load(path).articles()}


@pytest.mark.slow
def test_kill_9_during_adds_at_random_moments_leaves_a_commit(tmp_path: Path) -> None:
    index_path = copy_seed_index(tmp_path / "index")
    rng = random.Random(7)
    expected = _article_ids(index_path)

    def new_input(n: int) -> Path:
        folder = tmp_path / f"in-{n}"
        run = uuid.uuid4().hex[:6]
        for k in range(2):
            body = " ".join(f"Report {run}-{k} line {p}: the depot at site {n} shipped {p * 7 + k} crates." for p in range(15))
            write_article(folder, f"depot-{n}-{k}", f"Depot {n}-{k} {run}", body)
        return folder

    def add(n: int) -> dict:
        return {"argv": ["add", "--index", str(index_path), str(new_input(n))]}

    outcomes = set()
    with ForkServer() as server:
        lifetime = _lifetime(server, add(0), tmp_path / "add.log")
        expected |= {f"depot-0-{k}" for k in range(2)}
        for n in range(1, KILLS + 1):
            status, _ = server.run(add(n), kill_after=rng.uniform(0.3, 1.05) * lifetime)
            reloaded = Index.load(index_path)
            ids = {a.id for a in reloaded.articles()}
            added = {f"depot-{n}-{k}" for k in range(2)}
            assert ids in (expected, expected | added), f"kill {n} left a partial commit: {sorted(ids ^ expected)}"
            outcomes.add((status, ids == expected))
            expected = ids
            assert "290,300" in reloaded.answer(ROBOTS).citations[0].sentence
    assert (-signal.SIGKILL, True) in outcomes  # some kills landed before the commit


@pytest.mark.slow
def test_kill_9_during_merges_at_random_moments_leaves_a_commit(tmp_path: Path) -> None:
    index_path = copy_seed_index(tmp_path / "index")
    index = Index.load(index_path)
    index.merge_policy = None
    for n in range(3):  # three adds of two articles: four segments with the seed's
        pair = []
        for k in range(2):
            body = " ".join(f"Item {n}-{k}-{p} of the Korvik ledger lists {p * 11 + n} barrels of tar." for p in range(30))
            pair.append(write_article(tmp_path / "in" / str(n), f"ledger-{n}-{k}", f"Ledger {n}-{k}", body))
        index.add(pair)
    index.remove("ledger-1-0")  # a deletion file the merge must apply
    before = len(index.manifest["segments"])
    assert before == 4 and index.manifest["segments"][2]["deletes"]
    questions = [ROBOTS, "How many barrels of tar does item 2-1-7 of the Korvik ledger list?"]
    reference = answers(index, questions)
    pristine = tmp_path / "pristine"
    shutil.copytree(index_path, pristine)
    merge = {"code": f"from qa import Index; Index.load({str(index_path)!r}).optimize()"}
    rng = random.Random(11)
    outcomes = set()

    def reset() -> None:
        shutil.rmtree(index_path)
        shutil.copytree(pristine, index_path)

    with ForkServer() as server:
        # A merge of this size lives a tenth of a second: three runs give a steadier figure.
        lifetime = _lifetime(server, merge, tmp_path / "merge.log", runs=3, reset=reset)
        for n in range(KILLS):
            reset()
            status, _ = server.run(merge, kill_after=rng.uniform(0.2, 1.05) * lifetime)
            reloaded = Index.load(index_path)
            segments = len(reloaded.manifest["segments"])
            assert segments in (1, before), f"kill {n}: {segments} segments"
            outcomes.add((status, segments))
            assert_same_answers(answers(reloaded, questions), reference)
    assert {s for _, s in outcomes} == {1, before}  # kills landed both before and after the commit


BULLETINS = 100  # ten batches of 20 sentences: the interrupt lands with seven or more still to go


def test_an_interrupted_add_keeps_its_committed_batches_and_a_rerun_skips_them(tmp_path: Path) -> None:
    index_path = tmp_path / "index"
    copy_seed_index(index_path)
    folder = tmp_path / "many"
    run = uuid.uuid4().hex[:6]
    for n in range(BULLETINS):
        write_article(folder, f"bulletin-{n:03d}", f"Bulletin {n} {run}",
                      f"Bulletin {n}-{run} says the ferry to pier {n} left at {n % 12 + 1} pm. It carried {n * 3} cars.")
    # Batches of 20 sentences, each held 0.3 s after its commit (as on a slow machine): on a fast
    # one the whole add took 2 s and ended before the interrupt arrived.
    # Ctrl-C as in a shell: a child inherits its parent's ignored or blocked signals, and in the
    # full suite (not alone) the add ran to the end with the SIGINT never delivered.
    script = ("import signal; signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})\n"
              "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
              "import qa.index, sys, time; qa.index.BATCH_SENTENCES = 20\n"
              "commit = qa.index.Index._commit\n"
              "def held(self, *args, **kwargs):\n"
              "    done = commit(self, *args, **kwargs)\n"
              "    time.sleep(0.3)\n"
              "    return done\n"
              "qa.index.Index._commit = held\n"
              f"from qa.cli import main; sys.exit(main(['add', '--index', {str(index_path)!r}, {str(folder)!r}]))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    first = json.loads((index_path / "manifest.json").read_text())["generation"]
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:  # three commits (merges count too) in
        if json.loads((index_path / "manifest.json").read_text())["generation"] >= first + 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    committed = {a.id for a in Index.load(index_path).articles()} - {"openai-api-block-chinese-ai-startups"}
    assert 0 < len(committed) < BULLETINS
    assert f"interrupted: {len(committed)} article(s) were committed" in stderr and "run the same command" in stderr
    rerun = subprocess.run([sys.executable, "-m", "qa.cli", "add", "--index", str(index_path), str(folder)], check=False, cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{BULLETINS - len(committed)} added, {len(committed)} already indexed, 0 failed" in rerun.stdout
    assert len(Index.load(index_path).articles()) == BULLETINS + 1
