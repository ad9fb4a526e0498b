"""What each command does to the state, and the changes the server makes by itself.

Pure. One handler per write command (`create_ticket`, `assign`, ...): it checks the command against
the state and builds its events through a `Change`, which applies each event as it goes so the next
check sees it. A handler refuses by raising `Refused`; the registry in dispatch.core.commands says
who may send which command and turns the handler's result into an `Outcome` or a `Refusal`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dispatch.core.calendars import Calendar
from dispatch.core.contracts import Contracts
from dispatch.core.models import (
    HELD_STATUSES,
    Callout,
    CalloutStatus,
    HoldReason,
    Incident,
    Priority,
    Role,
    Technician,
    TechStatus,
    Ticket,
    TicketStatus,
)
from dispatch.core.protocol import (
    Ack,
    AddNote,
    AddTechnician,
    AnswerCallout,
    ApplyPlan,
    Assign,
    BulkAssign,
    BurstEvent,
    CalloutCommand,
    CalloutEvent,
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
    UpdateClients,
)
from dispatch.core.roster import Fatigue, Roster, WorkLog
from dispatch.core.sla import SlaState, alert_state, clock_fields
from dispatch.core.state import (
    OFF_THE_CLOCK,
    Actor,
    DispatchState,
    apply_event,
    callout_id_for,
    incident_id_for,
    ticket_id_for,
)

__all__ = [
    "Change",
    "Outcome",
    "Refusal",
    "Refused",
    "Rules",
    "assign_with_reason",
    "clock_alerts",
    "preempt",
    "visible_to",
]


@dataclass(frozen=True)
class Rules:
    """The server's settings that commands are judged by (the same for every command of a batch)."""

    # Which SLA terms (tier, targets, calendar) each client's tickets get.
    contracts: Contracts = field(default_factory=Contracts)
    # People's time: shifts, on call, fatigue rules, the call-out ladder.
    roster: Roster = field(default_factory=Roster)
    # A report with a dedupe key joins an open ticket with the same key created at most this long ago.
    dedupe_window: timedelta = timedelta(minutes=60)


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
    # What it touched, as it was before (see Change.before).
    before: dict[tuple[str, str], Ticket | Technician] = field(default_factory=dict)


class Refused(Exception):
    """Raised by a handler: the command is refused and nothing it built is kept."""

    def __init__(self, code: ErrorCode, message: str, current: Ticket | Technician | None = None) -> None:
        super().__init__(message)
        self.refusal = Refusal(code, message, current)


class Change:
    """The events of one command (or one change the server makes), applied to the state as they are built."""

    def __init__(self, state: DispatchState, actor: Actor, now: datetime, rules: Rules | None = None) -> None:
        self.state = state
        self.actor = actor
        self.now = now
        self.rules = rules or Rules()
        self.events: list[Event] = []
        # Each ticket and technician this change touched, as it was before: what an undo restores.
        self.before: dict[tuple[str, str], Ticket | Technician] = {}

    def ticket_event(self, kind: TicketEventKind, before: Ticket | None, after: Ticket, **detail: object) -> None:
        if before is not None:
            after = after.model_copy(update={"version": before.version + 1})
            self.before.setdefault(("ticket", before.id), before)
        event = TicketEvent(
            seq=self.state.seq + 1,
            ts=self.now,
            actor=self.actor.user,
            kind=kind,
            ticket=after,
            previous_assignee=before.assignee if before else None,
            **detail,
        )
        self._apply(event)

    def technician_event(self, kind: str, technician: Technician, **detail: object) -> None:
        previous = self.state.technicians.get(technician.id)
        if previous is not None:
            self.before.setdefault(("technician", technician.id), previous)
        technician = with_time(technician, self.rules.roster, self.state.work.get(technician.id), self.now)
        self._apply(
            TechnicianEvent(
                seq=self.state.seq + 1, ts=self.now, actor=self.actor.user, kind=kind, technician=technician, **detail
            )
        )

    def callout_event(self, kind: str, callout: Callout) -> None:
        self._apply(CalloutEvent(seq=self.state.seq + 1, ts=self.now, actor=self.actor.user, kind=kind,
                                 callout=callout))  # fmt: skip

    def fatigue(self, tech_id: str, *, callout: bool = False) -> str | None:
        """The fatigue rule giving `tech_id` work now would break, in words (None: none would)."""
        return self.rules.roster.fatigue_block(tech_id, self.state.work.get(tech_id), self.now, callout=callout)

    def incident_event(self, kind: str, incident: Incident) -> None:
        self._apply(IncidentEvent(seq=self.state.seq + 1, ts=self.now, actor=self.actor.user, kind=kind,
                                  incident=incident))  # fmt: skip

    def _apply(self, event: Event) -> None:
        apply_event(self.state, event)
        self.events.append(event)

    def ack(self, command_id: str, ticket: Ticket) -> Ack:
        """The ack of a command about one ticket: its id and new version."""
        return Ack(command_id=command_id, seq=self.state.seq, ticket_id=ticket.id, version=ticket.version)


