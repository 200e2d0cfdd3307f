"""The chat app's API, driven with gradio_client against `python app.py` on a copy of the seed index."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from conftest import copy_seed_index, model_only_cache
from gradio_client import Client, handle_file
from gradio_client.utils import Status

ROOT = Path(__file__).resolve().parents[1]
SEED_ID = "openai-api-block-chinese-ai-startups"
ROBOTS = "How many industrial robots were installed in China in 2022?"
STARTUP_SECONDS = 240  # loading torch + the model on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(index: Path, workdir: Path) -> Iterator[str]:
    """`python app.py --index INDEX` on a free port (default host), until the block ends; yields its URL."""
    port = free_port()
    # A private embedding cache: a warm one would make adds instant and hide the add/chat overlap.
    # It holds the exported model, so the app does not import torch to export it again.
    cache = model_only_cache(workdir / "cache")
    env = {**os.environ, "GRADIO_TEMP_DIR": str(workdir / "gradio-tmp"), "QA_CACHE_DIR": str(cache),
           "QA_PORT": str(port)}
    log_path = workdir / "app.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--index", str(index)],
                                cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url + "gradio_api/info", timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"app.py did not serve {url} in {STARTUP_SECONDS}s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def index_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the seed index: the tests add and remove articles in it."""
    return copy_seed_index(tmp_path_factory.mktemp("app") / "index")


@pytest.fixture(scope="module")
def app_url(index_copy: Path) -> Iterator[str]:
    with running_app(index_copy, index_copy.parent) as url:
        yield url


@pytest.fixture(scope="module")
def seed_text() -> str:
    return (ROOT / "seeds" / f"{SEED_ID}.txt").read_text(encoding="utf-8")


def ask(client: Client, question: str, citations: int = 3) -> tuple[list[dict], dict]:
    messages, record = client.predict(question, citations, api_name="/chat")
    return messages, record


def test_chat_endpoint_quotes_and_cites_exact_offsets(app_url: str, seed_text: str) -> None:
    messages, record = ask(Client(app_url, verbose=False), ROBOTS)
    assert not record["abstained"]
    first = record["citations"][0]
    assert "290,300" in first["sentence"]
    assert first["article_id"] == SEED_ID
    assert seed_text[first["start"] : first["end"]] == first["sentence"]
    # The chat reply: the quote with its [1] marker, then a collapsed Sources panel with the paragraph.
    assert "290,300" in messages[0]["content"] and "[1]" in messages[0]["content"]
    assert messages[1]["metadata"]["title"].startswith("Sources")
    assert "<mark>" in messages[1]["content"] and "61.1 percent" in messages[1]["content"]


def test_sentences_to_cite_control(app_url: str) -> None:
    client = Client(app_url, verbose=False)
    question = "What does the article say about OpenAI’s API Block Spurs Innovation in Chinese AI Startups?"
    assert len(ask(client, question, citations=1)[1]["citations"]) == 1
    assert len(ask(client, question, citations=5)[1]["citations"]) > 1


def test_follow_up_uses_earlier_user_turns(app_url: str) -> None:
    client = Client(app_url, verbose=False)  # one client = one chat session with its history
    ask(client, ROBOTS)
    _, record = ask(client, "And in the US?")
    assert "39,500" in record["citations"][0]["sentence"]
    # Resolved with the user's earlier turn (what it named, "China", gives way to the new "US"), not the panels.
    assert record["query"] == "How many industrial robots were installed in in 2022? And in the US?"
    # A fresh chat has no history: the same words alone resolve to themselves.
    _, alone = ask(Client(app_url, verbose=False), "And in the US?")
    assert alone["query"] == "And in the US?"


def test_out_of_scope_question_abstains_with_related_passages(app_url: str) -> None:
    messages, record = ask(Client(app_url, verbose=False), "What is the capital of France?")
    assert record["abstained"] and not record["citations"]
    assert "do not answer" in messages[0]["content"]
    assert messages[1]["metadata"]["title"] == "Related passages (not an answer)"


