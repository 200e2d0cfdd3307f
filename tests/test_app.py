"""The chat app's API, driven with gradio_client against `python app.py` on a copy of the seed index."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
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
    env = {**os.environ, "GRADIO_TEMP_DIR": str(workdir / "gradio-tmp"), "QA_CACHE_DIR": str(workdir / "cache"),
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
    """A private copy of the committed seed index: the tests add and remove articles in it."""
    target = tmp_path_factory.mktemp("app") / "index"
    shutil.copytree(ROOT / "index", target)
    return target


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
    assert record["query"].startswith(ROBOTS)  # resolved with the user's turn, not the panels
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
    assert "Already indexed" in status
    # An uploaded file's name only labels it: nothing of that name is written outside Gradio's upload cache.
    app_dir = index_copy.parent
    assert [p for p in app_dir.rglob("*tide-mill*") if "gradio-tmp" not in p.relative_to(app_dir).parts] == []

    sheet = tmp_path / "report.docx"
    sheet.write_bytes(b"PK\x03\x04 not an article")
    with pytest.raises(Exception, match="Invalid file type"):
        client.predict([handle_file(str(sheet))], api_name="/add_files")
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
    big = tmp_path / "big.txt"
    big.write_text("A long sentence about nothing much. " * 70_000, encoding="utf-8")  # ~2.5 MB
    with pytest.raises(Exception, match="maximum file size"):
        client.predict([handle_file(str(big))], api_name="/add_files")


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
    add_job = writer.submit("Grain silo ledger", _ledger(1000), api_name="/add_article")
    deadline = time.monotonic() + 120
    while (update := add_job.status()).code != Status.PROGRESS:  # the add reports progress while it embeds
        assert time.monotonic() < deadline and not add_job.done(), f"no progress shown for the add: {update}"
        time.sleep(0.02)
    assert any(u.desc and u.desc.startswith("Embedding 1001 sentences") for u in update.progress_data), update
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
    assert status.startswith("Added 'Grain silo ledger' (grain-silo-ledger, 1001 sentences)"), status
    _, record = ask(writer, "Which silo stored a record amount of rye?")
    assert "77,777" in record["citations"][0]["sentence"]

    from qa import Index  # the committed snapshot on disk is whole: it loads and holds the new article

    on_disk = Index.load(index_copy)
    assert {a.id: a.sentences for a in on_disk.articles()}["grain-silo-ledger"] == 1001


def test_app_without_an_index_says_how_to_build_one(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(ROOT / "app.py"), "--index", str(tmp_path / "none")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "No index at" in run.stderr and "qa build" in run.stderr
