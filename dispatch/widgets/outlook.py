"""The line under the header: people's time and, for those who may ask for it, the breach forecast.

A dispatcher or a wallboard reads who is on shift, on call and called out, and the server's forecast
of breaches with who is short; a technician reads their own shift, on-call mark and hours.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from dispatch.core.models import Role
from dispatch.model import BoardModel, forecast_words, own_time_words, people_words
from dispatch.widgets.fitted_line import FittedLine, show_words


class OutlookBar(Horizontal):
    """People's time on the left, the forecast on the right (`f` opens it)."""

    def __init__(self, role: Role) -> None:
        super().__init__(id="outlook")
        self.role = role
        self.compact = False  # a narrow terminal: shorter words

    def compose(self) -> ComposeResult:
        yield FittedLine(id="people")
        yield FittedLine(id="forecast")

    def on_mount(self) -> None:
        self.query_one("#forecast", Static).display = self.role is not Role.TECHNICIAN

    def refresh_from(self, model: BoardModel, now: datetime) -> None:
        people = self.query_one("#people", Static)
        if self.role is Role.TECHNICIAN:
            me = model.state.technicians.get(model.tech_id or "")
            show_words(people, "" if me is None else own_time_words(model.technician_time(me, now)))
            return
        show_words(people, people_words(model.people_counts(now), compact=self.compact))
        forecast = Text()
        answer = model.forecast
        if answer is not None:
            breaches = len(answer.breaches)
            forecast.append(forecast_words(answer, compact=self.compact), style="bold yellow" if breaches else "")
            if breaches and not self.compact:
                forecast.append("  f what-if", style="dim")
        show_words(self.query_one("#forecast", Static), forecast)
