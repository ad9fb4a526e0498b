"""The technician panel as an overlay (`T`), for a terminal too narrow to keep it beside the lanes.

It is the same panel at the overlay's full width (every column that fits, the full names too), kept
live by the board; `t` and `c` act on the highlighted technician as they do in the docked panel.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from dispatch.core.models import Technician
from dispatch.model import BoardModel
from dispatch.widgets.technician_panel import TechnicianPanel

TechnicianAction = Callable[[Technician], None]


class TechniciansScreen(ModalScreen[None]):
    """Every technician with their status, load, time and skills; Esc or T closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,T,q", "dismiss(None)", "Close"),
        Binding("t", "act('status')", "Tech status"),
        Binding("c", "act('callout')", "Call out"),
    ]

    def __init__(self, model: BoardModel, now: Callable[[], datetime], actions: dict[str, TechnicianAction]) -> None:
        super().__init__(classes="picker")
        self.model = model
        self.now = now
        self.actions = actions
        """What `t` and `c` do to a technician (none for a wallboard, which only looks)."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog technicians"):
            yield TechnicianPanel(self.model, self.now, id="technicians-overlay")
            keys = " · ".join(words for key, words in (("status", "t status"), ("callout", "c call out"))
                              if key in self.actions)  # fmt: skip
            yield Label(f"{keys + ' · ' if keys else ''}Esc closes", classes="dim")

    def on_mount(self) -> None:
        self.panel.focus()
        self.refresh_panel()

    @property
    def panel(self) -> TechnicianPanel:
        return self.query_one(TechnicianPanel)

    def refresh_panel(self) -> None:
        """The board's model changed (or a second passed): the panel shows it."""
        panel = self.panel
        loads = self.model.loads()
        if loads != panel.loads or list(panel.rows) != self.model.technicians():
            panel.loads = loads
            panel.set_rows(self.model.technicians())
        panel.refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "act":
            return parameters[0] in self.actions
        return True

    def action_act(self, what: str) -> None:
        technician = self.panel.current
        if technician is not None:
            self.actions[what](technician)