def test_refused_question_gets_a_message_not_a_crash(app_url: str) -> None:
    messages, record = ask(Client(app_url, verbose=False), "   ")
    assert "empty" in record["error"]
    assert "empty" in messages[0]["content"]


def test_add_article_then_answer_cites_it_then_remove(app_url: str, index_copy: Path) -> None:
    client = Client(app_url, verbose=False)
    text = ("The Korvik lighthouse was rebuilt in 1911 after a winter storm destroyed its lantern. "
            "Its new lens could be seen 40 kilometres out to sea.\n")
    status, table = client.predict("Korvik lighthouse", text, api_name="/add_article")
    assert status.startswith("Added 'Korvik lighthouse' (korvik-lighthouse, 2 sentences)")
    assert ["Korvik lighthouse", "", 2, "korvik-lighthouse"] in table["data"]
    _, record = ask(client, "When was the Korvik lighthouse rebuilt?")
    assert record["citations"][0]["article_id"] == "korvik-lighthouse"
    assert "1911" in record["citations"][0]["sentence"]

    status, table = client.predict("korvik-lighthouse", api_name="/remove_article")
    assert status.startswith("Removed 'Korvik lighthouse'")
    assert all(row[3] != "korvik-lighthouse" for row in table["data"])
    _, record = ask(client, "When was the Korvik lighthouse rebuilt?")
    assert all(c["article_id"] != "korvik-lighthouse" for c in record["citations"] + record["related"])
    status, _ = client.predict("korvik-lighthouse", api_name="/remove_article")
    assert "No article with id" in status


def test_add_files_endpoint_checks_type_encoding_and_size(app_url: str, index_copy: Path, tmp_path: Path) -> None:
    client = Client(app_url, verbose=False)
    good = tmp_path / "tide-mill.md"
    good.write_text("# The tide mill\n\nThe tide mill at Brenmouth ground flour for 300 years.\n", encoding="utf-8")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Caf\u00e9 society\n\nThe caf\u00e9 opened in 1890 near the harbour.\n".encode("latin-1"))
    status, table = client.predict([handle_file(str(good)), handle_file(str(latin))], api_name="/add_files")
    assert "Added 'The tide mill' (tide-mill, 1 sentence)." in status
    assert "latin.txt: not valid UTF-8" in status
    assert any(row[3] == "tide-mill" for row in table["data"])
    status, _ = client.predict([handle_file(str(good))], api_name="/add_files")
    assert status == "Skipped: tide-mill.md: already indexed as 'tide-mill'"
    # An uploaded file's name only labels it: what is written is the article, named by its (slug) id.
    app_dir = index_copy.parent
    written = [p for p in app_dir.rglob("*tide-mill*") if "gradio-tmp" not in p.relative_to(app_dir).parts]
    assert written == [index_copy / "pasted" / "tide-mill.md"]

    sheet = tmp_path / "report.docx"
    sheet.write_bytes(b"PK\x03\x04 not an article")
    status, _ = client.predict([handle_file(str(sheet))], api_name="/add_files")
    assert status.startswith("Not added: report.docx: only .txt, .md")
    broken = tmp_path / "report.pdf"
    broken.write_bytes(b"%PDF-1.4 not an article")
    status, _ = client.predict([handle_file(str(broken))], api_name="/add_files")
    assert "report.pdf" in status and "PDF" in status and "Added" not in status
    page = tmp_path / "harbour.html"
    page.write_text("<html><head><title>Harbour news</title></head><body><nav>Home | Sport</nav><article>"
                    "<h1>Harbour dredging ends</h1><p>The dredging of the Korvik harbour ended on Friday after "
                    "eleven weeks of work, the port authority said.</p><p>Ships of up to 12 metres draught can "
                    "now enter the inner basin at any tide.</p></article></body></html>", encoding="utf-8")
    status, table = client.predict([handle_file(str(page))], api_name="/add_files")
    assert "Added" in status and any("Harbour dredging" in str(row[0]) for row in table["data"])


