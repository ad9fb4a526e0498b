"""Replaying the event log rebuilds exactly the state the commands produced (pure core, hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.core.commands import execute
from dispatch.core.models import Priority, Role, TechStatus, TicketStatus
from dispatch.core.protocol import (
    AddNote,
    AddTechnician,
    Assign,
    BulkAssign,
    CreateIncident,
    CreateTicket,
    Event,
    Link,
    Merge,
    SetPriority,
    SetStatus,
    SetTechStatus,
    TicketEvent,
    Unassign,
    event_adapter,
)  # fmt: skip
from dispatch.core.rules import Outcome
from dispatch.core.state import Actor, DispatchState, apply_event

TECHS = ["alice", "bob", "carol"]
TICKETS = [f"T-{n:06d}" for n in range(1, 7)]
START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

tech_ids = st.sampled_from(TECHS)
ticket_ids = st.sampled_from(TICKETS)
incident_ids = st.sampled_from(["INC-1", "INC-2", "INC-3"])
versions = st.one_of(st.none(), st.integers(1, 5))
commands = st.one_of(
    st.builds(CreateTicket, type=st.just("create_ticket"), command_id=st.just("c"), title=st.just("Outage"),
              client=st.sampled_from(["Acme", "Globex"]), priority=st.sampled_from(list(Priority)),
              skills=st.lists(st.sampled_from(["network", "printers"]), max_size=2, unique=True),
              dedupe_key=st.one_of(st.none(), st.sampled_from(["mon-1", "mon-2"]))),
    st.builds(AddTechnician, type=st.just("add_technician"), command_id=st.just("c"), tech_id=tech_ids,
              name=st.just("Tech"), capacity=st.integers(0, 4)),
    st.builds(Assign, type=st.just("assign"), command_id=st.just("c"), ticket_id=ticket_ids, tech_id=tech_ids,
              expected_version=versions),
    st.builds(Unassign, type=st.just("unassign"), command_id=st.just("c"), ticket_id=ticket_ids,
              expected_version=versions),
    st.builds(SetPriority, type=st.just("set_priority"), command_id=st.just("c"), ticket_id=ticket_ids,
              priority=st.sampled_from(list(Priority))),
    st.builds(SetStatus, type=st.just("set_status"), command_id=st.just("c"), ticket_id=ticket_ids,
              status=st.sampled_from(list(TicketStatus))),
    st.builds(SetTechStatus, type=st.just("set_tech_status"), command_id=st.just("c"), tech_id=tech_ids,
              status=st.sampled_from(list(TechStatus))),
    st.builds(BulkAssign, type=st.just("bulk_assign"), command_id=st.just("c"),
              ticket_ids=st.lists(ticket_ids, min_size=1, max_size=3, unique=True), tech_id=tech_ids),
    st.builds(AddNote, type=st.just("add_note"), command_id=st.just("c"), ticket_id=ticket_ids,
              text=st.just("called back")),
    st.builds(CreateIncident, type=st.just("create_incident"), command_id=st.just("c"), title=st.just("ISP down"),
              ticket_ids=st.lists(ticket_ids, max_size=3, unique=True)),
    st.builds(Link, type=st.just("link"), command_id=st.just("c"), incident_id=incident_ids,
              ticket_ids=st.lists(ticket_ids, min_size=1, max_size=3, unique=True)),
    st.builds(Merge, type=st.just("merge"), command_id=st.just("c"), primary_id=ticket_ids,
              duplicate_ids=st.lists(ticket_ids, min_size=1, max_size=2, unique=True), reason=st.just("same outage")),
)  # fmt: skip
actors = st.sampled_from(
    [Actor("ana", Role.DISPATCHER), Actor("alice", Role.TECHNICIAN, "alice"), Actor("mon", Role.INTAKE)]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(commands, actors), max_size=40))
def test_replaying_the_log_rebuilds_the_state(steps: list[tuple[Any, Actor]]) -> None:
    state = DispatchState()
    log: list[Event] = []
    for minute, (command, actor) in enumerate(steps):
        outcome = execute(state, command, actor, START + timedelta(minutes=minute))
        if isinstance(outcome, Outcome):
            assert outcome.ack.seq == state.seq
            log.extend(outcome.events)
    # Through the wire format, as the log stores it.
    stored = [event_adapter.validate_json(event_adapter.dump_json(e)) for e in log]
    replayed = DispatchState()
    for event in stored:
        apply_event(replayed, event)
    assert replayed == state
    assert [e.seq for e in log] == list(range(1, len(log) + 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(commands, actors), max_size=40))
def test_every_ticket_change_bumps_its_version_by_one(steps: list[tuple[Any, Actor]]) -> None:
    state = DispatchState()
    versions: dict[str, int] = {}
    for minute, (command, actor) in enumerate(steps):
        outcome = execute(state, command, actor, START + timedelta(minutes=minute))
        if not isinstance(outcome, Outcome):
            continue
        for event in outcome.events:
            if isinstance(event, TicketEvent):
                ticket = event.ticket
                assert ticket.version == versions.get(ticket.id, 0) + 1
                versions[ticket.id] = ticket.version
                # Held statuses always have a holder; a new ticket never does.
                assert (ticket.assignee is not None) == (ticket.status in ("assigned", "in_progress", "on_hold")) or (
                    ticket.status in ("resolved", "cancelled")
                )
