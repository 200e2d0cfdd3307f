"""The chat app in headless Debian Chromium (Playwright): ask, follow up, add an article, abstain.

Runs `python app.py` on a copy of the seed index. Skips only when /usr/bin/chromium is missing.
Set QA_SCREENSHOT=docs/chat.png to refresh the README screenshot (taken at 1280x980).
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

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402
from conftest import copy_seed_index  # noqa: E402
from test_app import ROOT, running_app  # noqa: E402

pytestmark = pytest.mark.browser
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
REPLY = "#qa-chatbot .message-row.bot-row"  # one reply: the quoted answer and its panel
DESKTOP, PHONE = {"width": 1280, "height": 980}, {"width": 390, "height": 844}
ANSWER_TIMEOUT = 120_000  # ms; the machine is shared, answers normally take well under a second
LIGHTHOUSE = "Korvik lighthouse rebuilt after storm"
HOSTILE = """# Harbour <b>Bold</b> Report

Published: 2024-03-05

The harbour of Velmora handled 812,000 containers in 2023, a record for the port. \
<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> \
Read more at [click here](http://evil.example/x) or *here* and $$x^2$$.
"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("browser")
    copy_seed_index(workdir / "index")
    with running_app(workdir / "index", workdir) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module's tests (one Playwright per thread is allowed)."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(app_url: str, browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """One page for the whole conversation, and every URL it requested."""
    tab = browser.new_page(viewport=DESKTOP)
    requested: list[str] = []
    tab.on("request", lambda request: requested.append(request.url))
    tab.goto(app_url)
    yield tab, requested
    tab.close()


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


def panel_header(page: Page, title: str):
    """The header of the last collapsible chat panel called `title`."""
    return page.locator("#qa-chatbot .thought-group").filter(has_text=title).last.locator(".title")


def open_last_panel(page: Page, title: str) -> str:
    """Open the last collapsible panel called `title` in the chat; returns its text."""
    panel = page.locator("#qa-chatbot .thought-group").filter(has_text=title).last
    header = panel.locator(".title")
    if "expanded" not in (header.get_attribute("class") or ""):
        header.click()
    expect(header).to_have_class(re.compile(r"\bexpanded\b"))
    expect(panel.locator(".content")).to_be_visible()
    return panel.locator(".content").inner_text()


def examples_shown(page: Page) -> list[str]:
    """The example questions offered in the empty chat."""
    return [text.strip() for text in page.locator("#qa-chatbot .placeholder-content button").all_inner_texts()]


def loaded_font_families(page: Page) -> set[str]:
    return set(page.evaluate("[...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)"))


def test_chat_in_browser(page: tuple[Page, list[str]], app_url: str, tmp_path: Path) -> None:
    tab, requested = page
    # Only examples the index answers, phrased as questions (headings in sentence case).
    expect(tab.get_by_text("What does the article say about impact on Chinese AI startups?")).to_be_visible()
    examples = examples_shown(tab)
    assert 1 <= len(examples) <= 4 and all(q.startswith("What does the article") for q in examples), examples
    # The chat uses the window's height, not a fixed 480 px box.
    height = tab.locator("#qa-chatbot").bounding_box()["height"]
    assert height > 0.6 * DESKTOP["height"], height

    ask(tab, "How many industrial robots were installed in China in 2022?")
    answer = tab.locator(REPLY).last
    expect(answer).to_contain_text("The installation of industrial robots in China reached 290,300 units in 2022")
    expect(answer).to_contain_text("[1]")
    expect(panel_header(tab, "Sources (")).not_to_have_class(re.compile(r"\bexpanded\b"))  # opens folded
    sources = open_last_panel(tab, "Sources (")
    assert "OpenAI’s API Block Spurs Innovation in Chinese AI Startups" in sources and "11/07/2024" in sources
    assert "61.1 percent" in sources  # the paragraph around the cited sentence
    expect(tab.locator("#qa-chatbot .thought-group mark").last).to_contain_text("290,300 units")
    # Bold text (titles, [n] markers) is in the same complete system font as the rest: no partial web font.
    bold_font = tab.locator("#qa-chatbot .thought-group b").first.evaluate("b => getComputedStyle(b).fontFamily")
    assert "Source Sans" not in bold_font and not any("Source Sans" in f for f in loaded_font_families(tab))
    shot = tmp_path / "chat.png"
    tab.screenshot(path=str(shot))
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

    # The user's own question is text: typed tags show as typed, load nothing and run nothing.
    hostile = ('<img src="http://203.0.113.5/track.png"> <img src=x onerror="window.__pwned = 3"> '
               "<b>How many</b> industrial robots were installed in China in 2022?")
    ask(tab, hostile)
    expect(tab.locator("#qa-chatbot .message-row.user-row").last).to_contain_text(hostile)
    expect(tab.locator(REPLY).last).to_contain_text("290,300 units")

    # Add an article (untrusted text) in the Articles tab, then get an answer cited to it.
    tab.get_by_role("tab", name="Articles").click()
    article = tmp_path / "harbour.md"
    article.write_text(HOSTILE, encoding="utf-8")
    lighthouse = tmp_path / "lighthouse.md"
    lighthouse.write_text(f"# {LIGHTHOUSE}\n\nThe Korvik lighthouse was rebuilt in 1911 after a winter storm "
                          "destroyed its lantern. Its new lens could be seen 40 kilometres out to sea.\n", encoding="utf-8")
    tab.locator("#qa-upload input[type=file]").set_input_files([str(article), str(lighthouse)])
    expect(tab.locator("#qa-upload").get_by_role("cell", name="harbour.md")).to_be_visible(timeout=30_000)
    tab.get_by_role("button", name="Add uploaded files").click()
    expect(tab.locator("#qa-upload-status textarea")).to_have_value(
        re.compile("^Added 'Harbour <b>Bold</b> Report'"), timeout=ANSWER_TIMEOUT)
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
    # Folded like Sources: the closest passages wait behind their header until opened.
    expect(panel_header(tab, "Related passages (not an answer)")).not_to_have_class(re.compile(r"\bexpanded\b"))
    related = open_last_panel(tab, "Related passages (not an answer)")
    assert "They do not answer the question" in related

    # The examples follow the index: the article just added is offered, and clicking one answers it.
    tab.locator("#qa-chatbot").get_by_role("button", name="Clear").click()
    replies = tab.locator(REPLY)
    expect(replies).to_have_count(0)
    newest = f"What does the article “{LIGHTHOUSE}” say?"
    expect(tab.locator("#qa-chatbot .placeholder-content")).to_contain_text(newest)
    tab.locator("#qa-chatbot .placeholder-content button").filter(has_text=newest).click()
    expect(replies).to_have_count(1, timeout=ANSWER_TIMEOUT)
    expect(replies.last).to_contain_text("[1]", timeout=ANSWER_TIMEOUT)

    # Offline: the page never asked anything of any host but the app (nor of 203.0.113.5 above).
    hosts = {urlsplit(url).netloc for url in requested if urlsplit(url).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {urlsplit(app_url).netloc}, hosts


def test_articles_tab_on_a_phone(app_url: str, browser: Browser, tmp_path: Path) -> None:
    """Upload a batch with one file over the limit, paste an untitled article, remove one by its row."""
    batch = []
    for number, title in enumerate(["Salt marsh survey", "Tram line extension"]):
        path = tmp_path / f"phone-{number}.md"
        path.write_text(f"# {title}\n\nThe {title.lower()} in Brenmouth was finished in 19{number}7.\n",
                        encoding="utf-8")
        batch.append(path)
    big = tmp_path / "big.txt"
    big.write_text("A long sentence about nothing much. " * 70_000, encoding="utf-8")  # ~2.4 MB
    tab = browser.new_page(viewport=PHONE)
    tab.goto(app_url)
    tab.get_by_role("tab", name="Articles").click()

    tab.locator("#qa-upload input[type=file]").set_input_files([str(batch[0]), str(big), str(batch[1])])
    expect(tab.locator("#qa-upload").get_by_role("cell", name="big.txt")).to_be_visible(timeout=30_000)
    tab.get_by_role("button", name="Add uploaded files").click()
    status = tab.locator("#qa-upload-status textarea")
    expect(status).to_have_value(re.compile("Added 'Salt marsh survey'"), timeout=ANSWER_TIMEOUT)
    assert "Added 'Tram line extension'" in status.input_value()
    assert "Not added: big.txt: 2.4 MB is over the 2.0 MB limit" in status.input_value()

    text = tab.locator("#qa-paste-text textarea")
    text.fill("The Brenmouth ferry carried 1.2 million passengers in 2023, a record. It crosses in 12 minutes.")
    button = tab.get_by_role("button", name="Add pasted article")
    button.click()
    pasted = tab.locator("#qa-paste-status textarea")
    expect(pasted).to_have_value(re.compile("^Added 'The Brenmouth ferry carried 1.2 million passengers"),
                                 timeout=ANSWER_TIMEOUT)
    expect(text).to_have_value("")  # the form is emptied for the next article
    # The outcome is where the user is looking: right under the button, on screen.
    gap = pasted.bounding_box()["y"] - (button.bounding_box()["y"] + button.bounding_box()["height"])
    assert 0 <= gap < 120, gap

    # The table fits the phone: title, date and sentences, headers on one line, in the page's font.
    table = tab.locator("#qa-articles")
    header = table.locator('th[data-heading="2"] span.header')
    expect(header).to_have_text("Sentences")
    assert header.evaluate("s => { const r = document.createRange(); r.selectNodeContents(s);"
                           " return r.getClientRects().length; }") == 1
    box = table.locator('th[data-heading="2"]').bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"], box
    cell_font = table.locator("[role=gridcell] span").first.evaluate("c => getComputedStyle(c).fontFamily")
    assert "mono" not in cell_font.lower(), cell_font

    # Removal without typing an id: click the article's row, then Remove.
    table.locator("[role=row]").filter(has_text="Tram line extension").first.click()
    expect(tab.locator("#qa-remove input")).to_have_value(re.compile("Tram line extension"))
    tab.get_by_role("button", name="Remove article").click()
    expect(tab.locator("#qa-remove-status textarea")).to_have_value(
        re.compile("^Removed 'Tram line extension' \\(phone-1, 1 sentence\\)"), timeout=ANSWER_TIMEOUT)
    expect(table).not_to_contain_text("Tram line extension")
    tab.close()
