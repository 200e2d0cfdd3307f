"""`qa serve --ray ADDRESS --shards N`: an index's shards and a router as Ray Serve deployments.

    Router  (HTTP POST {"question", "history"?, "max_citations"?} -> the Answer as JSON,
             or `handle.answer.remote(question, history, max_citations)` -> Answer)
      |- shard-0  segments [0, a)      each a deployment: its own replicas, restarted by Serve
      |- shard-1  segments [a, b)      when they die, `num_replicas`/autoscaling by config
      '- shard-2  segments [b, n)

Every node must see the index folder at the same path (a shared file system). The shards are
planned on one commit point; a later commit is served after a redeploy.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from qa.cluster.router import Router
from qa.cluster.runtime import connect
from qa.cluster.shards import ShardReader, shard_groups
from qa.config import Settings
from qa.store import read_commit

APP = "qa"
# A shard answers in a few milliseconds; more than this many waiting per replica adds one.
TARGET_ONGOING_REQUESTS = 4


class ShardServer:
    """A Serve deployment body: one shard (`ShardReader`) behind a handle."""

    def __init__(self, path: str, positions: list[int], generation: int) -> None:
        self.reader = ShardReader(path, positions, generation)

    def term_counts(self, names: list[str]) -> Any:
        return self.reader.term_counts(names)

    def candidates(self, question: str, query_vector: Any, stats: Any, settings: Settings, best: int = 0,
                   known: Any = ()) -> Any:
        return self.reader.candidates(question, query_vector, stats, settings, best, known)

    def details(self, vector_ids: Any, article_ids: Any) -> Any:
        return self.reader.details(vector_ids, article_ids)


class RouterServer:
    """A Serve deployment body: the router, over handles of every shard deployment."""

    def __init__(self, shards: Sequence[Any], offsets: list[int], manifest: dict[str, Any], timeout: float) -> None:
        self.shards = list(shards)

        def call(shard: int, method: str, *args: Any) -> Any:
            return getattr(self.shards[shard], method).remote(*args)  # sent now; awaited by the router

        self.router = Router(call, offsets, manifest, Settings(), timeout)

    async def answer(self, question: str, history: list[str] | None = None, max_citations: int | None = None) -> Any:
        return await self.router.answer(question, history, max_citations)

    async def __call__(self, request: Any) -> dict[str, Any]:
        from qa.errors import QAError

        body = await request.json()
        try:
            result = await self.answer(str(body.get("question", "")), body.get("history"), body.get("max_citations"))
        except QAError as exc:
            return {"error": str(exc)}
        return asdict(result)


def deploy(address: str, index: str | Path, shards: int, *, replicas: int = 1, max_replicas: int | None = None,
           http_port: int | None = None, timeout: float = 60.0) -> Any:
    """Deploy the shards of the index at `index` and their router on the cluster at `address`;
    returns the router's handle. With `http_port`, Serve also listens on 127.0.0.1:`http_port`.

    Each shard runs `replicas` replicas, or, with `max_replicas`, between the two as Ray Serve's
    autoscaler decides from the requests waiting on each replica (`TARGET_ONGOING_REQUESTS`).
    """
    if replicas < 1 or (max_replicas is not None and max_replicas < replicas):
        raise ValueError(f"replicas must be >= 1 and max_replicas >= replicas (got {replicas} and {max_replicas})")
    connect(address)
    from ray import serve

    path = Path(index).resolve()
    manifest = read_commit(path)
    entries = manifest["segments"]
    groups = shard_groups([entry["sentences"] for entry in entries], shards)
    offsets, first = [], 0
    for group in groups:
        offsets.append(first)
        first += sum(entries[p]["sentences"] for p in group)
    generation = int(manifest["generation"])
    if http_port is None:
        serve.start(proxy_location="Disabled")  # handles only: no HTTP port opened on any node
    else:
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": http_port})
    scaling: dict[str, Any] = ({"num_replicas": replicas} if max_replicas is None else {"autoscaling_config": {
        "min_replicas": replicas, "initial_replicas": replicas, "max_replicas": max_replicas,
        "target_ongoing_requests": TARGET_ONGOING_REQUESTS}})
    shard_deployment = serve.deployment(ShardServer, ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64,
                                        **scaling)
    bound = [shard_deployment.options(name=f"shard-{n}").bind(str(path), list(group), generation)
             for n, group in enumerate(groups)]
    router = serve.deployment(RouterServer, name="router", ray_actor_options={"num_cpus": 0.25})
    app = router.bind(bound, offsets, manifest, timeout)
    return serve.run(app, name=APP, route_prefix="/" if http_port is not None else None)


def shutdown() -> None:
    """Remove the deployments (the cluster itself keeps running)."""
    from ray import serve

    serve.delete(APP)