def test_one_file_over_the_limit_does_not_sink_the_others(app_url: str, tmp_path: Path) -> None:
    client = Client(app_url, verbose=False)
    names = ["Salt marsh", "Ferry timetable", "Bridge repair", "Museum opening", "Tram line"]
    files = []
    for number, title in enumerate(names):
        path = tmp_path / f"batch-{number}.md"
        path.write_text(f"# {title}\n\nThe {title.lower()} story number {number} happened in Brenmouth in 19{number}5.\n",
                        encoding="utf-8")
        files.append(path)
    big = tmp_path / "big.txt"
    big.write_text("A long sentence about nothing much. " * 70_000, encoding="utf-8")  # ~2.4 MB
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    status, table = client.predict([handle_file(str(p)) for p in [*files[:3], big, *files[3:], empty]],
                                   api_name="/add_files")
    for number, title in enumerate(names):
        assert f"Added '{title}' (batch-{number}, 1 sentence)." in status
    assert "Not added: big.txt: 2.4 MB is over the 2.0 MB limit. Split it." in status
    assert "Not added: empty.txt: no sentences to index" in status  # named once, no "uploaded:" label
    assert "uploaded:" not in status


def test_near_duplicate_is_added_and_reported(app_url: str) -> None:
    client = Client(app_url, verbose=False)
    story = ("The Brenmouth council approved a new flood barrier on Monday after two years of debate. "
             "The barrier will cost 48 million euros and protect 3,000 homes along the estuary. "
             "Construction starts in the spring and should take four years, the council said. "
             "Residents who opposed the plan said the money should go to moving homes inland instead.")
    status, _ = client.predict("Council backs flood barrier", story, api_name="/add_article")
    assert status.startswith("Added 'Council backs flood barrier'")
    status, _ = client.predict("Brenmouth gets its flood wall", story + " A public meeting is planned for May.",
                               api_name="/add_article")
    assert status.startswith("Added 'Brenmouth gets its flood wall'"), status
    assert "Near-duplicate: added as 'brenmouth-gets-its-flood-wall', but nearly the same text as " \
           "'council-backs-flood-barrier'" in status and "shared 5-grams" in status


def test_pasted_articles_are_kept_as_files_a_rebuild_can_read(app_url: str, index_copy: Path) -> None:
    client = Client(app_url, verbose=False)
    status, _ = client.predict("", "The Brenmouth ferry carried 1.2 million passengers in 2023, a record. "
                                   "It crosses the estuary in twelve minutes.", api_name="/add_article")
    # No title typed: the first sentence names it, so pastes can be told apart in the table and menu.
    title = "The Brenmouth ferry carried 1.2 million passengers in 2023…"
    assert status.startswith(f"Added '{title}'"), status
    article_id = status.split("(", 1)[1].split(",", 1)[0]
    saved = index_copy / "pasted" / f"{article_id}.md"
    text = saved.read_text(encoding="utf-8")
    assert text.splitlines()[0] == f"# {title}" and "twelve minutes." in text

    from qa import Index
    from qa.articles import read_article

    again = read_article(saved)  # what a rebuild reads: the same id, title and text as indexed
    assert (again.id, again.title) == (article_id, title)
    assert again.text == Index.load(index_copy).article(article_id).text
    status, _ = client.predict(article_id, api_name="/remove_article")
    assert status.startswith("Removed") and not saved.exists()  # removed for good: a rebuild will not revive it


