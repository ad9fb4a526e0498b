"""The bottom line: the keys that fit, as they are typed, each clickable; `? help` always last.

It replaces Textual's Footer, which cuts the last key it has room for in the middle. On a short
terminal the burst banner's words come here instead of taking a line of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from textual.content import Content
from textual.style import Style
from textual.widget import Widget

from dispatch.widgets.columns import cut_words

GAP = "  "


@dataclass(frozen=True)
class Key:
    """A key as the bar shows it: what to type, what it does, and the screen action a click runs."""

    shown: str
    description: str
    action: str


def fitting_keys(keys: list[Key], width: int, reserved: int = 0) -> list[Key]:
    """The keys, in order, while they fit in `width` cells (less `reserved`); the last key (help) is
    kept whatever else gives way."""
    if not keys:
        return []
    *rest, last = keys
    room = width - reserved - cell_len(f"{last.shown} {last.description}")
    kept: list[Key] = []
    for key in rest:
        size = cell_len(f"{key.shown} {key.description}{GAP}")
        if size > room:
            break
        kept.append(key)
        room -= size
    return [*kept, last]


class KeyBar(Widget):
    """One line of keys, with a message (a burst waiting to be grouped) in front when there is one."""

    DEFAULT_CSS = """
    KeyBar { height: 1; padding: 0 1; background: $panel; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.keys: list[Key] = []
        self.message = ""

    def show(self, keys: list[Key], message: str = "") -> None:
        if keys != self.keys or message != self.message:
            self.keys, self.message = keys, message
            self.refresh()

    def render(self) -> Content:
        width = self.content_region.width
        parts: list[Content] = []
        used = 0
        if self.message:
            # The message comes first but leaves room for help: a burst is news, the keys are habit.
            last = self.keys[-1] if self.keys else None
            room = width - (cell_len(f"{last.shown} {last.description}") + len(GAP) if last else 0)
            words = cut_words(self.message, room)
            parts += [Content.styled(words, "bold $warning"), Content(GAP)]
            used = cell_len(words) + len(GAP)
        for key in fitting_keys(self.keys, width, used):
            click = Style.from_meta({"@click": f"screen.{key.action}"})
            parts += [
                Content.styled(key.shown, "bold $accent").stylize(click),
                Content.styled(f" {key.description}", "").stylize(click),
                Content(GAP),
            ]
        return Content("").join(parts[:-1]) if parts else Content("")
