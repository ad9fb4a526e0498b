"""Small modal screens: pick a technician, pick one of a few choices, write a note."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from dispatch.core.models import Ticket
from dispatch.session import BoardSession, TechnicianChoice


class AssignPicker(ModalScreen[str | None]):
    """Technicians ranked by the server's `suggest`, best first; Enter assigns to the highlighted one."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, session: BoardSession, tickets: list[Ticket]) -> None:
        super().__init__(classes="picker")
        self.session = session
        self.tickets = tickets

    def compose(self) -> ComposeResult:
        first = self.tickets[0]
        heading = (
            f"Assign {first.id} {first.title}"
            if len(self.tickets) == 1
            else f"Assign {len(self.tickets)} marked tickets ({', '.join(t.id for t in self.tickets[:4])}"
            + ("…)" if len(self.tickets) > 4 else ")")
        )
        with Vertical(classes="dialog"):
            yield Label(Text(heading), classes="dialog-title")
            yield Label("ranking technicians…", id="picker-status", classes="dim")
            yield OptionList(id="candidates")
            yield Label("Enter assign · ↑↓ choose · Esc cancel", classes="dim")

    def on_mount(self) -> None:
        self.load_candidates()

    @work(exclusive=True, group="suggest", exit_on_error=False)
    async def load_candidates(self) -> None:
        choices: list[TechnicianChoice] = await self.session.rank_candidates(self.tickets[0])
        options = self.query_one("#candidates", OptionList)
        ranked = [c for c in choices if c.ranked]
        others = [c for c in choices if not c.ranked]
        for choice in ranked:
            options.add_option(Option(Text(choice.label), id=choice.tech_id))
        if others:
            # A separator: below it, people the ranking left out, first those a fatigue rule holds back
            # (the server's words: assigning them is an override, which the decision log records).
            options.add_option(None)
            for choice in others:
                style = "yellow" if choice.blocked else "dim"
                options.add_option(Option(Text(choice.label, style=style), id=choice.tech_id))
        status = self.query_one("#picker-status", Label)
        if ranked:
            status.update(f"{len(ranked)} suited, best first")
        elif any(c.blocked for c in others):
            status.update("everyone suited is held back by a fatigue rule (⚠): pick below to override")
        else:
            status.update("nobody free has the skills: pick anyone below to override")
        options.highlighted = 0 if options.option_count else None
        options.focus()

    @on(OptionList.OptionSelected, "#candidates")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class ChoicePicker(ModalScreen[str | None]):
    """Choose one value from a short list (priority, status, availability)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, choices: list[tuple[str, str]], current: str | None = None) -> None:
        super().__init__(classes="picker")
        self.heading = title
        self.choices = choices
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog small"):
            yield Label(Text(self.heading), classes="dialog-title")
            options = [
                Option(label + ("  (now)" if value == self.current else ""), id=value) for value, label in self.choices
            ]
            yield OptionList(*options, id="choices")

    def on_mount(self) -> None:
        options = self.query_one("#choices", OptionList)
        values = [value for value, _ in self.choices]
        options.highlighted = values.index(self.current) if self.current in values else 0
        options.focus()

    @on(OptionList.OptionSelected, "#choices")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class NoteEditor(ModalScreen[str | None]):
    """One line of note for a ticket."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, ticket: Ticket, heading: str | None = None) -> None:
        super().__init__(classes="picker")
        self.ticket = ticket
        self.heading = heading or f"Note on {ticket.id} {ticket.title}"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.heading), classes="dialog-title")
            yield Input(placeholder="what happened, what is next", max_length=2000, id="note")
            yield Label("Enter save · Esc cancel", classes="dim")

    @on(Input.Submitted, "#note")
    def save(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)


class TextPrompt(ModalScreen[str | None]):
    """One optional line of text (a call-out's reason): Enter gives it, even empty; Esc gives None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, heading: str, placeholder: str, hint: str, max_length: int = 300) -> None:
        super().__init__(classes="picker")
        self.heading = heading
        self.placeholder = placeholder
        self.hint = hint
        self.max_length = max_length

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.heading), classes="dialog-title")
            yield Input(placeholder=self.placeholder, max_length=self.max_length, id="text")
            yield Label(self.hint, classes="dim")

    @on(Input.Submitted, "#text")
    def give(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())


class ConfirmPrompt(ModalScreen[bool]):
    """Say what a key is about to do; Enter does it (True), Esc does not (False)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "dismiss(True)", "Do it"),
        Binding("escape", "dismiss(False)", "Cancel"),
    ]

    def __init__(self, heading: str, details: str, hint: str) -> None:
        super().__init__(classes="picker")
        self.heading = heading
        self.details = details
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.heading), classes="dialog-title", id="confirm-heading")
            if self.details:
                yield Label(Text(self.details), classes="dim")
            yield Label(self.hint, classes="dim")
