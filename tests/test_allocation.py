"""The allocation engine: pure ranking rules, held by properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.core.allocation import AllocationPolicy, TeamLoad, rank
from dispatch.core.contracts import Contracts
from dispatch.core.models import Priority, Technician, TechStatus, Ticket, TicketStatus
from dispatch.core.sla import clock_fields

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SKILLS = ["network", "printers", "security", "voip"]


def ticket(skills: list[str], priority: Priority = Priority.P2, incident: str | None = None, age_min: int = 5,
           assignee: str | None = None, tid: str = "T-000001") -> Ticket:  # fmt: skip
    created = NOW - timedelta(minutes=age_min)
    clock = clock_fields(Contracts().terms("Acme", priority), created)
    return Ticket(id=tid, title="Down", client="Acme", priority=priority, skills=skills, created_at=created,
                  **clock, incident_id=incident, assignee=assignee,
                  status=TicketStatus.ASSIGNED if assignee else TicketStatus.NEW)  # fmt: skip


technicians = st.lists(
    st.builds(
        Technician,
        id=st.sampled_from([f"t{n}" for n in range(12)]),
        name=st.just("Tech"),
        skills=st.lists(st.sampled_from(SKILLS), unique=True, max_size=3),
        status=st.sampled_from(list(TechStatus)),
        capacity=st.integers(0, 4),
    ),
    max_size=10,
    unique_by=lambda t: t.id,
)
loads = st.dictionaries(st.sampled_from([f"t{n}" for n in range(12)]), st.integers(0, 5))
needs = st.lists(st.sampled_from(SKILLS), unique=True, max_size=2)


def roster_of(techs: list[Technician], load: dict[str, int]) -> TeamLoad:
    roster = TeamLoad({t.id: t for t in techs})
    roster.load.update(load)
    return roster


@settings(max_examples=300, deadline=None)
@given(technicians, loads, needs, st.sampled_from(list(Priority)))
def test_auto_mode_never_exceeds_capacity_nor_picks_break_or_off_shift(techs, load, skills, priority) -> None:  # type: ignore[no-untyped-def]
    roster = roster_of(techs, load)
    for candidate in rank(ticket(skills, priority), roster, AllocationPolicy(), Contracts(), NOW, auto=True):
        tech = roster.technicians[candidate.tech_id]
        assert roster.load[tech.id] < tech.capacity
        assert tech.status not in (TechStatus.BREAK, TechStatus.OFF_SHIFT)
        assert set(skills) <= set(tech.skills)


@settings(max_examples=300, deadline=None)
@given(technicians, loads, needs)
def test_a_technician_with_the_skills_outranks_one_without(techs, load, skills) -> None:  # type: ignore[no-untyped-def]
    roster = roster_of(techs, load)
    ranked = rank(ticket(skills), roster, AllocationPolicy(), Contracts(), NOW, partial=True, limit=100)
    covered = [set(skills) <= set(roster.technicians[c.tech_id].skills) for c in ranked]
    # Every full match comes before every partial match.
    assert covered == sorted(covered, reverse=True)
    assert all(c.reason.startswith("partial") != full for c, full in zip(ranked, covered, strict=True) if skills)


@settings(max_examples=200, deadline=None)
@given(technicians, loads, needs)
def test_the_same_input_gives_the_same_ranking(techs, load, skills) -> None:  # type: ignore[no-untyped-def]
    first = rank(ticket(skills), roster_of(techs, load), AllocationPolicy(), Contracts(), NOW)
    again = rank(ticket(skills), roster_of(list(reversed(techs)), dict(load)), AllocationPolicy(), Contracts(), NOW)
    assert first == again


def test_incident_affinity_keeps_an_outage_with_one_technician() -> None:
    techs = [Technician(id=n, name=n, skills=["network"], capacity=4) for n in ("alice", "bob")]
    held = [ticket(["network"], incident="INC-7", assignee="bob", tid="T-9")]
    roster = TeamLoad.build({t.id: t for t in techs}, held)
    ranked = rank(ticket(["network"], incident="INC-7"), roster, AllocationPolicy(), Contracts(), NOW)
    assert ranked[0].tech_id == "bob" and "keeps INC-7 together" in ranked[0].reason
    # Without the incident, the lighter load wins.
    assert rank(ticket(["network"]), roster, AllocationPolicy(), Contracts(), NOW)[0].tech_id == "alice"


def test_ties_go_to_whoever_waited_longest() -> None:
    techs = {n: Technician(id=n, name=n, capacity=3) for n in ("alice", "bob", "carol")}
    roster = TeamLoad.build(techs, [], {"alice": NOW - timedelta(minutes=1), "bob": NOW - timedelta(minutes=30)})
    assert [c.tech_id for c in rank(ticket([]), roster, AllocationPolicy(), Contracts(), NOW)] == [
        "carol",
        "bob",
        "alice",
    ]


def test_on_site_is_penalised_and_the_reason_says_why() -> None:
    techs = {
        "alice": Technician(id="alice", name="A", skills=["network"], status=TechStatus.ON_SITE),
        "bob": Technician(id="bob", name="B", skills=["network"], status=TechStatus.AVAILABLE),
    }
    ranked = rank(ticket(["network"]), TeamLoad(techs), AllocationPolicy(), Contracts(), NOW)
    assert [c.tech_id for c in ranked] == ["bob", "alice"]
    assert ranked[0].reason == "network skill, load 0/3, available"
    assert "on site" in ranked[1].reason
