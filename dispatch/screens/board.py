"""The board: priority lanes (or a technician's own lane), the technician panel, the header."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Static

from dispatch.client import LinkState
from dispatch.core.models import Callout, HoldReason, Priority, Role, Technician, TechStatus, Ticket, TicketStatus
from dispatch.core.protocol import (
    AddNote,
    ApplyPlan,
    Assign,
    BulkAssign,
    BurstEvent,
    Command,
    CreateIncident,
    SetPriority,
    SetStatus,
    SetTechStatus,
    Unassign,
    UpdateClients,
)
from dispatch.model import HOLD_REASON_WORDS
from dispatch.screens.callout import CalloutPrompt
from dispatch.screens.detail import TicketDetail
from dispatch.screens.forecast import ForecastScreen
from dispatch.screens.help import HelpScreen
from dispatch.screens.pickers import AssignPicker, ChoicePicker, ConfirmPrompt, NoteEditor, TextPrompt
from dispatch.screens.plan import PlanPreview
from dispatch.screens.technicians import TechnicianAction, TechniciansScreen
from dispatch.session import BoardSession, ForecastSchedule
from dispatch.widgets.board_header import BoardHeader
from dispatch.widgets.columns import merge_columns
from dispatch.widgets.fitted_line import FittedLine, show_words
from dispatch.widgets.key_bar import Key, KeyBar
from dispatch.widgets.lane import Lane
from dispatch.widgets.lane_stack import LaneStack
from dispatch.widgets.outlook import OutlookBar
from dispatch.widgets.technician_panel import TechnicianPanel, team_summary

NAVIGATION = {"lane", "filter", "clear", "detail", "help"}
# Kept out of the key bar (it would no longer fit), listed in the help screen and the command palette.
INCIDENT_ACTIONS = {"group_burst", "incident_assign", "incident_priority", "incident_resolve", "update_clients"}
HELP_ONLY = {*INCIDENT_ACTIONS, "callout", "forecast", "undo", "answer_callout", "urgent_only", "technicians"}
# Lanes and the panel: what a board with all the lanes has, and a technician's own lane does not.
BOARD_VIEWS = {"urgent_only", "technicians"}
DISPATCHER_ACTIONS = {
    "assign", "assign_best", "unassign", "priority", "status", "mark", "tech_status", "note", "rebalance",
    "callout", "forecast", "undo", *INCIDENT_ACTIONS, *BOARD_VIEWS,
}  # fmt: skip
TECHNICIAN_ACTIONS = {"start", "hold", "resolve", "note", "status", "availability", "answer_callout"}
# A wallboard only looks, and the forecast and the panel are things to look at.
VIEWER_ACTIONS = {"forecast", *BOARD_VIEWS}
TECHNICIAN_STATUSES = [
    (TicketStatus.IN_PROGRESS, "start (in progress)"),
    (TicketStatus.ON_HOLD, "hold"),
    (TicketStatus.RESOLVED, "resolve"),
]
# Below this many columns the technician panel folds to a line (T opens it) so that the lanes keep
# their countdowns and assignees; from WIDE_FROM it gets room for the skills.
NARROW_BELOW = 120
WIDE_FROM = 180
# Below this many lines the lanes' borders shrink to their title lines and the burst banner's words
# go to the key bar, so that the lines go to tickets.
SHORT_BELOW = 30


class BoardScreen(Screen[None]):
    """Everything a dispatcher (all lanes) or a technician (own lane) works from."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left,h", "lane(-1)", "Previous lane", show=False),
        Binding("right,l", "lane(1)", "Next lane", show=False),
        Binding("a", "assign", "Assign"),
        Binding("A", "assign_best", "Assign best"),
        Binding("u", "unassign", "Unassign"),
        Binding("p", "priority", "Priority"),
        Binding("s", "status", "Status"),
        Binding("space", "mark", "Mark"),
        Binding("t", "tech_status", "Tech status"),
        Binding("b", "rebalance", "Rebalance"),
        Binding("T", "technicians", "Technicians (all of them, over the board)", show=False),
        Binding("exclamation_mark", "urgent_only", "P1 and P2 only, or all lanes again", show=False),
        Binding("c", "callout", "Call out the selected technician", show=False),
        Binding("f", "forecast", "Forecast and what-if", show=False),
        Binding("z", "undo", "Undo my last change", show=False),
        Binding("y", "answer_callout", "Answer a call-out", show=False),
        Binding("g", "group_burst", "Group burst into incident", show=False),
        Binding("I", "incident_assign", "Assign whole incident", show=False),
        Binding("P", "incident_priority", "Priority of whole incident", show=False),
        Binding("R", "incident_resolve", "Resolve whole incident", show=False),
        Binding("U", "update_clients", "Tell the incident's clients what is going on", show=False),
        Binding("i", "start", "Start"),
        Binding("o", "hold", "Hold"),
        Binding("r", "resolve", "Resolve"),
        Binding("n", "note", "Note"),
        Binding("v", "availability", "My status"),
        Binding("enter", "detail", "Detail"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear", "Clear", show=False),
        Binding("question_mark", "help", "Help"),
    ]

    @dataclass
    class Ready(Message):
        """The board is mounted and drawn from the model: from now on it takes batches and ticks."""

        board: BoardScreen

    def __init__(self, session: BoardSession, role: Role) -> None:
        super().__init__()
        self.session = session
        self.role = role
        self.query_text = ""
        self._last_lane: Lane | None = None  # where the keys act while the panel or the filter has focus
        # Tickets this dispatcher just acted on: when one moves away (assigned, so it re-sorts), the
        # cursor stays in place and lands on the next ticket in the queue instead of following it.
        self.acted_on: set[str] = set()
        self.burst: BurstEvent | None = None  # the burst the banner shows, until grouped or dismissed
        self.forecast_schedule = ForecastSchedule()
        # A technician's board: call-outs already put in front of them, and the prompt while it is open.
        self._prompted: set[str] = set()
        self._callout_prompt: CalloutPrompt | None = None
        self._overlay: TechniciansScreen | None = None  # the panel over the board (T), while open
        self._lanes: list[Lane] = []
        self._parts: tuple[Widget, ...] = ()  # the header and the lane stack, once mounted
        self.drawn_seq = -1
        """The model's seq when the board was last drawn from it."""
        self._shown = False  # shown once already (see on_screen_resume)

    def compose(self) -> ComposeResult:
        session = self.session
        header = BoardHeader(session.server_url)
        header.set_class(self.role is Role.TECHNICIAN, "-own-lane")
        yield header
        yield OutlookBar(self.role)
        yield FittedLine(id="burst-banner")
        yield FittedLine(id="callout-banner")
        if self.role is Role.TECHNICIAN:
            lanes = [Lane(session.model, None, session.now, id="lane-mine")]
        else:
            lanes = [Lane(session.model, p, session.now, id=f"lane-{p.value.lower()}") for p in Priority]
        with Horizontal(id="body"):
            yield LaneStack(*lanes, id="lanes")
            if self.role is not Role.TECHNICIAN:
                yield TechnicianPanel(session.model, session.now, id="technicians")
        if self.role is not Role.TECHNICIAN:
            yield FittedLine(id="team-summary")
        yield Input(placeholder="filter: text, client, skill or technician (Esc clears)", id="filter")
        yield KeyBar(id="keys")

    def on_mount(self) -> None:
        self._parts = (self.query_one(BoardHeader), self.query_one(OutlookBar), self.query_one(LaneStack))
        self.query_one("#filter", Input).display = False
        self.lanes[0].focus()
        self.refresh_board(None)
        self.show_link(self.session.link_state)
        self.post_message(self.Ready(self))

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        # Textual restyles every widget of a screen as it is shown (Screen's own handler, which runs
        # after this one). The board's were styled as they were mounted, a moment before it is first
        # shown: styling all ~90 of them again then cost its first paint about 12 ms. Later resumes
        # (after a dialog, a theme change) restyle as usual.
        if not self._shown:
            self._shown = True
            event.refresh_styles = False

    def on_resize(self, event: events.Resize) -> None:
        width, height = event.size
        narrow, short = width < NARROW_BELOW, height < SHORT_BELOW
        self.set_class(narrow, "-narrow")
        self.set_class(width >= WIDE_FROM, "-wide")
        self.set_class(short, "-short")
        self.query_one(OutlookBar).compact = narrow
        stack = self.query_one(LaneStack)
        stack.short = short
        stack.restack()
        if narrow and self.focused is not None and isinstance(self.focused, TechnicianPanel):
            self._lane().focus()  # the panel folded away under the cursor
        self.refresh_header()
        self._place_burst()

    @property
    def lanes(self) -> list[Lane]:
        # Composed once and never replaced; a query per call showed in every flush.
        if not self._lanes:
            self._lanes = list(self.query(Lane))
        return self._lanes

    # --- keeping up with the model -------------------------------------------------------------------

    def refresh_board(self, changed: set[str] | None, technicians_changed: bool = True) -> None:
        """Redraw after a batch of events; `changed` ticket ids (None: everything, e.g. a snapshot or
        a new filter). Only the lanes the batch touched are rebuilt."""
        if self._taken_down():
            return
        model = self.session.model
        touched, model.touched = model.touched, set()
        self.drawn_seq = model.state.seq
        for lane in self.lanes:
            if changed is not None and lane.priority is not None and lane.priority not in touched:
                continue
            lane.forget(set(changed) if changed is not None else set(lane._strips))
            rows = model.lane(lane.priority, self.query_text)
            current = lane.held  # the ticket the cursor was on before this batch
            lane.set_rows(rows, follow=current is None or current.id not in self.acted_on, changed=changed)
            if lane.marked:
                lane.marked &= {t.id for t in rows}
            total = model.lane_size(lane.priority) if lane.priority is not None else len(rows)
            lane.update_title(len(rows), total if self.query_text else len(rows))
        columns = merge_columns(lane.content_columns for lane in self.lanes)
        for lane in self.lanes:
            lane.use_columns(columns)
        self.query_one(LaneStack).restack()
        if changed:
            self.acted_on -= changed
        if changed is None or technicians_changed:
            # (Ticket counts wait for the tick; people's time is a few rows and says who was just called.)
            self.refresh_header()
        if changed is None or changed:
            self.forecast_schedule.changed()
            self._ask_forecast_when_due()
        self._show_callout()
        panels = list(self.query(TechnicianPanel))
        if panels and (technicians_changed or changed is None or changed):
            panel = panels[0]
            loads = model.loads()
            loads_changed = loads != panel.loads
            if technicians_changed or changed is None or loads_changed:
                panel.loads = loads
                panel.set_rows(model.technicians(), words=loads_changed)
                show_words(self.query_one("#team-summary", Static), f"{team_summary(panel.rows, loads)} · T shows them")
                if self._overlay is not None and self._overlay.is_attached:
                    self._overlay.refresh_panel()

    def tick(self) -> None:
        """Once a second: the countdowns move, and the header's counts (a scan of every open ticket)
        are taken here rather than on every batch of events."""
        # The countdowns and hours move on: only the lines whose words changed are repainted.
        for lane in self.lanes:
            lane.refresh_changed(words=True)
        for panel in self.query(TechnicianPanel):
            panel.refresh_changed(words=True)
        if self._overlay is not None and self._overlay.is_attached:
            self._overlay.panel.refresh_changed(words=True)
        self.refresh_header()
        self._ask_forecast_when_due()

    def _taken_down(self) -> bool:
        """A tick or a flush can land while the screen is being taken down (the app quitting): its parts
        are going then, and there is nothing to refresh (clean-clone runs failed on NoMatches here, for
        the header and for the lane stack). The parts are held from the mount: querying for them on
        every flush cost more than the header's redraw."""
        return not self._parts or not self.is_attached or not all(part.is_attached for part in self._parts)

    def refresh_header(self) -> None:
        if self._taken_down():
            return
        model, now = self.session.model, self.session.now()
        self.query_one(BoardHeader).refresh_from(model, now)
        self.query_one(OutlookBar).refresh_from(model, now)

    # --- the forecast in the header ------------------------------------------------------------------

    def _ask_forecast_when_due(self) -> None:
        if self.role in (Role.DISPATCHER, Role.VIEWER) and self.forecast_schedule.due(time.monotonic()):
            self.forecast_schedule.started(time.monotonic())
            self.ask_forecast()

    @work(group="forecast", exit_on_error=False)
    async def ask_forecast(self) -> None:
        """Ask in the background: the server runs the whole queue through its model, typing goes on."""
        try:
            await self.session.forecast()
        finally:
            self.forecast_schedule.finished()
        self.refresh_header()

    def show_link(self, link: LinkState) -> None:
        """Connected, or lost: the header says which and since when, and a stale board is dimmed."""
        if self._taken_down():
            return
        self.query_one(BoardHeader).show_link(link, self.session.now())
        self.set_class(not link.connected, "-stale")
        self.refresh_header()

    def _send(self, command: Command, label: str, ticket_ids: Iterable[str] = ()) -> None:
        """Send a change in the background: its rows show it pending, a refusal is said in words."""
        ids = tuple(ticket_ids)
        self.acted_on.update(ids)
        self.run_worker(self.session.send_command(command, label, ids), group="commands")

    def refresh_rows(self, ticket_ids: Iterable[str]) -> None:
        """Redraw these tickets' rows (a pending mark came or went)."""
        ids = set(ticket_ids)
        for lane in self.lanes:
            lane.forget(ids)
            lane.refresh()

    # --- what the keys act on ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in NAVIGATION:
            return True
        if self.role is Role.DISPATCHER:
            return action in DISPATCHER_ACTIONS
        if self.role is Role.TECHNICIAN:
            return action in TECHNICIAN_ACTIONS
        if self.role is Role.VIEWER:
            return action in VIEWER_ACTIONS
        return False  # intake: a read-only wallboard

    def _lane(self) -> Lane:
        focused = self.focused
        if isinstance(focused, Lane):
            return focused
        return self._last_lane or self.lanes[0]

    @on(Lane.Highlighted)
    def _remember_lane(self, event: Lane.Highlighted) -> None:
        if isinstance(event.row_list, Lane) and event.row_list.has_focus:
            self._last_lane = event.row_list

    def _ticket(self) -> Ticket | None:
        ticket = self._lane().current
        if ticket is None:
            self.notify("No ticket selected in this lane.", severity="warning")
        return ticket

    def _marked(self) -> list[Ticket]:
        model = self.session.model
        ids = [tid for lane in self.lanes for tid in sorted(lane.marked)]
        return [model.state.tickets[tid] for tid in ids if tid in model.state.tickets]

    # --- navigation ----------------------------------------------------------------------------------

    def action_lane(self, step: int) -> None:
        # A folded lane has nothing to act on: the keys skip it (unless every lane is folded).
        lanes = [lane for lane in self.lanes if not lane.has_class("-folded")] or self.lanes
        current = self._lane()
        index = lanes.index(current) if current in lanes else (0 if step > 0 else 1)
        lanes[(index + step) % len(lanes)].focus()

    def action_urgent_only(self) -> None:
        """!: P1 and P2 only (the others fold to their title lines, with their counts), or all again."""
        stack = self.query_one(LaneStack)
        stack.urgent_only = not stack.urgent_only
        stack.restack()
        if not stack.may_open(self._lane()):
            self.lanes[0].focus()
        self.notify("P1 and P2 only: ! shows every lane again." if stack.urgent_only else "Every lane shown.")

    def action_technicians(self) -> None:
        """T: every technician over the board, with the room the narrow board's panel lacks."""
        actions: dict[str, TechnicianAction] = {}
        if self.role is Role.DISPATCHER:
            actions = {
                "status": lambda technician: self._pick_tech_status(technician.id, technician.status),
                "callout": self._call_out,
            }
        self._overlay = TechniciansScreen(self.session.model, self.session.now, actions)
        self.app.push_screen(self._overlay)

    def shows(self, screen: Screen[object]) -> bool:
        """Whether `screen` is this board or shows its live parts (the countdowns must move)."""
        return screen is self or screen is self._overlay

    def show_keys(self) -> None:
        """The key bar: the keys for this role that fit, `T` first when the panel is folded; on a short
        terminal the burst's words in front."""
        keys = [
            Key(self._key_words(binding.key), binding.description, binding.action)
            for binding in self._bindings_for_role()
            if binding.show
        ]
        if self.has_class("-narrow") and self.check_action("technicians", ()):
            keys.insert(0, Key("T", "Technicians", "technicians"))
        message = ""
        if self.burst is not None and self.has_class("-short"):
            message = self._burst_words(self.burst, short=True)
        self.query_one(KeyBar).show(keys, message)

    def _key_words(self, keys: str) -> str:
        """A binding's keys as they are typed (`/`, `?`, `!`), not as Textual names them."""
        return " / ".join(self.app.get_key_display(Binding(key, "")) for key in keys.split(","))

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self.refresh_board(None, technicians_changed=False)

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        # Back to the lanes, at the first one the filter left anything in.
        lane = self._lane()
        if not lane.rows:
            lane = next((candidate for candidate in self.lanes if candidate.rows), lane)
        lane.focus()

    def show_burst(self, burst: BurstEvent) -> None:
        """A burst was detected: say so on one line; `g` groups it into an incident, Esc dismisses it."""
        if self.role is not Role.DISPATCHER or self._taken_down():
            return
        self.burst = burst
        banner = self.query_one("#burst-banner", Static)
        banner.update(self._burst_words(burst))
        self._place_burst()

    @staticmethod
    def _burst_words(burst: BurstEvent, *, short: bool = False) -> str:
        where = {"client": f"from {burst.value}", "site": f"at {burst.value}", "category": f"in {burst.value}"}
        if short:  # in the key bar, before the keys
            return f"Burst: {len(burst.ticket_ids)} {where[burst.group]} · g groups"
        return (f"Burst: {len(burst.ticket_ids)} tickets {where[burst.group]} in {burst.window_minutes} min"
                " — g groups them into an incident")  # fmt: skip

    def hide_burst(self) -> None:
        self.burst = None
        self._place_burst()

    def _place_burst(self) -> None:
        # A line of its own, or on a short terminal the front of the key bar.
        self.query_one("#burst-banner", Static).display = self.burst is not None and not self.has_class("-short")
        self.show_keys()

    def action_clear(self) -> None:
        """Esc: clear the marks, else the filter, else dismiss the burst banner."""
        field = self.query_one("#filter", Input)
        if any(lane.marked for lane in self.lanes):
            for lane in self.lanes:
                lane.marked.clear()
                lane.forget(set(lane._strips))
                lane.refresh()
            return
        if field.display or self.query_text:
            field.value = ""
            field.display = False
            self.query_text = ""
            self.refresh_board(None, technicians_changed=False)
            self._lane().focus()
            return
        if self.burst is not None:
            self.hide_burst()

    def action_help(self) -> None:
        keys = [(self._key_words(binding.key), binding.description) for binding in self._bindings_for_role()]
        if self.role is Role.TECHNICIAN:  # one lane, no panel
            moving = [("↑ ↓ / j k", "move in your lane")]
        else:
            moving = [("↑ ↓ / j k", "move in a lane"), ("← → / h l", "other lane")]
            if not self.has_class("-narrow"):  # a folded panel is reached with T, not tab
                moving.append(("tab", "technician panel"))
        self.app.push_screen(HelpScreen([*moving, *keys], self.role.value))

    def _bindings_for_role(self) -> Iterable[Binding]:
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            action = binding.action.split("(")[0]
            if (binding.show or action in HELP_ONLY) and self.check_action(action, ()):
                yield binding

    def action_detail(self) -> None:
        ticket = self._ticket()
        if ticket is not None:
            self.app.push_screen(TicketDetail(self.session, ticket))

    # --- dispatcher ----------------------------------------------------------------------------------

    def action_mark(self) -> None:
        lane = self._lane()
        ticket = lane.current
        if ticket is None:
            return
        lane.marked.symmetric_difference_update({ticket.id})
        lane.forget({ticket.id})
        lane.action_cursor(1)
        lane.refresh()

    def action_assign(self) -> None:
        marked = self._marked()
        tickets = marked or ([t] if (t := self._ticket()) else [])
        if not tickets:
            return

        def assign(tech_id: str | None) -> None:
            if tech_id is None:
                return
            if len(tickets) == 1:
                ticket = tickets[0]
                self._send(
                    Assign(command_id=self.session.new_id(), ticket_id=ticket.id, tech_id=tech_id,
                           expected_version=ticket.version),
                    f"assign {ticket.id} to {tech_id}", (ticket.id,),
                )  # fmt: skip
            else:
                ids = [t.id for t in tickets]
                self._send(
                    BulkAssign(command_id=self.session.new_id(), ticket_ids=ids, tech_id=tech_id),
                    f"assign {len(ids)} tickets to {tech_id}",
                    tuple(ids),
                )
                for lane in self.lanes:
                    lane.marked.clear()

        self.app.push_screen(AssignPicker(self.session, tickets), assign)

    async def action_assign_best(self) -> None:
        ticket = self._ticket()
        if ticket is None:
            return
        candidates = [c for c in await self.session.rank_candidates(ticket) if c.ranked]
        if not candidates:
            self.notify(f"Nobody available has the skills for {ticket.id}; use a to choose.", severity="warning")
            return
        best = candidates[0].tech_id
        self._send(
            Assign(command_id=self.session.new_id(), ticket_id=ticket.id, tech_id=best,
                   expected_version=ticket.version),
            f"assign {ticket.id} to {best}", (ticket.id,),
        )  # fmt: skip

    def action_unassign(self) -> None:
        ticket = self._ticket()
        if ticket is None:
            return
        self._send(
            Unassign(command_id=self.session.new_id(), ticket_id=ticket.id, expected_version=ticket.version),
            f"unassign {ticket.id}",
            (ticket.id,),
        )

    def action_priority(self) -> None:
        ticket = self._ticket()
        if ticket is None:
            return
        choices = [(p.value, f"{p.value}") for p in Priority]

        def chosen(value: str | None) -> None:
            if value is not None and value != ticket.priority.value:
                self._send(
                    SetPriority(command_id=self.session.new_id(), ticket_id=ticket.id,
                                priority=Priority(value), expected_version=ticket.version),
                    f"move {ticket.id} to {value}", (ticket.id,),
                )  # fmt: skip

        self.app.push_screen(ChoicePicker(f"Priority of {ticket.id}", choices, ticket.priority.value), chosen)

    def action_status(self) -> None:
        ticket = self._ticket()
        if ticket is None:
            return
        if self.role is Role.TECHNICIAN:
            choices = [(s.value, label) for s, label in TECHNICIAN_STATUSES]
        else:
            choices = [(s.value, s.value.replace("_", " ")) for s in TicketStatus]

        def chosen(value: str | None) -> None:
            if value is None or value == ticket.status.value:
                return
            if value == TicketStatus.ON_HOLD:
                self._hold(ticket)
            else:
                self._set_status(ticket, TicketStatus(value))

        self.app.push_screen(ChoicePicker(f"Status of {ticket.id}", choices, ticket.status.value), chosen)

    def _hold(self, ticket: Ticket) -> None:
        """Put the ticket on hold once the reason is chosen: the client's contract says which reasons
        stop its SLA clock. Esc sends nothing."""
        if ticket.status is TicketStatus.ON_HOLD:
            reason = HOLD_REASON_WORDS[ticket.hold_reason or HoldReason.OTHER]
            self.notify(f"{ticket.id} is already on hold ({reason}).", severity="warning")
            return
        choices = [(reason.value, words) for reason, words in HOLD_REASON_WORDS.items()]

        def chosen(value: str | None) -> None:
            if value is not None:
                self._set_status(ticket, TicketStatus.ON_HOLD, HoldReason(value))

        self.app.push_screen(ChoicePicker(f"Why is {ticket.id} on hold?", choices), chosen)

    def _set_status(self, ticket: Ticket, status: TicketStatus, reason: HoldReason | None = None) -> None:
        words = status.value.replace("_", " ") + (f" ({HOLD_REASON_WORDS[reason]})" if reason else "")
        self._send(
            SetStatus(command_id=self.session.new_id(), ticket_id=ticket.id, status=status, reason=reason,
                      expected_version=ticket.version),
            f"set {ticket.id} {words}", (ticket.id,),
        )  # fmt: skip

    def _technician(self) -> Technician | None:
        """The technician selected in the panel (or a word that there is none)."""
        panels = list(self.query(TechnicianPanel))
        technician = panels[0].current if panels else None
        if technician is None:
            self.notify("Select a technician in the panel (Tab) first.", severity="warning")
        return technician

    def action_tech_status(self) -> None:
        technician = self._technician()
        if technician is not None:
            self._pick_tech_status(technician.id, technician.status)

    def action_callout(self) -> None:
        """c: call the selected technician in, with an optional reason; the server may refuse (already
        on the clock, one waiting) or warn (a fatigue rule), and the words are shown either way."""
        technician = self._technician()
        if technician is not None:
            self._call_out(technician)

    def _call_out(self, technician: Technician) -> None:
        on_call = " (on call)" if technician.on_call else ""

        def send(reason: str | None) -> None:
            if reason is not None:
                self.run_worker(self.session.call_out(technician.id, reason), group="commands")

        self.app.push_screen(
            TextPrompt(f"Call out {technician.id} ({technician.name}){on_call}",
                       "reason, optional: what for (they read it on their board)",
                       "Enter sends the call-out · Esc cancels"),
            send,
        )  # fmt: skip

    def action_forecast(self) -> None:
        self.app.push_screen(ForecastScreen(self.session))

    def action_undo(self) -> None:
        """z: say what would be taken back; Enter takes it back, Esc leaves it."""
        change = self.session.last_change()
        if change is None:
            self.notify("Nothing of yours to undo: changes can be taken back for 15 minutes.", severity="warning")
            return
        ids = change.ticket_ids
        details = ""
        if ids:
            details = f"touches {', '.join(ids[:6])}" + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_worker(self.session.undo(change), group="commands")

        heading = f"undo: {change.what} at {change.at.astimezone():%H:%M}"
        hint = "Enter takes it back (all or nothing) · Esc cancels"
        self.app.push_screen(ConfirmPrompt(heading, details, hint), confirmed)

    def _pick_tech_status(self, tech_id: str, current: TechStatus) -> None:
        choices = [(s.value, s.value.replace("_", " ")) for s in TechStatus]

        def chosen(value: str | None) -> None:
            if value is not None and value != current.value:
                self._send(
                    SetTechStatus(command_id=self.session.new_id(), tech_id=tech_id,
                                  status=TechStatus(value)),
                    f"set {tech_id} {value.replace('_', ' ')}",
                )  # fmt: skip

        self.app.push_screen(ChoicePicker(f"Availability of {tech_id}", choices, current.value), chosen)

    async def action_rebalance(self) -> None:
        moves = await self.session.rebalance_plan()
        if moves is None:
            return
        if not moves:
            self.notify("Nothing to rebalance: nobody is over capacity and no P1/P2 waits for someone with room.")
            return

        def apply(confirmed: bool | None) -> None:
            if confirmed:
                self._send(
                    ApplyPlan(command_id=self.session.new_id(), moves=moves),
                    f"{len(moves)} move{'s' if len(moves) != 1 else ''} of the rebalance",
                    tuple(m.ticket_id for m in moves),
                )

        self.app.push_screen(PlanPreview(moves), apply)

    # --- incidents -----------------------------------------------------------------------------------

    def action_group_burst(self) -> None:
        burst = self.burst
        if burst is None:
            self.notify("No burst to group: the banner shows one when it is detected.", severity="warning")
            return
        tickets = self.session.model.state.tickets
        # Tickets closed or grouped since the burst was reported cannot join the incident.
        ids = [
            tid for tid in burst.ticket_ids if tid in tickets and tickets[tid].is_open and not tickets[tid].incident_id
        ]
        title = f"{burst.value} outage"
        self._send(
            CreateIncident(command_id=self.session.new_id(), title=title, ticket_ids=ids),
            f"open incident {title!r} ({len(ids)} tickets)",
            tuple(ids),
        )
        self.hide_burst()

    def _incident_tickets(self) -> tuple[str, list[Ticket]] | None:
        """The selected ticket's incident and its open tickets, or None (and a word why)."""
        ticket = self._ticket()
        if ticket is None:
            return None
        if ticket.incident_id is None:
            self.notify(f"{ticket.id} is not part of an incident.", severity="warning")
            return None
        tickets = self.session.model.state.tickets.values()
        members = sorted((t for t in tickets if t.incident_id == ticket.incident_id and t.is_open), key=lambda t: t.id)
        if not members:
            self.notify(f"{ticket.incident_id} has no open tickets.", severity="warning")
            return None
        return ticket.incident_id, members

    def action_incident_assign(self) -> None:
        found = self._incident_tickets()
        if found is None:
            return
        incident_id, tickets = found

        def assign(tech_id: str | None) -> None:
            if tech_id is None:
                return
            ids = [t.id for t in tickets]
            self._send(
                BulkAssign(command_id=self.session.new_id(), ticket_ids=ids, tech_id=tech_id),
                f"assign {incident_id} ({len(ids)} tickets) to {tech_id}",
                tuple(ids),
            )

        self.app.push_screen(AssignPicker(self.session, tickets), assign)

    def action_incident_priority(self) -> None:
        found = self._incident_tickets()
        if found is None:
            return
        incident_id, tickets = found
        choices = [(p.value, p.value) for p in Priority]

        def chosen(value: str | None) -> None:
            if value is None:
                return
            for ticket in tickets:
                if ticket.priority.value != value:
                    self._send(
                        SetPriority(command_id=self.session.new_id(), ticket_id=ticket.id,
                                    priority=Priority(value)),
                        f"move {ticket.id} to {value}", (ticket.id,),
                    )  # fmt: skip

        self.app.push_screen(ChoicePicker(f"Priority of {incident_id}", choices, tickets[0].priority.value), chosen)

    def action_incident_resolve(self) -> None:
        found = self._incident_tickets()
        if found is None:
            return
        incident_id, tickets = found

        def resolve(text: str | None) -> None:
            if not text:
                return
            for ticket in tickets:
                self._send(
                    AddNote(command_id=self.session.new_id(), ticket_id=ticket.id, text=text),
                    f"note on {ticket.id}", (ticket.id,),
                )  # fmt: skip
                self._send(
                    SetStatus(command_id=self.session.new_id(), ticket_id=ticket.id,
                              status=TicketStatus.RESOLVED),
                    f"resolve {ticket.id}", (ticket.id,),
                )  # fmt: skip

        heading = f"Resolve {incident_id}: {len(tickets)} open tickets. The note goes on each"
        self.app.push_screen(NoteEditor(tickets[0], heading), resolve)

    def action_update_clients(self) -> None:
        found = self._incident_tickets()
        if found is None:
            return
        incident_id, tickets = found
        clients = sorted({t.client for t in tickets})

        def send(text: str | None) -> None:
            if text:
                self._send(
                    UpdateClients(command_id=self.session.new_id(), incident_id=incident_id, message=text),
                    f"update the clients of {incident_id}",
                    tuple(t.id for t in tickets),
                )

        # Who has contacts is the server's to know (the SLA file): each ticket's history then says who
        # the update reached, and a client with none is said there too.
        heading = f"Update the clients of {incident_id}: {', '.join(clients)}"
        self.app.push_screen(NoteEditor(tickets[0], heading), send)

    # --- technician ----------------------------------------------------------------------------------

    def action_start(self) -> None:
        if (ticket := self._ticket()) is not None:
            self._set_status(ticket, TicketStatus.IN_PROGRESS)

    def action_hold(self) -> None:
        if (ticket := self._ticket()) is not None:
            self._hold(ticket)

    def action_resolve(self) -> None:
        if (ticket := self._ticket()) is not None:
            self._set_status(ticket, TicketStatus.RESOLVED)

    def action_note(self) -> None:
        ticket = self._ticket()
        if ticket is None:
            return

        def save(text: str | None) -> None:
            if text:
                self._send(
                    AddNote(command_id=self.session.new_id(), ticket_id=ticket.id, text=text),
                    f"note on {ticket.id}",
                    (ticket.id,),
                )

        self.app.push_screen(NoteEditor(ticket), save)

    def _show_callout(self) -> None:
        """A technician's board: a call-out waiting for their answer shows on a banner, and once in a
        prompt in front of everything; the prompt closes if the call-out is answered elsewhere or expires."""
        if self.role is not Role.TECHNICIAN:
            return
        model = self.session.model
        callout = model.my_callout()
        banner = self.query_one("#callout-banner", Static)
        prompt = self._callout_prompt
        if prompt is not None and (callout is None or prompt.callout.id != callout.id):
            if prompt.is_current:
                prompt.dismiss(None)
            self._callout_prompt = None
        if callout is None:
            banner.display = False
            return
        # When to answer first: on a narrow terminal the reason is what gets cut.
        why = f": {callout.reason}" if callout.reason else ""
        banner.update(f"☎ Call-out {callout.id}: answer by {callout.expires_at.astimezone():%H:%M} (y)"
                      f" · from {model.callout_sender(callout)}{why}")  # fmt: skip
        banner.display = True
        if callout.id not in self._prompted:
            self._prompted.add(callout.id)
            self._prompt_callout(callout)

    def _prompt_callout(self, callout: Callout) -> None:
        def answered(accept: bool | None) -> None:
            self._callout_prompt = None
            if accept is not None:
                self.run_worker(self.session.answer_callout(callout, accept), group="commands")

        self._callout_prompt = CalloutPrompt(self.session, callout)
        self.app.push_screen(self._callout_prompt, answered)

    def action_answer_callout(self) -> None:
        """y: the call-out waiting for this technician, to accept or decline."""
        callout = self.session.model.my_callout()
        if callout is None:
            self.notify("No call-out is waiting for your answer.", severity="warning")
        elif self._callout_prompt is None:
            self._prompt_callout(callout)

    def action_availability(self) -> None:
        me = self.session.model.tech_id
        technician = self.session.model.state.technicians.get(me or "")
        if me is None or technician is None:
            self.notify("You are not on the technician roster yet; ask the dispatcher.", severity="warning")
            return
        self._pick_tech_status(me, technician.status)
