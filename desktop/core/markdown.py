"""Markdown to the HTML subset QTextBrowser shows, with Pygments-coloured code blocks.

Each code block gets a `copy:<n>` link; the view maps it back to `code_blocks[n]`. Raw
HTML in the model's output is escaped, never rendered. Code blocks take their colours
from a CodeStyle (the view's theme picks one that fits a light or a dark palette).
`plain_text` gives the words of a Markdown text without its marks (auto titles).

markdown-it and Pygments load with the first text rendered, not with this module: an
empty chat's window paints without them (bench/ui_startup.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from pygments.formatters import HtmlFormatter

# QTextDocument draws no CSS borders on tables; the HTML 4 attributes it does read. With
# border-collapse (Qt 5.14+) the cells share one line instead of a double frame.
_TABLE_OPEN = (
    '<table border="1" cellspacing="0" cellpadding="4"'
    ' style="border-collapse: collapse; border-style: solid; margin: 4px 0;">'
)
# Inline tokens whose content is words a reader sees (marks, links' targets and images'
# sources are not).
_WORD_TOKENS = frozenset({"text", "code_inline"})
_BREAK_TOKENS = frozenset({"softbreak", "hardbreak"})


class CodeStyle(NamedTuple):
    """A code block's colours: a Pygments style, its background (default: the style's own),
    and the label row's text and link colours (default: the surrounding text's)."""

    pygments_style: str = "xcode"
    background: str = ""
    label: str = ""
    link: str = ""

    def block_background(self) -> str:
        if self.background:
            return self.background
        from pygments.styles import get_style_by_name

        return str(get_style_by_name(self.pygments_style).background_color)


class Rendered(NamedTuple):
    """HTML for one message and the raw text of each of its code blocks."""

    html: str
    code_blocks: list[str]


def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def _lexer(lang: str, code: str):  # type: ignore[no-untyped-def]
    from pygments.lexers import TextLexer, get_lexer_by_name, guess_lexer
    from pygments.util import ClassNotFound

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
    """Render message text; `block_offset` numbers copy links across a whole transcript.

    `highlight` off leaves code blocks uncoloured (same text, same layout) and Pygments
    unloaded: a window can show its chat first and colour the code right after (its first
    code block costs ~70 ms: the import and the lexer's regexes)."""

    def __init__(self, code_style: CodeStyle | None = None, highlight: bool = True) -> None:
        self._md: MarkdownIt | None = None
        self.code_style = code_style or CodeStyle()
        self.highlight = highlight
        self._formatters: dict[str, HtmlFormatter] = {}

    def _formatter(self) -> HtmlFormatter:
        from pygments.formatters import HtmlFormatter

        name = self.code_style.pygments_style
        if name not in self._formatters:
            self._formatters[name] = HtmlFormatter(noclasses=True, nowrap=True, style=name)
        return self._formatters[name]

    def _colourer(self) -> Callable[[str, str], str]:
        """(code, language) -> the code as HTML: Pygments' spans, or just escaped."""
        import html  # loads html.entities' big tables: with the first message, not the window

        if not self.highlight:
            return lambda code, _lang: html.escape(code)
        from pygments import highlight

        formatter = self._formatter()
        return lambda code, lang: str(highlight(code, _lexer(lang, code), formatter))

    def render(self, text: str, block_offset: int = 0) -> Rendered:
        import html

        if self._md is None:
            self._md = _markdown()
            self._md.add_render_rule("table_open", lambda *_args: _TABLE_OPEN + "\n")
        md = self._md
        blocks: list[str] = []
        style, coloured = self.code_style, self._colourer()
        label_colour = f"color:{style.label}; " if style.label else ""
        link_colour = f' style="color:{style.link};"' if style.link else ""

        def fence(renderer, tokens, idx, options, env):  # type: ignore[no-untyped-def]
            token = tokens[idx]
            code = token.content
            lang = token.info.strip().split(" ")[0] if token.info else ""
            body = coloured(code, lang).rstrip("\n")
            number = block_offset + len(blocks)
            blocks.append(code.rstrip("\n"))
            label = html.escape(lang) if lang else "code"
            return (
                f'<table width="100%" cellspacing="0" cellpadding="6" '
                f'style="background:{style.block_background()}; margin:4px 0;">'
                f'<tr><td style="{label_colour}font-size:small;">{label}'
                f' &nbsp; <a href="copy:{number}"{link_colour}>Copy</a></td></tr>'
                f"<tr><td><pre style=\"margin:0; font-family:monospace;\">{body}</pre></td></tr>"
                "</table>"
            )

        md.add_render_rule("fence", fence)
        md.add_render_rule("code_block", fence)
        return Rendered(md.render(text), blocks)


def plain_text(text: str) -> str:
    """The words of Markdown `text` on one line, without its marks: `# Title`, `**bold**`,
    backticks, list marks and quote marks go; `[label](url)` keeps the label; a code
    block keeps its code."""
    words: list[str] = []
    for token in _markdown().parse(text):
        if token.type in ("fence", "code_block"):
            words.append(token.content)
        for child in token.children or ():
            if child.type in _WORD_TOKENS:
                words.append(child.content)
            elif child.type in _BREAK_TOKENS:
                words.append(" ")
            elif child.type == "image":
                words.append(child.content)  # its alt text
        words.append(" ")
    return " ".join("".join(words).split())


def short_title(text: str, limit: int) -> str:
    """`text` as plain words, at most `limit` characters: cut at the last whole word that
    fits, with "…" when something was left out."""
    words = plain_text(text) or " ".join(text.split())
    if len(words) <= limit:
        return words
    cut = words[: limit + 1]
    space = cut.rfind(" ")
    # One very long word (a URL, a path) has no boundary in reach: cut inside it.
    head = cut[:space] if space > limit // 2 else words[:limit]
    return head.rstrip(" ,;:.-–—") + "…"
