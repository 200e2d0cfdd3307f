"""Ingestion on real fixtures made here: HTML, PDF, URLs on a local server, JSONL, CJK, a 200-file folder."""

from __future__ import annotations

import json
import os
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np
import pytest

from qa import Article, Index
from qa.answering import _normalised
from qa.articles import read_article
from qa.cli import main
from qa.ingest import Failure, load_articles, read_one
from qa.ingest.url import Fetcher

fpdf = pytest.importorskip("fpdf", reason="fpdf2 writes the PDF fixtures: pip install fpdf2")

NEWS_HTML = """<!DOCTYPE html><html lang="en"><head>
<title>Rotterdam dock strike ends after five days | Harbour Times</title>
<meta name="author" content="Jane Doe">
<meta property="article:published_time" content="2024-03-05T08:00:00Z">
<link rel="canonical" href="https://harbour.example/news/rotterdam-strike-ends">
</head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/world">World news</a></li><li><a href="/sport">Sport</a></li></ul></nav>
<div class="ad">Cheap flights to Lisbon! Subscribe today for one dollar a month.</div>
<article><h1>Rotterdam dock strike ends after five days</h1>
<p class="byline">By Jane Doe</p>
<p>Dock workers in Rotterdam returned to work on Tuesday after a five-day strike over pay that halted
most container traffic at Europe's largest port.</p>
<p>The union said members accepted a 7.5 percent wage rise spread over two years. About 400 ships had been
waiting at anchor outside the harbour by Monday evening.</p>
<h2>Backlog will take weeks</h2>
<p>Port officials estimated that clearing the backlog would take at least three weeks. Shipping lines warned
customers of delays to deliveries across northern Europe.</p>
</article>
<section class="comments"><h3>Comments</h3><p>Great article, thanks! Visit my site for amazing deals.</p></section>
<footer>Copyright 2024 Harbour Times. All rights reserved.</footer></body></html>"""

NAV_ONLY_HTML = """<html><head><title>Site map</title></head><body>
<nav><a href="/">Home</a> <a href="/about">About us</a> <a href="/contact">Contact</a></nav>
<footer>(c) 2024 Example Media</footer></body></html>"""

PDF_PAGES = [
    ["Grain exports rebound", "Wheat exports through the Black Sea ports rose by 14 percent in the third quarter, "
     "according to figures the agriculture ministry published on Thursday."],
    ["Analysts said the recovery reflected strong demand from Egypt and Algeria, which together bought "
     "2.3 million tonnes of wheat between July and September."],
    ["Freight rates for bulk carriers fell by a fifth over the same period, the shipping exchange in "
     "Piraeus reported."],
]

CJK_TEXT = """上海港口罢工结束

2024-03-05

上海港的码头工人周二复工，结束了为期五天的罢工。工会表示，成员接受了两年内百分之七点五的加薪！

港口官员估计，清理积压的货物至少需要三周时间。航运公司警告客户，北欧的交货将会延迟。

据统计，罢工期间约有四百艘船只在港外等待。
"""

WIRE_BODY = [
    "Copper prices rose to a record 11,200 dollars a tonne on Tuesday after flooding halted production "
    "at the El Cobre mine in northern Chile, the world's third-largest copper mine.",
    "The mine's operator, Andes Mining, said pumps would need at least six weeks to clear the water from "
    "the lower shafts. El Cobre produced 410,000 tonnes of copper last year.",
    "Traders said stockpiles in London warehouses had fallen to their lowest level since 2008.",
    "Chile's mining ministry said it would send inspectors to the site on Wednesday to check the safety "
    "of the tailings dam above the mine.",
    "Analysts at Banco Austral estimated the outage would remove about 1 percent of global copper supply "
    "this year.",
]

SEED_TEXT = """Sunfield solar farm opens

2024-05-01

The Sunfield solar farm in Nevada began operating in March with 420 megawatts of capacity.

Its operator, Helio Power, said the plant cost 610 million dollars to build.
"""


