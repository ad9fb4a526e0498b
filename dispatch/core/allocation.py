"""Who should take a ticket: a ranked list of technicians, each with a score and a reason in words.

Pure: the server's `suggest`, its auto-assign and the decision log all rank through `rank`. Factors:
required skills (a hard filter, unless a partial match is asked for when escalating), availability
(break and off shift never; on site and busy penalised), load against capacity (auto mode never
exceeds it), SLA urgency (urgent tickets lean harder on availability), incident affinity (one
technician keeps an outage's tickets together while capacity allows) and fairness (ties go to the
technician who waited longest since their last assignment). Weights come from a TOML policy file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from dispatch.core.config import load_toml
from dispatch.core.contracts import Contracts
from dispatch.core.models import OPEN_STATUSES, Technician, TechStatus, Ticket
from dispatch.core.protocol import Candidate
from dispatch.core.sla import read_clock
from dispatch.core.state import DispatchState

UNAVAILABLE = frozenset({TechStatus.BREAK, TechStatus.OFF_SHIFT})
_NEVER = datetime.min.replace(tzinfo=None)


class AllocationPolicy(BaseModel):
    """Weights of the ranking; `dispatch-server serve --policy FILE` reads them from TOML.

    Each weight is between 0 and 1 (a factor it multiplies is between 0 and 1 too); the defaults add
    up to 1, so a score reads as a fraction of a perfect match."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    availability: float = Field(0.35, ge=0, le=1)
    load: float = Field(0.35, ge=0, le=1)
    affinity: float = Field(0.20, ge=0, le=1)
    urgency: float = Field(0.10, ge=0, le=1)
    # How available a technician counts as, by status (1.0 = fully, as available; 0 = not at all).
    busy_factor: float = Field(0.6, ge=0, le=1)
    on_site_factor: float = Field(0.3, ge=0, le=1)
    # An unassigned P1 older than this raises an escalation (and, with auto-assign, a partial match).
    # More than 0 (0 would escalate every P1 at birth) and at most a day: a P1's response target is
    # minutes, so a longer wait escalates nothing that has not long breached.
    escalate_after_minutes: float = Field(10.0, gt=0, le=1440)

    @classmethod
    def from_toml(cls, text: str, source: str) -> AllocationPolicy:
        """The `[allocation]` table of a policy file read as `text`; a mistake is a one-line ConfigError
        naming `source` (the file), the key and what is allowed. Every key is optional."""
        return load_toml(PolicyFile, text, source).allocation


class PolicyFile(BaseModel):
    """A `--policy` file: an `[allocation]` table and nothing else, so `[alocation]` is refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    allocation: AllocationPolicy = AllocationPolicy()


@dataclass
class TeamLoad:
    """What ranking needs to know about the technicians (who holds how much, and of which incident),
    kept up to date as tickets move.

    Built once per batch from the state, then updated assignment by assignment, so ranking a burst
    of a thousand tickets does not rescan every ticket for every ticket."""

    technicians: dict[str, Technician]
    load: Counter[str] = field(default_factory=Counter)
    last_assigned: dict[str, datetime] = field(default_factory=dict)
    # Which technicians hold open tickets of each incident, and how many.
    incident_holders: dict[str, Counter[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, technicians: dict[str, Technician], tickets: Iterable[Ticket],
              last_assigned: dict[str, datetime] | None = None) -> TeamLoad:  # fmt: skip
        roster = cls(dict(technicians), last_assigned=dict(last_assigned or {}))
        for ticket in tickets:
            if ticket.assignee is not None and ticket.status in OPEN_STATUSES:
                roster.took(ticket, ticket.assignee, None)
        return roster

    @classmethod
    def of(cls, state: DispatchState, last_assigned: dict[str, datetime] | None = None) -> TeamLoad:
        """The team as `state` has it, from the holdings it keeps: costs the team's size, not the
        backlog's. A copy, which a pass or a plan moves tickets in as it goes."""
        holdings = state.holdings()
        return cls(
            dict(state.technicians),
            Counter(holdings.load),
            dict(last_assigned or {}),
            {incident: Counter(holders) for incident, holders in holdings.incident_holders.items()},
        )

    def took(self, ticket: Ticket, tech_id: str, at: datetime | None) -> None:
        """`tech_id` now holds `ticket` (an open ticket)."""
        self.load[tech_id] += 1
        if ticket.incident_id:
            self.incident_holders.setdefault(ticket.incident_id, Counter())[tech_id] += 1
        if at is not None:
            self.last_assigned[tech_id] = at

    def released(self, ticket: Ticket, tech_id: str) -> None:
        """`tech_id` no longer holds `ticket` (reassigned, unassigned, closed)."""
        self.load[tech_id] -= 1
        if ticket.incident_id and ticket.incident_id in self.incident_holders:
            self.incident_holders[ticket.incident_id][tech_id] -= 1


