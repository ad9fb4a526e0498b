"""The wire contract, version 1: every frame a client or the server may send.

One pydantic model per message with `type: Literal[...]`; `decode_client_frame` and
`decode_server_frame` are the only ways in. docs/protocol.md shows each message with an example.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from dispatch.core.models import (
    Callout,
    Category,
    HoldReason,
    Incident,
    NotifyUrl,
    Priority,
    Role,
    Skills,
    Technician,
    TechStatus,
    Ticket,
    TicketStatus,
)
from dispatch.core.text import (
    MAX_BULK,
    MAX_ID,
    DedupeKey,
    Identifier,
    Name,
    NoteText,
    OptionalName,
    ReasonText,
    Title,
)

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_FRAME_BYTES",
    "ErrorCode",
    "Hello",
    "Command",
    "ClientFrame",
    "ServerFrame",
    "Event",
    "TicketEvent",
    "TechnicianEvent",
    "SlaEvent",
    "IncidentEvent",
    "BurstEvent",
    "decode_client_frame",
    "decode_server_frame",
    "describe_validation_error",
]

PROTOCOL_VERSION = 1
# The default address: the server listens here and boards and scripts look for it here.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_FRAME_BYTES = 1024 * 1024  # larger incoming frames close the connection with 1009
HELLO_TIMEOUT_S = 5.0

# Close codes the server uses (documented in docs/protocol.md).
CLOSE_BAD_TOKEN = 4401
CLOSE_TOO_SLOW = 1013  # the client could not keep up with the event stream; reconnect with last_seq
CLOSE_TOO_MANY_CONNECTIONS = 4409  # this token already has its maximum of open connections; retry later
CLOSE_RATE_LIMITED = 4429  # the client went on sending after `rate_limited` errors; reconnect and slow down


class ErrorCode(StrEnum):
    INVALID = "invalid"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    # Extension: the server cannot reach its database (PostgreSQL down): not applied; resend it later.
    UNAVAILABLE = "unavailable"


class _Frame(BaseModel):
    # Unknown fields are refused, so a typo in a field name is an error rather than silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_nul(value: str) -> str:
    # PostgreSQL's text cannot hold NUL: such an id could be neither stored nor looked up there, and on
    # SQLite it would be an id the other engine refuses. Refused on both, so both answer alike.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


CommandId = Annotated[str, Field(min_length=1, max_length=MAX_ID * 2), AfterValidator(_no_nul)]
Version = Annotated[int, Field(ge=1)]


# --- client -> server -------------------------------------------------------------------------------


class Hello(_Frame):
    """First frame of every connection: who I am and the last event I applied."""

    type: Literal["hello"] = "hello"
    # May be left out when the token came as `Authorization: Bearer` in the upgrade request.
    token: Annotated[str, Field(max_length=256)] | None = None
    last_seq: Annotated[int, Field(ge=0)] | None = None


class _Command(_Frame):
    command_id: CommandId


class CreateTicket(_Command):
    """Open a ticket; the ack carries its new `ticket_id`."""

    type: Literal["create_ticket"] = "create_ticket"
    title: Title
    client: Name
    priority: Priority
    site: OptionalName = ""
    category: Category = Category.OTHER
    skills: Skills = []
    incident_id: Identifier | None = None
    # Extension: an open ticket with the same key created within the server's window takes this report
    # as a duplicate (its `duplicates` count goes up) instead of a new ticket being opened.
    dedupe_key: DedupeKey | None = None


class Assign(_Command):
    """Give a ticket to a technician (also a reassignment)."""

    type: Literal["assign"] = "assign"
    ticket_id: Identifier
    tech_id: Identifier
    expected_version: Version | None = None


class Unassign(_Command):
    """Take a ticket back to the queue."""

    type: Literal["unassign"] = "unassign"
    ticket_id: Identifier
    expected_version: Version | None = None


class SetPriority(_Command):
    """Move a ticket to another lane; its SLA clock is recomputed from its creation time."""

    type: Literal["set_priority"] = "set_priority"
    ticket_id: Identifier
    priority: Priority
    expected_version: Version | None = None


class SetStatus(_Command):
    """Start, hold, resolve, cancel or reopen a ticket."""

    type: Literal["set_status"] = "set_status"
    ticket_id: Identifier
    status: TicketStatus
    expected_version: Version | None = None
    # Extension: why the ticket goes on hold (only with `on_hold`; none given counts as `other`). The
    # client's contract says which reasons stop the SLA clock.
    reason: HoldReason | None = None


class SetTechStatus(_Command):
    """A technician's availability."""

    type: Literal["set_tech_status"] = "set_tech_status"
    tech_id: Identifier
    status: TechStatus


