"""A keyboard-driven list that renders only the rows on screen (Textual's Line API).

The base of the lanes and the technician panel. A busy lane holds thousands of tickets and changes
many times a second, so it never builds widgets per row: `render_line` draws the visible rows from a
strip cache keyed by row identity (rows re-sort as SLAs run down), and a change drops only that row's
strip. A change in the row count moves only the scrollbar, so it does not lay out the screen.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.strip import Strip
from textual.widget import Widget

Row = TypeVar("Row")


class RowList(ScrollView, Generic[Row], can_focus=True):
    """Rows of `Row`, one line each, with a cursor and marks."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
    ]

    # Component classes that set a row's background (cursor, marked): loaded whole, with the background
    # blended, because a Strip style would go *under* the segments' own. The others are foreground
    # only and lay over the row's base.
    ROW_BASE_CLASSES: ClassVar[frozenset[str]] = frozenset()

    cursor: reactive[int] = reactive(0, layout=False, repaint=False)
    """Index of the highlighted row."""

    @dataclass
    class Highlighted(Message):
        """The cursor moved to another row (or its row changed under it)."""

        row_list: RowList[object]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.rows: Sequence[Row] = ()
        self._held: Row | None = None  # see `held`
        self._strips: dict[Hashable, tuple[Hashable, Strip]] = {}
        self._style_cache: dict[str, Style] = {}
        # What each line on screen was last drawn with (the row, its signature, the width and whether
        # the cursor was on it), so that a change repaints only the lines that differ (`refresh_changed`).
        self._drawn: dict[int, tuple[Row, Hashable, int, bool] | None] = {}

    @property
    def styles_for_rows(self) -> dict[str, Style]:
        """Row styles from the component classes, plus "base" (the widget's own). Prepared once and
        again after a theme change, not per row: rows are drawn many times a second."""
        if not self._style_cache:
            cache = {name: self.get_component_rich_style(name, partial=True) for name in self.COMPONENT_CLASSES}
            cache.update({name: self.get_component_rich_style(name, partial=False) for name in self.ROW_BASE_CLASSES})
            cache["base"] = self.rich_style
            self._style_cache = cache
        return self._style_cache

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._style_cache = {}
        self._strips.clear()

    # --- to implement --------------------------------------------------------------------------------

    def row_key(self, row: Row) -> Hashable:
        """Stable identity of a row (a ticket id), so its cached strip follows it when rows re-sort."""
        raise NotImplementedError

    def row_signature(self, row: Row) -> Hashable:
        """Everything the row's look depends on besides cursor and width; a change redraws it."""
        raise NotImplementedError

    def render_row(self, row: Row, width: int, selected: bool) -> list[Segment]:
        raise NotImplementedError

    def position(self, key: Hashable) -> int | None:
        """Where the row with this key is now, if it is here. A list that knows its order finds it
        faster than this look through every row."""
        return next((index for index, row in enumerate(self.rows) if self.row_key(row) == key), None)

    # --- rows ----------------------------------------------------------------------------------------

    @property
    def current(self) -> Row | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    @property
    def held(self) -> Row | None:
        """The row the cursor was on when the rows were last set or the cursor last moved. The rows
        may be a live view of the model (`LaneView`), which has moved on under the cursor by the
        time the next `set_rows` is called: this is what the cursor follows."""
        return self._held

    def set_rows(self, rows: Sequence[Row], *, follow: bool = True, words: bool = False) -> None:
        """Replace the rows. The cursor follows its row where it still exists (so a key never lands on
        a ticket that slid under it), unless `follow` is off: then it keeps its place. `words`: what
        the rows say changed besides the rows themselves (see `refresh_changed`)."""
        current = self._held
        current_key = self.row_key(current) if current is not None else None
        self.rows = rows
        found = self.position(current_key) if follow and current_key is not None else None
        if found is not None:
            self.set_reactive(RowList.cursor, found)
        else:
            self.set_reactive(RowList.cursor, min(self.cursor, max(len(rows) - 1, 0)))
        if self.virtual_size.height != len(rows):
            self._resize_rows(len(rows))
        # Keep the strip cache bounded to rows that exist.
        if len(self._strips) > 2 * len(rows) + 64:
            live = {self.row_key(row) for row in rows}
            self._strips = {k: v for k, v in self._strips.items() if k in live}
        self.refresh_changed(words=words)
        self._held = self.current
        if self._held is not current:  # a ticket changed is a new row object: its row changed under it
            self.post_message(self.Highlighted(self))  # type: ignore[arg-type]

    def _resize_rows(self, count: int) -> None:
        # Assigning `virtual_size` lays out the whole screen (tens of ms on a busy board, and a lane's
        # count changes on most flushes). A Line-API list's own region does not depend on how many rows
        # it holds, only its scrollbar does: set the size quietly and update the scrollbar, which asks
        # for a layout by itself when it has to appear or go. (`_scroll_update` is Textual's, pinned.)
        size = Size(self.size.width, count)
        if not self.is_mounted or not self.container_size:
            self.virtual_size = size
            return
        self.set_reactive(Widget.virtual_size, size)
        bar = self._vertical_scrollbar
        if (
            bar is not None
            and self.show_vertical_scrollbar
            and count > self.container_size.height
            and self.validate_scroll_y(self.scroll_y) == self.scroll_y
            and _thumb(bar, bar.window_virtual_size) == _thumb(bar, count)
        ):
            # Nor does the scrollbar move, most of the time, for a row more or less among thousands:
            # then it is not repainted (a repainted scrollbar recomposes every line it spans, across
            # the lanes and the panel). It is told the new size all the same, for when it next draws.
            bar.set_reactive(ScrollBar.window_virtual_size, count)
            return
        self._scroll_update(size)

    def refresh_changed(self, *, words: bool = False) -> None:
        """Repaint the lines on screen whose row, or the row's look, is not what was drawn there.

        A busy lane changes ten times a second, mostly off screen: repainting it whole each time makes
        every frame compose every row of every lane, and a key pressed meanwhile waits for that.

        New rows or a moved cursor (`words` off) repaint a line when another row, or a changed row (a
        new object), is on it, or the cursor came or went: no row's words are worked out. With `words`
        (the clock moved) each line's signature is compared too: countdowns and ages read anew."""
        top, width, focused = self.scroll_offset.y, self.size.width, self.has_focus
        rows, cursor, drawn_lines = self.rows, self.cursor, self._drawn
        dirty: list[int] = []
        for y in range(self.size.height):
            index = top + y
            drawn = drawn_lines.get(y)
            if index >= len(rows):
                if drawn is not None or y not in drawn_lines:
                    dirty.append(index)
                continue
            row = rows[index]
            if drawn is None or drawn[2:] != (width, index == cursor and focused):
                dirty.append(index)
            elif words:
                if self.row_key(drawn[0]) != self.row_key(row) or drawn[1] != self.row_signature(row):
                    dirty.append(index)
            elif drawn[0] is not row:
                dirty.append(index)
        # Runs of neighbouring lines go as one region.
        start = 0
        for position in range(1, len(dirty) + 1):
            if position == len(dirty) or dirty[position] != dirty[position - 1] + 1:
                self.refresh_lines(dirty[start], position - start)
                start = position

    def forget(self, keys: Iterable[Hashable]) -> None:
        """Drop cached strips of changed rows."""
        for key in keys:
            self._strips.pop(key, None)

    # --- drawing -------------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        index = self.scroll_offset.y + y
        width = self.size.width
        if index >= len(self.rows):
            self._drawn[y] = None
            return Strip.blank(width, self.styles_for_rows["base"])
        row = self.rows[index]
        selected = index == self.cursor and self.has_focus
        row_signature = self.row_signature(row)
        signature = (row_signature, width, selected)
        key = self.row_key(row)
        self._drawn[y] = (row, row_signature, width, selected)
        cached = self._strips.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        # The widget's own style from the cache: `rich_style` walks every ancestor's styles, and asking it
        # for each line was a third of the time a lane took to draw.
        strip = Strip(self.render_row(row, width, selected)).crop_extend(0, width, self.styles_for_rows["base"])
        self._strips[key] = (signature, strip)
        return strip

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # --- moving --------------------------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        self._held = self.current
        self.scroll_to_region_row(new)
        self.refresh_changed()  # the two rows the cursor left and reached, unless it scrolled
        self.post_message(self.Highlighted(self))  # type: ignore[arg-type]

    def scroll_to_region_row(self, index: int) -> None:
        top = self.scroll_offset.y
        height = self.scrollable_content_region.height
        if index < top:
            self.scroll_to(y=index, animate=False)
        elif index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False)

    def action_cursor(self, delta: int) -> None:
        if self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(self.scrollable_content_region.height - 1, 1))

    def action_cursor_to(self, index: int) -> None:
        if self.rows:
            self.cursor = index % len(self.rows)

    def on_click(self, event: object) -> None:
        offset = getattr(event, "y", None)
        if isinstance(offset, int) and self.rows:
            self.cursor = min(self.scroll_offset.y + offset, len(self.rows) - 1)


def pad(text: str, width: int, style: Style) -> Segment:
    """`text` cut or padded to exactly `width` cells, with an ellipsis when cut."""
    if width <= 0:
        return Segment("", style)
    if cell_len(text) > width:
        text = set_cell_size(text, width - 1) + "…"
    return Segment(set_cell_size(text, width), style)


def _thumb(bar: ScrollBar, rows: int) -> list[Segment]:
    """How `bar` draws its thumb over `rows` rows (as its renderer does; colours aside)."""
    window = bar.window_size if bar.window_size < rows else 0
    drawn = bar.renderer.render_bar(size=bar.size.height, virtual_size=rows, window_size=window,
                                    position=bar.position, thickness=bar.thickness)  # fmt: skip
    return list(drawn.segments)