# --- one handler per write command -------------------------------------------------------------------

# Statuses a technician may put their own ticket in: they do the work, the dispatcher decides
# whether it is wanted at all.
_TECHNICIAN_STATUSES = frozenset(
    {TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.ON_HOLD, TicketStatus.RESOLVED}
)


def create_ticket(c: Change, command: CreateTicket) -> Ack:
    state = c.state
    if command.dedupe_key is not None:
        original = _open_duplicate(state, command.dedupe_key, c.now - c.rules.dedupe_window)
        if original is not None:
            after = original.model_copy(update={"duplicates": original.duplicates + 1})
            c.ticket_event("ticket_duplicated", original, after)
            current = state.tickets[original.id]
            return Ack(command_id=command.command_id, seq=state.seq, ticket_id=current.id,
                       version=current.version, deduplicated=True, duplicates=current.duplicates)  # fmt: skip
    if command.incident_id is not None and command.incident_id not in state.incidents:
        raise Refused(ErrorCode.NOT_FOUND, f"no incident {command.incident_id}")
    terms = c.rules.contracts.terms(command.client, command.priority)
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
        created_at=c.now,
        **clock_fields(terms, c.now),
    )
    c.ticket_event("ticket_created", None, ticket)
    return c.ack(command.command_id, ticket)


def assign(c: Change, command: Assign) -> Ack:
    ticket = _open_ticket(c.state, command.ticket_id, command.expected_version, "assign")
    _technician(c.state, command.tech_id)
    if ticket.assignee == command.tech_id:
        raise Refused(ErrorCode.CONFLICT, f"{ticket.id} is already assigned to {command.tech_id}", ticket)
    # A dispatcher may assign against a fatigue rule: it is said in the ack and kept in the log.
    override = c.fatigue(command.tech_id)
    _assign(c, ticket, command.tech_id, "manual", override)
    return c.ack(command.command_id, c.state.tickets[ticket.id]).model_copy(update={"override": override})


def bulk_assign(c: Change, command: BulkAssign) -> Ack:
    if len(set(command.ticket_ids)) != len(command.ticket_ids):
        raise Refused(ErrorCode.INVALID, "ticket_ids lists a ticket more than once")
    _technician(c.state, command.tech_id)
    # All or nothing: every ticket is checked before the first event is made.
    tickets = [_open_ticket(c.state, tid, None, "assign") for tid in command.ticket_ids]
    override = c.fatigue(command.tech_id)
    for ticket in tickets:
        if ticket.assignee != command.tech_id:
            _assign(c, ticket, command.tech_id, "bulk", override)
    return Ack(command_id=command.command_id, seq=c.state.seq, ticket_ids=list(command.ticket_ids), override=override)


def unassign(c: Change, command: Unassign) -> Ack:
    ticket = _open_ticket(c.state, command.ticket_id, command.expected_version, "unassign")
    if ticket.assignee is None:
        raise Refused(ErrorCode.CONFLICT, f"{ticket.id} is not assigned", ticket)
    after = ticket.model_copy(
        update={"assignee": None, "status": TicketStatus.NEW, **_hold_clock(c, ticket, TicketStatus.NEW)}
    )
    c.ticket_event("ticket_unassigned", ticket, after)
    return c.ack(command.command_id, c.state.tickets[ticket.id])


