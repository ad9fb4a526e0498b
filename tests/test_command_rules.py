"""Who may send what: one row per command and role, decided by the pure writer step, no socket.

The expected answers are written out here by hand (not read from the registry), so a change to the
registry's roles shows up as a failing row.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter

from dispatch.core.commands import COMMANDS
from dispatch.core.decide import Decider, DeciderSettings, Request
from dispatch.core.models import Priority, Role, TechStatus
from dispatch.core.protocol import AddTechnician, Assign, Command, CreateIncident, CreateTicket, SetTechStatus
from dispatch.core.rules import (
    Change,
    add_technician,
    assign,
    create_incident,
    create_ticket,
    send_callout,
    set_tech_status,
)
from dispatch.core.state import Actor, DispatchState

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ACTORS = {
    Role.DISPATCHER: Actor("ana", Role.DISPATCHER),
    Role.TECHNICIAN: Actor("alice", Role.TECHNICIAN, "alice"),
    Role.INTAKE: Actor("monitoring", Role.INTAKE),
    Role.VIEWER: Actor("wall", Role.VIEWER),
}
command_adapter: TypeAdapter[Command] = TypeAdapter(Command)


def floor() -> DispatchState:
    """alice holds T-000001, bob holds T-000002, T-000003 waits; incident INC-1 (T-000001) is open; carol is off
    shift; call-out CO-1 waits for alice's answer; ana's last change (undo-me) set bob busy."""
    state = DispatchState()
    setup = Change(state, ACTORS[Role.DISPATCHER], NOW)
    add_technician(setup, AddTechnician(command_id="t1", tech_id="alice", name="Alice", skills=["network"]))
    add_technician(setup, AddTechnician(command_id="t2", tech_id="bob", name="Bob"))
    for n in range(3):
        create_ticket(setup, CreateTicket(command_id=f"c{n}", title=f"ticket {n + 1}", client="Acme",
                                          priority=Priority.P2))  # fmt: skip
    create_incident(setup, CreateIncident(command_id="i1", title="ISP down", ticket_ids=["T-000001"]))
    assign(setup, Assign(command_id="a1", ticket_id="T-000001", tech_id="alice"))
    assign(setup, Assign(command_id="a2", ticket_id="T-000002", tech_id="bob"))
    add_technician(setup, AddTechnician(command_id="t3", tech_id="carol", name="Carol"))
    set_tech_status(setup, SetTechStatus(command_id="s3", tech_id="carol", status=TechStatus.OFF_SHIFT))
    send_callout(setup, "alice", None, "a call-out for alice to answer")  # CO-1
    last = Change(state, ACTORS[Role.DISPATCHER], NOW)
    set_tech_status(last, SetTechStatus(command_id="undo-me", tech_id="bob", status=TechStatus.BUSY))
    state.recent_changes.remember("ana", "undo-me", "set_tech_status", last.before, state, NOW)
    return state


# One valid example of each command, acting on what the technician owns where that matters.
EXAMPLES: dict[str, dict[str, Any]] = {
    "create_ticket": {"title": "VPN down", "client": "Acme", "priority": "P1"},
    "assign": {"ticket_id": "T-000003", "tech_id": "bob"},
    "unassign": {"ticket_id": "T-000002"},
    "set_priority": {"ticket_id": "T-000001", "priority": "P1"},
    "set_status": {"ticket_id": "T-000001", "status": "in_progress"},
    "set_tech_status": {"tech_id": "alice", "status": "break"},
    "add_technician": {"tech_id": "dave", "name": "Dave"},
    "bulk_assign": {"ticket_ids": ["T-000003"], "tech_id": "bob"},
    "suggest": {"ticket_id": "T-000003"},
    "add_note": {"ticket_id": "T-000001", "text": "on my way"},
    "history": {"ticket_id": "T-000001"},
    "rebalance": {},
    "apply_plan": {"moves": [{"ticket_id": "T-000003", "tech_id": "bob", "expected_version": 1}]},
    "create_incident": {"title": "Mail outage", "ticket_ids": ["T-000003"]},
    "link": {"incident_id": "INC-1", "ticket_ids": ["T-000003"]},
    "merge": {"primary_id": "T-000002", "duplicate_ids": ["T-000003"]},
    "update_clients": {"incident_id": "INC-1", "message": "The ISP is on site"},
    "callout": {"tech_id": "carol"},
    "answer_callout": {"callout_id": "CO-1", "accept": True},
    "undo": {"of": "undo-me"},
    "forecast": {"horizon_minutes": 60, "extra": [{"skills": ["network"]}], "without": ["bob"]},
}

D, T, IN, V = Role.DISPATCHER, Role.TECHNICIAN, Role.INTAKE, Role.VIEWER
# Which roles may send each command (a technician on their own tickets and for their own status).
ALLOWED: dict[str, set[Role]] = {
    "create_ticket": {D, IN},
    "assign": {D},
    "unassign": {D},
    "set_priority": {D},
    "set_status": {D, T},
    "set_tech_status": {D, T},
    "add_technician": {D},
    "bulk_assign": {D},
    "suggest": {D},
    "add_note": {D, T, IN},
    "history": {D, T, IN, V},
    "rebalance": {D},
    "apply_plan": {D},
    "create_incident": {D},
    "link": {D},
    "merge": {D},
    "update_clients": {D},
    "callout": {D},
    "answer_callout": {T},
    "undo": {D},
    "forecast": {D, V},
}


def answer(role: Role, frame: dict[str, Any], state: DispatchState | None = None) -> dict[str, Any]:
    """The reply to one command sent alone, as a dict ({"type": "history"} for a history to be read)."""
    command = command_adapter.validate_python({"command_id": "x", **frame})
    decider = Decider(state or floor(), DeciderSettings(burst_threshold=0))
    decided = decider.decide([Request("conn", ACTORS[role], command)], {}, NOW)
    (reply,) = decided.replies
    if reply.history is not None:
        return {"type": "history"}
    assert reply.frame is not None
    result: dict[str, Any] = json.loads(reply.frame)
    return result


def test_every_command_has_an_example_and_a_row() -> None:
    assert set(EXAMPLES) == set(COMMANDS) == set(ALLOWED)


@pytest.mark.parametrize(("command", "role"), [(c, r) for c in EXAMPLES for r in Role])
def test_who_may_send_what(command: str, role: Role) -> None:
    reply = answer(role, {"type": command, **EXAMPLES[command]})
    if role in ALLOWED[command]:
        assert reply["type"] != "error", reply
    else:
        assert reply["type"] == "error" and reply["code"] == "forbidden", reply
        article = "an" if role.value[0] in "aeiou" else "a"
        assert reply["message"] == f"{article} {role.value} may not {COMMANDS[command].verb}"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ({"type": "set_status", "ticket_id": "T-000002", "status": "in_progress"}, "T-000002 is not assigned to you"),
        ({"type": "add_note", "ticket_id": "T-000002", "text": "peek"}, "T-000002 is not assigned to you"),
        ({"type": "history", "ticket_id": "T-000002"}, None),  # refused once read, after the commit
        ({"type": "set_tech_status", "tech_id": "bob", "status": "break"}, "a technician may set only their own"),
        ({"type": "set_status", "ticket_id": "T-000001", "status": "cancelled"}, "a technician may not set a ticket"),
        # A stale version must not turn into a conflict that carries bob's ticket to her.
        ({"type": "set_status", "ticket_id": "T-000002", "status": "resolved", "expected_version": 99},
         "T-000002 is not assigned to you"),
    ],
)  # fmt: skip
def test_a_technician_works_only_their_own_tickets(frame: dict[str, Any], message: str | None) -> None:
    reply = answer(Role.TECHNICIAN, frame)
    if message is None:
        assert reply == {"type": "history"}  # the writer checks ownership on the committed state
        return
    assert reply["type"] == "error" and reply["code"] == "forbidden" and reply.get("current") is None
    assert reply["message"].startswith(message)


def test_a_refused_command_changes_nothing() -> None:
    state = floor()
    before = (dict(state.tickets), dict(state.technicians), state.seq)
    reply = answer(Role.VIEWER, {"type": "bulk_assign", "ticket_ids": ["T-000003"], "tech_id": "bob"}, state)
    assert reply["code"] == "forbidden"
    assert (state.tickets, state.technicians, state.seq) == before


def test_a_resent_command_gets_its_stored_reply_and_changes_nothing() -> None:
    state = floor()
    decider = Decider(state, DeciderSettings(burst_threshold=0))
    command = command_adapter.validate_python({"type": "assign", "command_id": "c9", **EXAMPLES["assign"]})
    seq = state.seq
    decided = decider.decide([Request("conn", ACTORS[D], command)], {("ana", "c9"): '{"stored": true}'}, NOW)
    assert [r.frame for r in decided.replies] == ['{"stored": true}']
    assert decided.events == [] and decided.acks == [] and state.seq == seq
