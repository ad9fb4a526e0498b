"""The after-action report: what happened to the tickets during a burst, read from the event log alone.

    dispatch-server --db PATH report [--incident INC-ID | --since 6h] [--out DIR]

Prints a compact text report (fits 80 columns) and, with `--out`, writes DIR/report.html: the same
figures with charts of queue depth, arrivals and breaches over time, of SLA compliance per client
and per tier, and of people's after-hours interruptions and hours, and a timeline of each incident's
client updates. The charts are static SVG drawn by pygal and inlined (the timelines are plain HTML), so
the file works offline and needs no script from anywhere.

Every figure comes from the events, never from the current-state tables, so a report can be made as
of any moment the log covers (the hidden `--as-of` option, for tests and reruns). The SLA clock does
not emit `sla_*` events in every setup yet, so breaches are given twice, clearly apart: as recorded by
the server (`sla_breached` events), and as derived from each ticket's own times (`respond_by`,
`resolve_by`, when it was first taken and closed).

SLA compliance (per client, per tier) decides each ticket's respond and resolve target one way: breached
if either of those says so, met if its clock stopped in time (first taken; resolved), and neither while
it still runs. The due times are the ticket's own, already counted in its calendar's open time and
moved on by its holds, so the report needs no contract file; tickets stored before contracts existed
read as tier "standard" on calendar "24x7".

People's time (issue 13) is read from the technicians' status history and the call-outs, without the
roster file. Hours worked: time on the clock (available, busy, on site). Called in: from accepting a
call-out until they go off shift or a change shows them on a shift (a shift that starts while they are
on the clock leaves no event of its own). After hours: a call-out accepted, or a ticket given to
someone called in or off shift. An interruption is a call-out sent (whatever the answer: it reached
them off the clock) or a ticket given while off shift without one; tickets given while called in are
the work the call-out brought, not new interruptions. Counts are scaled to a month (30 days) to read
against the scale on-call research uses: about 2 a month healthy, 7 bad, 19 burnout.

Client updates (issue 14) are the `client_updated` events, one `update_clients` command to an update
(its events share the moment, the sender, the message and the incident). An incident's clients wait
from its opening, or from its first ticket if that came first, until its last ticket is closed; the
longest silence is the longest of the gaps that make up that wait (to the first update, between two,
after the last), of those that reach into the window, counted whole.
"""

from __future__ import annotations

import argparse
import html
import math
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pygal  # type: ignore[import-untyped]  # pygal ships no type information
from pygal.style import Style  # type: ignore[import-untyped]

from dispatch.core.durations import DurationError, format_duration, format_span, parse_duration
from dispatch.core.models import CalloutStatus, Priority, Technician, TechStatus, Ticket, TicketStatus
from dispatch.core.protocol import CalloutEvent, Event, IncidentEvent, SlaEvent, TechnicianEvent, TicketEvent
from dispatch.core.state import OFF_THE_CLOCK, incident_number
from server.storage import Storage, is_postgres_url

__all__ = [
    "ReportError",
    "Report",
    "Breach",
    "SlaCompliance",
    "TechnicianLoad",
    "PeopleTime",
    "GuardrailOverride",
    "ClientReach",
    "ClientUpdate",
    "Silence",
    "IncidentUpdates",
    "INTERRUPTION_SCALE",
    "interruption_band",
    "add_report_parser",
    "run_report",
    "build_report",
    "format_text",
    "render_html",
]

REPORT_FILE = "report.html"
# Interval sizes the charts may use; the first that gives at most MAX_INTERVALS bars wins.
_INTERVALS = tuple(timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080))
MAX_INTERVALS = 48
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

BreachKind = Literal["respond", "resolve_closed", "resolve_open"]
SlaTarget = Literal["respond", "resolve"]
SlaOutcome = Literal["met", "breached"]
_TARGETS: tuple[SlaTarget, ...] = ("respond", "resolve")

# After-hours interruptions a person a month that on-call research calls healthy, bad and burnout; the
# report scales the window's counts to MONTH to read them against it.
INTERRUPTION_SCALE: tuple[tuple[int, str], ...] = ((2, "healthy"), (7, "bad"), (19, "burnout"))
MONTH = timedelta(days=30)
InterruptionBand = Literal["healthy", "raised", "bad", "burnout"]


class ReportError(Exception):
    """The report cannot be made from this input (unknown incident, bad --since); the message is one line."""


# --- the figures ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Breach:
    """An SLA target a ticket missed, derived from its own times: `due` is when it was missed."""

    ticket_id: str
    priority: Priority
    kind: BreachKind
    due: datetime


@dataclass
class SlaCompliance:
    """How the tickets of one client (or one tier) kept their SLA targets.

    `tickets`: those the window saw open (created in it, or carried in). A target counts as met or
    breached when that was decided in the window; one still running at the end counts neither way, nor
    does one of a ticket cancelled before it was due. `paused`: the open time their clocks stood still
    on hold (`paused_seconds`, holds that have ended).
    """

    name: str
    tickets: int = 0
    decided: Counter[tuple[SlaTarget, SlaOutcome]] = field(default_factory=Counter)
    paused: timedelta = timedelta(0)

    @property
    def respond_met(self) -> int:
        return self.decided["respond", "met"]

    @property
    def respond_breached(self) -> int:
        return self.decided["respond", "breached"]

    @property
    def resolve_met(self) -> int:
        return self.decided["resolve", "met"]

    @property
    def resolve_breached(self) -> int:
        return self.decided["resolve", "breached"]

    @property
    def met(self) -> int:
        return self.respond_met + self.resolve_met

    @property
    def breached(self) -> int:
        return self.respond_breached + self.resolve_breached

    @property
    def met_share(self) -> float | None:
        """Targets met of those decided, 0 to 1; None when none was decided."""
        decided = self.met + self.breached
        return self.met / decided if decided else None


def _worst_first(rows: Sequence[SlaCompliance]) -> list[SlaCompliance]:
    """The lowest share met first, then the most breaches, then by name; rows with nothing decided last."""
    return sorted(
        rows,
        key=lambda c: (c.met_share is None, c.met_share or 0.0, -c.breached, c.name),
    )


@dataclass
class TechnicianLoad:
    """One technician's share: tickets given to them in the window, held at its end, resolved by them."""

    tech_id: str
    name: str
    capacity: int | None  # None: never added to the roster in the log (should not happen, but the log rules)
    assigned: int = 0
    holding: int = 0
    resolved: int = 0


@dataclass
class PeopleTime:
    """One technician's time in the window, from their status history and the call-outs sent to them.

    `worked`: on the clock (available, busy, on site), `called_in` the part of it after accepting a
    call-out. Call-outs count when sent (`callouts_sent`) or answered (`callouts_accepted`, of them
    `night_callouts` inside the fatigue night) in the window. Tickets given to them while called in or
    while off shift are after-hours assignments; `overrides`, those given against a fatigue rule.
    """

    tech_id: str
    name: str
    worked: timedelta = timedelta(0)
    called_in: timedelta = timedelta(0)
    callouts_sent: int = 0
    callouts_accepted: int = 0
    night_callouts: int = 0
    assigned_called_in: int = 0
    assigned_off_shift: int = 0
    overrides: int = 0

    @property
    def after_hours_assignments(self) -> int:
        return self.assigned_called_in + self.assigned_off_shift

    @property
    def interruptions(self) -> int:
        """Call-outs sent (answered or not, each reached them off the clock) and tickets given while off
        shift without one; what a call-out brought after it was accepted is part of it."""
        return self.callouts_sent + self.assigned_off_shift


@dataclass(frozen=True)
class GuardrailOverride:
    """A ticket given to a technician against a fatigue rule: `rule` in words, `by` who gave it."""

    at: datetime
    ticket_id: str
    tech_id: str
    by: str
    rule: str


@dataclass(frozen=True)
class ClientReach:
    """Whom one client update went to at one client: `contacts`, how many the SLA file listed for it then
    (0: nobody), None if the event does not say in the rules' words; `reason` the event's own words;
    `tickets`, the client's open tickets of the incident it was recorded on."""

    client: str
    contacts: int | None
    reason: str
    tickets: tuple[str, ...]


@dataclass(frozen=True)
class ClientUpdate:
    """One `update_clients` command: when, who sent it, the message, and each client it went to (by name).
    `number` counts the incident's updates from 1 over its whole life, so one before the window keeps its
    place in the sequence."""

    number: int
    at: datetime
    by: str
    message: str
    reached: tuple[ClientReach, ...]


# Where a silence begins and ends: the incident's start (its opening, or its first ticket if that came
# first), an update, its last open ticket closing, or the end of the window while it is still open.
SilenceEdge = Literal["opened", "first ticket", "update", "closed", "window end"]


@dataclass(frozen=True)
class Silence:
    """A stretch in which the clients of an incident heard nothing: from `start` (`after` what) to `end`
    (`before` what)."""

    start: datetime
    end: datetime
    after: SilenceEdge
    before: SilenceEdge

    @property
    def length(self) -> timedelta:
        return self.end - self.start


@dataclass
class IncidentUpdates:
    """What the clients of one incident were told, and the longest time they were told nothing.

    `began`: the incident's opening, or its first ticket's creation if that came earlier (the clients
    were waiting from then); `closed_at`, when its last open ticket was closed (`closed_by`, as
    `closed_as`), None while one is open at the end. `updates`: all of them up to the end, from before the
    window too; `listed` are those in it. `longest_silence`: the longest of the gaps (start to first
    update, update to update, last update to closed or the window's end) that reach into the window;
    the first of equals.
    """

    incident_id: str
    title: str  # "" if the log has no incident_created for it
    tickets: int
    began: datetime
    began_as: Literal["opened", "first ticket"]
    closed_at: datetime | None
    closed_by: str | None
    closed_as: TicketStatus | None
    updates: list[ClientUpdate]
    window_start: datetime
    longest_silence: Silence

    @property
    def listed(self) -> list[ClientUpdate]:
        """The updates sent in the window."""
        return [u for u in self.updates if u.at >= self.window_start]

    @property
    def earlier(self) -> int:
        """How many updates were sent before the window."""
        return len(self.updates) - len(self.listed)