def set_priority(c: Change, command: SetPriority) -> Ack:
    ticket = _ticket(c.state, command.ticket_id, command.expected_version)
    if ticket.priority == command.priority:
        raise Refused(ErrorCode.CONFLICT, f"{ticket.id} is already {command.priority}", ticket)
    # The clock still starts when the ticket came in (raising it to P1 does not buy time), under the
    # new priority's terms, plus the time it has stood still on hold so far.
    terms = c.rules.contracts.terms(ticket.client, command.priority)
    clock = clock_fields(terms, ticket.created_at, timedelta(seconds=ticket.paused_seconds))
    after = ticket.model_copy(update={"priority": command.priority, **clock})
    c.ticket_event("priority_changed", ticket, after, previous_priority=ticket.priority)
    return c.ack(command.command_id, c.state.tickets[ticket.id])


def set_status(c: Change, command: SetStatus) -> Ack:
    ticket = _ticket(c.state, command.ticket_id, command.expected_version, c.actor)
    if c.actor.role is Role.TECHNICIAN and command.status not in _TECHNICIAN_STATUSES:
        raise Refused(ErrorCode.FORBIDDEN, f"a technician may not set a ticket to {command.status}")
    if command.reason is not None and command.status is not TicketStatus.ON_HOLD:
        raise Refused(ErrorCode.INVALID, "a reason goes only with on_hold")
    after = _with_status(c, ticket, command.status, command.reason)
    c.ticket_event("status_changed", ticket, after, previous_status=ticket.status)
    return c.ack(command.command_id, c.state.tickets[ticket.id])


def add_note(c: Change, command: AddNote) -> Ack:
    ticket = _ticket(c.state, command.ticket_id, command.expected_version, c.actor)
    c.ticket_event("note_added", ticket, ticket, note=command.text)
    return c.ack(command.command_id, c.state.tickets[ticket.id])


def set_tech_status(c: Change, command: SetTechStatus) -> Ack:
    if c.actor.role is Role.TECHNICIAN and command.tech_id != c.actor.tech_id:
        raise Refused(ErrorCode.FORBIDDEN, "a technician may set only their own availability")
    technician = _technician(c.state, command.tech_id)
    if technician.status == command.status:
        raise Refused(ErrorCode.CONFLICT, f"{technician.id} is already {command.status}", technician)
    c.technician_event(
        "technician_status_changed",
        technician.model_copy(update={"status": command.status}),
        previous_status=technician.status,
    )
    return Ack(command_id=command.command_id, seq=c.state.seq)


def apply_plan(c: Change, command: ApplyPlan) -> Ack:
    if len({m.ticket_id for m in command.moves}) != len(command.moves):
        raise Refused(ErrorCode.INVALID, "the plan moves a ticket more than once")
    # All or nothing: every move is checked against the state before the first event.
    checked = []
    for move in command.moves:
        ticket = _open_ticket(c.state, move.ticket_id, move.expected_version, "move")
        _technician(c.state, move.tech_id)
        checked.append((ticket, move))
    for ticket, move in checked:
        if ticket.assignee != move.tech_id:
            _assign(c, ticket, move.tech_id, "rebalance: " + move.reason if move.reason else "rebalance")
    return Ack(command_id=command.command_id, seq=c.state.seq, ticket_ids=[m.ticket_id for m in command.moves])


def add_technician(c: Change, command: AddTechnician) -> Ack:
    if command.tech_id in c.state.technicians:
        existing = c.state.technicians[command.tech_id]
        raise Refused(ErrorCode.CONFLICT, f"technician {command.tech_id} already exists", existing)
    technician = Technician(id=command.tech_id, name=command.name, skills=command.skills, capacity=command.capacity,
                            notify=command.notify)  # fmt: skip
    c.technician_event("technician_added", technician)
    return Ack(command_id=command.command_id, seq=c.state.seq)


def create_incident(c: Change, command: CreateIncident) -> Ack:
    tickets = _linkable(c.state, command.ticket_ids)
    incident = Incident(
        id=incident_id_for(c.state.last_incident_number + 1),
        title=command.title,
        ticket_ids=[t.id for t in tickets],
        opened_at=c.now,
    )
    c.incident_event("incident_created", incident)
    for ticket in tickets:
        c.ticket_event("ticket_linked", ticket, ticket.model_copy(update={"incident_id": incident.id}))
    return Ack(command_id=command.command_id, seq=c.state.seq, incident_id=incident.id,
               ticket_ids=[t.id for t in tickets])  # fmt: skip


