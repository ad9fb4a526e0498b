"""The dispatch state and the fold of events into it.

Pure: the server decides each command against its in-memory state (dispatch.core.rules and
dispatch.core.commands), then stores the events; replaying the stored events through `apply_event`
rebuilds the same state (a property test holds it to that), and the board applies the same events
to its own copy.
"""

from __future__ import annotations

import bisect
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sortedcontainers import SortedList

from dispatch.core.models import (
    Callout,
    CalloutStatus,
    Incident,
    Priority,
    Role,
    Technician,
    TechStatus,
    Ticket,
    TicketStatus,
)
from dispatch.core.protocol import CalloutEvent, Event, IncidentEvent, SlaEvent, TechnicianEvent, TicketEvent
from dispatch.core.roster import WorkLog
from dispatch.core.sla import warning_at

# Statuses in which a technician is not on the clock (the hours the fatigue rules count).
OFF_THE_CLOCK = frozenset({TechStatus.OFF_SHIFT, TechStatus.BREAK})


@dataclass(frozen=True)
class Actor:
    """Who sends a command: the token's name, role and (for a technician) their technician id."""

    user: str
    role: Role
    tech_id: str | None = None


UNDO_WINDOW = timedelta(minutes=15)
# The commands whose changes can be taken back (creating a ticket or a technician cannot).
UNDOABLE = frozenset(
    {"assign", "unassign", "bulk_assign", "apply_plan", "set_priority", "set_status", "set_tech_status", "link",
     "merge", "undo"}
)  # fmt: skip


@dataclass(frozen=True)
class RecentChange:
    """One undoable change: when, what it was, everything it touched as it was before, and after."""

    at: datetime
    command: str
    before: dict[tuple[str, str], Ticket | Technician]
    after: dict[tuple[str, str], Ticket | Technician | None]


# Each user's undo memory holds their last this many changes of the window: far more than a person
# makes in 15 minutes, while a script pushing thousands of changes through cannot make the server hold
# thousands of tickets (each change keeps what it touched, before and after).
RECENT_CHANGES_PER_USER = 200


@dataclass
class RecentChanges:
    """The last 15 minutes of undoable changes, by (user, command_id); at most
    `RECENT_CHANGES_PER_USER` of them per user."""

    changes: OrderedDict[tuple[str, str], RecentChange] = field(default_factory=OrderedDict)
    # Each user's changes in the order made (keys already dropped for age are skipped when met).
    by_user: dict[str, deque[str]] = field(default_factory=dict)

    def remember(self, user: str, command_id: str, command: str, before: dict[tuple[str, str], Ticket | Technician],
                 state: DispatchState, now: datetime) -> None:  # fmt: skip
        """Keep an applied change (its command's type, what it touched before) for `undo`."""
        if command not in UNDOABLE or not before:
            return
        after = {key: entity_at(state, key) for key in before}
        self.changes[(user, command_id)] = RecentChange(now, command, dict(before), after)
        own = self.by_user.setdefault(user, deque())
        own.append(command_id)
        while len(own) > RECENT_CHANGES_PER_USER:
            self.changes.pop((user, own.popleft()), None)
        while self.changes and now - next(iter(self.changes.values())).at > UNDO_WINDOW:
            (old_user, old_id), _ = self.changes.popitem(last=False)
            mine = self.by_user.get(old_user)
            if mine and mine[0] == old_id:
                mine.popleft()


