"""The chat app in headless Debian Chromium (Playwright): ask, follow up, add an article, abstain.

Runs `python app.py` on a copy of the seed index. Skips only when /usr/bin/chromium is missing.
Set QA_SCREENSHOT=docs/chat.png to refresh the README screenshot.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium` to run the browser test",
                allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402
from test_app import ROOT, running_app  # noqa: E402

pytestmark = pytest.mark.browser
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
REPLY = "#qa-chatbot .message-row.bot-row"  # one reply: the quoted answer and its panel
ANSWER_TIMEOUT = 120_000  # ms; the machine is shared, answers normally take well under a second
HOSTILE = """# Harbour <b>Bold</b> Report

Published: 2024-03-05

The harbour of Velmora handled 812,000 containers in 2023, a record for the port. \
<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> \
Read more at [click here](http://evil.example/x) or *here* and $$x^2$$.
"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("browser")
    shutil.copytree(ROOT / "index", workdir / "index")
    with running_app(workdir / "index", workdir) as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url: str) -> Iterator[tuple[Page, list[str]]]:
    """One page for the whole conversation, and every URL it requested."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        tab = browser.new_page(viewport={"width": 1200, "height": 1100})
        requested: list[str] = []
        tab.on("request", lambda request: requested.append(request.url))
        tab.goto(app_url)
        yield tab, requested
        browser.close()


def ask(page: Page, question: str) -> None:
    """Type a question and wait until one more answer is shown."""
    bots = page.locator(REPLY)
    before = bots.count()
    box = page.locator("#qa-question textarea")
    expect(box).to_be_editable(timeout=ANSWER_TIMEOUT)
    box.fill(question)
    box.press("Enter")
    expect(bots).not_to_have_count(before, timeout=ANSWER_TIMEOUT)
    expect(box).to_be_editable(timeout=ANSWER_TIMEOUT)


def open_last_panel(page: Page, title: str) -> str:
    """Open the last collapsible panel called `title` in the chat; returns its text."""
    panel = page.locator("#qa-chatbot .thought-group").filter(has_text=title).last
    header = panel.locator(".title")
    if "expanded" not in (header.get_attribute("class") or ""):
        header.click()
    expect(header).to_have_class(re.compile(r"\bexpanded\b"))
    expect(panel.locator(".content")).to_be_visible()
    return panel.locator(".content").inner_text()


def test_chat_in_browser(page: tuple[Page, list[str]], app_url: str, tmp_path: Path) -> None:
    tab, requested = page
    expect(tab.get_by_text("What does the article say about OpenAI’s API Block")).to_be_visible()  # examples

    ask(tab, "How many industrial robots were installed in China in 2022?")
    answer = tab.locator(REPLY).last
    expect(answer).to_contain_text("The installation of industrial robots in China reached 290,300 units in 2022")
    expect(answer).to_contain_text("[1]")
    sources = open_last_panel(tab, "Sources (")
    assert "OpenAI’s API Block Spurs Innovation in Chinese AI Startups" in sources and "11/07/2024" in sources
    assert "61.1 percent" in sources  # the paragraph around the cited sentence
    expect(tab.locator("#qa-chatbot .thought-group mark").last).to_contain_text("290,300 units")
    shot = tmp_path / "chat.png"
    tab.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("QA_SCREENSHOT"):
        target = ROOT / os.environ["QA_SCREENSHOT"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)

    # Follow-up: alone, "And in the US?" retrieves another sentence; after the robots question it finds 39,500.
    ask(tab, "And in the US?")
    reply = tab.locator(REPLY).last.locator('[data-testid="bot"]').first
    expect(reply).to_have_text(re.compile(r"^\s*The installation of industrial robots in China reached 290,300 "
                                          r"units in 2022, which is 7\.4 times the 39,500 units in the US"))

    # Add an article (untrusted text) in the Articles tab, then get an answer cited to it.
    tab.get_by_role("tab", name="Articles").click()
    article = tmp_path / "harbour.md"
    article.write_text(HOSTILE, encoding="utf-8")
    tab.locator("#qa-upload input[type=file]").set_input_files(str(article))
    expect(tab.locator("#qa-upload").get_by_role("cell", name="harbour.md")).to_be_visible(timeout=30_000)
    tab.get_by_role("button", name="Add uploaded files").click()
    expect(tab.locator("#qa-status textarea")).to_have_value(re.compile("^Added 'Harbour <b>Bold</b> Report'"),
                                                               timeout=ANSWER_TIMEOUT)
    expect(tab.locator("#qa-articles")).to_contain_text("Harbour <b>Bold</b> Report")  # a title shown as text
    tab.get_by_role("tab", name="Chat").click()

    ask(tab, "How many containers did the harbour of Velmora handle in 2023?")
    expect(tab.locator(REPLY).last).to_contain_text("812,000 containers")
    sources = open_last_panel(tab, "Sources (")
    assert "Harbour <b>Bold</b> Report" in sources
    assert '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">' in sources
    assert "[click here](http://evil.example/x) or *here* and $$x^2$$" in sources
    chat = tab.locator("#qa-chatbot")
    assert chat.locator("script, img, a[href*='evil'], .katex").count() == 0
    assert tab.evaluate("window.__pwned") is None

    ask(tab, "What is the capital of France?")
    expect(tab.locator(REPLY).last).to_contain_text(
        "The indexed articles do not answer this question.")
    related = open_last_panel(tab, "Related passages (not an answer)")
    assert "They do not answer the question" in related

    # An example question drawn from the articles runs like a typed one (with the chosen citation count).
    tab.locator("#qa-chatbot").get_by_role("button", name="Clear").click()
    replies = tab.locator(REPLY)
    expect(replies).to_have_count(0)
    tab.get_by_text("What does the article say about").first.click()
    expect(replies).to_have_count(1, timeout=ANSWER_TIMEOUT)
    expect(replies.last).to_contain_text("[1]", timeout=ANSWER_TIMEOUT)

    # Offline: the page never asked anything of any host but the app.
    hosts = {urlsplit(url).netloc for url in requested if urlsplit(url).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {urlsplit(app_url).netloc}, hosts