def link(c: Change, command: Link) -> Ack:
    if command.incident_id not in c.state.incidents:
        raise Refused(ErrorCode.NOT_FOUND, f"no incident {command.incident_id}")
    for ticket in _linkable(c.state, command.ticket_ids, command.incident_id):
        if ticket.incident_id != command.incident_id:
            c.ticket_event("ticket_linked", ticket, ticket.model_copy(update={"incident_id": command.incident_id}))
    return Ack(command_id=command.command_id, seq=c.state.seq, incident_id=command.incident_id,
               ticket_ids=list(command.ticket_ids))  # fmt: skip


def merge(c: Change, command: Merge) -> Ack:
    if command.primary_id in command.duplicate_ids:
        raise Refused(ErrorCode.INVALID, f"cannot merge {command.primary_id} into itself")
    if len(set(command.duplicate_ids)) != len(command.duplicate_ids):
        raise Refused(ErrorCode.INVALID, "duplicate_ids lists a ticket more than once")
    primary = _open_ticket(c.state, command.primary_id, None, "merge into")
    # All or nothing: every duplicate is checked before the first event.
    duplicates = [_open_ticket(c.state, tid, None, "merge") for tid in command.duplicate_ids]
    reason = command.reason or f"duplicate of {primary.id}"
    for ticket in duplicates:
        after = _with_status(c, ticket, TicketStatus.RESOLVED).model_copy(update={"merged_into": primary.id})
        c.ticket_event("ticket_merged", ticket, after, previous_status=ticket.status, reason=reason)
    return Ack(command_id=command.command_id, seq=c.state.seq, ticket_id=primary.id, version=primary.version,
               ticket_ids=list(command.duplicate_ids))  # fmt: skip


def update_clients(c: Change, command: UpdateClients) -> Ack:
    """Record the message on each open ticket of the incident, saying whom it goes to; the server's
    notifier sends it to the contacts once the batch is stored."""
    incident = c.state.incidents.get(command.incident_id)
    if incident is None:
        raise Refused(ErrorCode.NOT_FOUND, f"no incident {command.incident_id}")
    tickets = [t for i in incident.ticket_ids if (t := c.state.tickets.get(i)) is not None and t.is_open]
    if not tickets:
        raise Refused(ErrorCode.CONFLICT, f"{incident.id} has no open tickets: no client to update")
    for ticket in tickets:
        contacts = len(c.rules.contracts.contacts(ticket.client))
        reason = (
            f"sent to {contacts} contact{'s' if contacts > 1 else ''} of {ticket.client}"
            if contacts
            else f"{ticket.client} has no contacts in the SLA file: sent to nobody"
        )
        c.ticket_event("client_updated", ticket, ticket, note=command.message, reason=reason)
    return Ack(command_id=command.command_id, seq=c.state.seq, incident_id=incident.id,
               ticket_ids=[t.id for t in tickets])  # fmt: skip


def callout(c: Change, command: CalloutCommand) -> Ack:
    technician = _technician(c.state, command.tech_id)
    if technician.status not in OFF_THE_CLOCK:
        raise Refused(ErrorCode.CONFLICT, f"{technician.id} is {technician.status}: already on the clock", technician)
    if any(co.tech_id == technician.id and co.status is CalloutStatus.WAITING for co in c.state.callouts.values()):
        raise Refused(ErrorCode.CONFLICT, f"{technician.id} already has a call-out waiting for an answer", technician)
    override = c.fatigue(technician.id, callout=True)
    sent = send_callout(c, technician.id, None, command.reason or f"called in by {c.actor.user}", override)
    return Ack(command_id=command.command_id, seq=c.state.seq, callout_id=sent.id, override=override)


