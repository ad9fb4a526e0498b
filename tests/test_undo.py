"""Undo, pure: every undoable command taken back, the conflict case, a bulk move and a plan, an undo
undone, idempotency and permissions, decided by the writer's pure step without a socket."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from dispatch.core.decide import Decider, DeciderSettings, Request
from dispatch.core.models import Priority, Role, TechStatus
from dispatch.core.protocol import AddTechnician, Command, CreateIncident, CreateTicket
from dispatch.core.rules import Change, add_technician, create_incident, create_ticket
from dispatch.core.state import RECENT_CHANGES_PER_USER, Actor, DispatchState

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ANA = Actor("ana", Role.DISPATCHER)
BEN = Actor("ben", Role.DISPATCHER)
ALICE = Actor("alice", Role.TECHNICIAN, "alice")
commands: TypeAdapter[Command] = TypeAdapter(Command)


class Floor:
    """Tickets T-000001..3 (T-000001 assigned to alice), technicians alice and bob, incident INC-1."""

    def __init__(self) -> None:
        self.state = DispatchState()
        setup = Change(self.state, ANA, NOW)
        for tech in ("alice", "bob"):
            add_technician(setup, AddTechnician(command_id=f"t-{tech}", tech_id=tech, name=tech))
        for n in range(3):
            create_ticket(setup, CreateTicket(command_id=f"c{n}", title=f"ticket {n + 1}", client="Acme",
                                              priority=Priority.P2))  # fmt: skip
        create_incident(setup, CreateIncident(command_id="i1", title="ISP down"))
        self.decider = Decider(self.state, DeciderSettings(burst_threshold=0))
        self.now = NOW
        self.ids = 0
        self.send(ANA, {"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})

    def send(self, actor: Actor, frame: dict[str, Any], command_id: str | None = None) -> dict[str, Any]:
        self.ids += 1
        command = commands.validate_python({"command_id": command_id or f"x{self.ids}", **frame})
        decided = self.decider.decide([Request("conn", actor, command)], {}, self.now)
        (reply,) = decided.replies
        assert reply.frame is not None
        answer: dict[str, Any] = json.loads(reply.frame)
        return answer

    def view(self) -> dict[str, Any]:
        """What undo must restore: each ticket's and technician's fields but the version."""
        tickets = {i: t.model_dump(exclude={"version"}) for i, t in self.state.tickets.items()}
        techs = {i: t.status for i, t in self.state.technicians.items()}
        incidents = {i: list(inc.ticket_ids) for i, inc in self.state.incidents.items()}
        return {"tickets": tickets, "technicians": techs, "incidents": incidents}


CHANGES: list[dict[str, Any]] = [
    {"type": "assign", "ticket_id": "T-000002", "tech_id": "bob"},
    {"type": "assign", "ticket_id": "T-000001", "tech_id": "bob"},  # a reassignment
    {"type": "unassign", "ticket_id": "T-000001"},
    {"type": "bulk_assign", "ticket_ids": ["T-000002", "T-000003"], "tech_id": "bob"},
    {"type": "apply_plan", "moves": [{"ticket_id": "T-000001", "tech_id": "bob", "expected_version": 2},
                                     {"ticket_id": "T-000002", "tech_id": "alice", "expected_version": 1}]},
    {"type": "set_priority", "ticket_id": "T-000002", "priority": "P1"},
    {"type": "set_status", "ticket_id": "T-000001", "status": "on_hold", "reason": "awaiting_parts"},
    {"type": "set_status", "ticket_id": "T-000001", "status": "resolved"},
    {"type": "set_tech_status", "tech_id": "bob", "status": "break"},
    {"type": "link", "incident_id": "INC-1", "ticket_ids": ["T-000002", "T-000003"]},
    {"type": "merge", "primary_id": "T-000002", "duplicate_ids": ["T-000003"]},
]  # fmt: skip


@pytest.mark.parametrize("change", CHANGES, ids=[f"{c['type']}-{n}" for n, c in enumerate(CHANGES)])
def test_undo_puts_back_what_a_change_touched(change: dict[str, Any]) -> None:
    floor = Floor()
    before = floor.view()
    versions = {i: t.version for i, t in floor.state.tickets.items()}
    assert floor.send(ANA, change, "the-change")["type"] == "ack"
    assert floor.view() != before
    floor.now += timedelta(minutes=5)
    ack = floor.send(ANA, {"type": "undo", "of": "the-change"})
    assert ack["type"] == "ack", ack
    assert floor.view() == before
    # Each ticket it touched moved on a version, and says who undid it.
    for ticket_id in ack["ticket_ids"] or []:
        assert floor.state.tickets[ticket_id].version > versions[ticket_id] + 1


def test_an_undo_can_be_undone() -> None:
    floor = Floor()
    floor.send(ANA, {"type": "bulk_assign", "ticket_ids": ["T-000002", "T-000003"], "tech_id": "bob"}, "bulk")
    moved = floor.view()
    floor.send(ANA, {"type": "undo", "of": "bulk"}, "undo-1")
    assert floor.send(ANA, {"type": "undo", "of": "undo-1"})["type"] == "ack"
    assert floor.view() == moved


def test_nothing_is_undone_when_anything_it_touched_changed_since() -> None:
    floor = Floor()
    floor.send(ANA, {"type": "bulk_assign", "ticket_ids": ["T-000002", "T-000003"], "tech_id": "bob"}, "bulk")
    floor.send(BEN, {"type": "set_priority", "ticket_id": "T-000003", "priority": "P1"})
    after = floor.view()
    refused = floor.send(ANA, {"type": "undo", "of": "bulk"})
    assert refused["code"] == "conflict"
    assert refused["message"] == "T-000003 changed since (now version 3, assigned, P1, assigned to bob): nothing undone"
    assert floor.view() == after


@pytest.mark.parametrize(
    ("actor", "of", "code"),
    [
        (BEN, "mine", "not_found"),  # another dispatcher's change
        (ALICE, "mine", "forbidden"),  # a technician may not undo
        (ANA, "never-sent", "not_found"),
    ],
)
def test_only_your_own_recent_changes(actor: Actor, of: str, code: str) -> None:
    floor = Floor()
    floor.send(ANA, {"type": "assign", "ticket_id": "T-000002", "tech_id": "bob"}, "mine")
    assert floor.send(actor, {"type": "undo", "of": of})["code"] == code


def test_changes_older_than_15_minutes_cannot_be_undone() -> None:
    floor = Floor()
    floor.send(ANA, {"type": "assign", "ticket_id": "T-000002", "tech_id": "bob"}, "mine")
    floor.now += timedelta(minutes=16)
    assert floor.send(ANA, {"type": "undo", "of": "mine"})["code"] == "not_found"


def test_an_undo_is_idempotent_like_every_command() -> None:
    floor = Floor()
    floor.send(ANA, {"type": "assign", "ticket_id": "T-000002", "tech_id": "bob"}, "mine")
    command = commands.validate_python({"type": "undo", "command_id": "u1", "of": "mine"})
    first = floor.decider.decide([Request("conn", ANA, command)], {}, floor.now)
    stored = {("ana", "u1"): first.replies[0].frame or ""}
    again = floor.decider.decide([Request("conn", ANA, command)], stored, floor.now)
    assert again.events == [] and again.replies[0].frame == first.replies[0].frame
    assert floor.state.technicians["bob"].status is TechStatus.AVAILABLE


def test_a_users_undo_memory_keeps_their_last_changes_not_every_one() -> None:
    floor = Floor()
    for n in range(RECENT_CHANGES_PER_USER + 20):
        priority = "P1" if n % 2 else "P3"
        assert floor.send(BEN, {"type": "set_priority", "ticket_id": "T-000002", "priority": priority}, f"p{n}")
    assert len(floor.state.recent_changes.changes) == RECENT_CHANGES_PER_USER + 1  # ana's assign, and ben's last
    assert floor.send(BEN, {"type": "undo", "of": "p0"})["code"] == "not_found"
    last = f"p{RECENT_CHANGES_PER_USER + 19}"
    assert floor.send(BEN, {"type": "undo", "of": last})["type"] == "ack"
    assert floor.send(ANA, {"type": "undo", "of": "x1"})["type"] == "ack"  # others' memory untouched