class AddTechnician(_Command):
    """Add a technician to the roster."""

    type: Literal["add_technician"] = "add_technician"
    tech_id: Identifier
    name: Name
    skills: Skills = []
    capacity: Annotated[int, Field(ge=0, le=100)] = 3
    # Extension: an apprise URL where they hear of their assignments and call-outs; kept on the server,
    # never sent to a board (it often holds a token).
    notify: NotifyUrl | None = None


class BulkAssign(_Command):
    """Give many tickets (a whole outage) to one technician: all or nothing."""

    type: Literal["bulk_assign"] = "bulk_assign"
    ticket_ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_BULK)]
    tech_id: Identifier


class Suggest(_Command):
    """Ask who should take a ticket; answered with `suggestions`."""

    type: Literal["suggest"] = "suggest"
    ticket_id: Identifier


class AddNote(_Command):
    """Extension: a free-text note on a ticket (a technician on their own tickets, or a dispatcher)."""

    type: Literal["add_note"] = "add_note"
    ticket_id: Identifier
    text: NoteText
    expected_version: Version | None = None


class Rebalance(_Command):
    """Extension: ask for a plan of moves (nobody over capacity, earliest-SLA P1 and P2 placed first);
    answered with `plan`, changes nothing."""

    type: Literal["rebalance"] = "rebalance"


class CalloutCommand(_Command):
    """Extension: call an off-shift technician in by hand; answered with an ack carrying `callout_id`."""

    type: Literal["callout"] = "callout"
    tech_id: Identifier
    reason: ReasonText = ""


class AnswerCallout(_Command):
    """Extension: a technician accepts (and becomes available) or declines a call-out sent to them."""

    type: Literal["answer_callout"] = "answer_callout"
    callout_id: Identifier
    accept: bool


class WhatIfTechnician(_Frame):
    """A technician who is not there: what if they were?"""

    skills: Skills = []
    capacity: Annotated[int, Field(ge=1, le=100)] = 3


class Forecast(_Command):
    """Extension: which SLA targets will breach within the horizon at this pace, and with more (`extra`)
    or fewer (`without`) technicians; answered with `forecast`, changes nothing."""

    type: Literal["forecast"] = "forecast"
    horizon_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 120
    extra: Annotated[list[WhatIfTechnician], Field(max_length=50)] = []
    without: Annotated[list[Identifier], Field(max_length=MAX_BULK)] = []


class Undo(_Command):
    """Extension: take back one of your own changes of the last 15 minutes (by its command_id), all or
    nothing; refused with `conflict` if anything it touched has changed since."""

    type: Literal["undo"] = "undo"
    of: CommandId


class UpdateClients(_Command):
    """Extension: tell the clients of an incident what is going on. The server sends `message` to the
    contacts (the SLA file's `contacts`) of every client with an open ticket in the incident, and records
    a `client_updated` event on each of those tickets."""

    type: Literal["update_clients"] = "update_clients"
    incident_id: Identifier
    message: NoteText


class PlanMove(_Frame):
    """One move of a plan: give `ticket_id` (still at `expected_version`) to `tech_id`."""

    ticket_id: Identifier
    tech_id: Identifier
    expected_version: Version
    from_tech: Identifier | None = None
    reason: ReasonText = ""


class ApplyPlan(_Command):
    """Extension: apply a plan's moves as one all-or-nothing change; any moved ticket that changed
    since the plan was made refuses the whole plan with `conflict`."""

    type: Literal["apply_plan"] = "apply_plan"
    moves: Annotated[list[PlanMove], Field(min_length=1, max_length=MAX_BULK)]


class GetHistory(_Command):
    """Extension: every event about one ticket, oldest first; answered with `history`."""

    type: Literal["history"] = "history"
    ticket_id: Identifier


TicketIds = Annotated[list[Identifier], Field(max_length=MAX_BULK)]


class CreateIncident(_Command):
    """Extension: open an incident (an outage) grouping `ticket_ids`; the ack carries its `incident_id`."""

    type: Literal["create_incident"] = "create_incident"
    title: Title
    ticket_ids: TicketIds = []


class Link(_Command):
    """Extension: add tickets to an existing incident: all or nothing."""

    type: Literal["link"] = "link"
    incident_id: Identifier
    ticket_ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_BULK)]


