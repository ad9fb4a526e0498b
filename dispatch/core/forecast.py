"""The breach forecast: which SLA targets will break within the horizon at this pace, and who is short.

Pure and deterministic for a given state. The model (docs/forecast.md says it in full):
- the open queue is taken in the server's own order (priority, then due time) by the technicians as
  they free up: each technician works `capacity` tickets at once; one with the skills and the earliest
  free place takes the next ticket; someone off shift or on a break joins at their next shift start (from
  the roster), and not at all without one;
- a ticket takes its handle time: the median of the last resolved tickets of its category and priority
  (at least MIN_SAMPLES of them), else of its priority, else DEFAULT_HANDLE; a ticket already being worked
  finishes a handle time after it was taken;
- new tickets keep arriving at the rate of the last ARRIVAL_WINDOW, like the ones that came then;
- a respond target breaks if no one takes the ticket by its respond-by, a resolve target if it is not done
  by its resolve-by; only breaches still to come within the horizon count.
`short` tries more technicians with each skill the breaching tickets need and says how many would remove
most of those breaches.
"""

from __future__ import annotations

import heapq
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dispatch.core.contracts import Contracts
from dispatch.core.models import OPEN_STATUSES, Category, Priority, Technician, TechStatus, Ticket, TicketStatus
from dispatch.core.roster import Roster
from dispatch.core.sla import clock_fields

__all__ = ["DEFAULT_HANDLE", "Breach", "Extra", "ForecastResult", "HandleTimes", "forecast"]

DEFAULT_HANDLE = {
    Priority.P1: timedelta(minutes=45),
    Priority.P2: timedelta(minutes=60),
    Priority.P3: timedelta(minutes=90),
    Priority.P4: timedelta(minutes=120),
}
MIN_SAMPLES = 5
RECENT_SAMPLES = 50
ARRIVAL_WINDOW = timedelta(minutes=30)
MAX_ARRIVALS = 5_000
# Most technicians `short` tries adding for one skill.
MAX_EXTRA = 5


@dataclass
class HandleTimes:
    """How long the last resolved tickets took, from being taken to resolved, by category and priority."""

    samples: dict[tuple[Category, Priority], deque[float]] = field(default_factory=dict)

    def record(self, ticket: Ticket, resolved_at: datetime) -> None:
        if ticket.responded_at is None:
            return
        seconds = (resolved_at - ticket.responded_at).total_seconds() - ticket.paused_seconds
        if seconds > 0:
            key = (ticket.category, ticket.priority)
            self.samples.setdefault(key, deque(maxlen=RECENT_SAMPLES)).append(seconds)

    def estimate(self, category: Category, priority: Priority) -> timedelta:
        """The median of the recent ones (robust to the odd ticket left open over a weekend)."""
        own = self.samples.get((category, priority), ())
        if len(own) >= MIN_SAMPLES:
            return timedelta(seconds=statistics.median(own))
        same_priority = [s for (_, p), values in self.samples.items() if p is priority for s in values]
        if len(same_priority) >= MIN_SAMPLES:
            return timedelta(seconds=statistics.median(same_priority))
        return DEFAULT_HANDLE[priority]


@dataclass(frozen=True)
class Extra:
    """A technician who is not there (yet): what if they were?"""

    skills: frozenset[str]
    capacity: int = 3


@dataclass(frozen=True)
class Breach:
    ticket_id: str  # "new" for one of the tickets still to arrive
    target: str  # "respond" or "resolve"
    at: datetime
    priority: Priority
    skills: frozenset[str]


@dataclass(frozen=True)
class ForecastResult:
    breaches: list[Breach]
    by_priority: dict[Priority, int]
    short: list[tuple[str, int]]  # (skill, how many more technicians)


@dataclass(frozen=True)
class _Work:
    ticket_id: str
    priority: Priority
    skills: frozenset[str]
    arrives: datetime
    respond_by: datetime | None  # None once taken
    resolve_by: datetime
    handle: timedelta


def forecast(
    tickets: Iterable[Ticket],
    technicians: Iterable[Technician],
    now: datetime,
    horizon: timedelta,
    *,
    handle_times: HandleTimes | None = None,
    contracts: Contracts | None = None,
    roster: Roster | None = None,
    extra: Sequence[Extra] = (),
    without: Iterable[str] = (),
) -> ForecastResult:
    """The breaches expected within `horizon` of `now`; see the module's model."""
    handle_times = handle_times or HandleTimes()
    contracts = contracts or Contracts()
    roster = roster or Roster()
    tickets = list(tickets)
    left_out = set(without)
    team = [t for t in technicians if t.id not in left_out]
    end = now + horizon
    queue, held = _queue(tickets, now, end, handle_times, contracts)
    breaches = _simulate(queue, held, team, extra, roster, now, end)
    short = _short(queue, held, team, extra, roster, now, end, breaches)
    by_priority = {p: sum(1 for b in breaches if b.priority is p) for p in Priority}
    return ForecastResult(breaches, by_priority, short)


