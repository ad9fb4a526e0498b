"""What a board knows: its copy of the dispatch state, and what it derives from it for the screen.

No Textual here. The app feeds it frames in batches (`apply_batch`); widgets read lanes, counts and
technicians; the session keeps its pending commands.
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from enum import Enum
from typing import Literal, overload

from sortedcontainers import SortedList

from dispatch.core.calendars import ALWAYS_OPEN, Calendar
from dispatch.core.durations import format_ago
from dispatch.core.models import (
    OPEN_STATUSES,
    Callout,
    CalloutStatus,
    HoldReason,
    Priority,
    Role,
    Technician,
    Ticket,
)
from dispatch.core.protocol import (
    BurstEvent,
    CalloutEvent,
    Error,
    Event,
    ForecastAnswer,
    SlaEvent,
    Snapshot,
    TechnicianEvent,
    TicketEvent,
    Welcome,
)
from dispatch.core.sla import SlaReading, SlaState, alert_state, read_clock, warning_at
from dispatch.core.state import OFF_THE_CLOCK, DispatchState, apply_event

ARRIVAL_WINDOW = timedelta(minutes=30)
# Why a ticket waits, in the dispatcher's words: the hold pickers and the detail say these.
HOLD_REASON_WORDS = {
    HoldReason.AWAITING_CLIENT: "awaiting the client",
    HoldReason.AWAITING_PARTS: "awaiting parts",
    HoldReason.AWAITING_THIRD_PARTY: "awaiting a third party",
    HoldReason.OTHER: "other",
}
Severity = Literal["information", "warning", "error"]
# The SLA events the board says in words, most serious first: kind, title, severity.
ALERT_KINDS: tuple[tuple[str, str, Severity], ...] = (
    ("sla_breached", "SLA breached", "error"),
    ("escalation", "Escalation", "warning"),
)
# Hours on the clock in the last 24 h from which the panel colours a technician as near the fatigue
# limit. The board is not told the roster's limits (the server judges them, and says so in `suggest`
# and in an override's ack): 9 h is an hour short of the usual 10 h a day.
TIRED_HOURS = 9.0
# Past the end of their shift by this much while still on the clock, a technician is on overtime (less
# is the moment between the shift's end and the server's own change of their status).
OVERTIME_AFTER = timedelta(minutes=1)


Entry = tuple[float, str]
"""A ticket in a sorted index: (an instant as a POSIX timestamp, its id). Timestamps, because the
instants the server sends each carry their own time zone object, and comparing two such datetimes
goes through both zones: sorting a snapshot's 5,000 tickets by them took 140 ms, by floats a few."""


