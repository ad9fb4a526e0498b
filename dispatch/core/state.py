"""The dispatch state and its rules: which commands are allowed, and what events they become.

Pure: the server runs every command through `execute` against its in-memory state, then stores the
events; replaying the stored events through `apply_event` rebuilds the same state (a property test
holds it to that), and the board applies the same events to its own copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dispatch.core.models import (
    HELD_STATUSES,
    Incident,
    Priority,
    Role,
    Technician,
    Ticket,
    TicketStatus,
)
from dispatch.core.protocol import (
    Ack,
    AddNote,
    AddTechnician,
    ApplyPlan,
    Assign,
    BulkAssign,
    BurstEvent,
    CreateIncident,
    CreateTicket,
    ErrorCode,
    Event,
    IncidentEvent,
    Link,
    Merge,
    SetPriority,
    SetStatus,
    SetTechStatus,
    SlaEvent,
    TechnicianEvent,
    TicketEvent,
    TicketEventKind,
    Unassign,
)
from dispatch.core.sla import SlaPolicy, SlaState, read_clock

WriteCommand = (
    CreateTicket
    | Assign
    | Unassign
    | SetPriority
    | SetStatus
    | SetTechStatus
    | AddTechnician
    | BulkAssign
    | AddNote
    | ApplyPlan
    | CreateIncident
    | Link
    | Merge
)

# A report with a dedupe key joins an open ticket with the same key created at most this long ago.
DEDUPE_WINDOW = timedelta(minutes=60)


@dataclass(frozen=True)
class Actor:
    """Who sends a command: the token's name, role and (for a technician) their technician id."""

    user: str
    role: Role
    tech_id: str | None = None


@dataclass
class Refusal:
    """Why a command was not applied, in the dispatcher's words."""

    code: ErrorCode
    message: str
    current: Ticket | Technician | None = None


@dataclass
class Outcome:
    """A command that was applied: its events (already applied to the state) and its ack."""

    events: list[Event]
    ack: Ack


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

    def active_load(self, tech_id: str) -> int:
        """How many open tickets a technician holds."""
        return sum(1 for t in self.tickets.values() if t.assignee == tech_id and t.is_open)


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
        state.tickets[ticket.id] = ticket
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
    elif isinstance(event, IncidentEvent):
        state.incidents[event.incident.id] = event.incident
        state.last_incident_number = max(state.last_incident_number, incident_number(event.incident.id))
    elif isinstance(event, SlaEvent):
        state.alerts.add((event.ticket_id, alert_key(event.kind, event.target)))
    state.seq = event.seq


def alert_key(kind: str, target: str) -> str:
    return "escalation" if kind == "escalation" else f"{kind}:{target}"


# --- executing commands ------------------------------------------------------------------------------

# Who may send which command; a technician's further limit (own tickets, own status) is checked below.
_ALLOWED: dict[type, frozenset[Role]] = {
    CreateTicket: frozenset({Role.DISPATCHER, Role.INTAKE}),
    Assign: frozenset({Role.DISPATCHER}),
    Unassign: frozenset({Role.DISPATCHER}),
    SetPriority: frozenset({Role.DISPATCHER}),
    SetStatus: frozenset({Role.DISPATCHER, Role.TECHNICIAN}),
    SetTechStatus: frozenset({Role.DISPATCHER, Role.TECHNICIAN}),
    AddTechnician: frozenset({Role.DISPATCHER}),
    BulkAssign: frozenset({Role.DISPATCHER}),
    AddNote: frozenset({Role.DISPATCHER, Role.TECHNICIAN}),
    ApplyPlan: frozenset({Role.DISPATCHER}),
    CreateIncident: frozenset({Role.DISPATCHER}),
    Link: frozenset({Role.DISPATCHER}),
    Merge: frozenset({Role.DISPATCHER}),
}

# Statuses a technician may put their own ticket in: they do the work, the dispatcher decides
# whether it is wanted at all.
_TECHNICIAN_STATUSES = frozenset(
    {TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.ON_HOLD, TicketStatus.RESOLVED}
)


