"""Columns that give way by importance, as k9s and gh-dash do: which columns a row shows, and how wide.

Pure (no Textual), so the rules are tested table-driven. The caller lists its columns most important
first, each as wide as its content needs (the longest value it holds now, capped); `fit_columns` keeps
them in that order while they fit and drops the rest whole. Only the last column kept may be squeezed
below its content, and never below `least`; text in it is then cut at a word (`cut_words`), never
mid-word. The column that `fills` (a lane's title) gets what is left over. A name may come twice: the
second is how much more that column claims before the columns after it (a lane's title grows to a
readable width before the age and the site get any room); the widths add up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

from rich.cells import cell_len, set_cell_size

ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    """One column of a row, as its content asks for it."""

    name: str
    want: int
    """Cells its content needs (the longest value, capped)."""
    least: int = 0
    """The narrowest it may be squeezed to (0: not at all, it shows whole or not at all)."""
    always: bool = False
    """Shown at any width (a ticket's id and countdown); such columns come first."""
    fills: bool = False
    """Takes what is left over (at least `least`, or `want` when `least` is 0)."""
    gap: int = 1
    """Blank cells after it."""

    @property
    def narrowest(self) -> int:
        return self.least or self.want

    @property
    def asks(self) -> int:
        """What it takes before the leftover is handed out: a filling column its least."""
        return self.narrowest if self.fills else self.want


Fitted = tuple[tuple[str, int], ...]
"""The columns shown, most important first, with their widths (gaps not included)."""


@lru_cache(maxsize=512)
def fit_columns(width: int, columns: tuple[Column, ...]) -> Fitted:
    """The columns a row `width` cells wide shows and their widths. Cached: a lane asks once per
    change of its width or of its content widths, and many lanes ask the same."""
    kept: list[tuple[Column, int]] = []
    room = width
    for column in columns:
        if column.want <= 0 and not column.always:
            continue  # nothing in it (no ticket has a site): it takes no room
        if column.always:
            kept.append((column, column.want))
            room -= column.want + column.gap
            continue
        if column.narrowest + column.gap > room:
            break  # it does not fit even squeezed: it and everything less important give way
        size = min(column.asks, room - column.gap)
        kept.append((column, size))
        room -= size + column.gap
        if size < column.asks:
            break  # squeezed: nothing after it can fit
    leftover = max(room, 0)
    widths: dict[str, int] = {}
    for column, size in kept:
        widths[column.name] = widths.get(column.name, 0) + size + (leftover if column.fills else 0)
    return tuple(widths.items())


def cut_words(text: str, width: int) -> str:
    """`text` whole if it fits in `width` cells, else as many whole words as fit followed by `…`. A
    first word longer than the column is the one case cut inside a word: there is nothing better."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    kept = ""
    for word in text.split(" "):
        candidate = f"{kept} {word}" if kept else word
        if cell_len(candidate) + 1 > width:
            break
        kept = candidate
    kept = kept.rstrip(" ,;:-–—/·")
    if not kept:
        return set_cell_size(text, width - 1).rstrip() + ELLIPSIS
    return kept + ELLIPSIS


def cells(value: str, cap: int) -> int:
    """Cells `value` needs, at most `cap`."""
    # Most names are ASCII, one cell a character: len() is far cheaper than measuring cells, and a
    # board measures every ticket it holds when a snapshot comes.
    size = len(value) if value.isascii() else cell_len(value)
    return size if size < cap else cap


def content_width(values: Iterable[str], cap: int, floor: int = 0) -> int:
    """Cells the longest of `values` needs, at least `floor`, at most `cap`."""
    longest = floor
    for value in values:
        size = cells(value, cap)
        if size > longest:
            longest = size
            if longest >= cap:
                return cap
    return longest


def first_word_width(values: Iterable[str], cap: int) -> int:
    """The narrowest a column of `values` may be squeezed to without cutting a word: its longest
    first word and the ellipsis."""
    return content_width((value.partition(" ")[0] for value in values), cap - 1) + 1


def merge_columns(sets: Iterable[tuple[Column, ...]]) -> tuple[Column, ...]:
    """One set of columns for rows drawn one above the other (the lanes), so that each column lines
    up: every column any set has, as wide as the widest asks, in the order they come first."""
    merged: dict[tuple[str, int], Column] = {}
    for columns in sets:
        times: dict[str, int] = {}
        for column in columns:
            times[column.name] = times.get(column.name, 0) + 1
            key = (column.name, times[column.name])  # a name's second claim merges with the second
            seen = merged.get(key)
            if seen is None:
                merged[key] = column
            elif column != seen:
                merged[key] = replace(seen, want=max(seen.want, column.want), least=max(seen.least, column.least))
    return tuple(merged.values())