class Merge(_Command):
    """Extension: resolve `duplicate_ids` as duplicates of `primary_id` (all or nothing)."""

    type: Literal["merge"] = "merge"
    primary_id: Identifier
    duplicate_ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_BULK)]
    reason: ReasonText = ""


# Every command a client may send after its hello; one list, used by both unions below.
_Commands = (
    CreateTicket
    | Assign
    | Unassign
    | SetPriority
    | SetStatus
    | SetTechStatus
    | AddTechnician
    | BulkAssign
    | Suggest
    | AddNote
    | GetHistory
    | Rebalance
    | ApplyPlan
    | CreateIncident
    | Link
    | Merge
    | UpdateClients
    | CalloutCommand
    | AnswerCallout
    | Undo
    | Forecast
)
Command = Annotated[_Commands, Field(discriminator="type")]
ClientFrame = Annotated[Hello | _Commands, Field(discriminator="type")]


# --- events -------------------------------------------------------------------------------------------


class _EventBase(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    ts: datetime
    actor: str


TicketEventKind = Literal[
    "ticket_created",
    "ticket_assigned",
    "ticket_unassigned",
    "priority_changed",
    "status_changed",
    "note_added",
    "ticket_linked",
    "ticket_merged",
    "ticket_duplicated",
    "client_updated",
]


class TicketEvent(_EventBase):
    """Something happened to a ticket; `ticket` is its whole state afterwards."""

    kind: TicketEventKind
    ticket: Ticket
    # Who held the ticket before this event: a technician's board must also hear about a ticket
    # taken away from them.
    previous_assignee: str | None = None
    previous_priority: Priority | None = None
    previous_status: TicketStatus | None = None
    reason: str | None = None
    # A note's text; on `client_updated`, the message the clients were sent.
    note: str | None = None
    # Extension: on an assignment a dispatcher made against a fatigue rule, that rule in words.
    override: str | None = None


class TechnicianEvent(_EventBase):
    """A technician joined the roster or changed availability; `technician` is the state afterwards."""

    kind: Literal["technician_added", "technician_status_changed"]
    technician: Technician
    previous_status: TechStatus | None = None
    # Extension: why the server changed it by itself ("shift starts", "shift ends", "call-out accepted").
    reason: str | None = None


class CalloutEvent(_EventBase):
    """Extension: a call-out was sent, answered (accepted or declined) or expired unanswered; `callout`
    is its whole state afterwards."""

    kind: Literal["callout_sent", "callout_answered", "callout_expired"]
    callout: Callout


class SlaEvent(_EventBase):
    """A ticket's SLA clock crossed a line (75 % of the target used, or breached), or an unassigned
    P1 waited too long (escalation). Each is emitted once per ticket and target."""

    kind: Literal["sla_warning", "sla_breached", "escalation"]
    ticket_id: str
    assignee: str | None = None
    target: Literal["respond", "resolve"]
    due: datetime


class IncidentEvent(_EventBase):
    """Extension: an incident was opened; `incident` is its whole state afterwards. (Tickets linked
    later are `ticket_linked` events, which grow the incident's `ticket_ids` where they are applied.)"""

    kind: Literal["incident_created"]
    incident: Incident


class BurstEvent(_EventBase):
    """Extension: `burst_threshold` or more open tickets with no incident arrived from one client (or at
    one site, or in one category) within `window_minutes`: likely one outage."""

    kind: Literal["burst_detected"]
    group: Literal["client", "site", "category"]
    value: str
    ticket_ids: list[str]
    window_minutes: int


Event = Annotated[
    TicketEvent | TechnicianEvent | SlaEvent | IncidentEvent | BurstEvent | CalloutEvent, Field(discriminator="kind")
]
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


# --- server -> client ---------------------------------------------------------------------------------


class Welcome(_Frame):
    """The server accepted the token: who the client is, and the seq it is being brought up to."""

    type: Literal["welcome"] = "welcome"
    role: Role
    user: str
    tech_id: str | None
    seq: int
    # Extension: the wire protocol version the server speaks (see PROTOCOL_VERSION).
    protocol: int = PROTOCOL_VERSION
    # Extension: which server (`serve --node NAME`) the client is on, when several share one database.
    node: str | None = None


class CalendarHours(_Frame):
    """Extension: a calendar's opening hours, so a board counts a ticket's time left in open time and
    can say when a closed calendar opens. `week` maps mon..sun to ranges like "09:00-17:30" (a day
    left out is closed); `holidays` are whole local days closed."""

    name: str
    timezone: str
    week: dict[str, list[str]]
    holidays: list[date] = []


class Snapshot(_Frame):
    type: Literal["snapshot"] = "snapshot"
    seq: int
    tickets: list[Ticket]
    technicians: list[Technician]
    incidents: list[Incident]
    # Extension: the calendars the tickets' clocks run on (none: every clock is 24x7).
    calendars: list[CalendarHours] = []
    # Extension: call-outs waiting for an answer (a technician: those sent to them).
    callouts: list[Callout] = []


class EventFrame(_Frame):
    type: Literal["event"] = "event"
    event: Event


class Ack(_Frame):
    """The command is durable. `ticket_id` names the ticket it created or changed, `version` its version."""

    type: Literal["ack"] = "ack"
    command_id: str
    seq: int
    ticket_id: str | None = None
    ticket_ids: list[str] | None = None
    version: int | None = None
    # Extensions: the incident `create_incident` opened; for a de-duplicated `create_ticket`, True and the
    # open ticket's new count of duplicates (`ticket_id` then names that existing ticket).
    incident_id: str | None = None
    deduplicated: bool | None = None
    duplicates: int | None = None
    # Extensions: the call-out `callout` sent; for an assignment a fatigue rule advised against, that
    # rule in words (the dispatcher overrode it; the decision log records it too).
    callout_id: str | None = None
    override: str | None = None


class Error(_Frame):
    type: Literal["error"] = "error"
    command_id: str | None
    code: ErrorCode
    message: str
    current: dict[str, Any] | None = None


class Candidate(_Frame):
    """A technician ranked for a ticket: its score and the reason in words. Ranking, `suggestions` and
    the decision log all use this one type."""

    tech_id: str
    score: float
    reason: str
    # Extension: the fatigue rule giving this technician the ticket would break ("resting until Tue
    # 07:00"); such a candidate is never chosen by the server, only listed for a dispatcher's override.
    blocked: str | None = None


class Suggestions(_Frame):
    type: Literal["suggestions"] = "suggestions"
    command_id: str
    ticket_id: str
    candidates: list[Candidate]


class Plan(_Frame):
    """The answer to `rebalance`: the moves it proposes, best first (possibly none)."""

    type: Literal["plan"] = "plan"
    command_id: str
    moves: list[PlanMove]


class PredictedBreach(_Frame):
    ticket_id: str  # "new": one of the tickets still to arrive at the recent rate
    target: Literal["respond", "resolve"]
    at: datetime


class Shortfall(_Frame):
    skill: str
    technicians: int


class ForecastAnswer(_Frame):
    """The answer to `forecast`: predicted breaches by time, counted by priority, and who is short."""

    type: Literal["forecast"] = "forecast"
    command_id: str
    generated_at: datetime
    horizon_minutes: int
    breaches: list[PredictedBreach]
    by_priority: dict[Priority, int]
    short: list[Shortfall]


class History(_Frame):
    type: Literal["history"] = "history"
    command_id: str
    ticket_id: str
    events: list[Event]


ServerFrame = Annotated[
    Welcome | Snapshot | EventFrame | Ack | Error | Suggestions | History | Plan | ForecastAnswer,
    Field(discriminator="type"),
]

_client_frame_adapter: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
_server_frame_adapter: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)


def decode_client_frame(text: str | bytes) -> ClientFrame:
    """Parse one frame from a client; raises `ValidationError` on anything not in the contract."""
    return _client_frame_adapter.validate_json(text)


def decode_server_frame(text: str | bytes) -> ServerFrame:
    """Parse one frame from the server (used by the board and the CLI)."""
    return _server_frame_adapter.validate_json(text)


def describe_validation_error(error: ValidationError) -> str:
    """One human sentence for the first problem in a frame, e.g. `title: String should have at most 200 characters`."""
    first = error.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return "frame is not valid JSON"
    if first["type"] == "union_tag_invalid":
        return (
            f"unknown message type {first['input'].get('type')!r}"
            if isinstance(first["input"], dict)
            else "unknown message type"
        )
    if first["type"] == "union_tag_not_found":
        return "frame has no 'type' field"
    # Drop the union tag pydantic puts first ('create_ticket.title' -> 'title').
    location = ".".join(str(part) for part in first["loc"][1:]) or "frame"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{location}: {first['msg']}{suffix}"