def write_pdf(path: Path, pages: list[list[str]], *, title: str | None = None, author: str | None = None,
              owner_password: str | None = None, user_password: str = "", text: bool = True) -> Path:
    """A real PDF written by fpdf2: one list of paragraphs per page (or only a drawn box: a 'scan')."""
    pdf = fpdf.FPDF()
    pdf.set_font("helvetica", size=11)
    if title:
        pdf.set_title(title)
    if author:
        pdf.set_author(author)
    for paragraphs in pages:
        pdf.add_page()
        if not text:
            pdf.rect(20, 20, 150, 200)  # an image-only page has no text layer
            continue
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(5)
    if owner_password:
        pdf.set_encryption(owner_password=owner_password, user_password=user_password)
    pdf.output(str(path))
    return path


def only(items: list) -> Article:
    assert len(items) == 1 and isinstance(items[0], Article), items
    return items[0]


def sentences(article: Article) -> list[str]:
    return [article.text[s.start : s.end] for s in article.sentences()]


# --- a local web server for URLs and their failure modes ----------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    pdf_bytes = b""
    stop = threading.Event()

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, code: int, body: bytes, kind: str, length: bool = True) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, total: int, declare: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        if declare:
            self.send_header("Content-Length", str(total))
        self.end_headers()
        chunk = b"<p>" + b"x" * 65_530 + b"</p>"
        sent = 0
        try:  # bounded: stops at 50 MB or when the client hangs up
            while sent < total and not self.stop.is_set():
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path
        if path == "/news/rotterdam-strike.html":
            self._send(200, NEWS_HTML.encode(), "text/html; charset=utf-8")
        elif path == "/moved":
            self.send_response(301)
            self.send_header("Location", "/news/rotterdam-strike.html")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/loop" or path.startswith("/chain/"):
            target = "/loop" if path == "/loop" else f"/chain/{int(path.rsplit('/', 1)[1]) + 1}"
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/slow":
            self.stop.wait(3.0)  # longer than the client's timeout, bounded so the test cannot hang
            self._send(200, NEWS_HTML.encode(), "text/html")
        elif path == "/huge":
            self._stream(50_000_000, declare=True)
        elif path == "/huge-undeclared":
            self._stream(50_000_000, declare=False)
        elif path == "/report.pdf":
            self._send(200, self.pdf_bytes, "application/pdf")
        elif path == "/nav.html":
            self._send(200, NAV_ONLY_HTML.encode(), "text/html")
        else:
            self._send(404, b"not here", "text/plain")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """http://127.0.0.1:PORT serving the routes above; shut down after the module."""
    _Handler.pdf_bytes = write_pdf(tmp_path_factory.mktemp("pdf") / "r.pdf", PDF_PAGES, title="Grain exports").read_bytes()
    _Handler.stop.clear()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    _Handler.stop.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    """A small index of one .txt article; tests in this module add to it."""
    source = tmp_path_factory.mktemp("src")
    (source / "sunfield.txt").write_text(SEED_TEXT, encoding="utf-8")
    return Index.build(source, tmp_path_factory.mktemp("idx") / "index")


# --- HTML ---------------------------------------------------------------------------------------------

def test_html_keeps_the_article_and_drops_menus_ads_and_comments(tmp_path: Path) -> None:
    page = tmp_path / "rotterdam.html"
    page.write_text(NEWS_HTML, encoding="utf-8")
    article = read_article(page)  # the .txt/.md reader dispatches by suffix
    assert article.title == "Rotterdam dock strike ends after five days"
    assert article.date == "2024-03-05"
    assert article.meta["author"] == "Jane Doe"
    assert article.meta["url"] == "https://harbour.example/news/rotterdam-strike-ends"
    assert article.source == str(page) and article.id == "rotterdam"
    for noise in ("World news", "Cheap flights", "Great article", "Copyright 2024", "By Jane Doe"):
        assert noise not in article.text
    assert sentences(article) == [
        "Dock workers in Rotterdam returned to work on Tuesday after a five-day strike over pay that halted "
        "most container traffic at Europe's largest port.",
        "The union said members accepted a 7.5 percent wage rise spread over two years.",
        "About 400 ships had been waiting at anchor outside the harbour by Monday evening.",
        "Port officials estimated that clearing the backlog would take at least three weeks.",
        "Shipping lines warned customers of delays to deliveries across northern Europe.",
    ]
    assert "## Backlog will take weeks" in article.text  # kept for reading, never cited