def command_allowed(actor: Actor, command_type: type) -> bool:
    """Whether `actor`'s role may send this kind of command at all (reads are checked by the server)."""
    return actor.role in _ALLOWED.get(command_type, frozenset())


_VERBS = {
    "create_ticket": "create tickets",
    "assign": "assign tickets",
    "unassign": "unassign tickets",
    "set_priority": "change priorities",
    "set_status": "change a ticket's status",
    "set_tech_status": "change a technician's availability",
    "add_technician": "add technicians",
    "bulk_assign": "assign tickets",
    "add_note": "add notes",
    "apply_plan": "apply plans",
    "create_incident": "create incidents",
    "link": "link tickets to incidents",
    "merge": "merge tickets",
}


def _with_article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal


def _refuse(code: ErrorCode, message: str, current: Ticket | Technician | None = None) -> _Refused:
    return _Refused(Refusal(code, message, current))


class _Builder:
    """Builds the events of one command, applying each as it goes so the next sees its effect."""

    def __init__(self, state: DispatchState, actor: Actor, now: datetime) -> None:
        self.state = state
        self.actor = actor
        self.now = now
        self.events: list[Event] = []

    def ticket_event(self, kind: TicketEventKind, before: Ticket | None, after: Ticket, **detail: object) -> None:
        if before is not None:
            after = after.model_copy(update={"version": before.version + 1})
        event = TicketEvent(
            seq=self.state.seq + 1,
            ts=self.now,
            actor=self.actor.user,
            kind=kind,
            ticket=after,
            previous_assignee=before.assignee if before else None,
            **detail,
        )
        apply_event(self.state, event)
        self.events.append(event)

    def technician_event(self, kind: str, technician: Technician, **detail: object) -> None:
        event = TechnicianEvent(
            seq=self.state.seq + 1,
            ts=self.now,
            actor=self.actor.user,
            kind=kind,
            technician=technician,
            **detail,
        )
        apply_event(self.state, event)
        self.events.append(event)

    def incident_event(self, kind: str, incident: Incident) -> None:
        event = IncidentEvent(seq=self.state.seq + 1, ts=self.now, actor=self.actor.user, kind=kind, incident=incident)
        apply_event(self.state, event)
        self.events.append(event)


def execute(
    state: DispatchState,
    command: WriteCommand,
    actor: Actor,
    now: datetime,
    policy: SlaPolicy,
    dedupe_window: timedelta = DEDUPE_WINDOW,
) -> Outcome | Refusal:
    """Check `command` against the rules and the state; on success its events are applied to `state`."""
    if not command_allowed(actor, type(command)):
        return Refusal(ErrorCode.FORBIDDEN, f"{_with_article(actor.role.value)} may not {_VERBS[command.type]}")
    builder = _Builder(state, actor, now)
    try:
        ack = _run(builder, command, policy, dedupe_window)
    except _Refused as refused:
        return refused.refusal
    return Outcome(builder.events, ack)


