"""The auto-assign pass as a rule, without sockets: what it places when room appears, which reasons it
gives (once), and pre-emption by several P1s in one pass."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatch.core.allocation import AllocationPolicy
from dispatch.core.autoassign import AutoAssignMemory, auto_assign
from dispatch.core.commands import execute
from dispatch.core.models import Role, TicketStatus
from dispatch.core.protocol import AddTechnician, Assign, CreateTicket, SetStatus
from dispatch.core.rules import Rules
from dispatch.core.state import Actor, DispatchState

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
ANA = Actor("ana", Role.DISPATCHER)


def run(state: DispatchState, command: object) -> None:
    outcome = execute(state, command, ANA, NOW)  # type: ignore[arg-type]
    assert not hasattr(outcome, "code"), outcome


def team(state: DispatchState, *people: tuple[str, list[str], int]) -> None:
    for tech_id, skills, capacity in people:
        run(state, AddTechnician(command_id=f"add-{tech_id}", tech_id=tech_id, name=tech_id.title(), skills=skills,
                                 capacity=capacity))  # fmt: skip


def ticket(state: DispatchState, priority: str, skills: list[str], assignee: str | None = None) -> str:
    run(state, CreateTicket(command_id=f"c{state.seq}", title="Work", client="Acme", priority=priority, skills=skills))
    ticket_id = f"T-{state.last_ticket_number:06d}"
    if assignee:
        run(state, Assign(command_id=f"a{state.seq}", ticket_id=ticket_id, tech_id=assignee))
    return ticket_id


def one_pass(
    state: DispatchState, memory: AutoAssignMemory, *, preempt: bool = False
) -> tuple[dict[str, str], list[str]]:
    placed, notes = auto_assign(state, memory, AllocationPolicy(), Rules(), NOW, may_preempt=preempt)
    given = {e.ticket.id: e.ticket.assignee for p in placed for e in p.outcome.events if e.kind == "ticket_assigned"}
    return {k: v for k, v in given.items() if v is not None}, notes


@pytest.mark.parametrize(
    ("freed", "expected"),
    [
        ("net1", "T-000004"),  # the most urgent network ticket (the P1), not the older P3s
        ("prn1", "T-000005"),  # printers: the only printer ticket
    ],
)
def test_room_for_one_places_the_most_urgent_ticket_they_can_take(freed: str, expected: str) -> None:
    state = DispatchState()
    team(state, ("net1", ["network"], 1), ("prn1", ["printers"], 1))
    held = {"net1": ticket(state, "P4", ["network"], "net1"), "prn1": ticket(state, "P4", ["printers"], "prn1")}
    ticket(state, "P3", ["network"])
    ticket(state, "P1", ["network"])
    ticket(state, "P2", ["printers"])
    ticket(state, "P2", ["voip"])
    memory = AutoAssignMemory()
    given, notes = one_pass(state, memory)
    assert given == {}
    assert sorted(n.split(" ")[0] for n in notes) == ["T-000003", "T-000004", "T-000005", "T-000006"]
    assert "T-000006 P2 queued: nobody has the voip skill" in notes

    run(state, SetStatus(command_id="done", ticket_id=held[freed], status=TicketStatus.RESOLVED))
    memory.room_may_have_appeared()
    given, notes = one_pass(state, memory)
    assert given == {expected: freed}
    assert notes == []  # each queued ticket's reason was given once already


def test_nothing_is_looked_at_again_until_room_may_have_appeared() -> None:
    state = DispatchState()
    team(state, ("net1", ["network"], 1))
    ticket(state, "P4", ["network"], "net1")
    ticket(state, "P2", ["network"])
    memory = AutoAssignMemory()
    assert one_pass(state, memory)[1]  # queued, with its reason
    assert one_pass(state, memory) == ({}, [])
    ticket(state, "P3", ["network"])  # a new ticket is looked at, the old one not
    assert [n.split(" ")[0] for n in one_pass(state, memory)[1]] == ["T-000003"]


def test_two_p1s_in_one_pass_each_displace_different_work() -> None:
    state = DispatchState()
    team(state, ("net1", ["network"], 2))
    p4 = ticket(state, "P4", ["network"], "net1")
    p3 = ticket(state, "P3", ["network"], "net1")
    first, second = ticket(state, "P1", ["network"]), ticket(state, "P1", ["network"])
    given, notes = one_pass(state, AutoAssignMemory(), preempt=True)
    assert given == {first: "net1", second: "net1"}
    assert {state.tickets[p4].status, state.tickets[p3].status} == {TicketStatus.NEW}
    displaced = [n.split(" preempted ")[1].split(" ")[0] for n in notes if " preempted " in n]
    assert displaced == [p4, p3]  # the least urgent first
    assert f"{p4} P4 queued: everyone with the network skill free is at capacity" in notes


@pytest.mark.parametrize("other_alerts", [0, 20])  # fewer alerts than P1s waiting, and more
def test_an_escalated_p1_is_placed_by_partial_match_among_p1s_nobody_can_take(other_alerts: int) -> None:
    state = DispatchState()
    team(state, ("net1", ["network"], 1))
    waiting = [ticket(state, "P1", ["voip"]) for _ in range(5)]  # nobody has the voip skill
    escalated = ticket(state, "P1", ["network", "voip"])
    state.alerts.add((escalated, "escalation"))
    state.alerts.update((f"T-{900000 + n}", "sla_warning:respond") for n in range(other_alerts))
    given, notes = one_pass(state, AutoAssignMemory())
    assert given == {escalated: "net1"}
    assert sorted(n.split(" ")[0] for n in notes) == waiting  # the rest wait, each saying why


def test_once_nobody_has_room_only_a_preemption_could_place_more() -> None:
    state = DispatchState()
    team(state, ("net1", ["network"], 1))
    ticket(state, "P4", ["network"], "net1")
    queued = [ticket(state, "P1", ["network"]) for _ in range(3)]
    memory = AutoAssignMemory()
    given, _ = one_pass(state, memory)
    assert given == {}  # full, and no pre-emption: the pass stops at the first ticket
    given, _ = one_pass(state, AutoAssignMemory(), preempt=True)
    assert given == {queued[0]: "net1"}  # the P4 displaced for the most urgent P1