def test_pdf_sources_show_the_page(app_url: str, index_copy: Path, tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "Canal report. The Brenmouth canal was dug between 1820 and 1824 by hand.")
    pdf.add_page()
    pdf.multi_cell(0, 8, "The canal lock at Ostmark lifts boats by 4.5 metres in nine minutes.")
    path = tmp_path / "canal-report.pdf"
    pdf.output(str(path))
    client = Client(app_url, verbose=False)
    status, _ = client.predict([handle_file(str(path))], api_name="/add_files")
    assert "Added" in status, status
    assert (index_copy / "pasted" / "canal-report.pdf").read_bytes() == path.read_bytes()  # pages kept for a rebuild
    messages, record = ask(client, "How many metres does the canal lock at Ostmark lift boats?", citations=1)
    assert record["citations"][0]["page"] == 2
    assert "· p. 2 · characters" in messages[1]["content"]


def test_bad_max_citations_are_clamped_without_a_traceback(app_url: str, index_copy: Path) -> None:
    client = Client(app_url, verbose=False)
    question = "What does the article say about OpenAI’s API Block Spurs Innovation in Chinese AI Startups?"
    assert len(ask(client, question, citations=0)[1]["citations"]) == 1
    assert 1 < len(ask(client, question, citations=99)[1]["citations"]) <= 8
    assert len(ask(client, question, citations=-3)[1]["citations"]) == 1
    log = (index_copy.parent / "app.log").read_text()
    assert "Traceback" not in log and "share=True" not in log
    assert f"Open {app_url.rstrip('/')} in a browser" in log


LEDGER_ROWS = 1000  # ~3,000 texts to embed: seconds of work, while each chat takes well under one


def _ledger(rows: int) -> str:
    """A long synthetic article (about grain silos) whose embedding keeps the app busy for seconds."""
    places = [a + b for a in ("Ost", "Wen", "Kar", "Bel", "Tor", "Mir", "Sal", "Dun") for b in ("mark", "ford", "by",
              "stead", "holm", "wick", "ton", "dale")]
    lines = ["Grain silo ledger", "Published: 2024-05-01"]
    paragraph = []
    for i in range(rows):
        place = places[i % len(places)]
        tonnes, year = 1000 + 7 * i, 1900 + i % 120
        paragraph.append(f"The grain silo at {place} number {i} stored {tonnes} tonnes of barley in {year}.")
        if len(paragraph) == 10:
            lines.append(" ".join(paragraph))
            paragraph = []
    lines.append("The Ostmark silo stored a record 77,777 tonnes of rye during the drought year.")
    return "\n\n".join(lines) + "\n"


def test_eight_concurrent_chats_while_an_article_is_added(app_url: str, index_copy: Path, seed_text: str) -> None:
    writer = Client(app_url, verbose=False)
    readers = [Client(app_url, verbose=False) for _ in range(8)]  # 8 chat sessions, connected up front
    add_job = writer.submit("Grain silo ledger", _ledger(LEDGER_ROWS), api_name="/add_article")
    deadline = time.monotonic() + 120
    while (update := add_job.status()).code != Status.PROGRESS:  # the add reports progress while it embeds
        assert time.monotonic() < deadline and not add_job.done(), f"no progress shown for the add: {update}"
        time.sleep(0.02)
    assert any(u.desc and u.desc.startswith(f"Embedding {LEDGER_ROWS + 1:,} sentences") for u in update.progress_data), update
    while not (moved := [u for u in add_job.status().progress_data or [] if u.progress and 0 < u.progress < 1]):
        assert time.monotonic() < deadline and not add_job.done(), f"the progress bar did not move: {add_job.status()}"
        time.sleep(0.02)
    moved = moved[0]  # the bar moves as the article is embedded, with count, rate and ETA
    assert re.fullmatch(rf"Embedded [\d,]+/{LEDGER_ROWS + 1:,} sentences, [\d,]+ sentences/s, ETA \d+.*", moved.desc or ""), moved
    chats = [reader.submit(ROBOTS, 3, api_name="/chat") for reader in readers]
    answered_during_add: list[bool] = []
    for job in chats:
        job.add_done_callback(lambda _: answered_during_add.append(not add_job.done()))
    answers = [job.result(timeout=300) for job in chats]
    status, table = add_job.result(timeout=600)

    for messages, record in answers:
        first = record["citations"][0]
        assert first["article_id"] == SEED_ID and "290,300" in first["sentence"]
        assert seed_text[first["start"] : first["end"]] == first["sentence"]
        assert "290,300" in messages[0]["content"]
    # Chats were answered while the add was still embedding: they did not queue behind it. (Usually all 8
    # are; on a loaded machine the last ones may land just after, so one is the proof asked for.)
    assert any(answered_during_add), f"no chat was answered before the add finished: {answered_during_add}"
    assert status.startswith(f"Added 'Grain silo ledger' (grain-silo-ledger, {LEDGER_ROWS + 1} sentences)"), status
    _, record = ask(writer, "Which silo stored a record amount of rye?")
    assert "77,777" in record["citations"][0]["sentence"]

    from qa import Index  # the committed snapshot on disk is whole: it loads and holds the new article

    on_disk = Index.load(index_copy)
    assert {a.id: a.sentences for a in on_disk.articles()}["grain-silo-ledger"] == LEDGER_ROWS + 1


