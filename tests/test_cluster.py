"""More than one machine: a Ray build equals a local one, and sharded serving answers as one index.

The slow tests run a real two-node Ray cluster on 127.0.0.1 (`ray start --head` and a second
`ray start --address`, token auth on, no dashboard, Ray's temp folders under one test folder),
stopped at the end.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SQUAD_DEV, model_only_cache, seed_questions
from qa import Index
from qa.errors import EmptyQuestionError
from qa.cluster.shards import ShardingError, shard_groups

# Not imported here: Ray reads its auth settings when first imported, after the cluster sets them.
HAVE_RAY = importlib.util.find_spec("ray") is not None

needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed: `pip install -e '.[cluster]'` (make test does)")
needs_squad = pytest.mark.skipif(not SQUAD_DEV.is_file(), reason=f"SQuAD dev not found at {SQUAD_DEV}: clone next to shared/")
ARTICLES = 8
SHARDS = 3
FOLLOWUP_DATA = ROOT / "tests" / "data" / "followups"
TURNS = [json.loads(line) for line in (FOLLOWUP_DATA / "turns.jsonl").read_text(encoding="utf-8").splitlines()]
FOLLOWUPS = [row for row in TURNS if not row.get("error")]  # chat turns with their histories (tests/test_followups.py)
# Ray Serve 2.60's own pydantic models warn on import; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:Using extra keyword arguments on `Field`")


def test_nothing_outside_qa_cluster_imports_ray() -> None:
    """Without the extra everything works as before: the engine, CLI and app never load Ray."""
    code = ("import sys, qa, qa.index, qa.cli, qa.ranking, qa.store, qa.webapp; "
            "qa.cli._parser(); assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_shards_are_runs_of_adjacent_segments_of_similar_size() -> None:
    assert shard_groups([100, 100, 100, 100], 2) == [range(0, 2), range(2, 4)]
    assert shard_groups([1000, 10, 10, 10], 3) == [range(0, 1), range(1, 2), range(2, 4)]
    assert shard_groups([5, 5, 5], 3) == [range(0, 1), range(1, 2), range(2, 3)]
    with pytest.raises(ShardingError, match="has 2 segment.*--segments 3"):
        shard_groups([10, 10], 3)


@pytest.fixture(scope="module")
def squad(tmp_path_factory: pytest.TempPathFactory):
    from qa.evaluation.squad import load_squad

    data = load_squad(SQUAD_DEV, ARTICLES)
    folder = tmp_path_factory.mktemp("squad-articles")
    for article in data.articles:
        (folder / f"{article.file_name}.txt").write_text(article.text, encoding="utf-8", newline="")
    return folder, data


@pytest.fixture(scope="module")
def cluster():
    from qa.cluster.runtime import LocalCluster

    folder = Path(tempfile.mkdtemp(prefix="qa-ray-", dir="/tmp"))  # short: Ray's socket paths must fit
    local = LocalCluster(folder, workers=1, cpus=1)
    model_only_cache(folder / "cache")  # the nodes' cache: the exported model, no embeddings (each embeds cold)
    try:
        local.start()
        yield local
    finally:
        import ray

        ray.shutdown()
        local.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def builds(squad, cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, Index]:
    """The 8 articles built on the cluster (4 segments) and locally (one segment)."""
    from qa.cluster.build import build_on_cluster

    source, _ = squad
    folder = tmp_path_factory.mktemp("indexes")
    on_ray = build_on_cluster(source, folder / "ray", cluster.address, segments=4, progress=RAY_PROGRESS.append)
    return on_ray, Index.build(source, folder / "local")


RAY_PROGRESS: list = []  # every progress Status the cluster build reported


def _by_sentence(index: Index) -> dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]]:
    state = index._state
    corpus = state.corpus
    vectors, pairs = np.asarray(state.embeddings), np.asarray(state.title_context_embeddings)
    return {(corpus.article_of(i).id, int(row[1]), int(row[2])): (vectors[i], pairs[i])
            for i, row in enumerate(corpus.table)}


def _answers(answer, questions: list[str], histories: list[list[str] | None] | None = None) -> list[tuple]:
    """What the user sees of each answer: abstained or not, the text searched, the quoted (or related)
    sentences with where they are, and the scores and confidence (compared to 1e-5)."""
    out = []
    for question, history in zip(questions, histories or [None] * len(questions), strict=True):
        result = answer(question, history) if history else answer(question)
        cited = result.related if result.abstained else result.citations
        out.append(((result.abstained, result.query, [(c.article_id, c.start, c.end, c.sentence) for c in cited]),
                    [*(c.score for c in cited), result.confidence]))
    return out


def _assert_same(one: list[tuple], other: list[tuple]) -> None:
    for (seen_a, scores_a), (seen_b, scores_b) in zip(one, other, strict=True):
        assert seen_a == seen_b
        np.testing.assert_allclose(scores_a, scores_b, atol=1e-5)


def _in_process_router(index: Index, calls: list[str] | None = None):
    """A router over one shard per segment of `index`, its shards read in this process (no Ray);
    the methods it calls are appended to `calls`."""
    from qa.cluster.router import Router, in_process
    from qa.cluster.shards import ShardReader
    from qa.store import read_commit

    manifest = read_commit(index.path)
    groups = shard_groups([e["sentences"] for e in manifest["segments"]], len(manifest["segments"]))
    readers = [ShardReader(index.path, list(g), manifest["generation"]) for g in groups]
    shard_call = in_process(readers)

    async def call(shard: int, method: str, *args):
        if calls is not None:
            calls.append(method)
        return await shard_call(shard, method, *args)

    return Router(call, [r.offset for r in readers], manifest)


@pytest.mark.slow
@needs_ray
@needs_squad
def test_a_ray_build_equals_a_local_build(builds, squad) -> None:
    on_ray, local = builds
    assert len(on_ray.manifest["segments"]) == 4 and len(on_ray) == len(local)
    assert [a.id for a in on_ray.articles()] == [a.id for a in local.articles()]  # article order kept
    ray_vectors, local_vectors = _by_sentence(on_ray), _by_sentence(local)
    assert ray_vectors.keys() == local_vectors.keys()
    worst = max(float(np.abs(a - b).max()) for key in local_vectors
                for a, b in zip(ray_vectors[key], local_vectors[key]))
    assert worst <= 1e-5, worst
    questions = [q.text for q in squad[1].questions][::25]
    _assert_same(_answers(on_ray.answer, questions), _answers(local.answer, questions))
    # The build told its progress as batches came back from the actors, and ended at every sentence.
    done = [status.done for status in RAY_PROGRESS]
    assert done == sorted(done) and len(set(done)) >= 3 and RAY_PROGRESS[-1].finished, done
    assert RAY_PROGRESS[-1].done == RAY_PROGRESS[-1].total == len(local)


@pytest.mark.slow
@needs_ray
@needs_squad
def test_three_shards_on_ray_serve_answer_as_one_index_and_survive_a_killed_replica(builds, squad, cluster) -> None:
    import ray

    from qa.cluster.router import ShardUnavailableError
    from qa.cluster.serve import deploy, shutdown

    on_ray, _ = builds
    handle = deploy(cluster.address, on_ray.path, SHARDS, max_replicas=2, timeout=20.0)  # autoscaled shards
    try:
        every = [q.text for q in squad[1].questions]
        squad_sample = [every[i] for i in np.linspace(0, len(every) - 1, min(500, len(every))).astype(int)]
        questions = squad_sample + [row["question"] for row in seed_questions()]
        expected = _answers(on_ray.answer, questions)
        _assert_same(_answers(lambda q: handle.answer.remote(q).result(), questions), expected)
        turns = [t for t in FOLLOWUPS if t["history"]]  # asked of these articles: joined, alone, abstaining
        _assert_same(_answers(lambda q, h: handle.answer.remote(q, h).result(), [t["question"] for t in turns],
                              [t["history"] for t in turns]),
                     _answers(on_ray.answer, [t["question"] for t in turns], [t["history"] for t in turns]))

        # Kill one shard's replica mid-run: Serve restarts it; meanwhile an answer is either
        # whole or a clear error, never one from the other shards alone.
        victim = next(a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "#shard-1#" in a["name"])
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        failed, whole, deadline = 0, 0, time.monotonic() + 120
        sample = questions[:40]
        while time.monotonic() < deadline and whole < len(sample):
            question = sample[whole % len(sample)]
            try:
                got = _answers(lambda q: handle.answer.remote(q).result(), [question])
            except ShardUnavailableError as exc:
                assert "not answered" in str(exc) and "part of the articles" in str(exc)
                failed += 1
                time.sleep(0.5)
                continue
            _assert_same(got, [expected[questions.index(question)]])
            whole += 1
        assert whole == len(sample), f"answers did not come back after the shard was killed ({failed} failed)"
        replicas = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "#shard-1#" in a["name"]]
        assert replicas and victim not in replicas  # a new replica serves the shard
    finally:
        shutdown()


@pytest.mark.slow
@needs_ray
@needs_squad
def test_the_app_backend_answers_through_the_shards_and_follows_writes(builds, cluster, tmp_path: Path) -> None:
    """`app.py --ray`: answers come from the router; an add or remove redeploys the shards."""
    from qa.articles import parse_article
    from qa.cluster.backend import ClusterIndex
    from qa.chat_session import ChatSession
    from qa.errors import QuestionError

    shutil.copytree(builds[0].path, tmp_path / "index")
    index = Index.load(tmp_path / "index")
    backend = ClusterIndex(index, cluster.address, SHARDS)
    question = "When was the Korvik lighthouse rebuilt?"
    assert backend.answer(question).citations == index.answer(question).citations
    backend.add_articles([parse_article("Korvik lighthouse\n\nThe Korvik lighthouse was rebuilt in 1911 after a "
                                        "storm.\n", name="korvik")])
    cited = backend.answer(question).citations
    assert cited and cited[0].article_id == "korvik" and cited == index.answer(question).citations
    _, record, _ = ChatSession(backend).reply(question, [])  # the chat app over it
    assert record["citations"][0]["article_id"] == "korvik"
    backend.remove("korvik")
    assert all(c.article_id != "korvik" for c in backend.answer(question).citations + backend.answer(question).related)
    with pytest.raises(QuestionError):
        backend.answer("   ")


@pytest.mark.slow
@needs_squad
def test_the_router_in_process_answers_as_one_index(squad, tmp_path: Path) -> None:
    """The two ranking phases over shards equal one index, without Ray (the router's own logic):
    3 SQuAD articles added one by one (one segment each, merges off), one shard per segment."""
    source, data = squad
    index = Index.empty(tmp_path / "idx")
    index.merge_policy = None
    for article in data.articles[:SHARDS]:
        index.add(source / f"{article.file_name}.txt")
    router = _in_process_router(index)
    questions = [q.text for q in data.questions if q.article < SHARDS][::8]
    questions += [row["question"] for row in seed_questions()]
    _assert_same(_answers(lambda q: asyncio.run(router.answer(q)), questions), _answers(index.answer, questions))


def test_the_router_follows_a_chat_as_one_index(tmp_path: Path) -> None:
    """Follow-ups (joined, searched alone, abstaining), money questions and answers outside their
    article: every turn of the follow-up set (tests/data/followups) with its history, over one
    shard per article, answers as one index does."""
    turns = FOLLOWUPS
    index = Index.empty(tmp_path / "idx")
    index.merge_policy = None
    for article in [*sorted((FOLLOWUP_DATA / "articles").iterdir()), *sorted((ROOT / "seeds").glob("*.txt"))]:
        index.add(article)
    calls: list[str] = []
    router = _in_process_router(index, calls)
    assert len(router.offsets) >= SHARDS
    questions = [t["question"] for t in turns] + [row["question"] for row in seed_questions()]
    histories = [t["history"] for t in turns] + [None] * len(seed_questions())
    expected = _answers(index.answer, questions, histories)
    searched = [seen[1] for seen, _ in expected]
    assert any(query != question for query, question in zip(searched, questions))  # joined with the earlier turn
    assert any(query == question and history for query, question, history in zip(searched, questions, histories))
    assert {seen[0] for seen, _ in expected} == {True, False}  # answers and abstentions

    def routed(question: str, history: list[str] | None = None):
        calls.append("question")
        return asyncio.run(router.answer(question, history))

    _assert_same(_answers(routed, questions, histories), expected)
    # Two round trips (statistics, candidates) answer almost every turn: a third (details) is rare.
    per_turn = " ".join(calls).split("question")[1:]
    assert all(turn.split().count("term_counts") == len(router.offsets) for turn in per_turn)
    assert sum("details" in turn for turn in per_turn) <= len(per_turn) // 10, per_turn
    for noise in (row for row in TURNS if row.get("error")):  # no words: the same typed error as `Index.answer`
        with pytest.raises(EmptyQuestionError, match="Ask a question in words"):
            asyncio.run(router.answer(noise["question"], noise["history"]))
