"""What the state keeps up as events are applied instead of scanning every ticket: the holdings (who
holds how many open tickets, and of which incident), which always equal a full recount, also across
closed tickets leaving memory and coming back; and the alert schedule, from which the SLA clock raises
exactly the alerts a look at every ticket would (pure core; hypothesis and a table)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.core.allocation import TeamLoad
from dispatch.core.autoassign import AutoAssignMemory
from dispatch.core.commands import execute
from dispatch.core.models import Priority, Role
from dispatch.core.protocol import AddTechnician, Assign, CreateIncident, CreateTicket, Link, SetStatus, SlaEvent
from dispatch.core.rules import Outcome, clock_alerts
from dispatch.core.sla import SlaState, alert_state
from dispatch.core.state import (
    Actor,
    AlertSchedule,
    DispatchState,
    Holdings,
    alert_key,
    forget_closed,
    remember_tickets,
)
from tests.test_replay import START, actors, commands

ANA = Actor("ana", Role.DISPATCHER)


def recount(state: DispatchState) -> Holdings:
    return Holdings.count(state.tickets.values())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(commands, actors, st.booleans()), max_size=40))
def test_kept_holdings_equal_a_recount_after_any_commands(steps: list[tuple[Any, Actor, bool]]) -> None:
    state = DispatchState()
    state.holdings()  # kept from the first event on
    stored: dict[str, Any] = {}  # what the database would hold of tickets that left memory
    for minute, (command, actor, settle) in enumerate(steps):
        for ticket_id in getattr(command, "ticket_ids", None) or [getattr(command, "ticket_id", None)]:
            if ticket_id in stored:  # the writer brings a named closed ticket back for its batch
                remember_tickets(state, [stored.pop(ticket_id)], [])
        outcome = execute(state, command, actor, START + timedelta(minutes=minute))
        if settle and isinstance(outcome, Outcome):  # the batch is stored: closed tickets leave memory
            touched = {e.ticket.id: e.ticket for e in outcome.events if hasattr(e, "ticket")}
            for ticket_id in forget_closed(state, touched):
                stored[ticket_id] = touched[ticket_id]
        assert state.holdings() == recount(state)
    assert TeamLoad.of(state).load == +Counter(
        t.assignee for t in state.tickets.values() if t.assignee is not None and t.is_open
    )


def floor() -> DispatchState:
    """alice and bob, INC-1 with T-000001..2, T-000003 alone; holdings kept from the start."""
    state = DispatchState()
    state.holdings()
    run(state, AddTechnician(command_id="t1", tech_id="alice", name="Alice"))
    run(state, AddTechnician(command_id="t2", tech_id="bob", name="Bob"))
    for n in range(3):
        run(state, CreateTicket(command_id=f"c{n}", title=f"Down {n}", client="Acme", priority=Priority.P2))
    run(state, CreateIncident(command_id="i1", title="ISP down", ticket_ids=["T-000001", "T-000002"]))
    return state


def run(state: DispatchState, command: Any) -> None:
    assert isinstance(execute(state, command, ANA, START), Outcome)


CASES: list[tuple[str, list[Any], dict[str, int], dict[str, dict[str, int]]]] = [
    ("nothing assigned", [], {}, {}),
    ("one assignment", [Assign(command_id="a", ticket_id="T-000001", tech_id="alice")], {"alice": 1},
     {"INC-1": {"alice": 1}}),
    ("reassigned", [Assign(command_id="a", ticket_id="T-000001", tech_id="alice"),
                    Assign(command_id="b", ticket_id="T-000001", tech_id="bob")], {"bob": 1}, {"INC-1": {"bob": 1}}),
    ("resolved holds nothing", [Assign(command_id="a", ticket_id="T-000003", tech_id="alice"),
                                SetStatus(command_id="b", ticket_id="T-000003", status="resolved")], {}, {}),
    ("reopened holds again", [Assign(command_id="a", ticket_id="T-000003", tech_id="alice"),
                              SetStatus(command_id="b", ticket_id="T-000003", status="resolved"),
                              SetStatus(command_id="c", ticket_id="T-000003", status="in_progress")], {"alice": 1}, {}),
    ("linked later", [Assign(command_id="a", ticket_id="T-000003", tech_id="bob"),
                      Link(command_id="b", incident_id="INC-1", ticket_ids=["T-000003"])], {"bob": 1},
     {"INC-1": {"bob": 1}}),
]  # fmt: skip


@pytest.mark.parametrize(("steps", "load", "incidents"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_holdings_follow_each_kind_of_change(
    steps: list[Any], load: dict[str, int], incidents: dict[str, dict[str, int]]
) -> None:
    state = floor()
    for command in steps:
        run(state, command)
    assert state.holdings() == recount(state)
    assert dict(state.holdings().load) == load
    assert {i: dict(h) for i, h in state.holdings().incident_holders.items()} == incidents
    # What suggest and auto-assign rank from is a copy: a pass moving tickets in it leaves the state's alone.
    roster = AutoAssignMemory().roster(state)
    roster.took(state.tickets["T-000002"], "bob", None)
    assert state.holdings() == recount(state)


ESCALATE_AFTER = timedelta(minutes=10)


def alerts_due(state: DispatchState, now: datetime) -> set[tuple[str, str]]:
    """What a look at every open ticket raises at `now` (the clock's rule, scanned the slow way)."""
    due = set()
    for ticket in state.tickets.values():
        if not ticket.is_open or ticket.paused_at is not None:
            continue
        target, _, sla = alert_state(ticket, now)
        if sla in (SlaState.WARNING, SlaState.BREACHED):
            due.add((ticket.id, f"sla_warning:{target}"))
        if sla is SlaState.BREACHED:
            due.add((ticket.id, f"sla_breached:{target}"))
        if ticket.priority is Priority.P1 and ticket.assignee is None and now - ticket.created_at >= ESCALATE_AFTER:
            due.add((ticket.id, "escalation"))
    return due - state.alerts


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(commands, actors, st.integers(0, 90)), max_size=40))
def test_the_clock_raises_from_its_schedule_what_a_full_scan_would(steps: list[tuple[Any, Actor, int]]) -> None:
    state = DispatchState()
    state.alert_schedule()  # kept from the first event on
    now = START
    for command, actor, minutes in steps:
        execute(state, command, actor, now)
        now += timedelta(minutes=minutes)  # up to an hour and a half: warnings, breaches, escalations
        expected = alerts_due(state, now)
        raised = clock_alerts(state, now, ESCALATE_AFTER, ANA)
        assert all(isinstance(e, SlaEvent) for e in raised)
        assert {(e.ticket_id, alert_key(e.kind, e.target)) for e in raised if isinstance(e, SlaEvent)} == expected
        kept = state.alert_schedule()
        fresh = AlertSchedule.of(state.tickets.values(), state.alerts)
        assert (list(kept.sla), list(kept.unescalated)) == (list(fresh.sla), list(fresh.unescalated))