def test_app_without_an_index_says_how_to_build_one(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(ROOT / "app.py"), "--index", str(tmp_path / "none")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "No index at" in run.stderr and "qa build" in run.stderr


def test_busy_port_says_how_to_pick_another(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = subprocess.run([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--index", str(tmp_path)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert f"port {port} is in use" in run.stderr and "--port" in run.stderr and "QA_PORT" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_examples_are_only_questions_the_index_answers_and_follow_its_articles(tmp_path: Path) -> None:
    from qa import Index
    from qa.articles import parse_article
    from qa.chat_session import ChatSession

    index = Index.load(copy_seed_index(tmp_path / "index"))
    # A headline that matches none of its sentences: a question about it abstains, so it is not offered.
    index.add_articles([parse_article("# Weekly roundup\n\nThe harbour of Velmora handled 812,000 containers "
                                      "in 2023, a record for the port.\n", name="roundup")])
    session = ChatSession(index)
    examples = session.examples()
    assert examples and all(not index.answer(q).abstained for q in examples), examples
    assert "What does the article “Weekly roundup” say?" not in examples
    # Headings read as a question: Title Case undone, names the article capitalises kept.
    assert "What does the article say about impact on Chinese AI startups?" in examples

    lighthouse = "What does the article “Korvik lighthouse rebuilt after storm” say?"
    index.add_articles([parse_article("# Korvik lighthouse rebuilt after storm\n\nThe Korvik lighthouse was rebuilt "
                                      "in 1911 after a winter storm destroyed its lantern.\n", name="korvik")])
    assert session.examples()[0] == lighthouse  # newest article first
    index.remove("korvik")
    assert lighthouse not in session.examples()


def test_saved_article_files_read_back_as_the_same_article(tmp_path: Path) -> None:
    from qa.articles import Article, read_article
    from qa.pasted import save_article

    # Text extracted from a page holds no title line: the saved file puts title and date first.
    page = Article(id="harbour-news", title="Harbour news", text="The dredging ended on Friday.\n", date="2024-05-01")
    saved = save_article(tmp_path, page)
    assert saved == tmp_path / "pasted" / "harbour-news.md"
    assert saved.read_text(encoding="utf-8") == "# Harbour news\n\n2024-05-01\n\nThe dredging ended on Friday.\n"
    # A date no date line can hold goes into front matter instead.
    odd = Article(id="odd-date", title="Odd date", text="The fair opened again.\n", date="the third Friday of May")
    for article in (page, odd):
        again = read_article(save_article(tmp_path, article))
        assert (again.id, again.title, again.date) == (article.id, article.title, article.date)
        assert again.text.endswith(article.text)
