"""`app.py --ray ADDRESS`: the chat app's Index, answering through the Ray Serve router.

Reads other than answers (the article list, an article's text) and writes (add, remove) go to
the index folder as before; after a write, or when another process has committed, the shards
are redeployed on the new commit before the next answer, so an answer never mixes two commits.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

from qa.answering import Answer
from qa.errors import QAError
from qa.index import AddReport, ArticleInfo, Index


class ClusterIndex:
    """An `Index` whose `answer` is served by shards on a Ray cluster (`qa.cluster.serve`).

    Args:
        index: the index folder's `Index` (shared with every node at the same path).
        address: the Ray cluster's head, host:port.
        shards: shards to serve it as; replicas: replicas of each.
    """

    def __init__(self, index: Index, address: str, shards: int, replicas: int = 1) -> None:
        self.index = index
        self.address, self.shards, self.replicas = address, shards, replicas
        self._lock = threading.Lock()
        self._served = -1
        self._handle: Any = None
        self._follow()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.index, name)  # articles(), article(), path, encoder, ...

    def _follow(self) -> None:
        """(Re)deploy the shards when the index's commit is not the one they serve."""
        from qa.cluster.serve import deploy

        with self._lock:
            self.index._refresh()
            generation = int(self.index.manifest.get("generation", 0))
            if generation != self._served:
                segments = max(1, len(self.index.manifest.get("segments", [])))  # a merge may leave fewer
                self._handle = deploy(self.address, self.index.path, min(self.shards, segments), replicas=self.replicas)
                self._served = generation

    def answer(self, question: str, history: Sequence[str] | None = None, max_citations: int | None = None) -> Answer:
        """`Index.answer`, from the shards. Raises the router's QAError (bad question, a shard down)."""
        self._follow()
        try:
            return self._handle.answer.remote(question, list(history) if history else None, max_citations).result()
        except Exception as exc:  # Ray wraps what the router raised; give the app our own error
            cause = getattr(exc, "cause", None)
            if isinstance(cause, QAError):
                raise cause from None
            raise

    def add_articles(self, articles: Sequence[Any], progress: bool = False) -> AddReport:
        """`Index.add_articles`, then the shards follow the new commit."""
        report = self.index.add_articles(articles, progress=progress)
        self._follow()
        return report

    def remove(self, article_id: str) -> ArticleInfo:
        """`Index.remove`, then the shards follow the new commit."""
        info = self.index.remove(article_id)
        self._follow()
        return info
