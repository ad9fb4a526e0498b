"""Burst detection: many open tickets with no incident from one client, site or category at once.

Pure. The server calls `detect_bursts` after a batch that created tickets; the events it returns are
already applied to the state (they only move its seq).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from dispatch.core.protocol import BurstEvent
from dispatch.core.state import Actor, DispatchState, apply_event, ticket_id_for

__all__ = ["BurstGroup", "BurstMemory", "detect_bursts"]

BurstGroup = Literal["client", "site", "category"]
# Most specific first: tickets that form a client burst are not reported again as a site or category one.
_GROUPS: tuple[BurstGroup, ...] = ("client", "site", "category")


@dataclass
class BurstMemory:
    """The tickets already reported per (group, value). Kept in memory only: after a restart a burst
    still going on may be reported once more."""

    reported: dict[tuple[str, str], set[str]] = field(default_factory=dict)


def detect_bursts(
    state: DispatchState,
    now: datetime,
    threshold: int,
    window: timedelta,
    memory: BurstMemory,
    actor: Actor,
) -> list[BurstEvent]:
    """A `burst_detected` event for each group of `threshold` or more open, incident-less tickets created
    within `window` of `now` that holds at least one ticket not reported for it before."""
    since = now - window
    members: dict[tuple[BurstGroup, str], list[str]] = defaultdict(list)
    # Ids are handed out in creation order, so walking back from the newest stops at the window's
    # edge: a batch in a busy day looks at the last few minutes of tickets, not at all of them.
    for number in range(state.last_ticket_number, 0, -1):
        ticket = state.tickets.get(ticket_id_for(number))
        if ticket is None:
            continue
        if ticket.created_at < since:
            break
        if ticket.incident_id is not None or not ticket.is_open:
            continue
        members[("client", ticket.client)].append(ticket.id)
        if ticket.site:
            members[("site", ticket.site)].append(ticket.id)
        members[("category", ticket.category.value)].append(ticket.id)
    events: list[BurstEvent] = []
    covered: set[str] = set()  # tickets in a qualifying burst of a more specific group
    for group in _GROUPS:
        qualifying = [(key, ids) for key, ids in members.items() if key[0] == group and len(ids) >= threshold]
        newly_covered: set[str] = set()
        for (_, value), ids in sorted(qualifying):
            ticket_ids = sorted(ids)
            newly_covered.update(ticket_ids)
            if set(ticket_ids) <= covered:
                continue
            reported = memory.reported.setdefault((group, value), set())
            if set(ticket_ids) <= reported:
                continue
            reported.update(ticket_ids)
            event = BurstEvent(
                seq=state.seq + 1,
                ts=now,
                actor=actor.user,
                kind="burst_detected",
                group=group,
                value=value,
                ticket_ids=ticket_ids,
                window_minutes=int(window.total_seconds() // 60),
            )
            apply_event(state, event)
            events.append(event)
        covered |= newly_covered
    return events