def _run(b: _Builder, command: WriteCommand, policy: SlaPolicy, dedupe_window: timedelta) -> Ack:
    state, actor = b.state, b.actor
    match command:
        case CreateTicket():
            if command.dedupe_key is not None:
                original = _open_duplicate(state, command.dedupe_key, b.now - dedupe_window)
                if original is not None:
                    after = original.model_copy(update={"duplicates": original.duplicates + 1})
                    b.ticket_event("ticket_duplicated", original, after)
                    current = state.tickets[original.id]
                    return Ack(command_id=command.command_id, seq=state.seq, ticket_id=current.id,
                               version=current.version, deduplicated=True, duplicates=current.duplicates)  # fmt: skip
            if command.incident_id is not None and command.incident_id not in state.incidents:
                raise _refuse(ErrorCode.NOT_FOUND, f"no incident {command.incident_id}")
            respond_by, resolve_by = policy.due_times(command.priority, b.now)
            ticket = Ticket(
                id=ticket_id_for(state.last_ticket_number + 1),
                title=command.title,
                client=command.client,
                site=command.site,
                category=command.category,
                priority=command.priority,
                skills=command.skills,
                incident_id=command.incident_id,
                dedupe_key=command.dedupe_key,
                created_at=b.now,
                respond_by=respond_by,
                resolve_by=resolve_by,
            )
            b.ticket_event("ticket_created", None, ticket)
            return _ack(command.command_id, b, ticket)

        case Assign():
            ticket = _open_ticket(state, command.ticket_id, command.expected_version, "assign")
            _technician(state, command.tech_id)
            if ticket.assignee == command.tech_id:
                raise _refuse(ErrorCode.CONFLICT, f"{ticket.id} is already assigned to {command.tech_id}", ticket)
            _assign(b, ticket, command.tech_id, "manual")
            return _ack(command.command_id, b, state.tickets[ticket.id])

        case BulkAssign():
            if len(set(command.ticket_ids)) != len(command.ticket_ids):
                raise _refuse(ErrorCode.INVALID, "ticket_ids lists a ticket more than once")
            _technician(state, command.tech_id)
            # All or nothing: every ticket is checked before the first event is made.
            tickets = [_open_ticket(state, tid, None, "assign") for tid in command.ticket_ids]
            for ticket in tickets:
                if ticket.assignee != command.tech_id:
                    _assign(b, ticket, command.tech_id, "bulk")
            seq = b.events[-1].seq if b.events else state.seq
            return Ack(command_id=command.command_id, seq=seq, ticket_ids=list(command.ticket_ids))

        case Unassign():
            ticket = _open_ticket(state, command.ticket_id, command.expected_version, "unassign")
            if ticket.assignee is None:
                raise _refuse(ErrorCode.CONFLICT, f"{ticket.id} is not assigned", ticket)
            after = ticket.model_copy(
                update={"assignee": None, "status": TicketStatus.NEW, **_hold_clock(ticket, TicketStatus.NEW, b.now)}
            )
            b.ticket_event("ticket_unassigned", ticket, after)
            return _ack(command.command_id, b, state.tickets[ticket.id])

        case SetPriority():
            ticket = _ticket(state, command.ticket_id, command.expected_version)
            if ticket.priority == command.priority:
                raise _refuse(ErrorCode.CONFLICT, f"{ticket.id} is already {command.priority}", ticket)
            # The clock still starts when the ticket came in: raising it to P1 does not buy time.
            respond_by, resolve_by = policy.due_times(
                command.priority, ticket.created_at, timedelta(seconds=ticket.paused_seconds)
            )
            after = ticket.model_copy(
                update={"priority": command.priority, "respond_by": respond_by, "resolve_by": resolve_by}
            )
            b.ticket_event("priority_changed", ticket, after, previous_priority=ticket.priority)
            return _ack(command.command_id, b, state.tickets[ticket.id])

        case SetStatus():
            ticket = _ticket(state, command.ticket_id, command.expected_version, actor)
            if actor.role is Role.TECHNICIAN:
                if command.status not in _TECHNICIAN_STATUSES:
                    raise _refuse(ErrorCode.FORBIDDEN, f"a technician may not set a ticket to {command.status}")
            after = _with_status(ticket, command.status, b.now)
            b.ticket_event("status_changed", ticket, after, previous_status=ticket.status)
            return _ack(command.command_id, b, state.tickets[ticket.id])

        case AddNote():
            ticket = _ticket(state, command.ticket_id, command.expected_version, actor)
            b.ticket_event("note_added", ticket, ticket, note=command.text)
            return _ack(command.command_id, b, state.tickets[ticket.id])

        case SetTechStatus():
            if actor.role is Role.TECHNICIAN and command.tech_id != actor.tech_id:
                raise _refuse(ErrorCode.FORBIDDEN, "a technician may set only their own availability")
            technician = _technician(state, command.tech_id)
            if technician.status == command.status:
                raise _refuse(ErrorCode.CONFLICT, f"{technician.id} is already {command.status}", technician)
            b.technician_event(
                "technician_status_changed",
                technician.model_copy(update={"status": command.status}),
                previous_status=technician.status,
            )
            return Ack(command_id=command.command_id, seq=state.seq)

        case ApplyPlan():
            if len({m.ticket_id for m in command.moves}) != len(command.moves):
                raise _refuse(ErrorCode.INVALID, "the plan moves a ticket more than once")
            # All or nothing: every move is checked against the state before the first event.
            checked = []
            for move in command.moves:
                ticket = _open_ticket(state, move.ticket_id, move.expected_version, "move")
                _technician(state, move.tech_id)
                checked.append((ticket, move))
            for ticket, move in checked:
                if ticket.assignee != move.tech_id:
                    _assign(b, ticket, move.tech_id, "rebalance: " + move.reason if move.reason else "rebalance")
            seq = b.events[-1].seq if b.events else state.seq
            return Ack(command_id=command.command_id, seq=seq, ticket_ids=[m.ticket_id for m in command.moves])

        case AddTechnician():
            if command.tech_id in state.technicians:
                existing = state.technicians[command.tech_id]
                raise _refuse(ErrorCode.CONFLICT, f"technician {command.tech_id} already exists", existing)
            technician = Technician(
                id=command.tech_id, name=command.name, skills=command.skills, capacity=command.capacity
            )
            b.technician_event("technician_added", technician)
            return Ack(command_id=command.command_id, seq=state.seq)

        case CreateIncident():
            tickets = _linkable(state, command.ticket_ids)
            incident = Incident(
                id=incident_id_for(state.last_incident_number + 1),
                title=command.title,
                ticket_ids=[t.id for t in tickets],
                opened_at=b.now,
            )
            b.incident_event("incident_created", incident)
            for ticket in tickets:
                b.ticket_event("ticket_linked", ticket, ticket.model_copy(update={"incident_id": incident.id}))
            return Ack(command_id=command.command_id, seq=state.seq, incident_id=incident.id,
                       ticket_ids=[t.id for t in tickets])  # fmt: skip

        case Link():
            if command.incident_id not in state.incidents:
                raise _refuse(ErrorCode.NOT_FOUND, f"no incident {command.incident_id}")
            tickets = _linkable(state, command.ticket_ids, command.incident_id)
            for ticket in tickets:
                if ticket.incident_id != command.incident_id:
                    after = ticket.model_copy(update={"incident_id": command.incident_id})
                    b.ticket_event("ticket_linked", ticket, after)
            return Ack(command_id=command.command_id, seq=state.seq, incident_id=command.incident_id,
                       ticket_ids=list(command.ticket_ids))  # fmt: skip

        case Merge():
            if command.primary_id in command.duplicate_ids:
                raise _refuse(ErrorCode.INVALID, f"cannot merge {command.primary_id} into itself")
            if len(set(command.duplicate_ids)) != len(command.duplicate_ids):
                raise _refuse(ErrorCode.INVALID, "duplicate_ids lists a ticket more than once")
            primary = _open_ticket(state, command.primary_id, None, "merge into")
            # All or nothing: every duplicate is checked before the first event.
            duplicates = [_open_ticket(state, tid, None, "merge") for tid in command.duplicate_ids]
            reason = command.reason or f"duplicate of {primary.id}"
            for ticket in duplicates:
                after = _with_status(ticket, TicketStatus.RESOLVED, b.now).model_copy(
                    update={"merged_into": primary.id}
                )
                b.ticket_event("ticket_merged", ticket, after, previous_status=ticket.status, reason=reason)
            return Ack(command_id=command.command_id, seq=state.seq, ticket_id=primary.id, version=primary.version,
                       ticket_ids=list(command.duplicate_ids))  # fmt: skip
    raise AssertionError(f"unhandled command {command!r}")