@dataclass
class Holdings:
    """Who holds how many open tickets, and of each incident how many: what ranking weighs. Kept up as
    events are applied (`apply_event`), so a suggestion or an auto-assign pass costs the size of the
    team, not of the backlog. Counts that reach zero are dropped, so equal holdings compare equal."""

    load: Counter[str] = field(default_factory=Counter)
    incident_holders: dict[str, Counter[str]] = field(default_factory=dict)
    # New tickets nobody holds: the queue auto-assign and call-outs look at; the same by the skills they
    # need (so a place opening is matched against a few skill sets, not every ticket), and its P1s.
    queued: set[str] = field(default_factory=set)
    queued_by_skills: dict[frozenset[str], list[QueueKey]] = field(default_factory=dict)  # each most urgent first
    queued_p1: set[str] = field(default_factory=set)
    # Queued (or changed while queued) since auto-assign last looked: the only queued tickets that may
    # not have been told why they wait yet, so saying so costs what changed, not the whole queue.
    entered: set[str] = field(default_factory=set, compare=False)

    @classmethod
    def count(cls, tickets: Iterable[Ticket]) -> Holdings:
        """Counted from scratch (once per state; and what tests hold the kept counts to)."""
        holdings = cls()
        for ticket in tickets:
            holdings.change(ticket, +1)
        return holdings

    def change(self, ticket: Ticket, sign: int) -> None:
        """Count `ticket` in (+1) or out (-1): an open, assigned ticket holds; a new one nobody holds is
        queued; any other counts for nothing."""
        tech_id = ticket.assignee
        if tech_id is None and ticket.status is TicketStatus.NEW:
            skills, key = frozenset(ticket.skills), queue_key(ticket)
            if sign > 0:
                self.queued.add(ticket.id)
                self.entered.add(ticket.id)
                bisect.insort(self.queued_by_skills.setdefault(skills, []), key)
                if ticket.priority is Priority.P1:
                    self.queued_p1.add(ticket.id)
            else:
                self.queued.discard(ticket.id)
                self.entered.discard(ticket.id)
                group = self.queued_by_skills.get(skills, [])
                at = bisect.bisect_left(group, key)
                if at < len(group) and group[at] == key:
                    del group[at]
                    if not group:
                        del self.queued_by_skills[skills]
                self.queued_p1.discard(ticket.id)
        if tech_id is None or not ticket.is_open:
            return
        _bump(self.load, tech_id, sign)
        if ticket.incident_id:
            holders = self.incident_holders.setdefault(ticket.incident_id, Counter())
            _bump(holders, tech_id, sign)
            if not holders:
                del self.incident_holders[ticket.incident_id]


# A queued ticket's place in the queue: priority, then respond-by (as a timestamp), then id.
QueueKey = tuple[Priority, float, str]


def queue_key(ticket: Ticket) -> QueueKey:
    return ticket.priority, ticket.respond_by.timestamp(), ticket.id


def _bump(counter: Counter[str], key: str, sign: int) -> None:
    value = counter[key] + sign
    if value:
        counter[key] = value
    else:
        del counter[key]


@dataclass
class AlertSchedule:
    """When each open ticket's SLA clock may next raise an alert (its warning instant until the warning
    is raised, then its due instant until the breach is), and the unassigned P1s not yet escalated, by
    when they were opened. Kept up as events are applied, so the clock's look each second costs the
    tickets whose moment has come, not the whole backlog. A ticket on hold is left out: its clock
    stands, and the event that ends the hold puts it back."""

    sla: SortedList = field(default_factory=SortedList)  # (instant, ticket id)
    unescalated: SortedList = field(default_factory=SortedList)  # (created_at, ticket id)
    _entries: dict[str, tuple[datetime | None, datetime | None]] = field(default_factory=dict)

    @classmethod
    def of(cls, tickets: Iterable[Ticket], alerts: set[tuple[str, str]]) -> AlertSchedule:
        schedule = cls()
        for ticket in tickets:
            schedule.update(ticket, alerts)
        return schedule

    def update(self, ticket: Ticket, alerts: set[tuple[str, str]]) -> None:
        """Put `ticket` where its next alert falls, as it is now and with the alerts already raised."""
        sla_at, opened = self._entries.pop(ticket.id, (None, None))
        if sla_at is not None:
            self.sla.discard((sla_at, ticket.id))
        if opened is not None:
            self.unescalated.discard((opened, ticket.id))
        entry = _next_alerts(ticket, alerts)
        if entry != (None, None):
            self._entries[ticket.id] = entry
            if entry[0] is not None:
                self.sla.add((entry[0], ticket.id))
            if entry[1] is not None:
                self.unescalated.add((entry[1], ticket.id))

    def due(self, now: datetime, escalate_after: timedelta) -> list[str]:
        """The tickets that may raise an alert at `now`, by id."""
        ids = {ticket_id for _, ticket_id in self.sla.irange(maximum=(now, _LAST))}
        ids.update(ticket_id for _, ticket_id in self.unescalated.irange(maximum=(now - escalate_after, _LAST)))
        return sorted(ids)


_LAST = "\U0010ffff"  # after every ticket id, for ranges up to an instant


