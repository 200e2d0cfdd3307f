"""The browser app: a chat that answers with cited sentences, and an Articles tab to manage the index.

Every handler works on one live `Index`: reads are lock-free snapshots and writes are serialised
inside the Index, so chats keep being answered (from the previous snapshot) while an article is
embedded, and the next question after an add or remove sees the change with no restart.
Gradio is imported inside the functions that need it, so importing this module stays cheap.
"""

# No `from __future__ import annotations`: Gradio reads the handlers' gr.SelectData annotations at run time.
from typing import TYPE_CHECKING, Any

from qa.article_admin import MAX_UPLOAD_BYTES, ArticleAdmin, size_text
from qa.chat_session import MAX_CITATIONS, ChatSession
from qa.index import Index

if TYPE_CHECKING:
    import gradio as gr

CHAT_CONCURRENCY = 8  # chats answered at once; each is one short encode plus two index look-ups
WRITES = "index-writes"  # one concurrency group for add/remove: the Index serialises them anyway
# Gradio refuses a whole selection client-side when one file is over its cap, so its cap is far above
# ours: every file then reaches ArticleAdmin, which names the ones over MAX_UPLOAD_BYTES and adds the rest.
UPLOAD_TRANSPORT_BYTES = 100 * 1024 * 1024
HEADERS = ["Title", "Date", "Sentences", "ID"]
# Gradio's bundled Source Sans has a semibold cut with a few dozen glyphs, so bold text mixed fonts:
# the system's own fonts are complete, and nothing is fetched.
SYSTEM_FONTS = ("system-ui", "-apple-system", "Segoe UI", "Roboto", "Noto Sans", "Liberation Sans", "DejaVu Sans",
                "Arial", "sans-serif")
MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "DejaVu Sans Mono", "monospace")
CSS = """
#qa-chatbot mark { background: #fde68a; color: inherit; padding: 0 2px; border-radius: 2px; }
#qa-chatbot .placeholder-content { padding: 0 var(--spacing-xl); }
#qa-articles * { font-family: var(--font) !important; }
#qa-articles th, #qa-articles th * { word-break: keep-all !important; overflow-wrap: normal !important; }
#qa-articles [role=row] { cursor: pointer; }
/* A phone shows title, date and sentences; the id is not needed to remove an article (click its row). */
@media (max-width: 640px) {
  #qa-articles th[data-heading="3"], #qa-articles [data-col="3"], #qa-articles td:nth-child(4) { display: none !important; }
  #qa-articles th[data-heading="0"], #qa-articles [data-col="0"] { width: 50% !important; flex: 0 0 50% !important; min-width: 0 !important; max-width: none !important; }
  #qa-articles th[data-heading="1"], #qa-articles [data-col="1"] { width: 29% !important; flex: 0 0 29% !important; min-width: 0 !important; max-width: none !important; }
  #qa-articles th[data-heading="2"], #qa-articles [data-col="2"] { width: 21% !important; flex: 0 0 21% !important; min-width: 0 !important; max-width: none !important; }
  #qa-articles table.header-table, #qa-articles .virtual-body { width: 100% !important; }
}
"""
# The chat takes the window's height (less the header, tabs and question box), never a fixed 480 px.
CHAT_HEIGHT = "calc(100dvh - 270px)"


