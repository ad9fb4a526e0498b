"""The line under the header: people's time.

A dispatcher or a wallboard reads who is on shift, on call and called out; a technician reads their
own shift, on-call mark and hours.
"""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from dispatch.core.models import Role
from dispatch.model import BoardModel, own_time_words, people_words


class OutlookBar(Horizontal):
    """People's time: the team's, or a technician's own."""

    def __init__(self, role: Role) -> None:
        super().__init__(id="outlook")
        self.role = role
        self.compact = False  # a narrow terminal: shorter words

    def compose(self) -> ComposeResult:
        yield Static(id="people")

    def refresh_from(self, model: BoardModel, now: datetime) -> None:
        people = self.query_one("#people", Static)
        if self.role is Role.TECHNICIAN:
            me = model.state.technicians.get(model.tech_id or "")
            people.update("" if me is None else own_time_words(model.technician_time(me, now)))
            return
        people.update(people_words(model.people_counts(now), compact=self.compact))