def test_html_without_an_article_body_is_reported(tmp_path: Path) -> None:
    page = tmp_path / "sitemap.html"
    page.write_text(NAV_ONLY_HTML, encoding="utf-8")
    [failure] = list(load_articles(page))
    assert isinstance(failure, Failure) and failure.name == str(page)
    assert "no article body" in failure.reason


# --- PDF ----------------------------------------------------------------------------------------------

def test_pdf_text_pages_and_metadata(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "grain.pdf", PDF_PAGES, title="Grain exports rebound", author="Ann Lee")
    article = only(list(load_articles(path)))
    assert article.title == "Grain exports rebound" and article.meta["author"] == "Ann Lee"
    assert article.meta["pages"] == "3"
    starts = [int(s) for s in article.meta["page_starts"].split(",")]
    assert starts[0] == 0 and starts == sorted(starts) and len(starts) == 3
    assert article.text[starts[1]:].startswith("Analysts said the recovery")
    assert article.text[starts[2]:].startswith("Freight rates for bulk carriers")
    found = sentences(article)
    assert "Grain exports rebound" not in found  # the heading line is not a sentence
    assert any(s.startswith("Wheat exports through the Black Sea") for s in found)


def test_pdf_citation_gives_the_page(index: Index, tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "grain-report.pdf", PDF_PAGES, title="Grain exports rebound")
    report = index.add(path)
    assert report.added == ["grain-report"] and report.ok
    result = index.answer("How much wheat did Egypt and Algeria buy between July and September?")
    top = result.citations[0]
    assert top.article_id == "grain-report" and top.page == 2 and top.source == str(path)
    assert index.article(top.article_id).text[top.start : top.end] == top.sentence
    assert "2.3 million tonnes" in top.sentence
    other = index.answer("What was the capacity of the Sunfield solar farm?").citations[0]
    assert other.article_id == "sunfield" and other.page is None


def test_pdf_without_text_layer_encrypted_or_damaged_is_reported(tmp_path: Path) -> None:
    write_pdf(tmp_path / "scan.pdf", PDF_PAGES, text=False)
    write_pdf(tmp_path / "locked.pdf", PDF_PAGES, owner_password="owner", user_password="secret")
    write_pdf(tmp_path / "owner-only.pdf", PDF_PAGES, owner_password="owner")  # readable without a password
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(2000))
    items = {Path(i.name if isinstance(i, Failure) else i.source).name: i for i in load_articles(tmp_path)}
    assert "no text layer" in items["scan.pdf"].reason and "OCR" in items["scan.pdf"].reason
    assert "encrypted" in items["locked.pdf"].reason and "password" in items["locked.pdf"].reason
    assert "not a readable PDF" in items["broken.pdf"].reason
    assert isinstance(items["owner-only.pdf"], Article)


# --- URLs ---------------------------------------------------------------------------------------------

def test_url_is_fetched_and_read_as_html(server: str) -> None:
    article = read_one(f"{server}/moved")  # one redirect, then the page
    assert article.source == f"{server}/news/rotterdam-strike.html"
    assert article.meta["requested_url"] == f"{server}/moved"
    assert article.title == "Rotterdam dock strike ends after five days" and article.date == "2024-03-05"
    assert article.id == "rotterdam-dock-strike-ends-after-five-days"
    assert "The union said members accepted a 7.5 percent wage rise spread over two years." in sentences(article)