def theme() -> "gr.themes.Base":
    """Gradio's default look with system fonts (see SYSTEM_FONTS)."""
    import gradio as gr

    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def build_app(index: Index, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> "gr.Blocks":
    """The Gradio Blocks of the app (not launched; see `launch_options`)."""
    import gradio as gr

    session, admin = ChatSession(index), ArticleAdmin(index, max_upload_bytes)
    default_citations = index.settings.max_citations

    def chat(message: str, turns: list[str], max_citations: float = default_citations):
        """Answer a question from the indexed articles (follow-ups use this session's earlier questions).
        Returns the chat messages (quoted sentences with [n] markers, then a Sources panel) and the
        Answer as JSON (citations with exact character offsets)."""
        return session.reply(message, turns, max_citations)

    def add_files(files: list[str] | None, progress=gr.Progress()):
        """Add uploaded article files (.txt, .md, .html, .pdf, .jsonl). Returns a status message and the table."""
        return admin.add_files(files, progress), admin.listing()

    def add_article(title: str, text: str, progress=gr.Progress()):
        """Add one article from a title (optional) and its text. Returns a status message and the table."""
        return admin.add_pasted(title, text, progress), admin.listing()

    def remove_article(article_id: str):
        """Remove one article by id. Returns a status message and the articles table."""
        return admin.remove(article_id), admin.listing()

    def list_articles():
        """The articles table: title, date, sentences, id; newest first."""
        return admin.listing()

    def refresh():
        return admin.listing(), gr.Dropdown(choices=admin.choices(), value=None), examples()

    def examples():
        return gr.Chatbot(examples=[{"text": q} for q in session.examples()])

    def pick_row(event: gr.SelectData):
        row = event.row_value or []
        return row[3] if len(row) > 3 else gr.skip()

    with gr.Blocks(title="Ask the articles", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        turns = gr.State([])  # this session's questions as typed: follow-ups are resolved from them
        asked = gr.State("")  # the question being answered, once it has left the text box
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chatbot = gr.Chatbot(elem_id="qa-chatbot", height=CHAT_HEIGHT, min_height=320, latex_delimiters=[],
                                     allow_tags=False, sanitize_html=True, render_markdown=False, buttons=[],
                                     feedback_options=None, show_label=False, autoscroll=True,
                                     placeholder="Answers are sentences quoted from the indexed articles, each "
                                                 "marked [n]; open **Sources** under an answer to see where "
                                                 "each one comes from.")
                question = gr.Textbox(placeholder="Ask a question about the articles", show_label=False,
                                      elem_id="qa-question", autofocus=True, submit_btn=True, lines=1, max_lines=6)
                with gr.Accordion("Answer settings", open=False):
                    cite = gr.Slider(1, MAX_CITATIONS, value=default_citations, step=1, label="Sentences to cite")
                with gr.Accordion("Last answer as JSON (citations with character offsets)", open=False):
                    record = gr.JSON(label="Answer")
                api_messages = gr.JSON(visible=False)
                api_citations = gr.Number(value=default_citations, visible=False, label="max_citations")
                api_button = gr.Button(visible=False)
            with gr.Tab("Articles", id="articles") as articles_tab:
                with gr.Row(equal_height=False):
                    with gr.Column():
                        files = gr.File(label=f"Upload articles (.txt, .md, .html, .pdf, .jsonl; up to "
                                              f"{size_text(max_upload_bytes)} each)",
                                        file_count="multiple", type="filepath", elem_id="qa-upload")
                        add_files_btn = gr.Button("Add uploaded files", variant="primary")
                        files_status = gr.Textbox(label="Upload result", interactive=False, lines=1, max_lines=12,
                                                  elem_id="qa-upload-status", visible=False)
                    with gr.Column():
                        title = gr.Textbox(label="Title (optional)", max_lines=1, elem_id="qa-paste-title")
                        text = gr.Textbox(label="Article text", lines=6, max_lines=14, elem_id="qa-paste-text")
                        add_text_btn = gr.Button("Add pasted article", variant="primary")
                        paste_status = gr.Textbox(label="Paste result", interactive=False, lines=1, max_lines=12,
                                                  elem_id="qa-paste-status", visible=False)
                with gr.Row(equal_height=True):
                    choice = gr.Dropdown(label="Article to remove (or click its row below)", choices=[],
                                         allow_custom_value=True, filterable=True, scale=4, elem_id="qa-remove")
                    remove_btn = gr.Button("Remove article", variant="stop", scale=1, min_width=120)
                remove_status = gr.Textbox(label="Remove result", interactive=False, lines=1, max_lines=4,
                                           elem_id="qa-remove-status", visible=False)
                table = gr.Dataframe(headers=HEADERS, datatype=["str", "str", "number", "str"], interactive=False,
                                     label="Indexed articles (newest first)", elem_id="qa-articles", wrap=True,
                                     column_widths=["44%", "16%", "12%", "28%"], show_search="search",
                                     max_height=640)
                refresh_btn = gr.Button("Refresh list", size="sm")

        # The chat: the question shows at once (escaped), the answer follows; the box is free again after.
        ui = {"api_visibility": "undocumented"}

        def show_question(message: str, shown: list):
            if not message.strip():  # Enter on an empty box: nothing to ask
                return gr.skip(), gr.skip(), ""
            return gr.Textbox(value="", interactive=False), session.show_question(message, shown), message

        def show_example(event: gr.SelectData, shown: list):
            return session.show_question(event.value["text"], shown), event.value["text"]

        def answer_asked(message: str, shown: list, turns_: list, citations: float):
            if not message.strip():
                return gr.skip(), gr.skip(), gr.skip()
            return session.answer_shown(message, shown, turns_, citations)

        answer_step = {"fn": answer_asked, "inputs": [asked, chatbot, turns, cite], "outputs": [chatbot, record, turns],
                       "concurrency_limit": CHAT_CONCURRENCY, "concurrency_id": "chat", **ui}
        unlock = {"fn": lambda: gr.Textbox(interactive=True), "outputs": [question], **ui}
        question.submit(show_question, [question, chatbot], [question, chatbot, asked], queue=False, **ui
                        ).then(**answer_step).then(**unlock)
        chatbot.example_select(show_example, [chatbot], [chatbot, asked], queue=False, **ui).then(**answer_step)
        chatbot.clear(lambda: ([], None), None, [turns, record], queue=False, **ui)
        # The API endpoint: (message, max_citations) -> (messages, Answer JSON); the session keeps the turns.
        api_button.click(chat, [question, turns, api_citations], [api_messages, record, turns], api_name="chat",
                         concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat")

        # Write endpoints return (status, table); clearing the form and refreshing menus follow, undocumented.
        writes = {"concurrency_limit": 1, "concurrency_id": WRITES, "show_progress": "full"}
        after = {"fn": refresh, "outputs": [table, choice, chatbot], **ui}
        # The outcome (and the progress bar) shows right under the button pressed; an added article's form empties.
        for button, status in ((add_files_btn, files_status), (add_text_btn, paste_status), (remove_btn, remove_status)):
            button.click(lambda: gr.Textbox(visible=True), None, [status], queue=False, **ui)
        add_files_btn.click(add_files, [files], [files_status, table], api_name="add_files", **writes,
                            show_progress_on=[files_status]).then(
            lambda status: None if "Added '" in status else gr.skip(), [files_status], [files], **ui).then(**after)
        add_text_btn.click(add_article, [title, text], [paste_status, table], api_name="add_article", **writes,
                           show_progress_on=[paste_status]).then(
            lambda status: ("", "") if status.startswith("Added '") else (gr.skip(), gr.skip()),
            [paste_status], [title, text], **ui).then(**after)
        remove_btn.click(remove_article, [choice], [remove_status, table], api_name="remove_article",
                         **writes, show_progress_on=[remove_status]).then(**after)
        refresh_btn.click(list_articles, None, [table], api_name="list_articles").then(**after)
        table.select(pick_row, None, [choice], **ui)
        articles_tab.select(refresh, None, [table, choice, chatbot], **ui)
        demo.load(refresh, None, [table, choice, chatbot], **ui)
    demo.queue(default_concurrency_limit=2, max_size=256)
    return demo


def launch_options(host: str, port: int) -> dict[str, Any]:
    """`Blocks.launch` arguments for a local, offline app: no share link, no analytics or hub calls.

    `quiet` drops Gradio's start-up lines (among them a hint to set share=True); app.py prints its own.
    """
    return {
        "server_name": host,
        "server_port": port,
        "share": False,
        "inbrowser": False,
        "quiet": True,
        "max_file_size": UPLOAD_TRANSPORT_BYTES,
        "footer_links": ["api"],
        "enable_monitoring": False,
        "mcp_server": False,
        "ssr_mode": False,
        "pwa": False,
        "run_history": False,
        "show_error": True,
        "css": CSS,
        "theme": theme(),
    }
