"""The router: one question, every shard asked, one answer as a single index would give it.

Ray-free: the router reaches its shards through `ShardCall` (an awaitable call of one shard's
method), so Ray Serve handles (`qa.cluster.serve`) and in-process `ShardReader`s drive the same
code. A shard that fails or does not answer in time fails the whole answer with
`ShardUnavailableError`: an answer is never made from part of the corpus.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Sequence

import numpy as np

from qa import questions
from qa.answering import Answer, compose
from qa.cluster.shards import Details, owner_of, quotable, small_corpus
from qa.config import Settings
from qa.encoder import Encoder
from qa.errors import ModelMismatchError, QAError
from qa.lexical import tokenize
from qa.ranking import fuse
from qa.store.snapshot import statistics_of

ShardCall = Callable[..., Awaitable[Any]]  # (shard number, method name, *args) -> the method's result
FIRST_DETAILS = 16  # hits whose details the first round fetches; more rounds double it


class ShardUnavailableError(QAError, RuntimeError):
    """A shard did not answer: the question is not answered from a partial corpus."""


class Router:
    """Answers questions over shards that together hold one commit of an index.

    Args:
        call: reaches one shard's method (see `ShardCall`).
        offsets: global id of each shard's first sentence, ascending.
        manifest: the commit point the shards serve (model, scripts).
        settings: ranking and answer settings, as `Index` uses them.
        timeout: seconds to wait for a shard before the answer fails.
    """

    def __init__(self, call: ShardCall, offsets: Sequence[int], manifest: dict[str, Any],
                 settings: Settings | None = None, timeout: float = 60.0) -> None:
        self.call = call
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.manifest = manifest
        self.settings = settings or Settings()
        self.timeout = timeout
        built_with = manifest["model"]
        self.encoder = Encoder(built_with["name"])
        if self.encoder.fingerprint != built_with["fingerprint"]:
            raise ModelMismatchError(
                f"The index was built with model '{built_with['name']}' (fingerprint {built_with['fingerprint']}), "
                f"but the router's copy has fingerprint {self.encoder.fingerprint}: install the same model everywhere.")

    async def _all(self, method: str, *args: Any, shards: Sequence[int] | None = None,
                   per_shard: Sequence[tuple[Any, ...]] | None = None) -> list[Any]:
        """`method` on every shard (or on `shards`, each with its own args), all at once."""
        chosen = list(range(len(self.offsets))) if shards is None else list(shards)
        calls = [self.call(shard, method, *(per_shard[n] if per_shard else args)) for n, shard in enumerate(chosen)]
        try:
            return list(await asyncio.wait_for(asyncio.gather(*calls), self.timeout))
        except QAError:
            raise
        except asyncio.TimeoutError:
            raise ShardUnavailableError(
                f"A shard did not answer {method} within {self.timeout:.0f} s, so this question was not answered "
                "(never from part of the articles). Ask again once every shard is up (`serve status`).") from None
        except Exception as exc:  # a dead replica, a lost node: Ray raises many kinds
            raise ShardUnavailableError(
                f"A shard failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}), so this "
                "question was not answered (never from part of the articles). Ray Serve restarts the shard; "
                "ask again in a few seconds.") from None

    async def answer(self, question: str, history: Sequence[str] | None = None,
                     max_citations: int | None = None) -> Answer:
        """Answer as `Index.answer` does over the same commit: same citations, scores, abstentions."""
        settings = self.settings
        asked = questions.validate(question, settings.max_question_chars)
        questions.check_script(asked, self.manifest.get("scripts", []))
        resolved = questions.resolve(asked, history)
        vector = self.encoder.encode([resolved])[0]  # once, here, not per shard
        names = sorted(set(tokenize(resolved)))
        stats = statistics_of(names, await self._all("term_counts", names))
        tables = [t for t in await self._all("candidates", resolved, vector, stats, settings) if t is not None]
        hits = fuse(resolved, tables, settings) if tables else []
        limit = settings.related_count if hits and hits[0].confidence < settings.abstain_threshold else (
            max_citations or settings.max_citations)
        readable = quotable(hits, settings, limit)
        wanted = min(readable, FIRST_DETAILS)
        parts: list[Details] = []
        fetched = 0
        while True:
            parts += await self._details(np.array([h.sentence_id for h in hits[fetched:wanted]], dtype=np.int64))
            fetched = wanted
            renumbered, corpus, vectors = small_corpus(hits[:wanted], parts)
            result = compose(asked.strip(), resolved, renumbered, corpus, vectors, settings, max_citations)
            quoted = len(result.related if result.abstained else result.citations)
            if quoted >= limit or wanted >= readable:  # `select` stopped inside what was fetched
                return result
            wanted = min(readable, 2 * wanted)

    async def _details(self, ids: np.ndarray) -> list[Details]:
        if not len(ids):
            return []
        owners = owner_of(ids, self.offsets)
        shards = np.unique(owners).tolist()
        return await self._all("details", shards=shards, per_shard=[(ids[owners == s],) for s in shards])


def in_process(readers: Sequence[Any]) -> ShardCall:
    """A `ShardCall` over `ShardReader`s in this process (tests, benchmarks)."""

    async def call(shard: int, method: str, *args: Any) -> Any:
        return getattr(readers[shard], method)(*args)

    return call