def interruption_band(per_month: float) -> InterruptionBand:
    """Where a rate of after-hours interruptions a month falls on INTERRUPTION_SCALE: up to 2 healthy,
    from 7 bad, from 19 burnout, and "raised" between healthy and bad."""
    (healthy, _), (bad, _), (burnout, _) = INTERRUPTION_SCALE
    if per_month <= healthy:
        return "healthy"
    if per_month < bad:
        return "raised"
    return "bad" if per_month < burnout else "burnout"


@dataclass
class Report:
    """Everything the report says, computed from the events; `format_text` and `render_html` only lay it out."""

    scope: str  # "all events", "the last 6h", "incident INC-7"
    start: datetime
    end: datetime
    # The span the charts cover: the whole window for --since, else from the start to the last activity.
    chart_start: datetime
    chart_end: datetime
    created: dict[Priority, int]
    resolved: int
    cancelled: int
    still_open: int
    still_unassigned: int
    carried_in: int  # tickets already open when the window began
    first_assignment: list[timedelta]  # per ticket created in the window and assigned in it
    never_assigned: int
    recorded_breaches: list[SlaEvent]
    breaches: list[Breach]
    # SLA compliance, worst first (`_worst_first`).
    sla_by_client: list[SlaCompliance]
    sla_by_tier: list[SlaCompliance]
    reassignments: int
    reassigned_tickets: int
    unassignments: int
    technicians: list[TechnicianLoad]
    queue_depth: list[tuple[datetime, int]]  # (moment, open unassigned tickets from then on)
    arrivals: list[tuple[datetime, Priority]]
    # People's time, most interrupted first; the team is everyone on the roster by the end (for an
    # incident, those it involved). Overrides in time order.
    people: list[PeopleTime] = field(default_factory=list)
    overrides: list[GuardrailOverride] = field(default_factory=list)
    # Client updates per incident the window saw open, in the order they began.
    incidents: list[IncidentUpdates] = field(default_factory=list)

    @property
    def ticket_count(self) -> int:
        return sum(self.created.values())

    def first_assignment_percentile(self, fraction: float) -> timedelta | None:
        return percentile(self.first_assignment, fraction)

    def breach_count(self, kind: BreachKind) -> int:
        return sum(1 for b in self.breaches if b.kind == kind)

    def interval(self) -> timedelta:
        """The bar width of the charts: the smallest round size that keeps them to MAX_INTERVALS bars."""
        span = self.chart_end - self.chart_start
        for size in _INTERVALS:
            if span <= size * MAX_INTERVALS:
                return size
        return _INTERVALS[-1] * math.ceil(span / (_INTERVALS[-1] * MAX_INTERVALS))

    def interval_starts(self) -> list[datetime]:
        size = self.interval()
        first = _EPOCH + size * ((self.chart_start - _EPOCH) // size)
        starts = [first]
        while starts[-1] + size <= self.chart_end:
            starts.append(starts[-1] + size)
        return starts

    def per_month(self, count: float) -> float | None:
        """`count` in the window scaled to a month (MONTH), as if every stretch of the month were like
        the window; None for a window of no length."""
        span = self.end - self.start
        return count * (MONTH / span) if span > timedelta(0) else None

    @property
    def interruptions_per_person(self) -> float | None:
        """The team's after-hours interruptions in the window, per person; None without a team."""
        if not self.people:
            return None
        return sum(p.interruptions for p in self.people) / len(self.people)

    def peak_queue(self) -> tuple[int, datetime]:
        depth, moment = max(((d, m) for m, d in self.queue_depth), key=lambda dm: (dm[0], -dm[1].timestamp()))
        return depth, moment


def percentile(values: Sequence[timedelta], fraction: float) -> timedelta | None:
    """Linear interpolation between the closest ranks (numpy's default); None without data."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class _TicketLife:
    """What the log says about one ticket up to the end of the window."""

    ticket: Ticket  # its state after the last event
    first_assigned_at: datetime | None = None
    # The first moment someone took it (the ticket's `responded_at`) and the respond-by then in force.
    responded_at: datetime | None = None
    respond_due_then: datetime | None = None
    closed_at: datetime | None = None  # last move to resolved/cancelled, while it stays closed
    resolve_due_then: datetime | None = None
    history: list[TicketEvent] = field(default_factory=list)


def build_report(
    events: Sequence[Event], *, now: datetime, since: timedelta | None = None, incident: str | None = None
) -> Report:
    """Compute the report over `events` (the log, in seq order) up to `now`.

    The window is all events by default, the last `since`, or the lifetime of the tickets of
    `incident`. Figures about tickets (how many, time to first assignment) count the tickets created
    in the window; figures about activity (reassignments, load, breaches) count what happened in it.
    """
    logged = [e for e in events if e.ts <= now]
    lives: dict[str, _TicketLife] = {}
    roster: dict[str, Technician] = {}
    for event in logged:
        if isinstance(event, TicketEvent):
            _follow(lives, event)
        elif isinstance(event, TechnicianEvent):
            roster[event.technician.id] = event.technician

    if incident is not None:
        in_scope = {tid for tid, life in lives.items() if life.ticket.incident_id == incident}
        if not in_scope:
            raise ReportError(f"no tickets belong to incident {incident}")
        scope = f"incident {incident}"
    else:
        in_scope = set(lives)
        scope = "all events"

    if since is not None:
        start = now - since
        window = f"the last {format_duration(since)}"
        scope = window if incident is None else f"{scope}, {window}"
    elif incident is not None:
        start = min(lives[tid].ticket.created_at for tid in in_scope)
    else:
        start = logged[0].ts if logged else now
    end = now

    def in_window(moment: datetime) -> bool:
        return start <= moment <= end

    def about_scope(event: Event) -> bool:
        if isinstance(event, TicketEvent):
            return event.ticket.id in in_scope
        if isinstance(event, SlaEvent):
            return event.ticket_id in in_scope
        return incident is None  # technician events belong to no incident

    window_events = [e for e in logged if in_window(e.ts) and about_scope(e)]
    scoped = {tid: lives[tid] for tid in in_scope}
    arriving = {tid: life for tid, life in scoped.items() if in_window(life.ticket.created_at)}

    created = {priority: 0 for priority in Priority}
    for life in arriving.values():
        created[life.ticket.priority] += 1
    first_assignment = [
        life.first_assigned_at - life.ticket.created_at
        for life in arriving.values()
        if life.first_assigned_at is not None
    ]
    carried = {tid for tid, life in scoped.items() if life.ticket.created_at < start and _open_at(life, start)}

    derived = {tid: _breaches(life, end) for tid, life in scoped.items()}
    breaches = [b for found in derived.values() for b in found if in_window(b.due)]
    breaches.sort(key=lambda b: (b.due, b.ticket_id))

    # The first sla_breached event of each ticket and target, from before the window as well: a target
    # breached before the window must not count as met in it.
    recorded_at: dict[tuple[str, SlaTarget], datetime] = {}
    for event in logged:
        if isinstance(event, SlaEvent) and event.kind == "sla_breached" and event.ticket_id in in_scope:
            recorded_at.setdefault((event.ticket_id, event.target), event.ts)
    by_client: dict[str, SlaCompliance] = {}
    by_tier: dict[str, SlaCompliance] = {}
    for tid in sorted(arriving.keys() | carried):
        life = scoped[tid]
        rows = (
            by_client.setdefault(life.ticket.client, SlaCompliance(life.ticket.client)),
            by_tier.setdefault(life.ticket.sla_tier, SlaCompliance(life.ticket.sla_tier)),
        )
        outcomes = _sla_outcomes(life, derived[tid], recorded_at)
        for row in rows:
            row.tickets += 1
            row.paused += timedelta(seconds=life.ticket.paused_seconds)
            for target, (outcome, decided_at) in outcomes.items():
                if in_window(decided_at):
                    row.decided[target, outcome] += 1

    reassigned: Counter[str] = Counter()
    unassignments = 0
    loads = {tech.id: TechnicianLoad(tech.id, tech.name, tech.capacity) for tech in roster.values() if incident is None}

    def load(tech_id: str) -> TechnicianLoad:
        if tech_id not in loads:
            tech = roster.get(tech_id)
            loads[tech_id] = TechnicianLoad(tech_id, tech.name if tech else tech_id, tech.capacity if tech else None)
        return loads[tech_id]

    assigned_to: set[tuple[str, str]] = set()
    for event in window_events:
        if not isinstance(event, TicketEvent):
            continue
        ticket = event.ticket
        if event.kind == "ticket_assigned":
            if event.previous_assignee is not None:
                reassigned[ticket.id] += 1
            if ticket.assignee is not None and (ticket.assignee, ticket.id) not in assigned_to:
                assigned_to.add((ticket.assignee, ticket.id))
                load(ticket.assignee).assigned += 1
        elif event.kind == "ticket_unassigned":
            unassignments += 1
        elif event.kind == "status_changed" and ticket.status is TicketStatus.RESOLVED and ticket.assignee is not None:
            load(ticket.assignee).resolved += 1
    for life in scoped.values():
        if life.ticket.is_open and life.ticket.assignee is not None:
            load(life.ticket.assignee).holding += 1

    people, overrides = _people_time(logged, start, end)
    if incident is not None:
        # A person's time is not split by ticket: the incident's report covers all the time of the
        # technicians it involved (given one of its tickets, or called out for one) in its window.
        involved = set(loads) | {
            e.callout.tech_id
            for e in logged
            if isinstance(e, CalloutEvent) and e.callout.ticket_id in in_scope and in_window(e.ts)
        }
        people = {tid: p for tid, p in people.items() if tid in involved}
        overrides = [o for o in overrides if o.tech_id in involved]
    else:
        for tech in roster.values():
            people.setdefault(tech.id, PeopleTime(tech.id, tech.name))

    chart_start = start
    if since is not None:
        chart_end = end
    else:
        last_moments = [e.ts for e in window_events] + [b.due for b in breaches]
        last = max(last_moments, default=start)
        # Up to the last thing that happened, and a little after it so its level can be seen; not on to
        # now, or a report on last week's outage would be a flat line with a spike at the start.
        chart_end = min(end, last + max((last - start) / 10, timedelta(minutes=5)))
    chart_end = max(chart_end, chart_start + timedelta(minutes=1))

    recorded = [e for e in window_events if isinstance(e, SlaEvent) and e.kind == "sla_breached"]
    return Report(
        scope=scope,
        start=start,
        end=end,
        chart_start=chart_start,
        chart_end=chart_end,
        created=created,
        resolved=sum(1 for life in arriving.values() if life.ticket.status is TicketStatus.RESOLVED),
        cancelled=sum(1 for life in arriving.values() if life.ticket.status is TicketStatus.CANCELLED),
        still_open=sum(1 for life in arriving.values() if life.ticket.is_open),
        still_unassigned=sum(1 for life in arriving.values() if _unassigned(life.ticket)),
        carried_in=len(carried),
        first_assignment=first_assignment,
        never_assigned=sum(1 for life in arriving.values() if life.first_assigned_at is None),
        recorded_breaches=recorded,
        breaches=breaches,
        sla_by_client=_worst_first(list(by_client.values())),
        sla_by_tier=_worst_first(list(by_tier.values())),
        reassignments=sum(reassigned.values()),
        reassigned_tickets=len(reassigned),
        unassignments=unassignments,
        technicians=sorted(loads.values(), key=lambda t: t.tech_id),
        queue_depth=_queue_depth(logged, in_scope, chart_start, chart_end),
        arrivals=sorted((life.ticket.created_at, life.ticket.priority) for life in arriving.values()),
        people=sorted(
            people.values(),
            key=lambda p: (-p.interruptions, -p.after_hours_assignments, -p.worked, p.tech_id),
        ),
        overrides=overrides,
        incidents=_client_updates(logged, scoped, start, end),
    )


@dataclass
class _OnTheClock:
    """Where one technician stands while the log is read: their status, whether they are called in,
    and since when both have been so."""

    status: TechStatus
    since: datetime
    called_in: bool = False

    @property
    def on_the_clock(self) -> bool:
        return self.status not in OFF_THE_CLOCK


def _people_time(
    events: Sequence[Event], start: datetime, end: datetime
) -> tuple[dict[str, PeopleTime], list[GuardrailOverride]]:
    """Each technician's time in [start, end] and the guardrail overrides, reading the whole log so
    that someone already on the clock (or called in) when the window began counts from its start."""
    people: dict[str, PeopleTime] = {}
    clocks: dict[str, _OnTheClock] = {}
    overrides: list[GuardrailOverride] = []

    def person(tech_id: str) -> PeopleTime:
        return people.setdefault(tech_id, PeopleTime(tech_id, tech_id))

    def advance(tech_id: str, now: datetime) -> _OnTheClock | None:
        """Add the time since the last change to the technician's figures; their clock, if known."""
        clock = clocks.get(tech_id)
        if clock is None:
            return None
        overlap = min(now, end) - max(clock.since, start)
        if clock.on_the_clock and overlap > timedelta(0):
            person(tech_id).worked += overlap
            if clock.called_in:
                person(tech_id).called_in += overlap
        clock.since = now
        return clock

    for event in events:
        in_window = start <= event.ts <= end
        if isinstance(event, TechnicianEvent):
            tech = event.technician
            person(tech.id).name = tech.name
            standing = advance(tech.id, event.ts) or clocks.setdefault(tech.id, _OnTheClock(tech.status, event.ts))
            standing.status = tech.status
            if event.reason == "call-out accepted":
                standing.called_in = True
            elif tech.status is TechStatus.OFF_SHIFT or event.reason == "shift starts" or tech.on_shift_until:
                # Off shift, or on a shift: the log has no event when a shift starts for someone already
                # on the clock, so any later change that shows them on one ends the call-out too.
                standing.called_in = False
        elif isinstance(event, CalloutEvent):
            callout = event.callout
            if event.kind == "callout_sent" and in_window:
                person(callout.tech_id).callouts_sent += 1
            elif event.kind == "callout_answered" and callout.status is CalloutStatus.ACCEPTED:
                # Called in from the answer on, also when they were already available (no status change).
                answered = advance(callout.tech_id, event.ts)
                if answered is not None:
                    answered.called_in = True
                if in_window:
                    person(callout.tech_id).callouts_accepted += 1
                    person(callout.tech_id).night_callouts += callout.night
        elif isinstance(event, TicketEvent) and event.kind == "ticket_assigned" and in_window:
            tech_id = event.ticket.assignee
            if tech_id is None:
                continue
            given_to = clocks.get(tech_id)
            if given_to is not None and given_to.called_in:
                person(tech_id).assigned_called_in += 1
            elif given_to is not None and given_to.status is TechStatus.OFF_SHIFT:
                person(tech_id).assigned_off_shift += 1
            if event.override is not None:
                person(tech_id).overrides += 1
                overrides.append(GuardrailOverride(event.ts, event.ticket.id, tech_id, event.actor, event.override))
    for tech_id in clocks:
        advance(tech_id, end)
    return people, overrides


# The rules' words for whom an update went to (dispatch.core.rules.update_clients): "sent to 2 contacts
# of Acme Corp", "Gamma has no contacts in the SLA file: sent to nobody".
_SENT_TO = re.compile(r"^sent to (\d+) contacts? of ")
_SENT_TO_NOBODY = re.compile(r"sent to nobody$")


def _contacts(reason: str) -> int | None:
    if (found := _SENT_TO.match(reason)) is not None:
        return int(found.group(1))
    return 0 if _SENT_TO_NOBODY.search(reason) else None


def _update_commands(events: Sequence[Event]) -> list[list[TicketEvent]]:
    """The `client_updated` events, one list per `update_clients` command. A command's events follow
    one another in the log and share the moment, the sender, the message and the incident; a ticket
    met a second time starts the next command (the same message sent twice in one batch)."""
    commands: list[list[TicketEvent]] = []
    previous: Event | None = None
    for event in events:
        if isinstance(event, TicketEvent) and event.kind == "client_updated":
            last = commands[-1] if commands and previous is commands[-1][-1] else None
            if (
                last is not None
                and (last[0].ts, last[0].actor, last[0].note, last[0].ticket.incident_id)
                == (event.ts, event.actor, event.note, event.ticket.incident_id)
                and all(e.ticket.id != event.ticket.id for e in last)
            ):
                last.append(event)
            else:
                commands.append([event])
        previous = event
    return commands


def _updates_sent(events: Sequence[Event]) -> dict[str, list[ClientUpdate]]:
    """Every client update in `events`, per incident, in time order."""
    sent: dict[str, list[ClientUpdate]] = {}
    for command in _update_commands(events):
        first = command[0]
        if first.ticket.incident_id is None:
            continue  # the rules record updates only on an incident's tickets
        by_client: dict[str, list[TicketEvent]] = {}
        for event in command:
            by_client.setdefault(event.ticket.client, []).append(event)
        reached = tuple(
            ClientReach(
                client,
                _contacts(said[0].reason or ""),
                said[0].reason or "",
                tuple(e.ticket.id for e in said),
            )
            for client, said in sorted(by_client.items())
        )
        updates = sent.setdefault(first.ticket.incident_id, [])
        updates.append(ClientUpdate(len(updates) + 1, first.ts, first.actor, first.note or "", reached))
    return sent


def _incident_closed(lives: Sequence[_TicketLife]) -> TicketEvent | None:
    """The event that closed the last open ticket of these, if none is open after the last event."""
    open_now: set[str] = set()
    closed: TicketEvent | None = None
    for event in sorted((e for life in lives for e in life.history), key=lambda e: e.seq):
        if event.ticket.is_open:
            open_now.add(event.ticket.id)
            closed = None
        elif event.ticket.id in open_now:
            open_now.discard(event.ticket.id)
            if not open_now:
                closed = event
    return closed


def _client_updates(
    events: Sequence[Event], scoped: dict[str, _TicketLife], start: datetime, end: datetime
) -> list[IncidentUpdates]:
    """The client updates of each incident the window saw open (one of its tickets belongs to the scope
    and it was not over before the window began), and each one's longest silence."""
    members: dict[str, list[_TicketLife]] = {}
    for life in scoped.values():
        if life.ticket.incident_id is not None:
            members.setdefault(life.ticket.incident_id, []).append(life)
    opened = {e.incident.id: e.incident for e in events if isinstance(e, IncidentEvent)}
    sent = _updates_sent(events)
    found: list[IncidentUpdates] = []
    for incident_id, lives in members.items():
        closed = _incident_closed(lives)
        if closed is not None and closed.ts < start:
            continue
        first_ticket = min(life.ticket.created_at for life in lives)
        incident = opened.get(incident_id)
        # The clients have waited since the first of the two: tickets may be grouped into an incident
        # some time after they arrived.
        began_as: Literal["opened", "first ticket"]
        if incident is not None and incident.opened_at <= first_ticket:
            began, began_as = incident.opened_at, "opened"
        else:
            began, began_as = first_ticket, "first ticket"
        updates = sent.get(incident_id, [])
        stop: tuple[datetime, SilenceEdge] = (closed.ts, "closed") if closed is not None else (end, "window end")
        starts: list[tuple[datetime, SilenceEdge]] = [(began, began_as), *((u.at, "update") for u in updates)]
        stops: list[tuple[datetime, SilenceEdge]] = [*((u.at, "update") for u in updates), stop]
        silences = [Silence(a, b, after, before) for (a, after), (b, before) in zip(starts, stops, strict=True)]
        # A silence that began before the window and ran into it counts whole: the clients waited that long.
        longest = max((s for s in silences if s.end >= start), key=lambda s: s.length)
        found.append(
            IncidentUpdates(
                incident_id=incident_id,
                title=incident.title if incident is not None else "",
                tickets=len(lives),
                began=began,
                began_as=began_as,
                closed_at=closed.ts if closed is not None else None,
                closed_by=closed.ticket.id if closed is not None else None,
                closed_as=closed.ticket.status if closed is not None else None,
                updates=updates,
                window_start=start,
                longest_silence=longest,
            )
        )
    return sorted(found, key=lambda i: (i.began, incident_number(i.incident_id), i.incident_id))


def _follow(lives: dict[str, _TicketLife], event: TicketEvent) -> None:
    ticket = event.ticket
    life = lives.get(ticket.id)
    if life is None:
        life = lives[ticket.id] = _TicketLife(ticket)
    was_open = life.ticket.is_open or not life.history
    life.ticket = ticket
    life.history.append(event)
    if event.kind == "ticket_assigned" and life.first_assigned_at is None:
        life.first_assigned_at = event.ts
    if life.responded_at is None and ticket.responded_at is not None:
        # The respond-by in force when it was taken: a later priority change does not rewrite history.
        life.responded_at = ticket.responded_at
        life.respond_due_then = ticket.respond_by
    if ticket.is_open:
        life.closed_at = life.resolve_due_then = None
    elif was_open:
        life.closed_at = event.ts
        life.resolve_due_then = ticket.resolve_by


def _open_at(life: _TicketLife, moment: datetime) -> bool:
    """Whether the ticket was open just before `moment` (after every event earlier than it)."""
    state = None
    for event in life.history:
        if event.ts >= moment:
            break
        state = event.ticket
    return state is not None and state.is_open


def _unassigned(ticket: Ticket) -> bool:
    return ticket.is_open and ticket.assignee is None


def _breaches(life: _TicketLife, end: datetime) -> list[Breach]:
    """The SLA targets this ticket missed by `end`, from its own times (the rule the board's clock uses)."""
    ticket = life.ticket
    found: list[Breach] = []
    # Respond-by runs until someone first takes the ticket; a ticket cancelled untaken stops it too.
    respond_due = life.respond_due_then or ticket.respond_by
    respond_stop = life.responded_at or (life.closed_at if life.closed_at is not None else end)
    if respond_due < respond_stop:
        found.append(Breach(ticket.id, ticket.priority, "respond", respond_due))
    # Resolve-by runs until the ticket is closed (resolved or cancelled) for good, or to the window's end.
    if life.closed_at is not None:
        resolve_due = life.resolve_due_then or ticket.resolve_by
        if resolve_due < life.closed_at:
            found.append(Breach(ticket.id, ticket.priority, "resolve_closed", resolve_due))
    elif ticket.resolve_by < (ticket.paused_at or end):
        # On a hold that stops the clock it stands where it was paused, as the server's clock reads it.
        found.append(Breach(ticket.id, ticket.priority, "resolve_open", ticket.resolve_by))
    return found


def _sla_outcomes(
    life: _TicketLife, derived: Sequence[Breach], recorded_at: dict[tuple[str, SlaTarget], datetime]
) -> dict[SlaTarget, tuple[SlaOutcome, datetime]]:
    """Each target's outcome and when it was decided: breached if the derived rule (`_breaches`) or a
    recorded `sla_breached` event says so, at the earlier of the two; met once its clock stopped in time
    (first taken; resolved). A target still running, or cancelled before it was due, has none."""
    ticket = life.ticket
    missed: dict[SlaTarget, datetime] = {}
    for breach in derived:
        missed["respond" if breach.kind == "respond" else "resolve"] = breach.due
    for target in _TARGETS:
        recorded = recorded_at.get((ticket.id, target))
        if recorded is not None:
            missed[target] = min(recorded, missed.get(target, recorded))
    outcomes: dict[SlaTarget, tuple[SlaOutcome, datetime]] = {t: ("breached", at) for t, at in missed.items()}
    if "respond" not in outcomes and life.responded_at is not None:
        outcomes["respond"] = ("met", life.responded_at)
    if "resolve" not in outcomes and life.closed_at is not None and ticket.status is TicketStatus.RESOLVED:
        outcomes["resolve"] = ("met", life.closed_at)
    return outcomes


def _queue_depth(
    events: Sequence[Event], in_scope: set[str], start: datetime, stop: datetime
) -> list[tuple[datetime, int]]:
    """Open unassigned tickets over time: the value at `start`, then one point per change up to `stop`."""
    waiting: set[str] = set()
    points: list[tuple[datetime, int]] = []
    for event in events:
        if not isinstance(event, TicketEvent) or event.ticket.id not in in_scope or event.ts > stop:
            continue
        if _unassigned(event.ticket):
            waiting.add(event.ticket.id)
        else:
            waiting.discard(event.ticket.id)
        moment = max(event.ts, start)
        if points and points[-1][0] == moment:
            points[-1] = (moment, len(waiting))  # events of one batch share a timestamp
        else:
            points.append((moment, len(waiting)))
    if not points or points[0][0] > start:
        points.insert(0, (start, 0))  # nothing happened before the first change: an empty queue
    if points[-1][0] < stop:
        points.append((stop, points[-1][1]))
    return points


def _span(value: timedelta | None) -> str:
    """`4m 05s` (dispatch.core.durations.format_span), `n/a` for no data."""
    return "n/a" if value is None else format_span(value)


def _moment(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _window_text(report: Report) -> str:
    start, end = report.start.astimezone(UTC), report.end.astimezone(UTC)
    until = end.strftime("%H:%M") if start.date() == end.date() else end.strftime("%Y-%m-%d %H:%M")
    return f"{start:%Y-%m-%d %H:%M} → {until} UTC ({_span(end - start)})"


def _clock(moment: datetime, report: Report) -> str:
    """`09:27` within a one-day window, else `11-23 09:27`."""
    same_day = report.start.astimezone(UTC).date() == report.end.astimezone(UTC).date()
    return moment.astimezone(UTC).strftime("%H:%M" if same_day else "%m-%d %H:%M")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _row(label: str, value: object, note: str = "") -> str:
    # One figure a line, right-aligned in one column, so a glance down the report reads the numbers.
    return f"  {label:<19}{value!s:>7}   {note}".rstrip()


def format_text(report: Report) -> str:
    """The report for a terminal: aligned columns, at most 80 characters a line."""
    r = report
    peak, peak_at = r.peak_queue()
    lines = [
        f"After-action report: {r.scope}",
        f"  window  {_window_text(r)}",
        "",
        "TICKETS",
        _row("created in window", r.ticket_count, "   ".join(f"{p.value} {r.created[p]}" for p in Priority)),
        _row("resolved", r.resolved),
        _row("cancelled", r.cancelled),
        _row("still open", r.still_open, f"{r.still_unassigned} of them unassigned"),
    ]
    if r.carried_in:
        lines.append(_row("carried in", r.carried_in, "open when the window began"))
    lines += [
        _row("queue at its peak", peak, f"open unassigned tickets, at {_clock(peak_at, r)}"),
        _row("queue at the end", r.queue_depth[-1][1], "open unassigned tickets"),
        "",
        "TIME TO FIRST ASSIGNMENT",
        _row("p50", _span(r.first_assignment_percentile(0.5))),
        _row("p90", _span(r.first_assignment_percentile(0.9))),
        _row("assigned", len(r.first_assignment), f"of {r.ticket_count} created; {r.never_assigned} never assigned"),
        "",
        "SLA BREACHES",
        _row("recorded", len(r.recorded_breaches), "by the server: sla_breached events"),
        _row("respond-by missed", r.breach_count("respond"), "derived: not taken before its respond-by"),
        _row("resolve-by missed", r.breach_count("resolve_closed"), "derived: resolved/cancelled after resolve-by"),
        _row("resolve-by overdue", r.breach_count("resolve_open"), "derived: still open past its resolve-by"),
        "",
        *_compliance_lines("SLA BY CLIENT", "client", r.sla_by_client),
        "",
        *_compliance_lines("SLA BY TIER", "tier", r.sla_by_tier),
        "  (worst first; a target counts once met or breached in the window, not while",
        "   it runs; breached: recorded or derived, as above; paused: open time the",
        "   clock stood still on hold, holds ended)",
        "",
        *_client_update_lines(r),
        "",
        "REASSIGNMENTS",
        _row("reassigned", r.reassignments, f"{_plural(r.reassigned_tickets, 'ticket')}, technician to technician"),
        _row("unassigned", r.unassignments, "back to the queue"),
        "",
        "LOAD PER TECHNICIAN",
    ]
    if r.technicians:
        lines.append(f"  {'technician':<24}{'assigned':>10}{'holding':>10}{'resolved':>10}")
        for tech in r.technicians:
            holding = f"{tech.holding}/{tech.capacity}" if tech.capacity is not None else str(tech.holding)
            lines.append(f"  {_clip(tech.tech_id, 24):<24}{tech.assigned:>10}{holding:>10}{tech.resolved:>10}")
        lines.append("  (assigned: given to them in the window; holding: open at its end / capacity)")
    else:
        lines.append("  no technician had a ticket")
    lines += ["", *_people_lines(r), "", *_override_lines(r)]
    return "\n".join(lines) + "\n"


def _hours(value: timedelta) -> str:
    """Hours worked as the fatigue rules write them: `8h05`, `0h00`, `41h30` (no days: a week's work reads
    as hours)."""
    minutes = round(value.total_seconds() / 60)
    return f"{minutes // 60}h{minutes % 60:02d}"


def _shown(rate: float) -> float:
    """A rate a month as the report shows it: one decimal below 10, whole above."""
    return round(rate, 1) if rate < 10 else float(round(rate))


def _rate(value: float | None) -> str:
    """A rate a month: `0.4`, `6.5`, `94`; `n/a` for none."""
    if value is None:
        return "n/a"
    shown = _shown(value)
    return "0" if shown == 0 else f"{shown:.1f}" if shown < 10 else f"{shown:.0f}"


def _band(rate: float | None) -> str:
    """Where a rate falls on the scale, judged on the figure shown (so "2.0" never reads "raised")."""
    return "" if rate is None else interruption_band(_shown(rate))


def _scale_words() -> str:
    """`about 2 a month healthy, 7 bad, 19 burnout`, from INTERRUPTION_SCALE."""
    (first, word), *rest = INTERRUPTION_SCALE
    return ", ".join([f"about {first} a month {word}", *(f"{limit} {word}" for limit, word in rest)])


def _people_lines(report: Report) -> list[str]:
    """A row per technician, most interrupted first: hours worked, call-outs, tickets given after hours
    or against a fatigue rule, interruptions in the window and a month; then the team against the scale."""
    r = report
    title = "PEOPLE'S TIME"
    if not r.people:
        return [title, "  no technician in the window"]
    lines = [
        f"{title:<19}{'call-outs':^16}{'assigned':^20}{'interruptions':^15}".rstrip(),
        f"  {'technician':<10}{'worked':>7}{'accepted':>10}{'night':>6}"
        f"{'after hrs':>10}{'overrides':>10}{'window':>7}{'a month':>8}",
    ]
    for p in r.people:
        rate = r.per_month(p.interruptions)
        band = _band(rate)
        lines.append(
            f"  {_clip(p.tech_id, 10):<10}{_hours(p.worked):>7}{f'{p.callouts_accepted}/{p.callouts_sent}':>10}"
            f"{p.night_callouts:>6}{p.after_hours_assignments:>10}{p.overrides:>10}{p.interruptions:>7}"
            f"{_rate(rate):>8} {band}".rstrip()
        )
    each = r.interruptions_per_person or 0.0
    team_rate = r.per_month(each)
    team_band = _band(team_rate)
    lines += [
        f"  {_TEAM_ROW:<53}{each:>7.1f}{_rate(team_rate):>8} {team_band}".rstrip(),
        f"  the scale from on-call research: {_scale_words()}",
        f"  (a month: the count in the window x 30 days / {_span(r.end - r.start)}, as if the month were",
        "   all like the window. worked: time on the clock; accepted/sent: call-outs;",
        "   night: accepted inside the fatigue night; after hrs: tickets given while",
        "   called in or off shift; interruptions: call-outs sent, answered or not,",
        "   and tickets given while off shift without a call-out)",
    ]
    return lines


def _at(moment: datetime, report: Report) -> str:
    """As `_clock`, and with the day for a moment on another day than a one-day window's (a silence may
    begin before the window)."""
    day = moment.astimezone(UTC).date()
    same_day = report.start.astimezone(UTC).date() == report.end.astimezone(UTC).date() == day
    return moment.astimezone(UTC).strftime("%H:%M" if same_day else "%m-%d %H:%M")


def _reach(reach: ClientReach, width: int) -> str:
    """`Acme Corp (2)`, `Gamma (none)`: the client and how many of its contacts an update went to."""
    if reach.contacts is None:
        return _clip(reach.client, width)
    count = f"({reach.contacts or 'none'})"
    return f"{_clip(reach.client, width - len(count) - 1)} {count}"


def _incident_span(incident: IncidentUpdates, report: Report) -> str:
    """`4 tickets, 09:00 to 13:20` or `1 ticket, from 13:00, still open`."""
    tickets = _plural(incident.tickets, "ticket")
    if incident.closed_at is None:
        return f"{tickets}, from {_at(incident.began, report)}, still open"
    return f"{tickets}, {_at(incident.began, report)} to {_at(incident.closed_at, report)}"


def _silence_words(incident: IncidentUpdates, report: Report) -> str:
    """Which gap the longest silence was, in words: `between the updates at 10:10 and 12:20`."""
    silence = incident.longest_silence
    start, end = _at(silence.start, report), _at(silence.end, report)
    if silence.after == "update" and silence.before == "update":
        return f"between the updates at {start} and {end}"
    since = {
        "update": f"from the last update at {start}",
        "opened": f"from its opening at {start}",
        "first ticket": f"from its first ticket at {start}",
    }[silence.after]
    if silence.before == "update":
        until = f"to the first update at {end}"
    elif silence.before == "closed":
        closed_as = incident.closed_as.value if incident.closed_as is not None else "closed"
        until = f"to its last ticket {closed_as} at {end} ({incident.closed_by})"
    else:
        until = f"to the end of the window at {end}, still open"
    return f"{since} {until}"


def _client_update_lines(report: Report) -> list[str]:
    """Per incident: its updates (time, sender, the message shortened, each client it went to with how
    many contacts) and the longest silence, saying which gap it was."""
    title = "CLIENT UPDATES"
    if not report.incidents:
        return [title, "  no incident in the window"]
    lines = [title]
    for incident in report.incidents:
        span = _incident_span(incident, report)
        name = _clip(incident.title, 80 - len(f"  {incident.incident_id}  : {span}"))
        lines.append(f"  {incident.incident_id}  {name}: {span}" if name else f"  {incident.incident_id}  {span}")
        listed = incident.listed
        earlier = f" ({incident.earlier} earlier, before the window)" if incident.earlier else ""
        if listed:
            width = max(len(_at(u.at, report)) for u in listed)
            message_width = 42 - width
            lines.append(f"    {'time':<{width}}  {'sent by':<8}  {'message':<{message_width}}  sent to (contacts)")
            for update in listed:
                message = _clip(" ".join(update.message.split()), message_width)
                left = f"    {_at(update.at, report):<{width}}  {_clip(update.by, 8):<8}  {message:<{message_width}}  "
                for index, reach in enumerate(update.reached):
                    lines.append((left if index == 0 else " " * len(left)) + _reach(reach, 80 - len(left)))
            if earlier:
                lines.append(f"    {earlier.strip()}")
        elif incident.updates:
            lines.append(f"    no update in the window{earlier}")
        else:
            lines.append("    no client update at all")
        label = f"    {'longest silence':<17}{_span(incident.longest_silence.length):>7}  "
        wrapped = textwrap.wrap(_silence_words(incident, report), width=80 - len(label))
        lines += [(label if index == 0 else " " * len(label)) + part for index, part in enumerate(wrapped)]
    lines += textwrap.wrap(
        "an update: one update_clients, sent to the contacts of each client with an open ticket in the "
        "incident; the longest silence: from the incident's start (its opening, or its first ticket if "
        "earlier) to the first update, between two updates, or from the last update to its last ticket "
        "closed or the window's end)",
        width=80,
        initial_indent="  (",
        subsequent_indent="   ",
    )
    return lines


def _override_lines(report: Report) -> list[str]:
    """Each assignment against a fatigue rule: when, which ticket to whom, who overrode, the rule."""
    if not report.overrides:
        return ["GUARDRAIL OVERRIDES", "  none: no ticket was given against a fatigue rule"]
    lines = ["GUARDRAIL OVERRIDES"]
    for o in report.overrides:
        line = f"  {_clock(o.at, report)}  {o.ticket_id} to {o.tech_id} by {o.by}: {o.rule}"
        lines.append(_clip(line, 80))
    return lines


def _met_percent(met: int, breached: int) -> str:
    """The share of targets met, rounded down so that 100% means none breached; `n/a` if none decided."""
    return "n/a" if met + breached == 0 else f"{math.floor(100 * met / (met + breached))}%"


def _compliance_lines(title: str, what: str, rows: Sequence[SlaCompliance]) -> list[str]:
    """One table: a row per client (or tier), its tickets, targets met and breached, share met, paused."""
    if not rows:
        return [title, "  no tickets in the window"]
    lines = [
        f"{title:<26}{'respond':^15}{'resolve':^15}".rstrip(),
        f"  {what:<16}{'tickets':>8}{'met':>6}{'breached':>9}{'met':>6}{'breached':>9}{'met %':>7}{'paused':>9}",
    ]
    for row in rows:
        met, paused = _met_percent(row.met, row.breached), format_span(row.paused)
        lines.append(
            f"  {_clip(row.name, 16):<16}{row.tickets:>8}{row.respond_met:>6}{row.respond_breached:>9}"
            f"{row.resolve_met:>6}{row.resolve_breached:>9}{met:>7}{paused:>9}"
        )
    return lines


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- HTML -----------------------------------------------------------------------------------------------

_PRIORITY_COLOURS = {Priority.P1: "#d32f2f", Priority.P2: "#f57c00", Priority.P3: "#1976d2", Priority.P4: "#78909c"}
_BREACH_COLOURS = ("#ef6c00", "#c62828", "#6a1b9a")
# Met in greens, breached in reds; respond dark, resolve light.
_COMPLIANCE_SERIES: tuple[tuple[str, SlaTarget, SlaOutcome, str], ...] = (
    ("respond met", "respond", "met", "#2e7d32"),
    ("resolve met", "resolve", "met", "#81c784"),
    ("respond breached", "respond", "breached", "#c62828"),
    ("resolve breached", "resolve", "breached", "#ef9a9a"),
)


def _chart_style(colours: Sequence[str]) -> Any:
    return Style(
        background="white",
        plot_background="white",
        foreground="#263238",
        foreground_strong="#263238",
        foreground_subtle="#90a4ae",
        font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
        label_font_size=11,
        major_label_font_size=11,
        legend_font_size=12,
        title_font_size=14,
        value_font_size=10,
        opacity=".85",
        colors=tuple(colours),
    )


def _chart_config(colours: Sequence[str], **options: Any) -> dict[str, Any]:
    return {
        "style": _chart_style(colours),
        # No tooltip script: the default one comes from a CDN, and the file must work offline.
        "js": [],
        "disable_xml_declaration": True,
        "width": 900,
        "height": 300,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 4,
        "x_label_rotation": 0,
        "truncate_label": -1,
        "truncate_legend": -1,
        "margin": 12,
        **options,
    }


def _label_formatter(report: Report) -> Callable[[datetime], str]:
    if report.interval() >= timedelta(days=1):
        return lambda moment: moment.strftime("%m-%d")
    if report.chart_start.astimezone(UTC).date() == report.chart_end.astimezone(UTC).date():
        return lambda moment: moment.strftime("%H:%M")
    return lambda moment: moment.strftime("%m-%d %H:%M")


def _interval_label(size: timedelta) -> str:
    """`5 minutes`, `hour`, `2 hours`, `day`: what one bar of a chart counts."""
    for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if size.total_seconds() % seconds == 0:
            count = int(size.total_seconds() // seconds)
            return unit if count == 1 else f"{count} {unit}s"
    return _span(size)


def _label_moments(report: Report) -> list[datetime]:
    """Round moments to label the time axis with: at most about ten, each on a bar's edge."""
    bar = report.interval()
    span = report.chart_end - report.chart_start
    sizes = [size for size in _INTERVALS if size >= bar and size % bar == timedelta(0)]
    size = next((s for s in sizes if span <= s * 10), bar * math.ceil(span / (bar * 10)))
    first = _EPOCH + size * -((_EPOCH - report.chart_start) // size)  # the first edge at or after the start
    moments = [first]
    while moments[-1] + size <= report.chart_end:
        moments.append(moments[-1] + size)
    return moments


def _count_axis(top: int) -> dict[str, Any]:
    """A y axis of whole numbers (tickets), 0 to a round number at or above `top`, about five steps."""
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10**4, 10**5, 10**6) if max(top, 1) <= s * 5)
    ceiling = max(step, math.ceil(top / step) * step)
    return {"range": (0, ceiling), "y_labels": list(range(0, ceiling + 1, step))}


def _svg(chart: Any) -> str:
    return str(chart.render(is_unicode=True))


def queue_chart(report: Report) -> str:
    """Queue depth as a step line: open unassigned tickets over time."""
    label = _label_formatter(report)
    starts = report.interval_starts()
    axis_start, axis_end = starts[0], starts[-1] + report.interval()
    points: list[tuple[float, int]] = []
    levels = [
        *report.queue_depth,
        (max(min(axis_end, report.end), report.queue_depth[-1][0]), report.queue_depth[-1][1]),
    ]
    for moment, depth in levels:
        if points:
            points.append((moment.timestamp(), points[-1][1]))  # hold the level until the change: a step
        points.append((moment.timestamp(), depth))
    chart = pygal.XY(
        **_chart_config(
            ["#1565c0"],
            title="Queue depth (open, unassigned tickets)",
            show_dots=False,
            fill=True,
            show_legend=False,
            x_labels=[m.timestamp() for m in _label_moments(report)],
            x_value_formatter=lambda x: label(datetime.fromtimestamp(x, UTC)),
            # The same span as the bar charts below it, bar edge to bar edge, so the three line up.
            xrange=(axis_start.timestamp(), axis_end.timestamp()),
            value_formatter=lambda y: f"{y:.0f}",
            **_count_axis(max(depth for _, depth in report.queue_depth)),
        )
    )
    chart.add("queue depth", points)
    return _svg(chart)


def _per_interval(report: Report, moments: Sequence[datetime]) -> list[int]:
    starts = report.interval_starts()
    size = report.interval()
    counts = [0] * len(starts)
    for moment in moments:
        index = int((moment - starts[0]) // size)
        if 0 <= index < len(counts):
            counts[index] += 1
    return counts


def _bar_config(report: Report, colours: Sequence[str], title: str, top: int, **options: Any) -> dict[str, Any]:
    label = _label_formatter(report)
    return _chart_config(
        colours,
        title=f"{title} per {_interval_label(report.interval())}",
        # Every bar has its label, but only the round ones are shown.
        x_labels=[label(s.astimezone(UTC)) for s in report.interval_starts()],
        x_labels_major=[label(m.astimezone(UTC)) for m in _label_moments(report)],
        show_minor_x_labels=False,
        value_formatter=lambda y: f"{y:.0f}",
        **_count_axis(top),
        **options,
    )


def arrivals_chart(report: Report) -> str:
    """New tickets per interval, stacked by priority."""
    series = {p: _per_interval(report, [at for at, priority in report.arrivals if priority is p]) for p in Priority}
    top = max(map(sum, zip(*series.values(), strict=True)), default=0)
    chart = pygal.StackedBar(**_bar_config(report, [_PRIORITY_COLOURS[p] for p in Priority], "Arrivals", top))
    for priority, counts in series.items():
        chart.add(priority.value, counts)
    return _svg(chart)


def breaches_chart(report: Report) -> str:
    """SLA breaches per interval: derived respond/resolve, and the server's own sla_breached events."""
    series = {
        "respond-by missed (derived)": _per_interval(report, [b.due for b in report.breaches if b.kind == "respond"]),
        "resolve-by missed (derived)": _per_interval(report, [b.due for b in report.breaches if b.kind != "respond"]),
        "sla_breached events (recorded)": _per_interval(report, [e.ts for e in report.recorded_breaches]),
    }
    top = max((max(counts, default=0) for counts in series.values()), default=0)
    chart = pygal.Bar(**_bar_config(report, _BREACH_COLOURS, "SLA breaches", top, legend_at_bottom_columns=3))
    for title, counts in series.items():
        chart.add(title, counts)
    return _svg(chart)


def compliance_chart(rows: Sequence[SlaCompliance], what: str) -> str:
    """SLA targets met and breached, a horizontal stacked bar per client (or tier), worst at the top."""
    # pygal draws the first label at the bottom: reversed, the worst comes first when read from the top.
    shown = list(reversed(rows))
    top = max((row.met + row.breached for row in rows), default=0)
    chart = pygal.HorizontalStackedBar(
        **_chart_config(
            [colour for *_, colour in _COMPLIANCE_SERIES],
            title=f"SLA targets met and breached per {what}",
            height=140 + 36 * len(shown),
            x_labels=[_clip(row.name, 28) for row in shown],
            value_formatter=lambda y: f"{y:.0f}",
            **_count_axis(top),
        )
    )
    for title, target, outcome, _ in _COMPLIANCE_SERIES:
        chart.add(title, [row.decided[target, outcome] for row in shown])
    return _svg(chart)


# Bars of the interruption chart, by where they fall on INTERRUPTION_SCALE.
_BAND_COLOURS: dict[InterruptionBand, str] = {
    "healthy": "#2e7d32",
    "raised": "#f9a825",
    "bad": "#ef6c00",
    "burnout": "#c62828",
}
_HOURS_COLOURS = ("#1565c0", "#8e24aa")  # on the clock; of it, called in
_TEAM_ROW = "team, a person"
# The log axis of the interruption chart: round steps, with the scale's own lines in between.
_RATE_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10**4, 10**5)


def interruptions_chart(report: Report) -> str:
    """After-hours interruptions a person, scaled to a month: a bar per technician and one for the team,
    coloured by where it falls on the scale, with the scale's lines at 2, 7 and 19. Log scale: the
    scale's steps are each about three times the last, and a short window's rates run to the hundreds."""
    rates = [(p.tech_id, report.per_month(p.interruptions)) for p in report.people]
    rates.insert(0, (_TEAM_ROW, report.per_month(report.interruptions_per_person or 0.0)))
    rows = [(name, _shown(rate or 0.0)) for name, rate in rates]
    shown = list(reversed(rows))  # pygal draws the first row at the bottom: the team goes on top
    positive = [rate for _, rate in rows if rate > 0]
    floor = max((s for s in _RATE_STEPS if s <= min(positive, default=0.5)), default=_RATE_STEPS[0])
    floor = min(floor, 0.5)
    top = max([*positive, INTERRUPTION_SCALE[-1][0]])
    ceiling = next((s for s in _RATE_STEPS if s >= top * 1.3), _RATE_STEPS[-1])
    scale: dict[float, str] = {limit: word for limit, word in INTERRUPTION_SCALE}
    steps = sorted({*(s for s in _RATE_STEPS if floor <= s <= ceiling and not 2 <= s <= 20), *scale})
    labels = [{"label": f"{s:g} {scale[s]}" if s in scale else f"{s:g}", "value": s} for s in steps]
    style = _chart_style(list(_BAND_COLOURS.values()))
    # The scale's lines solid and dark, the round steps faint.
    style.major_guide_stroke_color, style.major_guide_stroke_dasharray = "#37474f", "0"
    chart = pygal.HorizontalStackedBar(
        **{
            **_chart_config(
                list(_BAND_COLOURS.values()),
                title="After-hours interruptions a person, scaled to a month (log scale)",
                height=150 + 36 * len(shown),
                x_labels=[_clip(name, 28) for name, _ in shown],
                logarithmic=True,
                range=(floor, ceiling),
                zero=floor,  # bars grow from the axis; pygal's log bars would start at the smallest value
                y_labels=labels,
                y_labels_major=list(scale),
                print_values=True,
                value_formatter=_rate,
            ),
            "style": style,
        }
    )
    # One series per band, so the legend names the colours; each row has its value in one of them.
    for band in _BAND_COLOURS:
        chart.add(band, [rate if rate > 0 and interruption_band(rate) == band else None for _, rate in shown])
    return _svg(chart)


def hours_chart(report: Report) -> str:
    """Hours on the clock per technician, the part after accepting a call-out stacked on the rest."""
    shown = list(reversed(report.people))  # most interrupted on top, as in the table

    def hours(value: timedelta) -> float:
        return value.total_seconds() / 3600

    top = max((hours(p.worked) for p in shown), default=0.0)
    chart = pygal.HorizontalStackedBar(
        **_chart_config(
            list(_HOURS_COLOURS),
            title="Hours on the clock per technician",
            height=170 + 36 * len(shown),
            x_labels=[_clip(p.tech_id, 28) for p in shown],
            value_formatter=lambda h: _hours(timedelta(hours=h)),
            # As many legend columns as series: with more, pygal leaves the legend no room below.
            legend_at_bottom_columns=2,
            **_count_axis(math.ceil(top)),
        )
    )
    chart.add("on the clock", [hours(p.worked - p.called_in) for p in shown])
    chart.add("called in (after accepting a call-out)", [hours(p.called_in) or None for p in shown])
    return _svg(chart)


_PAGE_STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #263238; margin: 2rem auto;
       max-width: 960px; padding: 0 1rem; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.1rem; margin-top: 2rem; border-bottom: 1px solid #cfd8dc; padding-bottom: .2rem; }
.window { color: #607d8b; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1.2rem 0; }
.card { border: 1px solid #cfd8dc; border-radius: 6px; padding: .6rem 1rem; min-width: 8rem; }
.card b { display: block; font-size: 1.6rem; }
.card span { color: #607d8b; font-size: .85rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { padding: .25rem .8rem; text-align: left; border-bottom: 1px solid #eceff1; }
.n { text-align: right; font-variant-numeric: tabular-nums; }
th { color: #607d8b; font-weight: 600; }
.chart svg { width: 100%; height: auto; }
.note { color: #607d8b; font-size: .85rem; }
th.group { text-align: center; border-bottom: 1px solid #cfd8dc; }
table.sla th, table.sla td, table.people th, table.people td { white-space: nowrap; }
table.people { font-size: .92rem; }
table.people th, table.people td { padding: .25rem .45rem; }
h3 { font-size: 1rem; margin: 1.6rem 0 0; }
h3 + .note { margin-top: .1rem; }
/* Fixed columns, so the tables of all incidents line up; the message takes the rest. */
table.updates { width: 100%; table-layout: fixed; }
table.updates th { white-space: nowrap; }
table.updates td { vertical-align: top; overflow-wrap: anywhere; }
.silent { color: #c62828; }
.timeline { position: relative; height: 2.9rem; margin: .6rem .7rem .3rem; }
.timeline .track { position: absolute; top: .6rem; left: 0; right: 0; height: 4px; background: #cfd8dc;
                   border-radius: 2px; }
.timeline .gap { position: absolute; top: .45rem; height: 10px; background: #e57373; border-radius: 5px; }
.timeline .mark { position: absolute; top: 0; width: 1.3rem; height: 1.3rem; margin-left: -.65rem;
                  border-radius: 50%; background: #1565c0; color: white; font-size: .75rem; line-height: 1.3rem;
                  text-align: center; }
.timeline .mark.earlier { background: #90a4ae; }
.timeline .edge { position: absolute; top: 1.5rem; left: 0; font-size: .8rem; color: #607d8b; white-space: nowrap; }
.timeline .edge.end { left: auto; right: 0; }
"""


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    text_columns: int = 1,
    groups: Sequence[tuple[str, int]] = (),
    css_class: str = "",
) -> str:
    """A table whose first `text_columns` columns are text (left-aligned) and the rest figures (right);
    `groups`, if given, is a heading row above, each (label, how many columns it spans)."""

    def cell(tag: str, index: int, value: object) -> str:
        align = "" if index < text_columns else " class='n'"
        return f"<{tag}{align}>{html.escape(str(value))}</{tag}>"

    group_row = "".join(
        f"<th colspan='{span}' class='group'>{html.escape(label)}</th>" if label else f"<th colspan='{span}'></th>"
        for label, span in groups
    )
    head = "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(headers)) + "</tr>"
    if groups:
        head = f"<tr>{group_row}</tr>{head}"
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    opening = f"<table class='{css_class}'>" if css_class else "<table>"
    return f"{opening}<thead>{head}</thead><tbody>{body}</tbody></table>"


_BREACH_WORDS: dict[BreachKind, str] = {
    "respond": "respond-by passed before first taken",
    "resolve_closed": "resolve-by passed before resolved/cancelled",
    "resolve_open": "resolve-by passed, still open",
}


def _compliance_html(rows: Sequence[SlaCompliance], what: str) -> str:
    """The chart and the table of one SLA compliance view (per client or per tier)."""
    if not rows:
        return f"<p class='note'>No tickets in the window, so no SLA figures per {what}.</p>"
    table = _table(
        [what, "tickets", "met", "breached", "met", "breached", "met %", "paused"],
        [
            [
                row.name,
                row.tickets,
                row.respond_met,
                row.respond_breached,
                row.resolve_met,
                row.resolve_breached,
                _met_percent(row.met, row.breached),
                format_span(row.paused),
            ]
            for row in rows
        ],
        # As the text report: the two columns of each target under its name.
        groups=[("", 2), ("respond", 2), ("resolve", 2), ("", 2)],
        css_class="sla",
    )
    if not any(row.met + row.breached for row in rows):
        # An empty chart looks like a broken one.
        return f"<p class='note'>No SLA target was met or breached in the window; per {what}:</p>\n{table}"
    return f"<div class='chart' id='sla-by-{what}'>{compliance_chart(rows, what)}</div>\n{table}"


def _people_html(report: Report) -> str:
    """People's time: the team against the scale, the two charts, the table, and the overrides."""
    r = report
    if not r.people:
        return "<p class='note'>No technician in the window.</p>"
    each = r.interruptions_per_person or 0.0
    team_rate = r.per_month(each)
    if team_rate is None:
        team = f"The team of {len(r.people)} had {each:.1f} after-hours interruptions a person."
    else:
        team = (
            f"The team of {len(r.people)} had {each:.1f} after-hours interruptions a person in the window: "
            f"{_rate(team_rate)} a month, <b>{_band(team_rate)}</b> on the scale on-call research "
            f"uses ({_scale_words()})."
        )
    span = _span(r.end - r.start)
    table = _table(
        [
            "technician",
            "worked",
            "called in",
            "sent",
            "accepted",
            "night",
            "called in",
            "off shift",
            "overrides",
            "window",
            "a month",
            "scale",
        ],
        [
            [
                p.tech_id,
                _hours(p.worked),
                _hours(p.called_in),
                p.callouts_sent,
                p.callouts_accepted,
                p.night_callouts,
                p.assigned_called_in,
                p.assigned_off_shift,
                p.overrides,
                p.interruptions,
                _rate(rate := r.per_month(p.interruptions)),
                _band(rate),
            ]
            for p in r.people
        ],
        groups=[("", 1), ("hours", 2), ("call-outs", 3), ("tickets given", 3), ("interruptions", 3)],
        css_class="people",
    )
    overrides = (
        _table(
            ["when", "ticket", "given to", "overridden by", "fatigue rule"],
            [[_moment(o.at), o.ticket_id, o.tech_id, o.by, o.rule] for o in r.overrides],
            text_columns=5,
        )
        if r.overrides
        else "<p class='note'>No ticket was given against a fatigue rule.</p>"
    )
    return f"""<p>{team}</p>
<div class="chart" id="interruptions">{interruptions_chart(r)}</div>
<p class="note">A month: the count in the window &times; 30 days / {html.escape(span)}, as if the whole month
were like the window (a short window of an outage runs high). Interruptions: call-outs sent, whether
accepted, declined or left to expire (each reached them off the clock), and tickets given to them while
off shift without a call-out; the tickets a call-out brought once accepted are part of it. Up to 2 a
month reads healthy, from 7 bad, from 19 burnout, and &ldquo;raised&rdquo; in between.</p>
<div class="chart" id="hours">{hours_chart(r)}</div>
{table}
<p class="note">Worked: time on the clock (available, busy or on site) from the status history in the log; called
in: the part after accepting a call-out, until they went off shift or a change showed them on a shift.
Night: call-outs accepted inside the fatigue night. Tickets given while called in or off shift are
after hours; overrides are tickets given against a fatigue rule. The report reads no roster file, only
the log: a shift that starts while someone is on the clock leaves no event, so a call-out runs on to
their next change of status.</p>
<h2>Guardrail overrides</h2>
{overrides}"""


# A message longer than this is shortened in the HTML table; the whole text is in its tooltip.
_HTML_MESSAGE = 160


def _timeline_html(incident: IncidentUpdates, report: Report) -> str:
    """The incident's life as a line, from its start to its last ticket closed (or the window's end):
    each update a numbered dot, the longest silence a red band. Plain HTML and CSS, nothing to load."""
    first = incident.began
    last = incident.closed_at or report.end
    span = (last - first).total_seconds()

    def left(moment: datetime) -> str:
        share = (moment - first).total_seconds() / span if span > 0 else 0.0
        return f"{100 * min(max(share, 0.0), 1.0):.2f}%"

    silence = incident.longest_silence
    width = f"{100 * silence.length.total_seconds() / span:.2f}%" if span > 0 else "0%"
    gap = (
        f"<div class='gap' style='left:{left(silence.start)};width:{width}' "
        f"title='longest silence: {html.escape(_span(silence.length))}'></div>"
    )
    marks = "".join(
        f"<div class='mark{'' if u.at >= incident.window_start else ' earlier'}' style='left:{left(u.at)}' "
        f"title='{html.escape(f'{_at(u.at, report)} {u.by}: {_clip(u.message, 80)}', quote=True)}'>{u.number}</div>"
        for u in incident.updates
    )
    if incident.closed_at is None:
        end_words = f"{_at(last, report)} still open"
    else:
        closed_as = incident.closed_as.value if incident.closed_as is not None else "closed"
        end_words = f"{incident.closed_by} {closed_as} {_at(last, report)}"
    return (
        "<div class='timeline'><div class='track'></div>"
        f"{gap}{marks}"
        f"<span class='edge'>{html.escape(f'{_at(first, report)} {incident.began_as}')}</span>"
        f"<span class='edge end'>{html.escape(end_words)}</span></div>"
    )


def _updates_table(incident: IncidentUpdates, report: Report) -> str:
    """A row per update in the window: its number, time, sender, message and the clients it went to."""

    def message(text: str) -> str:
        shown = html.escape(_clip(text, _HTML_MESSAGE))
        return (
            f"<td title='{html.escape(text, quote=True)}'>{shown}</td>"
            if len(text) > _HTML_MESSAGE
            else f"<td>{shown}</td>"
        )

    def reached(update: ClientUpdate) -> str:
        # The rules' own words and the client's tickets it was recorded on, in the tooltip.
        return "<br>".join(
            f"<span title='{html.escape(r.reason + ' (' + ', '.join(r.tickets) + ')', quote=True)}'>"
            f"{html.escape(_reach(r, 200))}</span>"
            for r in update.reached
        )

    rows = "".join(
        f"<tr><td class='n'>{u.number}</td><td>{html.escape(_at(u.at, report))}</td><td>{html.escape(u.by)}</td>"
        f"{message(u.message)}<td>{reached(u)}</td></tr>"
        for u in incident.listed
    )
    head = "<tr><th class='n'>#</th><th>time</th><th>sent by</th><th>message</th><th>sent to (contacts)</th></tr>"
    columns = "".join(f"<col style='width:{w}'>" for w in ("2.6rem", "7.2rem", "6.5rem", "auto", "13rem"))
    return f"<table class='updates'><colgroup>{columns}</colgroup><thead>{head}</thead><tbody>{rows}</tbody></table>"


def _client_updates_html(report: Report) -> str:
    """Per incident: a heading, its timeline, the table of its updates and the longest silence in words."""
    if not report.incidents:
        return "<p class='note'>No incident in the window.</p>"
    parts = []
    for incident in report.incidents:
        heading = incident.incident_id + (f" · {incident.title}" if incident.title else "")
        silence = f"<b>{html.escape(_span(incident.longest_silence.length))}</b>, " + html.escape(
            _silence_words(incident, report)
        )
        earlier = (
            f" Updates 1&ndash;{incident.earlier} were sent before the window."
            if incident.earlier > 1
            else " Update 1 was sent before the window."
            if incident.earlier
            else ""
        )
        if incident.listed:
            body = _updates_table(incident, report) + (f"<p class='note'>{earlier.strip()}</p>" if earlier else "")
        elif incident.updates:
            body = f"<p class='silent'>No client update in the window.{earlier}</p>"
        else:
            body = "<p class='silent'>No client update at all: the clients were never told anything.</p>"
        parts.append(
            f"<h3>{html.escape(heading)}</h3>\n"
            f"<p class='note'>{html.escape(_incident_span(incident, report))}</p>\n"
            f"{_timeline_html(incident, report)}\n{body}\n"
            f"<p>Longest silence: {silence}.</p>"
        )
    return "\n".join(parts)


def render_html(report: Report) -> str:
    """One self-contained page: the figures, and the charts as inline SVG; nothing is loaded from elsewhere."""
    r = report
    p50 = _span(r.first_assignment_percentile(0.5))
    p90 = _span(r.first_assignment_percentile(0.9))
    derived = len(r.breaches)
    met_overall = _met_percent(sum(row.met for row in r.sla_by_client), sum(row.breached for row in r.sla_by_client))
    cards = [
        (r.ticket_count, "tickets created"),
        (p50, "p50 to first assignment"),
        (p90, "p90 to first assignment"),
        (derived, "SLA breaches (derived)"),
        (len(r.recorded_breaches), "SLA breaches (recorded)"),
        (met_overall, "SLA targets met"),
        (r.reassignments, "reassignments"),
        (
            "n/a" if (each := r.interruptions_per_person) is None else _rate(r.per_month(each)),
            "after-hours interruptions a person, a month",
        ),
    ]
    tickets = _table(
        ["", *[p.value for p in Priority], "total"],
        [["created in window", *[r.created[p] for p in Priority], r.ticket_count]],
    )
    outcome = _table(
        ["of the tickets created", "count"],
        [
            ["resolved", r.resolved],
            ["cancelled", r.cancelled],
            ["still open", r.still_open],
            ["… of them unassigned", r.still_unassigned],
            ["carried in (open when the window began)", r.carried_in],
        ],
    )
    assignment = _table(
        ["time to first assignment", ""],
        [
            ["p50", p50],
            ["p90", p90],
            ["tickets assigned", f"{len(r.first_assignment)} of {r.ticket_count}"],
            ["never assigned", r.never_assigned],
        ],
    )
    sla = _table(
        ["SLA breaches", "count"],
        [
            ["recorded by the server (sla_breached events)", len(r.recorded_breaches)],
            ["derived: " + _BREACH_WORDS["respond"], r.breach_count("respond")],
            ["derived: " + _BREACH_WORDS["resolve_closed"], r.breach_count("resolve_closed")],
            ["derived: " + _BREACH_WORDS["resolve_open"], r.breach_count("resolve_open")],
        ],
    )
    breach_list = (
        _table(
            ["ticket", "priority", "missed", "due"],
            [[b.ticket_id, b.priority.value, _BREACH_WORDS[b.kind], _moment(b.due)] for b in r.breaches],
            text_columns=4,
        )
        if r.breaches
        else "<p class='note'>No ticket missed an SLA target.</p>"
    )
    technicians = (
        _table(
            ["technician", "name", "assigned", "holding / capacity", "resolved"],
            [
                [
                    t.tech_id,
                    t.name,
                    t.assigned,
                    f"{t.holding} / {'-' if t.capacity is None else t.capacity}",
                    t.resolved,
                ]
                for t in r.technicians
            ],
            text_columns=2,
        )
        if r.technicians
        else "<p class='note'>No technician had a ticket.</p>"
    )
    moves = _table(
        ["", "count"],
        [
            ["reassignments (from one technician to another)", r.reassignments],
            ["tickets reassigned", r.reassigned_tickets],
            ["unassignments (back to the queue)", r.unassignments],
        ],
    )
    card_html = "".join(
        f"<div class='card'><b>{html.escape(str(v))}</b><span>{html.escape(k)}</span></div>" for v, k in cards
    )
    title = f"After-action report: {r.scope}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_PAGE_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="window">{html.escape(_window_text(r))}</p>
<div class="cards">{card_html}</div>
<h2>Over time</h2>
<div class="chart" id="queue-depth">{queue_chart(r)}</div>
<div class="chart" id="arrivals">{arrivals_chart(r)}</div>
<div class="chart" id="breaches">{breaches_chart(r)}</div>
<p class="note">Derived breaches are placed at the moment the target passed (its due time); recorded ones at
the time of the server's event.</p>
<h2>Tickets</h2>
{tickets}
{outcome}
<h2>Time to first assignment</h2>
{assignment}
<p class="note">From a ticket's creation to its first assignment, over the tickets created in the window.</p>
<h2>SLA breaches</h2>
{sla}
<p class="note">Recorded breaches are the server's own <code>sla_breached</code> events; derived ones come from
each ticket's respond-by and resolve-by and when it was first taken and closed, the rule the board's clock
uses. A server without the SLA clock records none, so both are shown.</p>
{breach_list}
<h2>SLA compliance</h2>
<p class="note">Worst first: the lowest share of targets met, then the most breaches. A ticket counts if the
window saw it open; its respond and resolve targets count once met (first taken, resolved) or breached
(by either rule above) in the window, and neither while they run. Paused: the open time their clocks
stood still on hold (holds that have ended).</p>
{_compliance_html(r.sla_by_client, "client")}
{_compliance_html(r.sla_by_tier, "tier")}
<h2>Client updates</h2>
<p class="note">Each update is one <code>update_clients</code>: the message went to the contacts (in the SLA
file) of every client with an open ticket in the incident. The longest silence is the longest the clients
heard nothing: from the incident's start (its opening, or its first ticket if that came first) to the first
update, between two updates, or from the last update to its last ticket closed or the end of the window.
On each line, the dots are the updates (numbered as in the table) and the red band the longest silence.</p>
{_client_updates_html(r)}
<h2>Reassignments</h2>
{moves}
<h2>Load per technician</h2>
{technicians}
<p class="note">Assigned: tickets given to them in the window. Holding: their open tickets at its end.</p>
<h2>People's time</h2>
{_people_html(r)}
</body>
</html>
"""


# --- command line ---------------------------------------------------------------------------------------


def add_report_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `report` to dispatch-server's subcommands."""
    report = commands.add_parser(
        "report",
        help="after-action report: tickets, time to assignment, SLA breaches, client updates, reassignments, load, "
        "people's time",
    )
    scope = report.add_mutually_exclusive_group()
    scope.add_argument("--incident", metavar="INC-ID", help="only the tickets of this incident")
    scope.add_argument("--since", metavar="DURATION", help="only the last DURATION: 30m, 6h, 2d, 1w ...")
    report.add_argument("--out", metavar="DIR", help="also write DIR/report.html with charts (works offline)")
    # For tests and reruns that must read the same: the report's "now".
    report.add_argument("--as-of", metavar="ISO8601", help=argparse.SUPPRESS)


async def run_report(args: argparse.Namespace) -> int:
    """Print the report for `args.db`, and write DIR/report.html with `--out DIR`; ReportError for bad input."""
    try:
        since = parse_duration(args.since) if args.since is not None else None
    except DurationError as exc:
        raise ReportError(f"--since: {exc}") from None
    now = _as_of(getattr(args, "as_of", None))
    if not is_postgres_url(args.db) and not Path(args.db).exists():
        # Storage.open would create an empty database: a typo in the path should not look like a quiet night.
        raise ReportError(f"no database at {args.db}")
    page = Path(args.out) / REPORT_FILE if args.out is not None else None
    if page is not None:
        # Before any output, so an unwritable --out is refused rather than noticed after the text.
        try:
            page.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReportError(f"cannot create {page.parent}: {exc.strerror or exc}") from None
    storage = await Storage.open(args.db, create=False)
    try:
        events = await storage.all_events()
    finally:
        await storage.close()
    if now is None:
        now = datetime.now(UTC)
        # A log written with a clock ahead of this machine's still reads whole.
        if events and events[-1].ts > now:
            now = events[-1].ts
    report = build_report(events, now=now, since=since, incident=args.incident)
    print(format_text(report), end="")
    if page is not None:
        try:
            page.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise ReportError(f"cannot write {page}: {exc.strerror or exc}") from None
        print(f"\nwrote {page}")
    return 0


def _as_of(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise ReportError(f"--as-of wants an ISO 8601 time (got {value!r})") from None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