def _next_alerts(ticket: Ticket, alerts: set[tuple[str, str]]) -> tuple[datetime | None, datetime | None]:
    """(when its SLA clock may raise the next alert, when it was opened if it may still escalate)."""
    if not ticket.is_open or ticket.paused_at is not None:
        return None, None
    target, due, warn = warning_at(ticket)
    sla_at = None
    if (ticket.id, f"sla_warning:{target}") not in alerts:
        sla_at = warn
    elif (ticket.id, f"sla_breached:{target}") not in alerts:
        sla_at = due
    waiting = ticket.priority is Priority.P1 and ticket.assignee is None and (ticket.id, "escalation") not in alerts
    return sla_at, ticket.created_at if waiting else None


@dataclass
class DispatchState:
    """Everything the server knows: tickets, technicians, incidents, and the last event's seq."""

    tickets: dict[str, Ticket] = field(default_factory=dict)
    technicians: dict[str, Technician] = field(default_factory=dict)
    incidents: dict[str, Incident] = field(default_factory=dict)
    seq: int = 0
    last_ticket_number: int = 0
    last_incident_number: int = 0
    # SLA alerts already raised, as (ticket id, "sla_warning:respond" | ... | "escalation"): each once.
    alerts: set[tuple[str, str]] = field(default_factory=set)
    # Call-outs by id (waiting ones, and those answered or expired in the last days), and each
    # technician's time on the clock, which the fatigue rules are judged on.
    callouts: dict[str, Callout] = field(default_factory=dict)
    last_callout_number: int = 0
    work: dict[str, WorkLog] = field(default_factory=dict)
    # What undo can take back: the server's memory of the last 15 minutes, not a fold of the log.
    recent_changes: RecentChanges = field(default_factory=lambda: RecentChanges())

    # Counted from the tickets on first use, then kept up by `apply_event` (not part of equality: it is
    # derived). Whoever replaces `tickets` other than through events sets it back to None.
    holdings_kept: Holdings | None = field(default=None, compare=False, repr=False)

    def holdings(self) -> Holdings:
        """Who holds how many open tickets (and of which incident), kept up to date."""
        if self.holdings_kept is None:
            self.holdings_kept = Holdings.count(self.tickets.values())
        return self.holdings_kept

    # The same for when each ticket may next raise an alert (see `AlertSchedule`).
    alert_schedule_kept: AlertSchedule | None = field(default=None, compare=False, repr=False)

    def alert_schedule(self) -> AlertSchedule:
        """When each open ticket may next raise an SLA alert or escalate, kept up to date."""
        if self.alert_schedule_kept is None:
            self.alert_schedule_kept = AlertSchedule.of(self.tickets.values(), self.alerts)
        return self.alert_schedule_kept

    def active_load(self, tech_id: str) -> int:
        """How many open tickets a technician holds."""
        return self.holdings().load[tech_id]


def ticket_id_for(number: int) -> str:
    return f"T-{number:06d}"


def ticket_number(ticket_id: str) -> int:
    return int(ticket_id.removeprefix("T-"))


def incident_id_for(number: int) -> str:
    return f"INC-{number}"


def incident_number(incident_id: str) -> int:
    """The number of an `INC-n` id (0 for any other id, e.g. one made by an import)."""
    suffix = incident_id.removeprefix("INC-")
    return int(suffix) if incident_id.startswith("INC-") and suffix.isdigit() else 0


# --- applying events ---------------------------------------------------------------------------------