def _queue(
    tickets: list[Ticket], now: datetime, end: datetime, handle_times: HandleTimes, contracts: Contracts
) -> tuple[list[_Work], list[tuple[str, _Work, datetime]]]:
    """The work waiting (open and unassigned, then the arrivals to come), and the work held: (who,
    the work, when they took it)."""
    waiting: list[_Work] = []
    held: list[tuple[str, _Work, datetime]] = []
    for t in tickets:
        if t.status not in OPEN_STATUSES:
            continue
        work = _Work(t.id, t.priority, frozenset(t.skills), t.created_at, t.respond_by if t.responded_at is None
                     else None, t.resolve_by, handle_times.estimate(t.category, t.priority))  # fmt: skip
        if t.assignee is None:
            waiting.append(work)
        elif t.status is not TicketStatus.ON_HOLD:  # on hold: its clock stands, it breaches nothing
            held.append((t.assignee, work, t.responded_at or now))
    recent = sorted((t for t in tickets if t.created_at > now - ARRIVAL_WINDOW), key=lambda t: (t.created_at, t.id))
    if recent:
        # Tickets like the recent ones keep coming at the recent rate, spread evenly over the horizon.
        count = min(MAX_ARRIVALS, int(len(recent) * ((end - now) / ARRIVAL_WINDOW)))
        step = (end - now) / max(count, 1)
        for n in range(count):
            model = recent[n % len(recent)]
            arrives = now + step * (n + 1)
            clock = clock_fields(contracts.terms(model.client, model.priority), arrives)
            handle = handle_times.estimate(model.category, model.priority)
            waiting.append(_Work("new", model.priority, frozenset(model.skills), arrives, clock["respond_by"],
                                 clock["resolve_by"], handle))  # fmt: skip
    waiting.sort(key=lambda w: (w.priority, w.respond_by or w.resolve_by, w.arrives, w.ticket_id))
    return waiting, held


def _simulate(
    queue: list[_Work],
    held: list[tuple[str, _Work, datetime]],
    team: list[Technician],
    extra: Sequence[Extra],
    roster: Roster,
    now: datetime,
    end: datetime,
) -> list[Breach]:
    # Each technician's free places, as a heap of the times they free up.
    places: list[list[datetime]] = []
    skills: list[frozenset[str]] = []
    index: dict[str, int] = {}
    for tech in sorted(team, key=lambda t: t.id):
        joins = _joins(tech, roster, now, end)
        if joins is None:
            continue
        index[tech.id] = len(places)
        places.append([joins] * max(tech.capacity, 1))
        skills.append(frozenset(tech.skills))
    for more in extra:
        places.append([now] * max(more.capacity, 1))
        skills.append(more.skills)
    breaches: list[Breach] = []
    for holder, work, taken in held:
        finish = max(now, taken + work.handle)
        if holder in index:
            heap = places[index[holder]]
            heapq.heapreplace(heap, max(heap[0], finish))
        if finish > work.resolve_by > now and work.resolve_by <= end:
            breaches.append(Breach(work.ticket_id, "resolve", work.resolve_by, work.priority, work.skills))
    eligible: dict[frozenset[str], list[list[datetime]]] = {}
    for work in queue:  # already in the server's order
        able = eligible.get(work.skills)
        if able is None:
            able = eligible[work.skills] = [places[i] for i, has in enumerate(skills) if work.skills <= has]
        # The earliest free place among those who can (a plain loop: this is the forecast's inner loop).
        best: list[datetime] | None = None
        for heap in able:
            if best is None or heap[0] < best[0]:
                best = heap
        start = max(work.arrives, best[0]) if best is not None else None
        if start is not None and best is not None and start < end:
            heapq.heapreplace(best, start + work.handle)
        for target, due, done in (("respond", work.respond_by, start),
                                  ("resolve", work.resolve_by, start + work.handle if start else None)):  # fmt: skip
            if due is not None and now < due <= end and (done is None or done > due):
                breaches.append(Breach(work.ticket_id, target, due, work.priority, work.skills))
    return sorted(breaches, key=lambda b: (b.at, b.ticket_id, b.target))


def _joins(tech: Technician, roster: Roster, now: datetime, end: datetime) -> datetime | None:
    """When a technician can take work within the horizon: now if on the clock, else their next shift."""
    if tech.status not in (TechStatus.OFF_SHIFT, TechStatus.BREAK):
        return now
    person = roster.people.get(tech.id)
    starts = [at for at, begins in person.shifts.edges(now, end) if begins] if person else []
    return starts[0] if starts else None


def _short(
    queue: list[_Work],
    held: list[tuple[str, _Work, datetime]],
    team: list[Technician],
    extra: Sequence[Extra],
    roster: Roster,
    now: datetime,
    end: datetime,
    breaches: list[Breach],
) -> list[tuple[str, int]]:
    """For the skills most breaching tickets need: how many more technicians would remove most of them."""
    needing: dict[str, int] = {}
    for breach in breaches:
        for skill in breach.skills:
            needing[skill] = needing.get(skill, 0) + 1
    short: list[tuple[str, int]] = []
    for skill in sorted(needing, key=lambda s: (-needing[s], s))[:3]:
        # Extra people who can do every breaching ticket that needs this skill.
        can_do = frozenset().union(*(b.skills for b in breaches if skill in b.skills))

        def breaching_with(k: int, can_do: frozenset[str] = can_do) -> int:
            more = [*extra, *(Extra(can_do) for _ in range(k))]
            return len(_simulate(queue, held, team, more, roster, now, end))

        removable = len(breaches) - breaching_with(MAX_EXTRA)
        if removable <= 0:
            continue
        # The fewest that remove at least four fifths of what MAX_EXTRA more people would remove.
        enough = next(
            (k for k in range(1, MAX_EXTRA) if len(breaches) - breaching_with(k) >= 0.8 * removable), MAX_EXTRA
        )
        short.append((skill, enough))
    return short
