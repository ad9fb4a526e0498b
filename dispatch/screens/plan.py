"""The rebalance plan as a preview: every move listed with its reason; Enter applies it all at once."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from dispatch.core.protocol import PlanMove


class PlanPreview(ModalScreen[bool]):
    """Returns True when the dispatcher applies the plan."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "dismiss(True)", "Apply plan"),
        Binding("escape", "dismiss(False)", "Cancel"),
    ]

    def __init__(self, moves: list[PlanMove]) -> None:
        super().__init__(classes="picker")
        self.moves = moves

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(style="dim")
        for move in self.moves:
            table.add_row(move.ticket_id, f"{move.from_tech or 'queue'} → {move.tech_id}", Text(move.reason))
        with VerticalScroll(classes="dialog wide"):
            yield Label(f"Rebalance plan: {len(self.moves)} move{'s' if len(self.moves) != 1 else ''}",
                        classes="dialog-title")  # fmt: skip
            yield Static(table, id="moves")
            yield Label("Enter applies every move at once (all or nothing) · Esc cancels", classes="dim")