def rank(
    ticket: Ticket,
    roster: TeamLoad,
    policy: AllocationPolicy,
    contracts: Contracts,
    now: datetime,
    *,
    auto: bool = False,
    partial: bool = False,
    limit: int = 10,
    blocked: Mapping[str, str] | None = None,
) -> list[Candidate]:
    """Technicians for `ticket`, best first. `auto`: only those with room (never over capacity).
    `partial`: technicians missing some required skills are ranked too, by how many they have.
    `blocked`: technicians a fatigue rule keeps from more work, with the rule in words: never chosen in
    auto mode; otherwise listed after everyone else, with the rule (a dispatcher may override it)."""
    blocked = blocked or {}
    needed = frozenset(ticket.skills)
    reading = read_clock(ticket, now, contracts.calendar(ticket.calendar))
    # 0 with the whole target ahead, 1 when due or overdue.
    urgency = max(0.0, min(1.0, reading.used))
    holders = roster.incident_holders.get(ticket.incident_id or "", Counter())
    status_factor = {TechStatus.AVAILABLE: 1.0, TechStatus.BUSY: policy.busy_factor,
                     TechStatus.ON_SITE: policy.on_site_factor}  # fmt: skip
    scored: list[tuple[float, datetime, str, float, int, bool, str | None]] = []
    for tech in roster.technicians.values():
        if tech.status in UNAVAILABLE or tech.id == ticket.assignee or (auto and tech.id in blocked):
            continue
        held = roster.load[tech.id]
        if auto and held >= tech.capacity:
            continue
        coverage = 1.0
        if needed:
            has = len(needed.intersection(tech.skills))
            if has < len(needed):
                if not partial or has == 0:
                    continue
                coverage = has / len(needed)
        available = status_factor[tech.status]
        spare = max(tech.capacity - held, 0) / tech.capacity if tech.capacity else 0.0
        together = holders[tech.id] > 0 and held < tech.capacity
        score = (
            policy.availability * available
            + policy.load * spare
            + policy.affinity * together
            + policy.urgency * urgency * available
        )
        last = roster.last_assigned.get(tech.id)
        waited = last.replace(tzinfo=None) if last else _NEVER
        scored.append((round(score, 3), waited, tech.id, coverage, held, together, blocked.get(tech.id)))
    # Anyone a fatigue rule blocks last; whoever has all the skills before anyone with some (in partial
    # mode), then the best score; ties go to whoever waited longest since their last assignment, then the id.
    scored.sort(key=lambda s: (s[6] is not None, -s[3], -s[0], s[1], s[2]))
    return [
        Candidate(
            tech_id=tech_id,
            score=score,
            reason=_reason(roster.technicians[tech_id], ticket, needed, held, coverage, together, urgency),
            blocked=rule,
        )
        for score, _, tech_id, coverage, held, together, rule in scored[:limit]
    ]


def _reason(tech: Technician, ticket: Ticket, needed: frozenset[str], held: int, coverage: float,
            together: bool, urgency: float) -> str:  # fmt: skip
    parts: list[str] = []
    if needed and coverage < 1.0:
        has = sorted(needed.intersection(tech.skills))
        lacks = sorted(needed - set(tech.skills))
        parts.append(f"partial skills: has {', '.join(has)}, lacks {', '.join(lacks)}")
    elif needed:
        parts.append(", ".join(sorted(needed)) + (" skill" if len(needed) == 1 else " skills"))
    parts.append(f"load {held}/{tech.capacity}")
    parts.append(tech.status.value.replace("_", " "))
    if held >= tech.capacity:
        parts.append("at capacity")
    if together:
        parts.append(f"keeps {ticket.incident_id} together")
    if urgency >= 0.75:
        parts.append("urgent")
    return ", ".join(parts)
