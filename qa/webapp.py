"""The browser app: a chat that answers with cited sentences, and an Articles tab to manage the index.

Every handler works on one live `Index`: reads are lock-free snapshots and writes are serialised
inside the Index, so chats keep being answered (from the previous snapshot) while an article is
embedded, and the next question after an add or remove sees the change with no restart.
Gradio is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from qa.articles import ARTICLE_SUFFIXES, TEXT_SUFFIXES, Article, decode_text, parse_article
from qa.errors import ArticleError, ArticleNotFoundError, QAError
from qa.index import AddReport, Index
from qa.render import answer_record, format_answer, format_error, user_turns

if TYPE_CHECKING:
    import gradio as gr

MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # one news article is a few kB; 2 MB leaves room and caps abuse
CHAT_CONCURRENCY = 8  # chats answered at once; each is one short encode plus two index look-ups
WRITES = "index-writes"  # one concurrency group for add/remove: the Index serialises them anyway
MAX_EXAMPLES = 4
MAX_CITATIONS = 8  # top of the "Sentences to cite" slider; API values are clamped to 1..8
HEADERS = ["Title", "Date", "Sentences", "ID"]
_HEADING = re.compile(r"^#*\s*[^\W\d_][^.!?:;]{2,80}\s[^.!?:;]{2,80}$")  # a short line of words, no stops
CSS = "#qa-chatbot mark { background: #fde68a; color: inherit; padding: 0 2px; border-radius: 2px; }"


class ChatApp:
    """The app's event handlers over one live Index (the constructor only stores)."""

    def __init__(self, index: Index, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.index = index
        self.max_upload_bytes = max_upload_bytes

    # --- chat --------------------------------------------------------------

    def chat(self, message: str, history: Sequence[Any], max_citations: float | None = None) -> tuple[list, dict]:
        """Answer one chat turn; returns (chat messages, the Answer as JSON)."""
        try:
            answer = self.index.answer(
                message if isinstance(message, str) else "",
                history=user_turns(history),
                max_citations=min(max(int(max_citations), 1), MAX_CITATIONS) if max_citations else None,
            )
        except QAError as exc:
            return format_error(str(exc)), answer_record(None, str(exc))
        return format_answer(answer, self.article_text), answer_record(answer)

    def article_text(self, article_id: str) -> str | None:
        """Full text of an indexed article, or None when it is not (or no longer) indexed."""
        try:
            return self.index.article(article_id).text
        except ArticleNotFoundError:
            return None

    def examples(self, limit: int = MAX_EXAMPLES) -> list[str]:
        """Example questions drawn from the indexed articles: their titles, then their section headings."""
        infos = list(reversed(self.index.articles()))  # newest first
        topics = [info.title for info in infos[:limit]]
        for info in infos:
            if len(set(topics)) >= limit:
                break
            lines = self.index.article(info.id).text.splitlines()[1:]
            topics += [line.strip("# ").strip() for line in lines if _HEADING.match(line.strip())]
        unique = list(dict.fromkeys(t for t in topics if t))
        return [f"What does the article say about {topic}?" for topic in unique[:limit]]

    # --- articles ----------------------------------------------------------

    def listing(self) -> list[list[Any]]:
        """The articles table, newest first: title, date, sentences, id."""
        return [[a.title, a.date or "", a.sentences, a.id] for a in reversed(self.index.articles())]

    def menu(self) -> Any:
        """The remove menu's choices ("title (id)" -> id), newest first, nothing chosen."""
        import gradio as gr

        choices = [(f"{a.title} ({a.id})", a.id) for a in reversed(self.index.articles())]
        return gr.Dropdown(choices=choices, value=None)

    def refresh(self) -> tuple[list[list[Any]], Any]:
        """Table and menu together (page load, tab switch)."""
        return self.listing(), self.menu()

    def add_files(self, files: str | Sequence[str] | None, progress: Any = None) -> tuple[str, list[list[Any]]]:
        """Add uploaded article files. Their names only label them; the text is indexed, nothing is written."""
        paths = [files] if isinstance(files, str) else list(files or [])
        if not paths:
            return ("Choose one or more article files first.", self.listing())
        articles, problems = [], []
        for path in paths:
            name = Path(str(path)).name  # Gradio's upload copy keeps the original base name
            try:
                articles.extend(self._read_upload(Path(str(path)), name))
            except ArticleError as exc:
                problems.append(str(exc))
        return self._add(articles, problems, progress)

    def add_pasted(self, title: str | None, text: str | None, progress: Any = None) -> tuple[str, list[list[Any]]]:
        """Add an article from a pasted title and text."""
        title = " ".join((title or "").split())[:200]
        text = (text or "").strip()
        if not text:
            return ("Paste the article's text first (a title alone has nothing to quote).", self.listing())
        if len(text.encode("utf-8")) > self.max_upload_bytes:
            return f"The text is over the {_size(self.max_upload_bytes)} limit. Trim it or split it.", self.listing()
        full = f"# {title}\n\n{text}\n" if title else text + "\n"
        try:
            article = parse_article(full, name=title or "pasted article", source="pasted in the app")
        except ArticleError as exc:
            return (str(exc), self.listing())
        return self._add([article], [], progress)

    def remove(self, article_id: str | None) -> tuple[str, list[list[Any]]]:
        """Remove one article by id; the next question no longer sees it."""
        if not article_id:
            return ("Choose an article to remove first.", self.listing())
        try:
            info = self.index.remove(article_id)
        except QAError as exc:
            return (str(exc), self.listing())
        return f"Removed '{info.title}' ({info.id}, {_count(info.sentences, 'sentence')}).", self.listing()

    def _read_upload(self, path: Path, name: str) -> list[Article]:
        suffix = Path(name).suffix.lower()
        if suffix not in ARTICLE_SUFFIXES:
            raise ArticleError(f"{name}: only {', '.join(ARTICLE_SUFFIXES)} files can be added.")
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            raise ArticleError(f"{name}: {_size(size)} is over the {_size(self.max_upload_bytes)} limit. Split it.")
        if suffix in TEXT_SUFFIXES:
            text = decode_text(path.read_bytes(), name)
            return [parse_article(text, name=Path(name).stem, source=f"uploaded: {name}")]
        from dataclasses import replace

        from qa.ingest import Failure, load_file

        loaded = list(load_file(path))  # HTML, PDF, JSONL: read from Gradio's upload copy, nothing written
        failures = [f"{name}: {item.reason}" for item in loaded if isinstance(item, Failure)]
        if failures:
            raise ArticleError("; ".join(failures))
        return [replace(a, source=f"uploaded: {name}") for a in loaded if not isinstance(a, Failure)]

    def _add(self, articles: list[Article], problems: list[str], progress: Any) -> tuple[str, list[list[Any]]]:
        report = AddReport()
        if articles:
            sentences = sum(len(a.sentences()) for a in articles)
            if progress is not None:
                progress(0, desc=f"Embedding {_count(sentences, 'sentence')} of {_count(len(articles), 'article')}")
            try:
                report = self.index.add_articles(articles, progress=progress is not None)
            except QAError as exc:
                problems.append(str(exc))
        counts = {a.id: a for a in self.index.articles()}
        lines = [
            f"Added '{counts[i].title}' ({i}, {_count(counts[i].sentences, 'sentence')})."
            for i in report.added if i in counts
        ]
        lines += [f"Already indexed, skipped: {d}" for d in report.duplicates]
        lines += [f"Not added: {p}" for p in problems + [f"{n}: {why}" for n, why in report.failed]]
        return ("\n".join(lines) or "Nothing was added.", self.listing())


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _size(count: int) -> str:
    return f"{count / 1024 / 1024:.1f} MB" if count >= 1024 * 1024 else f"{count / 1024:.0f} kB"


def build_app(index: Index, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> "gr.Blocks":
    """The Gradio Blocks of the app (not launched; see `launch_options`)."""
    import gradio as gr

    app = ChatApp(index, max_upload_bytes)

    def chat(message: str, history: list, max_citations: float = index.settings.max_citations):
        """Answer a question from the indexed articles. Returns the chat messages (quoted sentences with
        [n] markers, then a Sources panel) and the Answer as JSON (citations with exact character offsets)."""
        return app.chat(message, history, max_citations)

    def add_files(files: list[str] | None, progress=gr.Progress(track_tqdm=True)):
        """Add uploaded .txt/.md article files. Returns a status message and the articles table."""
        return app.add_files(files, progress)

    def add_article(title: str, text: str, progress=gr.Progress(track_tqdm=True)):
        """Add one article from a title and its text. Returns a status message and the articles table."""
        return app.add_pasted(title, text, progress)

    with gr.Blocks(title="Ask the articles", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("## Ask the articles\nAnswers are sentences quoted from the indexed articles, "
                    "each marked [n]; open **Sources** under an answer to see where each one comes from.")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                cite = gr.Slider(1, MAX_CITATIONS, value=index.settings.max_citations, step=1,
                                 label="Sentences to cite", render=False)
                record = gr.JSON(label="Answer", render=False)
                chatbot = gr.Chatbot(elem_id="qa-chatbot", height=480, latex_delimiters=[], allow_tags=False,
                                     sanitize_html=True, render_markdown=False, buttons=[],
                                     label="Answers from the articles")
                examples = app.examples()
                gr.ChatInterface(
                    chat, chatbot=chatbot, additional_inputs=[cite], additional_outputs=[record],
                    additional_inputs_accordion="Answer settings",
                    textbox=gr.Textbox(placeholder="Ask a question about the articles", show_label=False,
                                       elem_id="qa-question", scale=7, autofocus=True, submit_btn=True, stop_btn=True),
                    examples=[[q] for q in examples] or None, api_name="chat",
                    concurrency_limit=CHAT_CONCURRENCY, flagging_mode="never", save_history=False,
                    fill_height=False,
                )
                with gr.Accordion("Last answer as JSON (citations with character offsets)", open=False):
                    record.render()
            with gr.Tab("Articles", id="articles") as articles_tab:
                status = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="qa-status")
                table = gr.Dataframe(headers=HEADERS, datatype=["str", "str", "number", "str"], interactive=False,
                                     label="Indexed articles (newest first)", elem_id="qa-articles", wrap=True)
                with gr.Row():
                    with gr.Column():
                        files = gr.File(label=f"Upload articles (.txt, .md, .html, .pdf, .jsonl; up to {_size(max_upload_bytes)} each)",
                                        file_count="multiple", file_types=list(ARTICLE_SUFFIXES), type="filepath",
                                        elem_id="qa-upload")
                        add_files_btn = gr.Button("Add uploaded files", variant="primary")
                    with gr.Column():
                        title = gr.Textbox(label="Title", max_lines=1, elem_id="qa-paste-title")
                        text = gr.Textbox(label="Article text", lines=8, elem_id="qa-paste-text")
                        add_text_btn = gr.Button("Add pasted article", variant="primary")
                with gr.Row():
                    choice = gr.Dropdown(label="Article to remove", choices=[], allow_custom_value=True, scale=4)
                    remove_btn = gr.Button("Remove article", variant="stop", scale=1)
                refresh_btn = gr.Button("Refresh list", size="sm")

        # Write endpoints return (status, table); the remove menu follows in a chained, undocumented step.
        outputs = [status, table]
        writes = {"concurrency_limit": 1, "concurrency_id": WRITES, "show_progress": "full"}
        menu = {"fn": app.menu, "outputs": [choice], "api_visibility": "undocumented"}
        add_files_btn.click(add_files, [files], outputs, api_name="add_files", **writes).then(**menu)
        add_text_btn.click(add_article, [title, text], outputs, api_name="add_article", **writes).then(**menu)
        remove_btn.click(app.remove, [choice], outputs, api_name="remove_article", **writes).then(**menu)
        refresh_btn.click(app.listing, None, [table], api_name="list_articles").then(**menu)
        articles_tab.select(app.refresh, None, [table, choice], api_visibility="undocumented")
        demo.load(app.refresh, None, [table, choice], api_visibility="undocumented")
    demo.queue(default_concurrency_limit=2, max_size=256)
    return demo


def launch_options(host: str, port: int, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> dict[str, Any]:
    """`Blocks.launch` arguments for a local, offline app: no share link, no analytics or hub calls."""
    return {
        "server_name": host,
        "server_port": port,
        "share": False,
        "inbrowser": False,
        "max_file_size": max_upload_bytes,
        "footer_links": ["api"],
        "enable_monitoring": False,
        "mcp_server": False,
        "ssr_mode": False,
        "pwa": False,
        "run_history": False,
        "show_error": True,
        "css": CSS,
    }
