"""The breach forecast: the predicted breaches by time, and a what-if the dispatcher edits with keys.

`+` adds a technician with a skill, `-` leaves one out, `c` calls someone in (a technician who is not
on the clock, with their skills and capacity), Backspace takes the last edit back. Each edit asks the
server again (the asks never change anything) and the counts show the difference before anyone acts.
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from dispatch.core.protocol import ForecastAnswer
from dispatch.core.state import OFF_THE_CLOCK
from dispatch.model import forecast_words, horizon_words
from dispatch.screens.pickers import ChoicePicker
from dispatch.session import BoardSession, WhatIf

# Capacity of a hypothetical technician with a skill (the server's default for a new technician).
WHAT_IF_CAPACITY = 3
# Most breaches listed; the counts above always count them all.
MAX_LISTED = 200


def breach_count(answer: ForecastAnswer) -> str:
    """`6 breaches (P1 2, P2 4)`, or `no breaches`."""
    count = len(answer.breaches)
    if not count:
        return "no breaches"
    split = ", ".join(f"{p.value} {n}" for p, n in sorted(answer.by_priority.items()) if n)
    return f"{count} breach{'es' if count != 1 else ''} ({split})"


class ForecastScreen(ModalScreen[None]):
    """The forecast now, and with the what-if."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus,equals_sign", "add_skill", "+1 technician with a skill"),
        Binding("minus", "leave_out", "Leave a technician out"),
        Binding("c", "call_in", "Call someone in"),
        Binding("backspace", "take_back", "Take the last edit back"),
        Binding("escape,q,f", "dismiss(None)", "Close"),
    ]

    def __init__(self, session: BoardSession) -> None:
        super().__init__(classes="picker")
        self.session = session
        self.what_if = WhatIf()
        self.base: ForecastAnswer | None = session.model.forecast
        self.answer: ForecastAnswer | None = None  # with the what-if
        self._earlier: list[WhatIf] = []  # the what-if before each edit, for Backspace

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide", id="forecast-dialog"):
            yield Label("Forecast", classes="dialog-title", id="forecast-title")
            yield Static(id="forecast-counts")
            yield Label("Predicted breaches", classes="section", id="breaches-title")
            yield Static(id="breaches")
            yield Label("+ a technician with a skill · - leave one out · c call someone in · "
                        "Backspace take back · Esc close", classes="dim")  # fmt: skip

    def on_mount(self) -> None:
        self._show()
        self.ask()

    # --- asking --------------------------------------------------------------------------------------

    @work(exclusive=True, group="what-if", exit_on_error=False)
    async def ask(self) -> None:
        """Ask for the forecast with the what-if as it stands (and the plain one, the first time)."""
        what_if = self.what_if
        if self.base is None or what_if.empty:
            self.base = await self.session.forecast() or self.base
        answer = await self.session.forecast(what_if) if not what_if.empty else self.base
        if what_if == self.what_if:  # not edited again meanwhile
            self.answer = answer
            self._show()

    def _edit(self, what_if: WhatIf, *, remember: bool = True) -> None:
        if remember:
            self._earlier.append(self.what_if)
        self.what_if = what_if
        self.answer = None
        self._show()
        self.ask()

    # --- showing -------------------------------------------------------------------------------------

    def _show(self) -> None:
        base, answer = self.base, self.answer
        if base is not None:
            self.query_one("#forecast-title", Label).update(f"Forecast: the next {horizon_words(base.horizon_minutes)}"
                                                           " at this pace")  # fmt: skip
        counts = Table.grid(padding=(0, 2))
        counts.add_column(style="bold", no_wrap=True)
        counts.add_column()
        counts.add_row("now", Text(forecast_words(base).removeprefix("forecast: ") if base else "asking the server…"))
        if self.what_if.empty:
            counts.add_row("what if", Text("nothing changed yet: + - c change the team", style="dim"))
        else:
            result = Text(self.what_if.words() + "  →  ")
            if answer is None:
                result.append("asking…", style="dim")
            else:
                before = len(base.breaches) if base else None
                after = len(answer.breaches)
                style = "bold green" if before is not None and after < before else "bold"
                result.append(breach_count(answer), style=style)
                if before is not None and after != before:
                    result.append(f" ({after - before:+d})", style=style)
            counts.add_row("what if", result)
        self.query_one("#forecast-counts", Static).update(counts)

        shown = answer if not self.what_if.empty else base
        title = "Predicted breaches" + (" with the what-if" if not self.what_if.empty else "")
        self.query_one("#breaches-title", Label).update(title)
        self.query_one("#breaches", Static).update(self._breaches(shown))

    def _breaches(self, answer: ForecastAnswer | None) -> Table | Text:
        if answer is None:
            return Text("asking…", style="dim")
        if not answer.breaches:
            return Text(f"none within {horizon_words(answer.horizon_minutes)}", style="green")
        tickets = self.session.model.state.tickets
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        # The words wrap (at a word) on a narrow terminal; the time, ticket and target keep their width.
        table.add_column(style="dim")
        for breach in sorted(answer.breaches, key=lambda b: (b.at, b.ticket_id))[:MAX_LISTED]:
            ticket = tickets.get(breach.ticket_id)
            priority = ticket.priority.value if ticket else ""
            what = f"{ticket.title} ({ticket.client})" if ticket else "a ticket still to arrive"
            table.add_row(f"{breach.at.astimezone():%H:%M}", breach.ticket_id, priority, breach.target, what)
        if len(answer.breaches) > MAX_LISTED:
            table.add_row("", f"and {len(answer.breaches) - MAX_LISTED} more", "", "", "")
        return table

    # --- editing the what-if ---------------------------------------------------------------------------

    def action_add_skill(self) -> None:
        model = self.session.model
        short = [s.skill for s in (self.base.short if self.base else [])]
        known = {skill for t in model.state.technicians.values() for skill in t.skills}
        known |= {skill for t in model.state.tickets.values() if t.is_open for skill in t.skills}
        skills = short + sorted(known - set(short))
        if not skills:
            skills = [""]
        choices = [(skill, f"+1 {skill or 'technician (no particular skill)'}"
                    + ("  (short)" if skill in short else "")) for skill in skills]  # fmt: skip

        def chosen(skill: str | None) -> None:
            if skill is not None:
                words = f"+1 {skill}" if skill else "+1 technician"
                extra = (words, (skill,) if skill else (), WHAT_IF_CAPACITY)
                self._edit(WhatIf((*self.what_if.extra, extra), self.what_if.without))

        self.app.push_screen(ChoicePicker("What if one more technician had…", choices), chosen)

    def action_leave_out(self) -> None:
        technicians = [
            t for t in self.session.model.technicians()
            if t.status not in OFF_THE_CLOCK and t.id not in self.what_if.without
        ]  # fmt: skip
        if not technicians:
            self.notify("Nobody on the clock to leave out.", severity="warning")
            return
        choices = [(t.id, f"{t.id}  {t.status.value.replace('_', ' ')}, {','.join(t.skills) or '-'}")
                   for t in technicians]  # fmt: skip

        def chosen(tech_id: str | None) -> None:
            if tech_id is not None:
                self._edit(WhatIf(self.what_if.extra, (*self.what_if.without, tech_id)))

        self.app.push_screen(ChoicePicker("What if this technician were not there?", choices), chosen)

    def action_call_in(self) -> None:
        model = self.session.model
        called = {w.removeprefix("call out ") for w, _, _ in self.what_if.extra}
        offered = [t for t in model.technicians() if t.status in OFF_THE_CLOCK and t.id not in called]
        # Those on call first: they are the ones a call-out may go to.
        offered.sort(key=lambda t: (not t.on_call, t.id))
        if not offered:
            self.notify("Everyone is on the clock already.", severity="warning")
            return
        choices = [
            (t.id, f"{'☎' if t.on_call else ' '} {t.id}  {t.status.value.replace('_', ' ')}, "
                   f"{','.join(t.skills) or '-'}, capacity {t.capacity}")
            for t in offered
        ]  # fmt: skip

        def chosen(tech_id: str | None) -> None:
            technician = model.state.technicians.get(tech_id or "")
            if technician is not None:
                extra = (f"call out {technician.id}", tuple(technician.skills), max(technician.capacity, 1))
                self._edit(WhatIf((*self.what_if.extra, extra), self.what_if.without))

        self.app.push_screen(ChoicePicker("What if we called in…", choices), chosen)

    def action_take_back(self) -> None:
        if self._earlier:
            self._edit(self._earlier.pop(), remember=False)