def test_url_serving_a_pdf_keeps_pages(server: str) -> None:
    article = read_one(f"{server}/report.pdf")
    assert article.source == f"{server}/report.pdf" and article.meta["format"] == "pdf"
    assert article.meta["page_starts"].count(",") == 2


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("/missing", "HTTP 404"),
        ("/loop", "redirect refused"),
        ("/chain/0", "redirect refused"),
        ("/slow", "timeout"),
        ("/huge", "50.0 MB, over the 2 MB limit"),
        ("/huge-undeclared", "more than 2 MB"),
        ("/nav.html", "no article body"),
    ],
)
def test_url_failures_are_reported_with_the_reason(server: str, route: str, expected: str) -> None:
    fetcher = Fetcher(timeout=0.5, max_bytes=2_000_000, max_redirects=3)
    [failure] = list(load_articles(f"{server}{route}", fetcher=fetcher))
    assert isinstance(failure, Failure) and failure.name == f"{server}{route}"
    assert expected in failure.reason


def test_unreachable_and_non_web_urls_fail_cleanly() -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    [refused] = list(load_articles("http://127.0.0.1:9/story.html", fetcher=Fetcher(timeout=2)))
    assert "could not connect" in refused.reason
    [ftp] = list(load_articles("ftp://127.0.0.1/story.txt"))
    assert "only http:// and https://" in ftp.reason


def test_index_add_mixes_urls_and_keeps_going(index: Index, server: str) -> None:
    before = {a.id for a in index.articles()}
    report = index.add([f"{server}/news/rotterdam-strike.html", f"{server}/missing"])
    assert report.added == ["rotterdam-dock-strike-ends-after-five-days"]
    assert [name for name, _ in report.failed] == [f"{server}/missing"] and not report.ok
    assert before <= {a.id for a in index.articles()}
    top = index.answer("How long will clearing the Rotterdam backlog take?").citations[0]
    assert top.source == f"{server}/news/rotterdam-strike.html"
    assert index.article(top.article_id).text[top.start : top.end] == top.sentence


# --- JSONL --------------------------------------------------------------------------------------------

