"""Burst detection: many open tickets with no incident from one client, site or category at once.

Pure. The server calls `detect_bursts` after a batch that created tickets; the events it returns are
already applied to the state (they only move its seq).

A runaway integration can create thousands of tickets inside one window, so the work per batch must
not grow with the window: new tickets are indexed per group as they arrive, and a group is looked at
in full only when enough tickets have joined it since it was last looked at for a report to be
possible. A long flood therefore costs a few full looks per group, not one per batch.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from dispatch.core.models import Ticket
from dispatch.core.protocol import BurstEvent
from dispatch.core.state import Actor, DispatchState, apply_event, ticket_id_for

__all__ = ["BurstGroup", "BurstMemory", "detect_bursts", "forget_closed_tickets", "learn_reported_bursts"]

BurstGroup = Literal["client", "site", "category"]
# Most specific first: tickets that form a client burst are not reported again as a site or category one.
_GROUPS: tuple[BurstGroup, ...] = ("client", "site", "category")
GroupKey = tuple[BurstGroup, str]


@dataclass
class BurstMemory:
    """What detection keeps between batches, in memory only: after a restart a burst still going on
    may be reported once more."""

    # The tickets already reported per group.
    reported: dict[GroupKey, set[str]] = field(default_factory=dict)
    # Ticket ids per group in creation order (dict keys), dropped once older than the window or closed.
    members: dict[GroupKey, dict[str, None]] = field(default_factory=dict)
    # Tickets that joined a group since it was last looked at, counted towards what a report needs.
    joined: Counter[GroupKey] = field(default_factory=Counter)
    # The highest ticket number indexed; None before the first batch.
    indexed_up_to: int | None = None
    # Full looks taken per group: what the work per batch depends on (kept so tests can pin it).
    looks: Counter[GroupKey] = field(default_factory=Counter)
    # Every indexed ticket in creation order with when it was created and its groups, to forget it once
    # it leaves the window or closes: what is kept is bounded by the window's open tickets (and those
    # reported), however many clients a long day brings and however many tickets it closes.
    arrivals: OrderedDict[str, tuple[datetime, tuple[GroupKey, ...]]] = field(default_factory=OrderedDict)
    # A site or category group whose tickets all belonged to client (or site) bursts at its last look:
    # those groups. A new ticket from one of them is no reason to look again (it is covered too), so a
    # client's flood costs its category nothing; a ticket from anyone else is.
    covered_by: dict[GroupKey, set[GroupKey]] = field(default_factory=dict)


def learn_reported_bursts(memory: BurstMemory, reports: list[BurstEvent]) -> None:
    """Remember bursts another server already reported (a new leader reads them from the log), so they
    are reported again only once they have grown as much as after a report of this server's own."""
    for report in reports:
        memory.reported.setdefault((report.group, report.value), set()).update(report.ticket_ids)


def _forget_before(since: datetime, memory: BurstMemory) -> None:
    """Drop the tickets created before `since` from their groups, and groups left empty altogether
    (a later burst of theirs is a new one)."""
    while memory.arrivals:
        ticket_id, (created_at, keys) = next(iter(memory.arrivals.items()))
        if created_at >= since:
            break
        _forget(memory, ticket_id)


def forget_closed_tickets(memory: BurstMemory, ticket_ids: Iterable[str]) -> None:
    """Closed tickets can no longer be part of a burst: drop them from their groups now, not when they
    leave the window, so that a flood opened and closed at once is not kept for the whole window. A
    reported one stays until it leaves the window: a group's next report is measured against those."""
    for ticket_id in ticket_ids:
        arrival = memory.arrivals.get(ticket_id)
        if arrival is not None and not any(ticket_id in memory.reported.get(key, ()) for key in arrival[1]):
            _forget(memory, ticket_id)


def _forget(memory: BurstMemory, ticket_id: str) -> None:
    _, keys = memory.arrivals.pop(ticket_id)
    for key in keys:
        line = memory.members[key]
        line.pop(ticket_id, None)
        # What was reported counts only while in the window: a burst this afternoon is measured
        # against this afternoon, not against this morning's flood.
        memory.reported.get(key, set()).discard(ticket_id)
        if not line:
            for per_group in (memory.members, memory.joined, memory.reported, memory.looks, memory.covered_by):
                per_group.pop(key, None)