def _ack(command_id: str, b: _Builder, ticket: Ticket) -> Ack:
    return Ack(command_id=command_id, seq=b.state.seq, ticket_id=ticket.id, version=ticket.version)


def _open_duplicate(state: DispatchState, dedupe_key: str, since: datetime) -> Ticket | None:
    """The newest open ticket reported with `dedupe_key` at or after `since`, if any."""
    found = [t for t in state.tickets.values() if t.dedupe_key == dedupe_key and t.is_open and t.created_at >= since]
    return max(found, key=lambda t: (t.created_at, t.id)) if found else None


def _linkable(state: DispatchState, ticket_ids: list[str], incident_id: str | None = None) -> list[Ticket]:
    """Open tickets that may join an incident: none may already belong to another one (moving a ticket
    between incidents is not supported: the old incident would keep listing it)."""
    if len(set(ticket_ids)) != len(ticket_ids):
        raise _refuse(ErrorCode.INVALID, "ticket_ids lists a ticket more than once")
    tickets = [_open_ticket(state, tid, None, "link") for tid in ticket_ids]
    for ticket in tickets:
        if ticket.incident_id is not None and ticket.incident_id != incident_id:
            raise _refuse(ErrorCode.CONFLICT, f"{ticket.id} already belongs to {ticket.incident_id}", ticket)
    return tickets


