"""The router: one question, every shard asked, one answer as a single index would give it.

Ray-free: the router reaches its shards through `ShardCall` (an awaitable call of one shard's
method), so Ray Serve handles (`qa.cluster.serve`) and in-process `ShardReader`s drive the same
code. A shard that fails or does not answer in time fails the whole answer with
`ShardUnavailableError`: an answer is never made from part of the corpus.

The answer is made by the single index's own code: `qa.turns.search` (follow-up fit, money
preference, answers outside their article) over a ranker that returns the hits fused from the
shards, then `qa.answering.compose` (calibrated confidence, selection, citations), both reading
`qa.cluster.fetched.Fetched` as their corpus. Round trips per question (each to shards at once):

1. the BM25 statistics of every text the turn may search (`qa.turns.searched_texts`: a follow-up
   searches joined with the earlier turn and, if that does not fit, alone: both go out together);
2. each text's candidates, with their lines (row, text, title): the rules' reads of every hit;
3. the whole articles and vectors of the first hits of each ranking, in the order the rules read
   them (`qa.turns.prefer_money`).

Then the rules run; when they read further than was fetched (`NotFetched`), the router fetches
the hits from there on and runs them again: they are deterministic and cheap, so the answer is the
single index's whatever was prefetched, and the prefetch only decides how many rounds it takes.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Iterable, Sequence

import numpy as np

from qa import questions, turns
from qa.answering import Answer, compose
from qa.cluster.fetched import Fetched, NotFetched
from qa.cluster.shards import owner_of
from qa.config import Settings
from qa.encoder import Encoder
from qa.errors import ModelMismatchError, QAError
from qa.lexical import tokenize
from qa.ranking import Hit, fuse
from qa.store.snapshot import TermCounts, statistics_of

ShardCall = Callable[..., Awaitable[Any]]  # (shard number, method name, *args) -> the method's result
PREFETCH = 8  # hits of each ranking (from its first, or from one the rules asked for) fetched in one round


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
        """Answer as `Index.answer` does over the same commit: same citations, scores, confidence, abstentions."""
        settings = self.settings
        asked = questions.validate(question, settings.max_question_chars)
        questions.check_script(asked, self.manifest.get("scripts", []))
        fetched = Fetched()
        ranked = await self._rank(turns.searched_texts(asked, history), fetched)
        await self._fetch(_first(self._reading_orders(ranked, fetched)), fetched)
        while True:
            hits: list[Hit] | None = None
            try:
                query, hits = turns.search(asked, history, _ranker(ranked), fetched, settings)
                return compose(asked, query, hits, fetched, fetched.vectors, settings, max_citations)  # type: ignore[arg-type]
            except _NotRanked as missing:  # not met while `searched_texts` lists what `search` ranks
                ranked.update(await self._rank([missing.text], fetched))
            except NotFetched as missing:
                orders = [hits] if hits is not None else self._reading_orders(ranked, fetched)
                if not await self._fetch(_following(missing.ids, orders), fetched):
                    raise RuntimeError(f"the router fetched sentences {missing.ids} but cannot read them") from None

    async def _rank(self, texts: Sequence[str], fetched: Fetched) -> dict[str, list[Hit]]:
        """Each text's hits fused from every shard's candidates (two round trips for all texts)."""
        settings = self.settings
        names = {text: sorted(set(tokenize(text))) for text in texts}
        every = sorted(set().union(*names.values()))
        counts = await self._all("term_counts", every)
        vectors = [self.encoder.encode([text])[0] for text in texts]  # one text at a time, as `Index` encodes
        asked = []
        for text, vector in zip(texts, vectors):
            stats = statistics_of(names[text], [_only(part, every, names[text]) for part in counts])
            asked.append(self._all("candidates", text, vector, stats, settings))
        ranked = {}
        for text, found in zip(texts, await asyncio.gather(*asked)):
            found = [part for part in found if part is not None]
            for _, lines in found:
                fetched.add_lines(*lines)
            ranked[text] = fuse(text, [candidates for candidates, _ in found], settings) if found else []
        return ranked

    def _reading_orders(self, ranked: dict[str, list[Hit]], fetched: Fetched) -> list[list[Hit]]:
        """Each ranking in the order the turn rules read it (a money question reads money first)."""
        return [turns.prefer_money(text, hits, fetched) for text, hits in ranked.items()]

    async def _fetch(self, ids: list[int], fetched: Fetched) -> int:
        """Fetch what `fetched` lacks of sentences `ids` (vectors, whole articles); how many asked."""
        vector_ids, article_ids = fetched.needs(ids)
        if not vector_ids and not article_ids:
            return 0
        vector_ids_, article_ids_ = np.asarray(vector_ids, dtype=np.int64), np.asarray(article_ids, dtype=np.int64)
        vector_owners, article_owners = owner_of(vector_ids_, self.offsets), owner_of(article_ids_, self.offsets)
        shards = np.union1d(vector_owners, article_owners).tolist()
        parts = await self._all("details", shards=shards, per_shard=[
            (vector_ids_[vector_owners == s], article_ids_[article_owners == s]) for s in shards])
        for part in parts:
            fetched.add_vectors(part.ids, part.vectors)
            for row, first, article, rows in part.articles:
                fetched.add_article(row, first, article, rows)
        return len(vector_ids) + len(article_ids)


class _NotRanked(LookupError):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _ranker(ranked: dict[str, list[Hit]]) -> Callable[[str], list[Hit]]:
    """`qa.turns.Ranker` over the rankings made so far."""

    def rank(text: str) -> list[Hit]:
        if text not in ranked:
            raise _NotRanked(text)
        return ranked[text]

    return rank


def _only(counts: TermCounts, every: list[str], names: list[str]) -> TermCounts:
    """The counts of `names` out of counts of `every` (both sorted, `names` within `every`)."""
    at = np.searchsorted(every, names).astype(np.int64) if names else np.zeros(0, dtype=np.int64)
    return counts._replace(df=counts.df[at], context_df=counts.context_df[at])


def _first(orders: list[list[Hit]]) -> list[int]:
    """The first hits of each order: what a fresh question's rules and answer read."""
    return _union([hit.sentence_id for hit in order[:PREFETCH]] for order in orders)


def _following(ids: list[int], orders: list[list[Hit]]) -> list[int]:
    """`ids`, and the hits after each in every order holding it (the rules read on from there)."""
    runs = [ids]
    for order in orders:
        positions = {hit.sentence_id: n for n, hit in enumerate(order)}
        runs += [[hit.sentence_id for hit in order[positions[i] : positions[i] + PREFETCH]] for i in ids if i in positions]
    return _union(runs)


def _union(runs: Iterable[list[int]]) -> list[int]:
    """The ids of `runs`, each once, in the order first met."""
    return list(dict.fromkeys(i for run in runs for i in run))


def in_process(readers: Sequence[Any]) -> ShardCall:
    """A `ShardCall` over `ShardReader`s in this process (tests, benchmarks)."""

    async def call(shard: int, method: str, *args: Any) -> Any:
        return getattr(readers[shard], method)(*args)

    return call