class Applied(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # already had it (a resume overlapping what we held)
    GAP = "gap"  # an event is missing before this one: resync


@dataclass
class Batch:
    """What applying one flush of frames changed, for the screen to redraw just that."""

    changed: set[str] | None = field(default_factory=set)  # ticket ids; None: everything (a snapshot)
    events: list[Event] = field(default_factory=list)  # applied, in order
    gap: bool = False  # an event was missing: the rest was dropped and the link must resync

    @property
    def redraw(self) -> bool:
        return self.changed is None or bool(self.events)

    @property
    def technicians_changed(self) -> bool:
        return self.changed is None or changed_technicians(self.events)

    @property
    def burst(self) -> BurstEvent | None:
        """The latest burst reported in the batch: the banner shows one at a time."""
        bursts = [e for e in self.events if isinstance(e, BurstEvent)]
        return bursts[-1] if bursts else None


@dataclass(frozen=True)
class Alert:
    """A notification the board raises by itself: breaches and escalations in words."""

    title: str
    message: str
    severity: Severity


@dataclass(frozen=True)
class TechnicianTime:
    """A technician's time as the board reads it at one moment: what the panel's columns say."""

    shift_end: datetime | None  # the end of the shift they are on, or the one they work past
    overtime: timedelta | None  # how long past `shift_end` they are still on the clock
    on_call: bool
    hours: float  # on the clock in the last 24 h, counted on from what the server last said
    callout: Callout | None  # one waiting for their answer, or one they accepted and still work on

    @property
    def tired(self) -> bool:
        """Near the fatigue limit, as far as the board can tell (`TIRED_HOURS`)."""
        return self.hours >= TIRED_HOURS


@dataclass(frozen=True)
class PeopleCounts:
    """The header's count of people's time: who is on a shift, on call, and called out."""

    on_the_clock: int  # any status but off shift or a break: what is said without a roster
    on_shift: int
    on_call: int
    callouts_waiting: int
    callouts_accepted: int  # accepted call-outs (seen by this board) of people still on the clock


@dataclass
class PendingCommand:
    """A command sent and not yet answered: its row shows it until the ack or error comes."""

    label: str
    ticket_ids: tuple[str, ...] = ()


@dataclass
class BoardModel:
    """The board's copy of the truth, fed only by the server's frames."""

    # The calendars tickets' clocks run on, by name (from the snapshot); any other is 24x7.
    calendars: dict[str, Calendar] = field(default_factory=dict)
    state: DispatchState = field(default_factory=DispatchState)
    role: Role | None = None
    user: str = ""
    tech_id: str | None = None
    has_snapshot: bool = False
    pending: dict[str, PendingCommand] = field(default_factory=dict)
    # The last event about each ticket, to say in words what happened when a command loses a race.
    last_change: dict[str, TicketEvent] = field(default_factory=dict)
    arrivals: list[float] = field(default_factory=list)  # creation times, in order (timestamps: see Entry)
    # Open tickets per lane, kept sorted by (due, id) as events arrive: a busy board never re-sorts
    # thousands of tickets ten times a second. Also open tickets held per technician.
    _lanes: dict[Priority, SortedList] = field(default_factory=dict)
    # Open tickets whose clock runs, by due and by the instant their current target's warning falls
    # (75 % used); a ticket whose clock stands on hold is read at its pause instead, as its row is.
    _dues: SortedList = field(default_factory=SortedList)
    _warnings: SortedList = field(default_factory=SortedList)
    _paused: dict[str, Ticket] = field(default_factory=dict)
    _load: Counter[str] = field(default_factory=Counter)
    touched: set[Priority] = field(default_factory=set)  # lanes changed since the screen last looked
    # People's time. The server says each technician's hours as of an event (its `ts`) or the snapshot
    # (when it arrived here): the board counts on from then while they are on the clock. The last
    # shift end seen for each technician is kept while they work, because once a shift is over the
    # server says `on_shift_until: null` and the overtime is counted from the end it said before.
    _time_as_of: dict[str, datetime] = field(default_factory=dict)
    _shift_ends: dict[str, datetime] = field(default_factory=dict)
    # Who sent each call-out ("auto": the server's ladder), from its events; a snapshot does not say.
    callout_senders: dict[str, str] = field(default_factory=dict)
    # Accepted call-outs by technician, while they stay on the clock.
    _called_in: dict[str, Callout] = field(default_factory=dict)
    # The server's latest breach forecast for the board as it stands (the header says it).
    forecast: ForecastAnswer | None = None

    # --- feeding -------------------------------------------------------------------------------------

    def welcome(self, frame: Welcome) -> None:
        self.role, self.user, self.tech_id = frame.role, frame.user, frame.tech_id

    def load_snapshot(self, snapshot: Snapshot, received_at: datetime | None = None) -> None:
        """Replace everything with `snapshot`; `received_at` is when it came (the technicians' hours
        are as of then; None: they are not counted on)."""
        self.state = DispatchState(
            tickets={t.id: t for t in snapshot.tickets},
            technicians={t.id: t for t in snapshot.technicians},
            incidents={i.id: i for i in snapshot.incidents},
            seq=snapshot.seq,
            callouts={c.id: c for c in snapshot.callouts},
        )
        self._time_as_of = {t.id: received_at for t in snapshot.technicians} if received_at else {}
        self._shift_ends = {t.id: t.on_shift_until for t in snapshot.technicians if t.on_shift_until}
        # A snapshot lists only the call-outs still waiting, so accepted ones seen before are forgotten.
        self._called_in = {}
        self.arrivals = sorted(t.created_at.timestamp() for t in snapshot.tickets)
        self.calendars = {c.name: Calendar.from_hours(c) for c in snapshot.calendars}
        # Sorted once rather than ticket by ticket: the snapshot stands between a board and its first paint.
        lanes: dict[Priority, list[Entry]] = {p: [] for p in Priority}
        dues: list[Entry] = []
        warnings: list[Entry] = []
        self._paused = {}
        self._load = Counter()
        for ticket in snapshot.tickets:
            if ticket.status not in OPEN_STATUSES:
                continue
            lane, due, warning = self._entries(ticket)
            lanes[ticket.priority].append(lane)
            if due is None or warning is None:
                self._paused[ticket.id] = ticket
            else:
                dues.append(due)
                warnings.append(warning)
            if ticket.assignee is not None:
                self._load[ticket.assignee] += 1
        self._lanes = {priority: SortedList(entries) for priority, entries in lanes.items()}
        self._dues = SortedList(dues)
        self._warnings = SortedList(warnings)
        self.touched = set(Priority)
        self.has_snapshot = True

    @staticmethod
    def _entries(ticket: Ticket) -> tuple[Entry, Entry | None, Entry | None]:
        """An open ticket's entries: in its lane, and by due and warning instant; a ticket whose clock
        stands on hold has neither of the last two (it is read at its pause)."""
        _, due, warn = warning_at(ticket)
        lane = due.timestamp(), ticket.id
        if ticket.paused_at is not None:
            return lane, None, None
        return lane, lane, (warn.timestamp(), ticket.id)

    def _index(self, ticket: Ticket, sign: int) -> None:
        """Add (+1) or remove (-1) a ticket from the lane index and the load counts."""
        if ticket.status not in OPEN_STATUSES:
            return
        lane, due, warning = self._entries(ticket)
        entries = self._lanes[ticket.priority]
        if sign > 0:
            entries.add(lane)
            if due is None or warning is None:
                self._paused[ticket.id] = ticket
            else:
                self._dues.add(due)
                self._warnings.add(warning)
        else:
            entries.discard(lane)
            if due is None or warning is None:
                self._paused.pop(ticket.id, None)
            else:
                self._dues.discard(due)
                self._warnings.discard(warning)
        if ticket.assignee is not None:
            self._load[ticket.assignee] += sign
        self.touched.add(ticket.priority)

    def apply(self, event: Event) -> Applied:
        if event.seq <= self.state.seq:
            return Applied.DUPLICATE
        # A technician's stream is filtered by the server, so only full views can see a gap.
        if self.role is not Role.TECHNICIAN and event.seq != self.state.seq + 1:
            return Applied.GAP
        before = self.state.tickets.get(event.ticket.id) if isinstance(event, TicketEvent) else None
        apply_event(self.state, event)
        if isinstance(event, TechnicianEvent | CalloutEvent):
            self._keep_time(event)
        if isinstance(event, TicketEvent):
            if before is not None:
                self._index(before, -1)
            self.last_change[event.ticket.id] = event
            if event.kind == "ticket_created":
                bisect.insort(self.arrivals, event.ticket.created_at.timestamp())
            if self.role is Role.TECHNICIAN and event.ticket.assignee != self.tech_id:
                # Taken from this technician: it leaves their lane.
                self.state.tickets.pop(event.ticket.id, None)
            else:
                self._index(event.ticket, +1)
        return Applied.APPLIED

    def _keep_time(self, event: TechnicianEvent | CalloutEvent) -> None:
        if isinstance(event, CalloutEvent):
            callout = event.callout
            self.callout_senders.setdefault(callout.id, event.actor)
            if callout.status is CalloutStatus.ACCEPTED:
                self._called_in[callout.tech_id] = callout
            return
        technician = event.technician
        self._time_as_of[technician.id] = event.ts
        if technician.on_shift_until is not None:
            self._shift_ends[technician.id] = technician.on_shift_until
        if technician.status in OFF_THE_CLOCK:
            self._shift_ends.pop(technician.id, None)
            self._called_in.pop(technician.id, None)

    def apply_batch(self, frames: Iterable[Snapshot | Event], received_at: datetime | None = None) -> Batch:
        """Apply frames in order. A snapshot replaces everything before it; at a gap the rest is
        dropped, since the server resends everything after the last seq applied once we reconnect.
        `received_at`: when the frames came (a snapshot's hours are as of then)."""
        batch = Batch()
        for frame in frames:
            if isinstance(frame, Snapshot):
                self.load_snapshot(frame, received_at)
                batch.changed = None
                batch.events.clear()
                continue
            outcome = self.apply(frame)
            if outcome is Applied.GAP:
                batch.gap = True
                break
            if outcome is Applied.APPLIED:
                batch.events.append(frame)
        if batch.changed is not None:
            batch.changed |= changed_tickets(batch.events)
        return batch

    def alerts(self, events: Iterable[Event]) -> list[Alert]:
        """Breaches and escalations in words, one per kind per batch (a burst of forty breaches is one
        message, not forty). A wallboard raises none: nobody there acts on them."""
        if self.role is Role.VIEWER:
            return []
        sla_events = [e for e in events if isinstance(e, SlaEvent)]
        alerts = []
        for kind, title, severity in ALERT_KINDS:
            hits = [e for e in sla_events if e.kind == kind]
            if not hits:
                continue
            names = ", ".join(
                f"{e.ticket_id} ({e.target})" if kind == "sla_breached" else e.ticket_id for e in hits[:4]
            )
            more = f" and {len(hits) - 4} more" if len(hits) > 4 else ""
            what = "breached" if kind == "sla_breached" else "P1 still unassigned"
            alerts.append(Alert(title, f"{what}: {names}{more}", severity))
        return alerts

    # --- reading -------------------------------------------------------------------------------------

    def calendar(self, name: str) -> Calendar:
        """A calendar by name, as the snapshot gave it; one the board was not told of counts as 24x7."""
        return self.calendars.get(name, ALWAYS_OPEN)

    def clock(self, ticket: Ticket, now: datetime) -> SlaReading:
        """How the ticket's SLA stands at `now`, in its own calendar's open time."""
        return read_clock(ticket, now, self.calendar(ticket.calendar))

    def lane(self, priority: Priority | None, query: str = "") -> Sequence[Ticket]:
        """Open tickets of one priority (None: all, for a technician's own lane), most urgent first.

        Sorted by due time, which is sorting by time left without changing as the clock runs. One
        priority unfiltered is a `LaneView`: it reads the model as it stands, so it moves on with
        every batch applied (a copy of thousands of tickets per lane per flush was the flush's
        largest cost); a filtered lane or a technician's own is a list, as of now."""
        tickets = self.state.tickets
        if priority is not None and not query:
            return LaneView(self._lanes.setdefault(priority, SortedList()), tickets)
        # One sorted list per lane: merging lists in Python per flush cost more than the rest of it.
        entries: Iterable[Entry] = (
            heapq.merge(*self._lanes.values()) if priority is None else self._lanes.get(priority, ())
        )
        if not query:
            return [tickets[ticket_id] for _, ticket_id in entries]
        match = matcher(query)
        return [ticket for _, ticket_id in entries if match(ticket := tickets[ticket_id])]

    def lane_size(self, priority: Priority) -> int:
        return len(self._lanes.get(priority, ()))

    def lane_counts(self) -> dict[Priority, int]:
        return {priority: self.lane_size(priority) for priority in Priority}

    def technicians(self) -> list[Technician]:
        return sorted(self.state.technicians.values(), key=lambda t: t.id)

    def loads(self) -> dict[str, int]:
        """Open tickets held per technician."""
        return dict(self._load)

    def sla_counts(self, now: datetime) -> tuple[int, int]:
        """(at risk, breached) among open tickets: the same thresholds as `read_clock`."""
        # The server set each ticket's warning and due instants in its calendar's open time, so
        # counting is bisection: warned minus breached is at risk. A clock stood still on hold is
        # read at its pause (the server moves its instants on only when the hold ends): few tickets.
        breached = self._dues.bisect_right((now.timestamp(), "\uffff"))
        at_risk = self._warnings.bisect_right((now.timestamp(), "\uffff")) - breached
        for ticket in self._paused.values():
            state = alert_state(ticket, now)[2]
            at_risk += state is SlaState.WARNING
            breached += state is SlaState.BREACHED
        return at_risk, breached

    def arrivals_per_minute(self, now: datetime, minutes: int = 30) -> list[int]:
        """Tickets created in each of the last `minutes` minutes, oldest first."""
        start = (now - timedelta(minutes=minutes)).timestamp()
        if self.arrivals and self.arrivals[0] < start - ARRIVAL_WINDOW.total_seconds():
            del self.arrivals[: bisect.bisect_left(self.arrivals, start)]
        edges = [bisect.bisect_left(self.arrivals, start + 60 * m) for m in range(minutes + 1)]
        edges[-1] = bisect.bisect_right(self.arrivals, now.timestamp())
        return [edges[m + 1] - edges[m] for m in range(minutes)]

    # --- people's time -------------------------------------------------------------------------------

    def waiting_callouts(self) -> list[Callout]:
        """Call-outs waiting for an answer, oldest first."""
        waiting = [c for c in self.state.callouts.values() if c.status is CalloutStatus.WAITING]
        return sorted(waiting, key=lambda c: (c.sent_at, c.id))

    def my_callout(self) -> Callout | None:
        """On a technician's board: the oldest call-out waiting for their answer."""
        return next((c for c in self.waiting_callouts() if c.tech_id == self.tech_id), None)

    def callout_sender(self, callout: Callout) -> str:
        """Who asks, in words: a dispatcher's name, or the server's ladder for a waiting ticket."""
        sender = self.callout_senders.get(callout.id)
        if sender == "auto" or (sender is None and callout.ticket_id is not None):
            return "the server (nobody on shift can take a waiting ticket)"
        return sender or "a dispatcher"

    def technician_time(self, technician: Technician, now: datetime) -> TechnicianTime:
        """`technician`'s shift end, overtime, on-call mark, hours today and call-out at `now`."""
        working = technician.status not in OFF_THE_CLOCK
        hours = technician.hours_today
        as_of = self._time_as_of.get(technician.id)
        if working and as_of is not None and now > as_of:
            hours += (now - as_of).total_seconds() / 3600
        shift_end = technician.on_shift_until or (self._shift_ends.get(technician.id) if working else None)
        overtime = now - shift_end if working and shift_end and now - shift_end >= OVERTIME_AFTER else None
        waiting = next((c for c in self.waiting_callouts() if c.tech_id == technician.id), None)
        callout = waiting or (self._called_in.get(technician.id) if working else None)
        return TechnicianTime(shift_end, overtime, technician.on_call, hours, callout)

    def people_counts(self, now: datetime) -> PeopleCounts:
        """Who is on a shift now, on call, and called out (waiting for an answer, or accepted)."""
        technicians = self.state.technicians.values()
        on_shift = sum(1 for t in technicians if t.on_shift_until is not None and t.on_shift_until > now)
        on_call = sum(1 for t in technicians if t.on_call)
        accepted = sum(
            1 for tech_id in self._called_in
            if (t := self.state.technicians.get(tech_id)) is not None and t.status not in OFF_THE_CLOCK
        )  # fmt: skip
        working = sum(1 for t in technicians if t.status not in OFF_THE_CLOCK)
        return PeopleCounts(working, on_shift, on_call, len(self.waiting_callouts()), accepted)

    def is_pending(self, ticket_id: str) -> bool:
        return any(ticket_id in p.ticket_ids for p in self.pending.values())

    def explain_refusal(self, error: Error, now: datetime) -> str:
        """The refusal in words: for a lost race, who changed the ticket and how long ago."""
        current = error.current or {}
        ticket_id = current.get("id")
        change = self.last_change.get(ticket_id) if isinstance(ticket_id, str) else None
        if error.code == "conflict" and change is not None:
            ago = format_ago(now - change.ts)
            match change.kind:
                case "ticket_assigned" if change.previous_assignee:
                    what = f"was reassigned to {change.ticket.assignee}"
                case "ticket_assigned":
                    what = f"was assigned to {change.ticket.assignee}"
                case "ticket_unassigned":
                    what = "was unassigned"
                case "priority_changed":
                    what = f"was moved to {change.ticket.priority}"
                case "status_changed":
                    what = f"was set to {change.ticket.status.value.replace('_', ' ')}"
                case _:
                    what = "was changed"
            return f"{ticket_id} {what} by {change.actor} {ago} ago"
        return error.message


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def opens_label(opens_at: datetime, now: datetime, zone: tzinfo | None = None) -> str:
    """When a closed calendar opens, short, in `zone` (None: the dispatcher's, this process's local
    time): `Mon 09:00` within the coming week, where a weekday cannot be mistaken; `28 Dec` further
    off (a long holiday). Names are the board's own, not the locale's, so a column keeps its width."""
    local = opens_at.astimezone(zone)
    if opens_at - now < timedelta(days=7):
        return f"{_DAYS[local.weekday()]} {local:%H:%M}"
    return f"{local.day:02d} {_MONTHS[local.month - 1]}"


def format_hours(hours: float) -> str:
    """Hours worked as the panel writes them: `9h40`, `0h05` (to the nearest minute: the server says
    hours to two decimals)."""
    minutes = max(round(hours * 60), 0)
    return f"{minutes // 60}h{minutes % 60:02d}"


def people_words(counts: PeopleCounts, *, compact: bool = False) -> str:
    """The header's people: `on shift 7 · ☎ on call 2 · called out: 1 waiting, 1 accepted`. With nobody
    on a shift or on call (a server without a roster says neither), who is on the clock instead."""
    if not counts.on_shift and not counts.on_call:
        people = f"on the clock {counts.on_the_clock}"
    elif compact:
        people = f"shift {counts.on_shift} · ☎ {counts.on_call}"
    else:
        people = f"on shift {counts.on_shift} · ☎ on call {counts.on_call}"
    if compact:
        people += f" · asked {counts.callouts_waiting}" if counts.callouts_waiting else ""
        return people + (f" · in {counts.callouts_accepted}" if counts.callouts_accepted else "")
    called = [f"{counts.callouts_waiting} waiting"] if counts.callouts_waiting else []
    called += [f"{counts.callouts_accepted} accepted"] if counts.callouts_accepted else []
    return f"{people} · called out: {', '.join(called) or 'none'}"


def own_time_words(time: TechnicianTime) -> str:
    """A technician's header: their own shift, overtime, on-call mark and hours."""
    parts = []
    if time.overtime is not None and time.shift_end is not None:
        parts.append(f"+{format_hours(time.overtime.total_seconds() / 3600)} past your shift's end "
                     f"({time.shift_end.astimezone():%H:%M})")  # fmt: skip
    elif time.shift_end is not None:
        parts.append(f"on shift until {time.shift_end.astimezone():%H:%M}")
    else:
        parts.append("not on a shift")
    if time.on_call:
        parts.append("☎ on call")
    parts.append(f"{format_hours(time.hours)} on the clock in 24 h")
    return " · ".join(parts)


def horizon_words(minutes: int) -> str:
    """`2h`, `90m` -> `1h30`, `45m`: a forecast's horizon, short."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest}m"
    return f"{hours}h" if not rest else f"{hours}h{rest:02d}"


def forecast_words(answer: ForecastAnswer, *, compact: bool = False) -> str:
    """`forecast: 6 breaches in 2h (P1 2, P2 4) · short 2 network`; compact, without the split by
    priority (who is short says what to do about it): `forecast 6 in 2h · short 2 network`."""
    count = len(answer.breaches)
    within = horizon_words(answer.horizon_minutes)
    if compact:
        words = f"forecast {count or 'none'} in {within}"
    elif not count:
        return f"forecast: no breaches in {within}"
    else:
        split = ", ".join(f"{p.value} {n}" for p, n in sorted(answer.by_priority.items()) if n)
        words = f"forecast: {count} breach{'es' if count != 1 else ''} in {within} ({split})"
    if answer.short:
        words += " · short " + ", ".join(f"{s.technicians} {s.skill}" for s in answer.short)
    return words


class LaneView(Sequence[Ticket]):
    """One lane's open tickets, most urgent first, read from the model's index without a copy: it
    changes as the model does."""

    __slots__ = ("_entries", "_tickets")

    def __init__(self, entries: SortedList, tickets: dict[str, Ticket]) -> None:
        self._entries = entries
        self._tickets = tickets

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> Ticket: ...
    @overload
    def __getitem__(self, index: slice) -> list[Ticket]: ...
    def __getitem__(self, index: int | slice) -> Ticket | list[Ticket]:
        if isinstance(index, slice):
            return [self._tickets[ticket_id] for _, ticket_id in self._entries[index]]
        return self._tickets[self._entries[index][1]]

    def __iter__(self) -> Iterator[Ticket]:
        tickets = self._tickets
        return (tickets[ticket_id] for _, ticket_id in self._entries)


def lane_order(ticket: Ticket) -> Entry:
    """Where an open ticket stands in its lane: by due time (which is by time left, without changing
    as the clock runs), then id."""
    return warning_at(ticket)[1].timestamp(), ticket.id


def matcher(query: str) -> Callable[[Ticket], bool]:
    """Live filter: every word must appear in the id, title, client, site, skills, assignee or incident."""
    words = query.lower().split()
    if not words:
        return lambda _ticket: True

    def match(ticket: Ticket) -> bool:
        haystack = " ".join(
            (ticket.id, ticket.title, ticket.client, ticket.site, " ".join(ticket.skills),
             ticket.assignee or "unassigned", ticket.incident_id or "", ticket.category.value)
        ).lower()  # fmt: skip
        return all(word in haystack for word in words)

    return match


def changed_tickets(events: Iterable[Event]) -> set[str]:
    return {e.ticket.id for e in events if isinstance(e, TicketEvent)}


def changed_technicians(events: Iterable[Event]) -> bool:
    """Whether the technician panel must be redrawn: a technician or a call-out to one changed."""
    return any(isinstance(e, TechnicianEvent | CalloutEvent) for e in events)