def test_jsonl_one_article_a_line_and_bad_lines_by_number(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    lines = [
        json.dumps({"title": "Ferry service resumes", "text": "The island ferry resumed service on Monday. "
                    "It had been suspended for two weeks.", "date": "2024-02-01",
                    "url": "https://news.example/ferry", "source": "Island Post"}),
        "{not json",
        json.dumps({"title": "No body here"}),
        "",
        json.dumps(["a", "list"]),
        json.dumps({"text": "Snow closed the mountain pass for three days. Ploughs cleared it on Friday."}),
        json.dumps({"title": "Heading only", "text": "Just a heading"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = list(load_articles(path))
    good = [i for i in items if isinstance(i, Article)]
    bad = {i.name: i.reason for i in items if isinstance(i, Failure)}
    assert [a.title for a in good] == ["Ferry service resumes", "batch 6"]
    ferry = good[0]
    assert ferry.source == "https://news.example/ferry" and ferry.date == "2024-02-01"
    assert ferry.meta["publisher"] == "Island Post" and ferry.id == "ferry-service-resumes"
    assert sentences(ferry) == ["The island ferry resumed service on Monday.", "It had been suspended for two weeks."]
    assert good[1].source == f"{path}:6"
    assert set(bad) == {f"{path}:2", f"{path}:3", f"{path}:5", f"{path}:7"}
    assert "not valid JSON" in bad[f"{path}:2"]
    assert 'no "text" field' in bad[f"{path}:3"]
    assert "not an object" in bad[f"{path}:5"]
    assert "no sentences" in bad[f"{path}:7"]


# --- CJK ----------------------------------------------------------------------------------------------

def test_chinese_article_is_split_and_found_by_a_chinese_question(index: Index, tmp_path: Path) -> None:
    path = tmp_path / "shanghai.txt"
    path.write_text(CJK_TEXT, encoding="utf-8")
    article = read_article(path)
    assert article.title == "上海港口罢工结束" and article.date == "2024-03-05"
    assert sentences(article) == [
        "上海港的码头工人周二复工，结束了为期五天的罢工。",
        "工会表示，成员接受了两年内百分之七点五的加薪！",
        "港口官员估计，清理积压的货物至少需要三周时间。",
        "航运公司警告客户，北欧的交货将会延迟。",
        "据统计，罢工期间约有四百艘船只在港外等待。",
    ]
    assert index.add(path).added == ["shanghai"]
    for question, expected in [
        ("罢工期间有多少船只在港外等待？", "据统计，罢工期间约有四百艘船只在港外等待。"),
        ("工人接受了多少加薪？", "工会表示，成员接受了两年内百分之七点五的加薪！"),
    ]:
        _, hits = index.search(question)
        top = hits[0]
        assert top.lexical == max(h.lexical for h in hits) > 0  # BM25 over character n-grams ranks it first
        result = index.answer(question)
        assert not result.abstained and result.citations[0].sentence == expected
        assert article.text[result.citations[0].start : result.citations[0].end] == expected


# --- duplicates ---------------------------------------------------------------------------------------

def test_exact_readd_is_a_noop_and_wire_copy_is_flagged_near_duplicate(index: Index, tmp_path: Path) -> None:
    original = tmp_path / "copper-record.txt"
    original.write_text("Copper price hits record as Chilean mine floods\n\n2024-04-02\n\n" + "\n\n".join(WIRE_BODY)
                        + "\n", encoding="utf-8")
    assert index.add(original).added == ["copper-record"]
    count = len(index.articles())
    again = index.add(original)
    assert again.added == [] and "already indexed as 'copper-record'" in again.duplicates[0] and again.ok
    assert len(index.articles()) == count

    # The same wire story from another outlet: new headline, a reworded sentence, extra boilerplate.
    copy = tmp_path / "wire.jsonl"
    body = WIRE_BODY[:2] + [
        "Stockpiles in London warehouses have fallen to their lowest level since 2008, traders said.",
        *WIRE_BODY[3:],
        "Reporting by Maria Lopez; editing by Tom Hart. Subscribe to our markets newsletter for more.",
    ]
    copy.write_text(json.dumps({"title": "Flooded Chilean mine sends copper to all-time high",
                                "text": "\n\n".join(body), "source": "Daily Metals"}) + "\n", encoding="utf-8")
    report = index.add(copy)
    assert report.added == ["flooded-chilean-mine-sends-copper-to-all-time-high"] and report.ok
    assert len(report.near_duplicates) == 1 and "'copper-record'" in report.near_duplicates[0]
    assert index.article(report.added[0]).meta["near_duplicate_of"] == "copper-record"

    corpus, embeddings = index._state.corpus, np.asarray(index._state.embeddings)
    for question in ("How high did copper prices rise after the Chilean mine flooded?",
                     "How low are London copper stockpiles?",
                     "How long will pumps need to clear the water from the El Cobre mine?"):
        result = index.answer(question, max_citations=5)
        assert not result.abstained
        texts = [_normalised(c.sentence) for c in result.citations]
        assert len(texts) == len(set(texts)), result.citations
        ids = [corpus.sentence_ids(corpus.index_of(c.article_id))[c.sentence_index] for c in result.citations]
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                assert float(embeddings[ids[a]] @ embeddings[ids[b]]) < index.settings.near_duplicate


def test_unrelated_articles_are_not_near_duplicates(tmp_path: Path) -> None:
    from qa.ingest.dedup import NearDuplicates

    (tmp_path / "a.txt").write_text(SEED_TEXT, encoding="utf-8")
    (tmp_path / "b.txt").write_text(CJK_TEXT, encoding="utf-8")
    a, b = (read_article(tmp_path / n) for n in ("a.txt", "b.txt"))
    finder = NearDuplicates([a])
    assert finder.find(b) is None
    edited = Article(id="a2", title="x", text="Breaking news\n\n" + a.text + "\n\nSubscribe for more news today.")
    match = finder.find(edited)
    assert match is not None and match.article_id == a.id and match.containment > 0.9


# --- a folder of 200 mixed files through the CLI ------------------------------------------------------

_WORDS = ("harbour council budget rail bridge storm festival museum tariff vaccine election drought "
          "factory union airport river school hospital copper wheat solar battery ferry bank court "
          "mayor minister senate police farmers tourists miners nurses pilots engineers investors "
          "rose fell opened closed approved rejected delayed expanded reported announced").split()


def _story(rng: random.Random, n: int) -> tuple[str, str]:
    title = f"Report {n} on the {rng.choice(_WORDS)} {rng.choice(_WORDS)}"
    body = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(10, 16))).capitalize() + f" in {1990 + n}."
            for _ in range(3)]
    return title, "\n\n".join(body)


def _mixed_folder(root: Path) -> tuple[int, set[str]]:
    """200 article files (and two ignored images); returns (articles expected in, names expected to fail)."""
    rng = random.Random(7)
    bad: set[str] = set()
    good = 0
    n = 0
    for i in range(100):
        n += 1
        title, body = _story(rng, n)
        (root / "txt" / f"story-{i:03d}.txt").write_text(f"{title}\n\n{body}\n", encoding="utf-8")
        good += 1
    for i in range(20):
        n += 1
        title, body = _story(rng, n)
        (root / "md" / f"note-{i:03d}.md").write_text(f"---\ntitle: {title}\n---\n{body}\n", encoding="utf-8")
        good += 1
    for i in range(36):
        n += 1
        title, body = _story(rng, n)
        paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
        html = (f"<html><head><title>{title}</title></head><body><nav><a href='/'>Home</a></nav>"
                f"<article><h1>{title}</h1>{paragraphs}</article></body></html>")
        (root / "html" / f"page-{i:03d}.html").write_text(html, encoding="utf-8")
        good += 1
    for i in range(4):
        path = root / "html" / f"menu-{i}.html"
        path.write_text(NAV_ONLY_HTML, encoding="utf-8")
        bad.add(str(path))
    for i in range(14):
        n += 1
        title, body = _story(rng, n)
        write_pdf(root / "pdf" / f"doc-{i:03d}.pdf", [[title, *body.split("\n\n")]], title=title)
        good += 1
    for name, kwargs in (("scan-0", {"text": False}), ("scan-1", {"text": False}),
                         ("locked-0", {"owner_password": "o", "user_password": "u"}),
                         ("locked-1", {"owner_password": "o", "user_password": "u"})):
        write_pdf(root / "pdf" / f"{name}.pdf", PDF_PAGES, **kwargs)
        bad.add(str(root / "pdf" / f"{name}.pdf"))
    for i in range(2):
        (root / "pdf" / f"broken-{i}.pdf").write_bytes(b"%PDF-1.7\n" + bytes(rng.getrandbits(8) for _ in range(500)))
        bad.add(str(root / "pdf" / f"broken-{i}.pdf"))
    for i in range(10):
        path = root / "jsonl" / f"batch-{i}.jsonl"
        rows = []
        for _ in range(3):
            n += 1
            title, body = _story(rng, n)
            rows.append(json.dumps({"title": title, "text": body}))
            good += 1
        if i == 0:
            rows.append('{"title": "broken", "text": ')
            bad.add(f"{path}:4")
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    broken_text = [b"", b"\x00\x01\x02binary", "Caf\xe9 prices rose. Cr\xe8me too.".encode("latin-1")] * 4
    for i, data in enumerate(broken_text[:10]):
        path = root / "bad" / f"broken-{i}.txt"
        path.write_bytes(data)
        bad.add(str(path))
    (root / "images" / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 not an article")
    (root / "images" / "logo.png").write_bytes(b"\x89PNG not an article")
    return good, bad


def test_cli_add_folder_of_200_mixed_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "seed"
    source.mkdir()
    (source / "sunfield.txt").write_text(SEED_TEXT, encoding="utf-8")
    index_path = tmp_path / "index"
    Index.build(source, index_path)
    inbox = tmp_path / "inbox"
    for sub in ("txt", "md", "html", "pdf", "jsonl", "bad", "images"):
        (inbox / sub).mkdir(parents=True)
    good, bad = _mixed_folder(inbox)
    files = [p for p in inbox.rglob("*") if p.is_file() and p.suffix not in (".jpg", ".png")]
    assert len(files) == 200

    status = main(["add", "--index", str(index_path), str(inbox)])
    out, err = capsys.readouterr()
    assert status == 1  # some inputs failed, the rest went in
    assert out.strip().splitlines()[-1] == f"{good} added, 0 already indexed, {len(bad)} failed"
    assert sum(line.startswith("added     ") for line in out.splitlines()) == good
    failed_names = {line[len("FAILED    "):].split(": ", 1)[0] for line in err.splitlines() if line.startswith("FAILED")}
    assert failed_names == bad
    assert "photo.jpg" not in out + err  # other file types in a folder are not articles: skipped silently

    loaded = Index.load(index_path)
    assert len(loaded.articles()) == good + 1 and loaded.articles()[0].id == "sunfield"  # nothing lost

    # Adding the same folder again: every good article is an exact duplicate, nothing changes.
    status = main(["add", "--index", str(index_path), str(inbox)])
    out, _ = capsys.readouterr()
    assert status == 1 and out.strip().splitlines()[-1] == f"0 added, {good} already indexed, {len(bad)} failed"
    assert len(Index.load(index_path).articles()) == good + 1


# --- Unicode text files with a byte-order mark -----------------------------------------------------

UNICODE_ARTICLE = ("Lake Tana ferry\n\n2024-06-02\n\nThe ferry across Lake Tana now carries 340 passengers a day. "
                   "Tickets cost 120 birr, paid in café kiosks at Bahir Dar. 東京 visitors came too.\n")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be-bom", "utf-32", "utf-8-sig"])
def test_text_file_with_a_byte_order_mark_is_decoded(index: Index, tmp_path: Path, encoding: str) -> None:
    """Windows Notepad's "Unicode" (UTF-16 with a BOM) and UTF-32 files were refused as binary."""
    path = tmp_path / f"tana-{encoding}.txt"
    data = UNICODE_ARTICLE.encode("utf-16-be") if encoding == "utf-16-be-bom" else UNICODE_ARTICLE.encode(encoding)
    path.write_bytes(b"\xfe\xff" + data if encoding == "utf-16-be-bom" else data)
    assert b"\x00" in path.read_bytes() or encoding == "utf-8-sig"
    article = read_article(path)
    assert article.text == UNICODE_ARTICLE  # the mark is dropped, nothing else changes
    assert (article.title, article.date) == ("Lake Tana ferry", "2024-06-02")
    if encoding == "utf-16":  # through the whole add path once: indexed, answered, cited exactly
        report = index.add(path)
        assert report.ok and report.added, report
        answer = index.answer("How many passengers does the Lake Tana ferry carry a day?")
        cited = answer.citations[0]
        assert "340 passengers" in cited.sentence
        assert index.article(cited.article_id).text[cited.start:cited.end] == cited.sentence


def test_damaged_utf16_file_names_its_encoding(tmp_path: Path) -> None:
    path = tmp_path / "torn.txt"
    path.write_bytes("Torn file.".encode("utf-16") + b"\x00\xd8")  # ends inside a surrogate pair
    failure, = list(load_articles(path))
    assert isinstance(failure, Failure) and "not valid UTF-16" in failure.reason and "UTF-8" in failure.reason


def test_missing_path_is_named_once(index: Index, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-article.txt"
    failure, = list(load_articles(missing))
    assert failure.name == str(missing) and str(missing) not in failure.reason
    assert main(["add", "--index", str(index.path), str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.count(str(missing)) == 1 and "no such file or folder" in err, err
    assert main(["build", "--index", str(tmp_path / "new"), "--source", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count(str(missing)) == 1 and "no such file or folder" in err and ".." not in err, err
