"""The key help, for the role at hand."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss(None)", "Close")]

    def __init__(self, keys: list[tuple[str, str]], role: str) -> None:
        super().__init__(classes="picker")
        self.keys = keys
        self.role = role

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 3))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in self.keys:
            table.add_row(key, what)
        with VerticalScroll(classes="dialog"):
            yield Label(f"Keys ({self.role})", classes="dialog-title")
            yield Static(table)
            yield Label("Every action is also in the command palette (ctrl+p). Esc closes.", classes="dim")