def answer_callout(c: Change, command: AnswerCallout) -> Ack:
    callout = c.state.callouts.get(command.callout_id)
    if callout is None:
        raise Refused(ErrorCode.NOT_FOUND, f"no call-out {command.callout_id}")
    if callout.tech_id != c.actor.tech_id:
        raise Refused(ErrorCode.FORBIDDEN, f"{callout.id} was sent to {callout.tech_id}, not to you")
    if callout.status is not CalloutStatus.WAITING:
        raise Refused(ErrorCode.CONFLICT, f"{callout.id} is already {callout.status}")
    status = CalloutStatus.ACCEPTED if command.accept else CalloutStatus.DECLINED
    c.callout_event("callout_answered", callout.model_copy(update={"status": status}))
    technician = c.state.technicians.get(callout.tech_id)
    if command.accept and technician is not None and technician.status is not TechStatus.AVAILABLE:
        c.technician_event(
            "technician_status_changed",
            technician.model_copy(update={"status": TechStatus.AVAILABLE}),
            previous_status=technician.status,
            reason="call-out accepted",
        )
    return Ack(command_id=command.command_id, seq=c.state.seq, callout_id=callout.id)


def send_callout(c: Change, tech_id: str, ticket_id: str | None, reason: str, override: str | None = None) -> Callout:
    """A call-out to `tech_id`, answered within the roster's `answer_within` (`override`: the fatigue
    rule a dispatcher called them out against)."""
    roster = c.rules.roster
    callout = Callout(
        id=callout_id_for(c.state.last_callout_number + 1),
        tech_id=tech_id,
        ticket_id=ticket_id,
        reason=reason,
        sent_at=c.now,
        expires_at=c.now + roster.answer_within,
        night=roster.is_night(tech_id, c.now),
        override=override,
    )
    c.callout_event("callout_sent", callout)
    return callout


def fatigue_blocks(state: DispatchState, rules: Rules, now: datetime) -> dict[str, str]:
    """Every technician a fatigue rule keeps from more work now, with the rule in words."""
    roster = rules.roster
    if roster.fatigue == Fatigue():
        return {}
    found = {tech_id: roster.fatigue_block(tech_id, state.work.get(tech_id), now) for tech_id in state.technicians}
    return {tech_id: rule for tech_id, rule in found.items() if rule is not None}


def with_time(technician: Technician, roster: Roster, work: WorkLog | None, now: datetime) -> Technician:
    """`technician` with their shift end, on-call mark and hours today as of `now`."""
    hours = work.hours(now - timedelta(days=1), now) if work else timedelta(0)
    return technician.model_copy(
        update={
            "on_shift_until": roster.on_shift_until(technician.id, now),
            "on_call": roster.on_call(technician.id, now),
            "hours_today": round(hours.total_seconds() / 3600, 2),
        }
    )


# --- checks shared by the handlers -------------------------------------------------------------------


def _open_duplicate(state: DispatchState, dedupe_key: str, since: datetime) -> Ticket | None:
    """The newest open ticket reported with `dedupe_key` at or after `since`, if any."""
    found = [t for t in state.tickets.values() if t.dedupe_key == dedupe_key and t.is_open and t.created_at >= since]
    return max(found, key=lambda t: (t.created_at, t.id)) if found else None


def _linkable(state: DispatchState, ticket_ids: list[str], incident_id: str | None = None) -> list[Ticket]:
    """Open tickets that may join an incident: none may already belong to another one (moving a ticket
    between incidents is not supported: the old incident would keep listing it)."""
    if len(set(ticket_ids)) != len(ticket_ids):
        raise Refused(ErrorCode.INVALID, "ticket_ids lists a ticket more than once")
    tickets = [_open_ticket(state, tid, None, "link") for tid in ticket_ids]
    for ticket in tickets:
        if ticket.incident_id is not None and ticket.incident_id != incident_id:
            raise Refused(ErrorCode.CONFLICT, f"{ticket.id} already belongs to {ticket.incident_id}", ticket)
    return tickets


def _ticket(state: DispatchState, ticket_id: str, expected_version: int | None, actor: Actor | None = None) -> Ticket:
    ticket = state.tickets.get(ticket_id)
    if ticket is None:
        raise Refused(ErrorCode.NOT_FOUND, f"no ticket {ticket_id}")
    # Ownership before version: a conflict carries the ticket, which a technician may see only if theirs.
    if actor is not None and actor.role is Role.TECHNICIAN and ticket.assignee != actor.tech_id:
        raise Refused(ErrorCode.FORBIDDEN, f"{ticket_id} is not assigned to you")
    if expected_version is not None and expected_version != ticket.version:
        raise Refused(
            ErrorCode.CONFLICT,
            f"{ticket_id} changed: it is at version {ticket.version}, not {expected_version}",
            ticket,
        )
    return ticket


