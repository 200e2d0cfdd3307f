"""The router: one question, every shard asked, one answer as a single index would give it.

Ray-free: the router reaches its shards through `ShardCall` (an awaitable call of one shard's
method), so Ray Serve handles (`qa.cluster.serve`) and in-process `ShardReader`s drive the same
code. A shard that fails or does not answer in time fails the whole answer with
`ShardUnavailableError`: an answer is never made from part of the corpus.

The answer is made by the single index's own code: `qa.turns.search` (follow-up fit, money
preference, answers outside their article) over a ranker that returns the hits fused from the
shards, then `qa.answering.compose` (calibrated confidence, selection, citations), both reading
`qa.cluster.fetched.Fetched` as their corpus. Two round trips per question, each to every shard at once:

1. the BM25 statistics of every text the turn may search (`qa.turns.searched_texts`: a follow-up
   searches joined with the earlier turn and, if that does not fit, alone: both go out together);
2. each text's candidates, with their lines (row, text, article title: what the rules read of
   every hit), and the vectors and whole articles of the shard's own best hits (fused over the
   shard alone), which hold what the rules and the answer read in almost every question.

Then the rules run; when they read something not fetched (`NotFetched`), the router fetches it
and the hits after it, and runs them again: they are deterministic and cheap, so the answer is
the single index's whatever was prefetched; the prefetch only decides how many rounds it takes.
The router keeps recently fetched articles (`LIBRARY`): a shard skips those the router holds.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Iterable, Sequence

import numpy as np

from qa import questions, turns
from qa.answering import Answer, compose
from qa.articles import Article
from qa.cluster.fetched import Fetched, NotFetched
from qa.cluster.shards import Details, owner_of
from qa.config import Settings
from qa.encoder import Encoder
from qa.errors import ModelMismatchError, QAError
from qa.lexical import tokenize
from qa.ranking import Hit, fuse
from qa.store.snapshot import TermCounts, statistics_of

# (shard number, method name, *args) -> an awaitable of the method's result. A call that sends
# the request when made (a Ray handle's `.remote`) lets the router encode while shards count terms.
ShardCall = Callable[..., Awaitable[Any]]
PREFETCH = 8  # when the rules read a hit not fetched: it and the hits after it fetched in one round
LIBRARY = 256  # whole articles the router keeps between questions (the commit's articles never change)
SHARD_BEST = 8  # each shard sends the vectors and articles of its own best hits with its candidates


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
        # Global article row -> (first sentence id, article, sentence rows), least recently used first.
        self._library: OrderedDict[int, tuple[int, Article, np.ndarray]] = OrderedDict()
        built_with = manifest["model"]
        self.encoder = Encoder(built_with["name"])
        if self.encoder.fingerprint != built_with["fingerprint"]:
            raise ModelMismatchError(
                f"The index was built with model '{built_with['name']}' (fingerprint {built_with['fingerprint']}), "
                f"but the router's copy has fingerprint {self.encoder.fingerprint}: install the same model everywhere.")

    async def _all(self, method: str, *args: Any, shards: Sequence[int] | None = None,
                   per_shard: Sequence[tuple[Any, ...]] | None = None) -> list[Any]:
        """`method` on every shard (or on `shards`, each with its own args), all at once."""
        return await self._gather(method, self._send(method, *args, shards=shards, per_shard=per_shard))

    def _send(self, method: str, *args: Any, shards: Sequence[int] | None = None,
              per_shard: Sequence[tuple[Any, ...]] | None = None) -> list[Awaitable[Any]]:
        """Make the calls of `_all` (a Ray handle sends each now) without waiting for them."""
        chosen = list(range(len(self.offsets))) if shards is None else list(shards)
        try:
            return [self.call(shard, method, *(per_shard[n] if per_shard else args)) for n, shard in enumerate(chosen)]
        except QAError:
            raise
        except Exception as exc:  # no replica to send to
            raise _failed(exc) from None

    async def _gather(self, method: str, calls: list[Awaitable[Any]]) -> list[Any]:
        """The results of calls made by `_send`, in order; a failed or late shard fails them all."""
        try:
            return list(await asyncio.wait_for(asyncio.gather(*calls), self.timeout))
        except QAError:
            raise
        except asyncio.TimeoutError:
            raise ShardUnavailableError(
                f"A shard did not answer {method} within {self.timeout:.0f} s, so this question was not answered "
                "(never from part of the articles). Ask again once every shard is up (`serve status`).") from None
        except Exception as exc:  # a dead replica, a lost node: Ray raises many kinds
            raise _failed(exc) from None

    async def answer(self, question: str, history: Sequence[str] | None = None,
                     max_citations: int | None = None) -> Answer:
        """Answer as `Index.answer` does over the same commit: same citations, scores, confidence, abstentions."""
        settings = self.settings
        asked = questions.validate(question, settings.max_question_chars)
        questions.check_script(asked, self.manifest.get("scripts", []))
        fetched = Fetched()
        ranked = await self._rank(turns.searched_texts(asked, history), fetched)
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
        counting = self._send("term_counts", every)
        vectors = [self.encoder.encode([text])[0] for text in texts]  # meanwhile; one at a time, as `Index` encodes
        counts = await self._gather("term_counts", counting)
        known = np.fromiter(self._library, dtype=np.int64, count=len(self._library))
        asked = []
        for text, vector in zip(texts, vectors):
            stats = statistics_of(names[text], [_only(part, every, names[text]) for part in counts])
            asked.append(self._all("candidates", text, vector, stats, settings, SHARD_BEST, known))
        ranked = {}
        for text, found in zip(texts, await asyncio.gather(*asked)):
            found = [part for part in found if part is not None]
            for _, lines, details in found:
                fetched.add_lines(*lines)
                self._keep(details, fetched)
            ranked[text] = fuse(text, [candidates for candidates, _, _ in found], settings) if found else []
        for row in fetched.titles_only():  # the shards left out the articles the router holds
            if row in self._library:
                fetched.add_article(row, *self._library[row])
                self._library.move_to_end(row)
        return ranked

    def _reading_orders(self, ranked: dict[str, list[Hit]], fetched: Fetched) -> list[list[Hit]]:
        """Each ranking in the order the turn rules read it (a money question reads money first)."""
        return [turns.prefer_money(text, hits, fetched) for text, hits in ranked.items()]

    async def _fetch(self, ids: list[int], fetched: Fetched) -> int:
        """Fetch what `fetched` lacks of sentences `ids` (vectors, whole articles: those the router
        holds from earlier questions first, then from the shards); how many were missing."""
        vector_ids, articles = fetched.needs(ids)
        held = [row for row in articles if row in self._library]
        for row in held:
            fetched.add_article(row, *self._library[row])
            self._library.move_to_end(row)
            del articles[row]
        if not vector_ids and not articles:
            return len(held)
        vector_ids_, article_ids = np.asarray(vector_ids, dtype=np.int64), np.asarray(list(articles.values()), dtype=np.int64)
        vector_owners, article_owners = owner_of(vector_ids_, self.offsets), owner_of(article_ids, self.offsets)
        shards = np.union1d(vector_owners, article_owners).tolist()
        parts = await self._all("details", shards=shards, per_shard=[
            (vector_ids_[vector_owners == s], article_ids[article_owners == s]) for s in shards])
        for part in parts:
            self._keep(part, fetched)
        return len(vector_ids) + len(articles)

    def _keep(self, details: Details, fetched: Fetched) -> None:
        """Details into this question's `fetched`, and their articles into the router's library."""
        fetched.add_vectors(details.ids, details.vectors)
        for row, first, article, rows in details.articles:
            fetched.add_article(row, first, article, rows)
            self._library[row] = (first, article, rows)
            self._library.move_to_end(row)
        while len(self._library) > LIBRARY:
            self._library.popitem(last=False)


def _failed(exc: Exception) -> ShardUnavailableError:
    return ShardUnavailableError(
        f"A shard failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}), so this "
        "question was not answered (never from part of the articles). Ray Serve restarts the shard; "
        "ask again in a few seconds.")


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
