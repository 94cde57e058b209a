"""Markdown to the HTML subset QTextBrowser shows, with Pygments-coloured code blocks.

Each code block gets a `copy:<n>` link; the view maps it back to `code_blocks[n]`. Raw
HTML in the model's output is escaped, never rendered.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name, guess_lexer
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(noclasses=True, nowrap=True, style="friendly")
_CODE_BG = "#f4f4f0"


@dataclass
class Rendered:
    """HTML for one message and the raw text of each of its code blocks."""

    html: str
    code_blocks: list[str] = field(default_factory=list)


def _lexer(lang: str, code: str):  # type: ignore[no-untyped-def]
    if lang:
        try:
            return get_lexer_by_name(lang)
        except ClassNotFound:
            pass
    try:
        return guess_lexer(code) if len(code) > 40 else TextLexer()
    except ClassNotFound:
        return TextLexer()


class MarkdownRenderer:
    """Render message text; `block_offset` numbers copy links across a whole transcript."""

    def __init__(self) -> None:
        self._md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def render(self, text: str, block_offset: int = 0) -> Rendered:
        blocks: list[str] = []

        def fence(renderer, tokens, idx, options, env):  # type: ignore[no-untyped-def]
            token = tokens[idx]
            code = token.content
            lang = token.info.strip().split(" ")[0] if token.info else ""
            body = highlight(code, _lexer(lang, code), _FORMATTER).rstrip("\n")
            number = block_offset + len(blocks)
            blocks.append(code.rstrip("\n"))
            label = html.escape(lang) if lang else "code"
            return (
                f'<table width="100%" cellspacing="0" cellpadding="6" '
                f'style="background:{_CODE_BG}; margin:4px 0;">'
                f'<tr><td style="color:#777; font-size:small;">{label}'
                f' &nbsp; <a href="copy:{number}">Copy</a></td></tr>'
                f"<tr><td><pre style=\"margin:0; font-family:monospace;\">{body}</pre></td></tr>"
                "</table>"
            )

        self._md.add_render_rule("fence", fence)
        self._md.add_render_rule("code_block", fence)
        return Rendered(self._md.render(text), blocks)