def _open_ticket(state: DispatchState, ticket_id: str, expected_version: int | None, verb: str) -> Ticket:
    ticket = _ticket(state, ticket_id, expected_version)
    if not ticket.is_open:
        raise Refused(ErrorCode.CONFLICT, f"cannot {verb} {ticket_id}: it is {ticket.status}", ticket)
    return ticket


def _technician(state: DispatchState, tech_id: str) -> Technician:
    technician = state.technicians.get(tech_id)
    if technician is None:
        raise Refused(ErrorCode.NOT_FOUND, f"no technician {tech_id}")
    return technician


def _assign(c: Change, ticket: Ticket, tech_id: str, reason: str, override: str | None = None) -> None:
    after = ticket.model_copy(
        update={
            "assignee": tech_id,
            "status": TicketStatus.ASSIGNED,
            "responded_at": ticket.responded_at or c.now,
            **_hold_clock(c, ticket, TicketStatus.ASSIGNED),
        }
    )
    c.ticket_event("ticket_assigned", ticket, after, reason=reason, override=override)


def _with_status(c: Change, ticket: Ticket, status: TicketStatus, reason: HoldReason | None = None) -> Ticket:
    if status == ticket.status:
        raise Refused(ErrorCode.CONFLICT, f"{ticket.id} is already {status}", ticket)
    if status in HELD_STATUSES and ticket.assignee is None:
        raise Refused(ErrorCode.CONFLICT, f"{ticket.id} has no assignee: assign it before it can be {status}", ticket)
    if status is TicketStatus.NEW and ticket.assignee is not None:
        raise Refused(ErrorCode.CONFLICT, f"{ticket.id} is assigned to {ticket.assignee}: unassign it instead", ticket)
    update: dict[str, object] = {"status": status}
    if (
        status in (TicketStatus.IN_PROGRESS, TicketStatus.ON_HOLD, TicketStatus.RESOLVED)
        and ticket.responded_at is None
    ):
        update["responded_at"] = c.now
    return ticket.model_copy(update={**update, **_hold_clock(c, ticket, status, reason)})


def _hold_clock(c: Change, ticket: Ticket, status: TicketStatus, reason: HoldReason | None = None) -> dict[str, object]:
    """On hold the SLA clock stops, if the contract says the hold's reason stops it; when the ticket
    leaves hold its due and warning instants move on by the open time it stood still."""
    if status is TicketStatus.ON_HOLD and ticket.status is not TicketStatus.ON_HOLD:
        stops = c.rules.contracts.pauses(ticket.sla_tier, reason)
        return {"hold_reason": reason or HoldReason.OTHER, "paused_at": c.now if stops else None}
    if status is TicketStatus.ON_HOLD or ticket.status is not TicketStatus.ON_HOLD:
        return {}
    if ticket.paused_at is None:
        return {"hold_reason": None}
    calendar = c.rules.contracts.calendar(ticket.calendar)
    paused_at, now = ticket.paused_at, c.now
    stood = max(calendar.open_between(paused_at, now), timedelta(0))
    moved = {
        name: _moved_on(calendar, instant, paused_at, now)
        for name in ("respond_by", "resolve_by", "respond_warn_at", "resolve_warn_at")
        if (instant := getattr(ticket, name)) is not None
    }
    return {"hold_reason": None, "paused_at": None,
            "paused_seconds": ticket.paused_seconds + int(stood.total_seconds()), **moved}  # fmt: skip


def _moved_on(calendar: Calendar, instant: datetime, paused_at: datetime, now: datetime) -> datetime:
    """Where `instant` lies after a pause from `paused_at` to `now`: as much open time after `now` as
    it lay after `paused_at`; one already past at the pause moves on by the pause's wall time."""
    left = calendar.open_between(paused_at, instant)
    if left <= timedelta(0):
        return instant + max(now - paused_at, timedelta(0))
    return calendar.add(now, left)


def owns_ticket(actor: Actor, ticket_id: str, state: DispatchState) -> Refusal | None:
    """For reads about one ticket: not found, or (for a technician) not theirs; None when allowed."""
    try:
        _ticket(state, ticket_id, None, actor)
    except Refused as refused:
        return refused.refusal
    return None