def _keys(ticket: Ticket) -> list[GroupKey]:
    keys: list[GroupKey] = [("client", ticket.client)]
    if ticket.site:
        keys.append(("site", ticket.site))
    keys.append(("category", ticket.category.value))
    return keys


def _index_new_tickets(state: DispatchState, since: datetime, memory: BurstMemory) -> set[GroupKey]:
    """Add the tickets created since the last batch to their groups; the groups they joined."""
    if memory.indexed_up_to is None:
        # First batch: ids are handed out in creation order, so walk back to the window's edge.
        first = state.last_ticket_number + 1
        while first > 1 and (older := state.tickets.get(ticket_id_for(first - 1))) is not None:
            if older.created_at < since:
                break
            first -= 1
    else:
        first = memory.indexed_up_to + 1
    touched: set[GroupKey] = set()
    for number in range(first, state.last_ticket_number + 1):
        ticket = state.tickets.get(ticket_id_for(number))
        if ticket is None or ticket.created_at < since:
            continue
        keys = _keys(ticket)
        for position, key in enumerate(keys):
            memory.members.setdefault(key, {})[ticket.id] = None
            covering = memory.covered_by.get(key)
            if covering is None or covering.isdisjoint(keys[:position]):
                memory.joined[key] += 1
            touched.add(key)
        memory.arrivals[ticket.id] = (ticket.created_at, tuple(keys))
    memory.indexed_up_to = state.last_ticket_number
    return touched


def detect_bursts(
    state: DispatchState,
    now: datetime,
    threshold: int,
    window: timedelta,
    memory: BurstMemory,
    actor: Actor,
) -> list[BurstEvent]:
    """A `burst_detected` event for each group of `threshold` or more open, incident-less tickets created
    within `window` of `now`, when it is new or has grown enough since it was last reported.

    "Enough" is `threshold` new tickets and at least half as many as were reported before (5, 10, 15,
    22, 33, 49 ...): each report lists every ticket of the burst, so reporting every new ticket of a
    flood of thousands would make each batch carry (and every board receive) the whole list again."""
    since = now - window
    _forget_before(since, memory)
    touched = _index_new_tickets(state, since, memory)
    current: dict[GroupKey, list[str]] = {}

    def burst_of(key: GroupKey) -> list[str]:
        """The group's open, incident-less tickets in the window (looked at once per call)."""
        if key not in current:
            # A member no longer in memory was closed (see state.forget_closed): it counts no more.
            tickets = (state.tickets.get(tid) for tid in memory.members.get(key, ()))
            current[key] = sorted(t.id for t in tickets if t is not None and t.incident_id is None and t.is_open)
        return current[key]

    def covering(ticket_id: str, group: BurstGroup) -> list[GroupKey]:
        """The bursts of more specific groups the ticket is part of."""
        keys = _keys(state.tickets[ticket_id])
        more_specific = keys[: [k[0] for k in keys].index(group)]
        return [key for key in more_specific if len(burst_of(key)) >= threshold]

    events: list[BurstEvent] = []
    for group in _GROUPS:
        for key in sorted(k for k in touched if k[0] == group):
            reported = memory.reported.setdefault(key, set())
            needed = max(threshold, len(reported) // 2)
            if memory.joined[key] < needed:
                continue  # not enough has joined since the last look for a report to be possible
            ticket_ids = burst_of(key)
            memory.looks[key] += 1
            memory.covered_by.pop(key, None)
            new = len(set(ticket_ids) - reported)
            # The fewest tickets that must still join before a report is possible again.
            memory.joined[key] = needed - max(needed - new, threshold - len(ticket_ids), 0)
            if len(ticket_ids) < threshold or new < needed:
                continue
            covered_by: set[GroupKey] = set()
            for tid in ticket_ids:
                if not (by := covering(tid, group)):
                    break
                covered_by.update(by)
            else:
                # All part of client (or site) bursts already on the board: look again when enough
                # tickets from anyone else have joined.
                memory.covered_by[key] = covered_by
                memory.joined[key] = 0
                continue
            reported.update(ticket_ids)
            memory.joined[key] = 0
            event = BurstEvent(
                seq=state.seq + 1,
                ts=now,
                actor=actor.user,
                kind="burst_detected",
                group=group,
                value=key[1],
                ticket_ids=ticket_ids,
                window_minutes=int(window.total_seconds() // 60),
            )
            apply_event(state, event)
            events.append(event)
    return events
