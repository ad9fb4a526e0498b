"""A one-line Static that, when its words do not fit, ends at a word with `…` rather than wherever the
terminal's edge falls (a forecast cut to "short 2 network, 4" says something false)."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.content import Content
from textual.geometry import Size
from textual.widgets import Static

from dispatch.widgets.columns import ELLIPSIS, cut_words


class FittedLine(Static):
    """One line of words (plain or styled), cut at a word to the width it is given. Plain strings are
    shown as they are, never read as markup: they may carry a client's words."""

    DEFAULT_CSS = """
    FittedLine { height: 1; }
    """

    def __init__(self, words: str | Text = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(words, id=id, classes=classes, markup=False)

    @property
    def words(self) -> Content:
        words = self.content
        return Content.from_rich_text(words) if isinstance(words, Text) else Content(str(words))

    def get_content_width(self, container: Size, viewport: Size) -> int:
        # All of it, as a layout asks (`width: auto`); `render` cuts to what it is then given.
        return self.words.cell_length

    def render(self) -> Content:
        content = self.words
        width = self.content_region.width
        if content.cell_length <= width or width <= 0:
            return content
        kept = cut_words(content.plain, width)
        return content[: len(kept) - len(ELLIPSIS)] + ELLIPSIS


def show_words(widget: Static, words: str | Text) -> None:
    """Put `words` in a one-line `widget` that is said again on every tick or flush (the header, the
    people's line, the team summary). Unchanged words do nothing, and the screen is laid out again only
    when their width changed: a layout costs tens of milliseconds on a busy board, and a key pressed
    meanwhile waits for it."""
    old = widget.content
    if isinstance(old, str | Text) and old == words:
        return
    widget.update(words, layout=not isinstance(old, str | Text) or _width(old) != _width(words))


def _width(words: str | Text) -> int:
    return words.cell_len if isinstance(words, Text) else cell_len(words)
