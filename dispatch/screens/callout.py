"""A call-out sent to this technician: who asks, for what, and by when to answer; `y` or `n`.

It opens by itself on a technician's board when a call-out comes, and again with `y` on the board
after Esc put it aside. It closes by itself if the call-out is answered elsewhere or expires.
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from dispatch.core.durations import format_left
from dispatch.core.models import Callout
from dispatch.session import BoardSession


class CalloutPrompt(ModalScreen[bool | None]):
    """Returns True (accept), False (decline) or None (answer later)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "dismiss(True)", "Accept"),
        Binding("n", "dismiss(False)", "Decline"),
        Binding("escape", "dismiss(None)", "Later"),
    ]

    def __init__(self, session: BoardSession, callout: Callout) -> None:
        super().__init__(classes="picker")
        self.session = session
        self.callout = callout

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog callout"):
            yield Label(f"☎ You are called out ({self.callout.id})", classes="dialog-title")
            yield Static(self._fields(), id="callout-fields")
            yield Label("y accept (you become available) · n decline · Esc later", classes="dim")

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        self.query_one("#callout-fields", Static).update(self._fields())

    def _fields(self) -> Table:
        callout, model = self.callout, self.session.model
        now = self.session.now()
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        left = callout.expires_at - now
        by = f"{callout.expires_at.astimezone():%H:%M}"
        if left.total_seconds() > 0:
            by += f" (in {format_left(left)})"
        rows = [
            ("from", model.callout_sender(callout)),
            ("ticket", callout.ticket_id or "-"),
            ("why", callout.reason or "-"),
            ("answer by", by),
        ]
        if callout.night:
            rows.append(("night", "inside the night hours: counts as a night call-out"))
        for name, value in rows:
            table.add_row(name, Text(value))
        return table
