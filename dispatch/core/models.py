"""Domain models: tickets, technicians, incidents, as the dispatcher speaks of them."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from dispatch.core.text import MAX_SKILLS, Identifier, Name, OptionalName, Skill, Title

# An apprise URL (`ntfys://…`, `mailto://…`, `json://…`): where a notification goes. Checked for shape
# here (the core does no I/O); the server's notifier says in one line if apprise cannot use one.
MAX_NOTIFY_URL = 1000
_NOTIFY_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\x00-\x1f\x7f]+")


def _notify_url(text: str) -> str:
    # The URL itself is not repeated: it often holds a token.
    if not _NOTIFY_URL.fullmatch(text):
        raise ValueError("not a notification URL: write it as apprise does, e.g. ntfys://ntfy.sh/TOPIC")
    return text


NotifyUrl = Annotated[str, StringConstraints(max_length=MAX_NOTIFY_URL), AfterValidator(_notify_url)]


class Priority(StrEnum):
    """P1 is an outage that stops a client's business; P4 can wait for a quiet day."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


PRIORITY_LABELS = {
    Priority.P1: "Critical",
    Priority.P2: "High",
    Priority.P3: "Normal",
    Priority.P4: "Low",
}


class Category(StrEnum):
    HARDWARE = "hardware"
    SOFTWARE = "software"
    NETWORK = "network"
    SECURITY = "security"
    OTHER = "other"


class TicketStatus(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


# A ticket in one of these is work someone owns or must pick up; the others are closed.
OPEN_STATUSES = frozenset({TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.ON_HOLD})
# Statuses that only make sense while somebody holds the ticket.
HELD_STATUSES = frozenset({TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.ON_HOLD})


class HoldReason(StrEnum):
    """Why a ticket is on hold; the client's contract says which reasons stop its SLA clock."""

    AWAITING_CLIENT = "awaiting_client"
    AWAITING_PARTS = "awaiting_parts"
    AWAITING_THIRD_PARTY = "awaiting_third_party"
    OTHER = "other"


class TechStatus(StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    ON_SITE = "on_site"
    BREAK = "break"
    OFF_SHIFT = "off_shift"


class Role(StrEnum):
    DISPATCHER = "dispatcher"
    TECHNICIAN = "technician"
    INTAKE = "intake"
    VIEWER = "viewer"


Skills = Annotated[list[Skill], Field(max_length=MAX_SKILLS)]


class Ticket(BaseModel):
    """One piece of break-fix work with its SLA clock."""

    model_config = ConfigDict(frozen=True)

    id: Identifier
    title: Title
    client: Name
    site: OptionalName = ""
    category: Category = Category.OTHER
    priority: Priority
    status: TicketStatus = TicketStatus.NEW
    assignee: Identifier | None = None
    skills: Skills = []
    incident_id: Identifier | None = None
    created_at: datetime
    respond_by: datetime
    resolve_by: datetime
    # When someone first took the ticket: after that its resolve-by clock is the one that counts.
    responded_at: datetime | None = None
    # The SLA clock stands still while the ticket is on hold: since when, and how long in all so far
    # (the due times above already include earlier holds).
    paused_at: datetime | None = None
    paused_seconds: int = 0
    # Extension (issue 5): the ticket this one was merged into as a duplicate, the intake's de-duplication
    # key, and how many times the same problem was reported again while this ticket was open.
    merged_into: Identifier | None = None
    dedupe_key: str | None = None
    duplicates: int = 0
    version: int = 1
    # Extension (SLA contracts): the tier and calendar this ticket's clock runs on, when 75 % of each
    # target's open time is used (the server's warning instants), and why it is on hold. With a
    # business calendar, `paused_seconds` is open time.
    sla_tier: str = "standard"
    calendar: str = "24x7"
    respond_warn_at: datetime | None = None
    resolve_warn_at: datetime | None = None
    hold_reason: HoldReason | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class Technician(BaseModel):
    """A person who fixes things; `capacity` is how many active tickets they may hold at once."""

    model_config = ConfigDict(frozen=True)

    id: Identifier
    name: Name
    skills: Skills = []
    status: TechStatus = TechStatus.AVAILABLE
    capacity: Annotated[int, Field(ge=0, le=100)] = 3
    # Extension (people's time), as of the event or snapshot that carries it: the end of the shift they
    # are on (None: not on one, or no roster for them), whether they may be called out now, and their
    # hours on the clock (any status but off shift or break) in the last 24 h.
    on_shift_until: datetime | None = None
    on_call: bool = False
    hours_today: float = 0.0
    # Extension (notifications): where this technician hears of their assignments and call-outs (an
    # apprise URL). It often holds a token, so it never leaves the server: excluded from every dump (the
    # events, snapshots and errors boards receive) and from repr; the server keeps it in its own table.
    notify: NotifyUrl | None = Field(default=None, exclude=True, repr=False)


class CalloutStatus(StrEnum):
    WAITING = "waiting"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"


class Callout(BaseModel):
    """A technician off shift asked to come in: for a waiting ticket (`ticket_id`) or by a dispatcher."""

    model_config = ConfigDict(frozen=True)

    id: Identifier
    tech_id: Identifier
    ticket_id: Identifier | None = None
    reason: str = ""
    sent_at: datetime
    expires_at: datetime
    status: CalloutStatus = CalloutStatus.WAITING
    # Inside the fatigue rules' night, in the technician's own time zone.
    night: bool = False
    # A dispatcher's call-out against a fatigue rule: that rule in words.
    override: str | None = None


class Incident(BaseModel):
    """An outage that groups the tickets it caused."""

    model_config = ConfigDict(frozen=True)

    id: Identifier
    title: Title
    ticket_ids: list[Identifier] = []
    opened_at: datetime