def _ticket(state: DispatchState, ticket_id: str, expected_version: int | None, actor: Actor | None = None) -> Ticket:
    ticket = state.tickets.get(ticket_id)
    if ticket is None:
        raise _refuse(ErrorCode.NOT_FOUND, f"no ticket {ticket_id}")
    # Ownership before version: a conflict carries the ticket, which a technician may see only if theirs.
    if actor is not None and actor.role is Role.TECHNICIAN and ticket.assignee != actor.tech_id:
        raise _refuse(ErrorCode.FORBIDDEN, f"{ticket_id} is not assigned to you")
    if expected_version is not None and expected_version != ticket.version:
        raise _refuse(
            ErrorCode.CONFLICT,
            f"{ticket_id} changed: it is at version {ticket.version}, not {expected_version}",
            ticket,
        )
    return ticket


def _open_ticket(state: DispatchState, ticket_id: str, expected_version: int | None, verb: str) -> Ticket:
    ticket = _ticket(state, ticket_id, expected_version)
    if not ticket.is_open:
        raise _refuse(ErrorCode.CONFLICT, f"cannot {verb} {ticket_id}: it is {ticket.status}", ticket)
    return ticket


def _technician(state: DispatchState, tech_id: str) -> Technician:
    technician = state.technicians.get(tech_id)
    if technician is None:
        raise _refuse(ErrorCode.NOT_FOUND, f"no technician {tech_id}")
    return technician


def _assign(b: _Builder, ticket: Ticket, tech_id: str, reason: str) -> None:
    after = ticket.model_copy(
        update={
            "assignee": tech_id,
            "status": TicketStatus.ASSIGNED,
            "responded_at": ticket.responded_at or b.now,
            **_hold_clock(ticket, TicketStatus.ASSIGNED, b.now),
        }
    )
    b.ticket_event("ticket_assigned", ticket, after, reason=reason)


def _with_status(ticket: Ticket, status: TicketStatus, now: datetime) -> Ticket:
    if status == ticket.status:
        raise _refuse(ErrorCode.CONFLICT, f"{ticket.id} is already {status}", ticket)
    if status in HELD_STATUSES and ticket.assignee is None:
        raise _refuse(ErrorCode.CONFLICT, f"{ticket.id} has no assignee: assign it before it can be {status}", ticket)
    if status is TicketStatus.NEW and ticket.assignee is not None:
        raise _refuse(ErrorCode.CONFLICT, f"{ticket.id} is assigned to {ticket.assignee}: unassign it instead", ticket)
    update: dict[str, object] = {"status": status}
    if (
        status in (TicketStatus.IN_PROGRESS, TicketStatus.ON_HOLD, TicketStatus.RESOLVED)
        and ticket.responded_at is None
    ):
        update["responded_at"] = now
    return ticket.model_copy(update={**update, **_hold_clock(ticket, status, now)})


def _hold_clock(ticket: Ticket, status: TicketStatus, now: datetime) -> dict[str, object]:
    """On hold the SLA clock stops; when the ticket leaves hold its due times move on by the pause."""
    if status is TicketStatus.ON_HOLD and ticket.paused_at is None:
        return {"paused_at": now}
    if status is not TicketStatus.ON_HOLD and ticket.paused_at is not None:
        pause = max(now - ticket.paused_at, timedelta(0))
        return {
            "paused_at": None,
            "paused_seconds": ticket.paused_seconds + int(pause.total_seconds()),
            "respond_by": ticket.respond_by + pause,
            "resolve_by": ticket.resolve_by + pause,
        }
    return {}


