"""URLs: fetch one page with a timeout, a size cap and a redirect limit, then read it as HTML.

The only network access of the package, and only when a user adds a URL. Limits come from
`Fetcher` (defaults, or `QA_FETCH_TIMEOUT` / `QA_FETCH_MAX_MB` / `QA_FETCH_MAX_REDIRECTS`).
A PDF or plain-text response is read as such; anything else is treated as an HTML page.
"""

from __future__ import annotations

import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from qa.articles import Article, parse_article, slugify
from qa.errors import ArticleError

USER_AGENT = "qa-offline-news/0.1 (article ingestion; one request per added URL)"
_CHUNK = 65_536


class FetchError(ArticleError):
    """A URL could not be downloaded within the limits."""


@dataclass(frozen=True)
class Fetcher:
    """Download limits for one URL.

    Attributes:
        timeout: seconds for the whole download (and for each network wait).
        max_bytes: a larger body is refused (by its Content-Length, or once that many bytes came).
        max_redirects: more redirects than this are refused (a loop is refused at once).
    """

    timeout: float = 20.0
    max_bytes: int = 20_000_000
    max_redirects: int = 5

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.max_bytes <= 0 or self.max_redirects < 0:
            raise ValueError("timeout and max_bytes must be positive, max_redirects not negative")

    @classmethod
    def from_env(cls) -> "Fetcher":
        """The defaults, overridden by QA_FETCH_TIMEOUT (s), QA_FETCH_MAX_MB, QA_FETCH_MAX_REDIRECTS."""
        env = os.environ
        return cls(
            timeout=float(env.get("QA_FETCH_TIMEOUT") or cls.timeout),
            max_bytes=int(float(env.get("QA_FETCH_MAX_MB") or cls.max_bytes / 1e6) * 1e6),
            max_redirects=int(env.get("QA_FETCH_MAX_REDIRECTS") or cls.max_redirects),
        )

    def fetch(self, url: str) -> tuple[str, str, bytes]:
        """Download `url`. Returns (final URL after redirects, content type, body).

        Raises:
            FetchError: timeout, HTTP error, redirect loop, too large, or unreachable; the message
                names the URL and what to do.
        """
        opener = urllib.request.build_opener(_redirects(self.max_redirects))
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "text/html,*/*;q=0.5"})
        deadline = time.monotonic() + self.timeout
        try:
            with opener.open(request, timeout=self.timeout) as response:
                length = response.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > self.max_bytes:
                    raise self._too_large(url, int(length))
                body = bytearray()
                while chunk := response.read(_CHUNK):
                    body.extend(chunk)
                    if len(body) > self.max_bytes:
                        raise self._too_large(url, None)
                    if time.monotonic() > deadline:
                        raise TimeoutError
                return response.geturl(), response.headers.get("Content-Type", ""), bytes(body)
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                why = " ".join(str(exc.reason).split())
                raise FetchError(f"{url}: redirect refused: more than {self.max_redirects} redirects, a loop, "
                                 f"or a non-web target ({why}). "
                                 "Open the URL in a browser and add the address it finally shows.") from None
            raise FetchError(f"{url}: the server answered HTTP {exc.code} {exc.reason}. "
                             "Check the address, or save the page from a browser and add the file.") from None
        except (TimeoutError, socket.timeout):
            raise self._timed_out(url) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise self._timed_out(url) from None
            raise FetchError(f"{url}: could not connect ({exc.reason}). "
                             "Check the address and the network, or save the page and add the file.") from None
        except (OSError, ValueError) as exc:  # connection reset, malformed response or URL
            raise FetchError(f"{url}: download failed ({type(exc).__name__}: {exc}). "
                             "Try again, or save the page from a browser and add the file.") from None

    def _too_large(self, url: str, size: int | None) -> FetchError:
        seen = f"{size / 1e6:.1f} MB" if size else f"more than {self.max_bytes / 1e6:.0f} MB"
        return FetchError(f"{url}: the response is {seen}, over the {self.max_bytes / 1e6:.0f} MB limit. "
                          "Save the article page itself and add the file, or raise QA_FETCH_MAX_MB.")

    def _timed_out(self, url: str) -> FetchError:
        return FetchError(f"{url}: no complete answer within {self.timeout:g} s (timeout). "
                          "Try again later, raise QA_FETCH_TIMEOUT, or save the page and add the file.")


def _redirects(limit: int) -> urllib.request.HTTPRedirectHandler:
    """A redirect handler that stops after `limit` hops and only follows http(s) targets."""

    class Limited(urllib.request.HTTPRedirectHandler):
        max_redirections = limit
        max_repeats = 1  # the same URL twice is a loop

        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
            if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
                raise urllib.error.HTTPError(newurl, code, f"redirect to a non-web address {newurl}", headers, fp)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return Limited()


def _name_for(url: str) -> str:
    """A readable fallback name from the URL's last path segment (or host)."""
    parts = urllib.parse.urlsplit(url)
    segment = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"\.(html?|php|aspx?|pdf|txt)$", "", segment, flags=re.IGNORECASE) or parts.hostname or "page"


def load_url(url: str, fetcher: Fetcher | None = None) -> Article:
    """Fetch a URL and read the article in it; `Article.source` is the final URL.

    Raises:
        FetchError: the download failed or broke a limit.
        ArticleError: the response holds no article.
    """
    final, content_type, body = (fetcher or Fetcher.from_env()).fetch(url)
    kind = content_type.split(";")[0].strip().lower()
    name = _name_for(final)
    if kind == "application/pdf" or body.startswith(b"%PDF-"):
        from qa.ingest.pdf import parse_pdf

        article = parse_pdf(body, name=name, source=final)
    elif kind == "text/plain":
        charset = re.search(r"charset=([\w-]+)", content_type)
        try:
            text = body.decode(charset.group(1) if charset else "utf-8")
        except (LookupError, UnicodeDecodeError):
            raise ArticleError(f"{final}: the text is not in the encoding it declares. "
                               "Save it as a UTF-8 .txt file and add that.") from None
        article = parse_article(text, name=name, source=final)
    else:
        from qa.ingest.html import parse_html

        article = parse_html(body, name=name, source=final, url=final)
        # Name URL articles by their headline: URL paths are often numeric ids.
        article = Article(**{**article.__dict__, "id": slugify(article.title)})
    meta = dict(article.meta, fetched=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if final != url:
        meta["requested_url"] = url
    meta.setdefault("url", final)
    return Article(**{**article.__dict__, "meta": meta})