def visible_to(actor: Actor, event: Event) -> bool:
    """A technician sees events about their own tickets (also one just taken from them) and technicians."""
    if actor.role is not Role.TECHNICIAN:
        return True
    if isinstance(event, TicketEvent):
        return actor.tech_id in (event.ticket.assignee, event.previous_assignee)
    if isinstance(event, SlaEvent):
        return event.assignee == actor.tech_id
    if isinstance(event, CalloutEvent):
        return event.callout.tech_id == actor.tech_id
    # Incidents and bursts are the dispatcher's business; a technician hears of an incident through
    # the `ticket_linked` events of their own tickets.
    return not isinstance(event, IncidentEvent | BurstEvent)


# --- what the server does by itself ------------------------------------------------------------------


def assign_with_reason(
    state: DispatchState, ticket_id: str, tech_id: str, actor: Actor, now: datetime, reason: str, rules: Rules
) -> Outcome | Refusal:
    """An assignment the server decides (auto-assign, escalation, a rebalance plan), with its reason."""
    change = Change(state, actor, now, rules)
    try:
        ticket = _open_ticket(state, ticket_id, None, "assign")
        _technician(state, tech_id)
        _assign(change, ticket, tech_id, reason)
    except Refused as refused:
        return refused.refusal
    return Outcome(change.events, Ack(command_id="", seq=state.seq, ticket_id=ticket_id))


def preempt(
    state: DispatchState,
    victim_id: str,
    ticket_id: str,
    tech_id: str,
    actor: Actor,
    now: datetime,
    reason: str,
    rules: Rules,
) -> Outcome | Refusal:
    """A P1 nobody free can take displaces `victim_id` (P3/P4 work) from `tech_id`: the victim goes
    back to the queue and the P1 is assigned, as one change."""
    change = Change(state, actor, now, rules)
    try:
        victim = _open_ticket(state, victim_id, None, "preempt")
        ticket = _open_ticket(state, ticket_id, None, "assign")
        after = victim.model_copy(
            update={"assignee": None, "status": TicketStatus.NEW, **_hold_clock(change, victim, TicketStatus.NEW)}
        )
        change.ticket_event("ticket_unassigned", victim, after, reason=f"preempted by {ticket_id}")
        _assign(change, ticket, tech_id, reason)
    except Refused as refused:
        return refused.refusal
    return Outcome(change.events, Ack(command_id="", seq=state.seq, ticket_id=ticket_id))


def clock_alerts(state: DispatchState, now: datetime, escalate_after: timedelta, actor: Actor) -> list[Event]:
    """SLA warnings and breaches due at `now`, and escalations of P1s left unassigned too long; each
    raised once per ticket and target (a breach found late still gets its warning first)."""
    events: list[Event] = []

    def raise_alert(ticket: Ticket, kind: str, target: str, due: datetime) -> None:
        event = SlaEvent(seq=state.seq + 1, ts=now, actor=actor.user, kind=kind, ticket_id=ticket.id,
                         assignee=ticket.assignee, target=target, due=due)  # fmt: skip
        apply_event(state, event)
        events.append(event)

    # Only the tickets whose warning, due or escalation moment has come (`AlertSchedule`), not the backlog.
    for ticket_id in state.alert_schedule().due(now, escalate_after):
        ticket = state.tickets[ticket_id]
        if not ticket.is_open or ticket.paused_at is not None:
            continue
        # Instants only: the warning and due instants were counted in open time when they were set.
        target, due, sla = alert_state(ticket, now)
        if sla in (SlaState.WARNING, SlaState.BREACHED):
            if (ticket.id, f"sla_warning:{target}") not in state.alerts:
                raise_alert(ticket, "sla_warning", target, due)
            if sla is SlaState.BREACHED and (ticket.id, f"sla_breached:{target}") not in state.alerts:
                raise_alert(ticket, "sla_breached", target, due)
        if (
            ticket.priority is Priority.P1
            and ticket.assignee is None
            and now - ticket.created_at >= escalate_after
            and (ticket.id, "escalation") not in state.alerts
        ):
            raise_alert(ticket, "escalation", "respond", ticket.respond_by)
    return events