def visible_to(actor: Actor, event: Event) -> bool:
    """A technician sees events about their own tickets (also one just taken from them) and technicians."""
    if actor.role is not Role.TECHNICIAN:
        return True
    if isinstance(event, TicketEvent):
        return actor.tech_id in (event.ticket.assignee, event.previous_assignee)
    if isinstance(event, SlaEvent):
        return event.assignee == actor.tech_id
    # Incidents and bursts are the dispatcher's business; a technician hears of an incident through
    # the `ticket_linked` events of their own tickets.
    return not isinstance(event, IncidentEvent | BurstEvent)


# --- what the server does by itself ------------------------------------------------------------------


def assign_with_reason(
    state: DispatchState, ticket_id: str, tech_id: str, actor: Actor, now: datetime, reason: str
) -> Outcome | Refusal:
    """An assignment the server decides (auto-assign, escalation, a rebalance plan), with its reason."""
    builder = _Builder(state, actor, now)
    try:
        ticket = _open_ticket(state, ticket_id, None, "assign")
        _technician(state, tech_id)
        _assign(builder, ticket, tech_id, reason)
    except _Refused as refused:
        return refused.refusal
    return Outcome(builder.events, Ack(command_id="", seq=state.seq, ticket_id=ticket_id))


def preempt(
    state: DispatchState, victim_id: str, ticket_id: str, tech_id: str, actor: Actor, now: datetime, reason: str
) -> Outcome | Refusal:
    """A P1 nobody free can take displaces `victim_id` (P3/P4 work) from `tech_id`: the victim goes
    back to the queue and the P1 is assigned, as one change."""
    builder = _Builder(state, actor, now)
    try:
        victim = _open_ticket(state, victim_id, None, "preempt")
        ticket = _open_ticket(state, ticket_id, None, "assign")
        after = victim.model_copy(
            update={"assignee": None, "status": TicketStatus.NEW, **_hold_clock(victim, TicketStatus.NEW, now)}
        )
        builder.ticket_event("ticket_unassigned", victim, after, reason=f"preempted by {ticket_id}")
        _assign(builder, ticket, tech_id, reason)
    except _Refused as refused:
        return refused.refusal
    return Outcome(builder.events, Ack(command_id="", seq=state.seq, ticket_id=ticket_id))


def clock_alerts(
    state: DispatchState, now: datetime, policy: SlaPolicy, escalate_after: timedelta, actor: Actor
) -> list[Event]:
    """SLA warnings and breaches due at `now`, and escalations of P1s left unassigned too long; each
    raised once per ticket and target (a breach found late still gets its warning first)."""
    events: list[Event] = []

    def raise_alert(ticket: Ticket, kind: str, target: str, due: datetime) -> None:
        event = SlaEvent(seq=state.seq + 1, ts=now, actor=actor.user, kind=kind, ticket_id=ticket.id,
                         assignee=ticket.assignee, target=target, due=due)  # fmt: skip
        apply_event(state, event)
        events.append(event)

    for ticket in list(state.tickets.values()):
        if not ticket.is_open or ticket.paused_at is not None:
            continue
        reading = read_clock(ticket, now, policy)
        if reading.state in (SlaState.WARNING, SlaState.BREACHED):
            if (ticket.id, f"sla_warning:{reading.target}") not in state.alerts:
                raise_alert(ticket, "sla_warning", reading.target, reading.due)
            if reading.state is SlaState.BREACHED and (ticket.id, f"sla_breached:{reading.target}") not in state.alerts:
                raise_alert(ticket, "sla_breached", reading.target, reading.due)
        if (
            ticket.priority is Priority.P1
            and ticket.assignee is None
            and now - ticket.created_at >= escalate_after
            and (ticket.id, "escalation") not in state.alerts
        ):
            raise_alert(ticket, "escalation", "respond", ticket.respond_by)
    return events