def apply_event(state: DispatchState, event: Event) -> None:
    """Fold one event into the state. Events carry the entity's whole new state, so this is an upsert."""
    if isinstance(event, TicketEvent):
        ticket = event.ticket
        earlier = state.tickets.get(ticket.id)
        if earlier is not None and earlier.incident_id and earlier.incident_id != ticket.incident_id:
            # Taken out of an incident (an undone link): the incident no longer lists it.
            left = state.incidents.get(earlier.incident_id)
            if left is not None:
                ids = [i for i in left.ticket_ids if i != ticket.id]
                state.incidents[left.id] = left.model_copy(update={"ticket_ids": ids})
        if state.holdings_kept is not None:
            if earlier is not None:
                state.holdings_kept.change(earlier, -1)
            state.holdings_kept.change(ticket, +1)
        state.tickets[ticket.id] = ticket
        if state.alert_schedule_kept is not None:
            state.alert_schedule_kept.update(ticket, state.alerts)
        if ticket.id.startswith("T-"):
            state.last_ticket_number = max(state.last_ticket_number, ticket_number(ticket.id))
        if ticket.incident_id and ticket.incident_id in state.incidents:
            incident = state.incidents[ticket.incident_id]
            if ticket.id not in incident.ticket_ids:
                state.incidents[incident.id] = incident.model_copy(
                    update={"ticket_ids": [*incident.ticket_ids, ticket.id]}
                )
    elif isinstance(event, TechnicianEvent):
        state.technicians[event.technician.id] = event.technician
        remember_work(state, event)
    elif isinstance(event, CalloutEvent):
        remember_work(state, event)
    elif isinstance(event, IncidentEvent):
        state.incidents[event.incident.id] = event.incident
        state.last_incident_number = max(state.last_incident_number, incident_number(event.incident.id))
    elif isinstance(event, SlaEvent):
        state.alerts.add((event.ticket_id, alert_key(event.kind, event.target)))
        alerted = state.tickets.get(event.ticket_id)
        if state.alert_schedule_kept is not None and alerted is not None:
            state.alert_schedule_kept.update(alerted, state.alerts)
    state.seq = event.seq


def remember_work(state: DispatchState, event: TechnicianEvent | CalloutEvent) -> None:
    """Keep each technician's time on the clock and their accepted call-outs (also used to rebuild them
    from the log's recent events at start)."""
    if isinstance(event, CalloutEvent):
        callout = event.callout
        state.callouts[callout.id] = callout
        state.last_callout_number = max(state.last_callout_number, callout_number(callout.id))
        if callout.status is CalloutStatus.ACCEPTED:
            state.work.setdefault(callout.tech_id, WorkLog()).callouts.append(event.ts)
        return
    work = state.work.setdefault(event.technician.id, WorkLog())
    if event.technician.status in OFF_THE_CLOCK:
        work.stopped(event.ts)
    else:
        work.started(event.ts)


# Every alert a ticket can have raised (see `alert_key`): what leaves with it when it leaves memory.
ALERT_KEYS = tuple(f"{kind}:{target}" for kind in ("sla_warning", "sla_breached") for target in ("respond", "resolve"))
ALERT_KEYS += ("escalation",)


def forget_closed(state: DispatchState, ticket_ids: Iterable[str]) -> list[str]:
    """Take those of these tickets that are closed (resolved, cancelled) out of memory, with their alerts;
    the ones taken out.

    A server's memory holds the open tickets: they are what the rules decide over. Closed ones stay in
    the database, where history, reports, decisions and a snapshot's recent work read them, and come
    back for a batch whose commands name them (`remember_tickets`), so memory stays flat however long
    the history grows."""
    forgotten = []
    for ticket_id in ticket_ids:
        ticket = state.tickets.get(ticket_id)
        if ticket is not None and not ticket.is_open:
            del state.tickets[ticket_id]
            for key in ALERT_KEYS:
                state.alerts.discard((ticket_id, key))
            forgotten.append(ticket_id)
    return forgotten


def remember_tickets(state: DispatchState, tickets: Iterable[Ticket], alerts: Iterable[SlaEvent]) -> None:
    """Bring stored tickets (and the alerts they raised) back into memory; ones already there win."""
    tickets = list(tickets)
    for ticket in tickets:
        if ticket.id not in state.tickets:
            state.tickets[ticket.id] = ticket
            if state.holdings_kept is not None:
                state.holdings_kept.change(ticket, +1)
    for event in alerts:
        state.alerts.add((event.ticket_id, alert_key(event.kind, event.target)))
    if state.alert_schedule_kept is not None:
        for ticket in tickets:
            state.alert_schedule_kept.update(state.tickets[ticket.id], state.alerts)


def entity_at(state: DispatchState, key: tuple[str, str]) -> Ticket | Technician | None:
    """A ticket (`("ticket", id)`) or technician (`("technician", id)`) as the state has it now."""
    kind, entity_id = key
    return state.tickets.get(entity_id) if kind == "ticket" else state.technicians.get(entity_id)


def callout_id_for(number: int) -> str:
    return f"CO-{number}"


def callout_number(callout_id: str) -> int:
    suffix = callout_id.removeprefix("CO-")
    return int(suffix) if suffix.isdigit() else 0


def alert_key(kind: str, target: str) -> str:
    return "escalation" if kind == "escalation" else f"{kind}:{target}"
