"""Roles are enforced by the server: what each token may see and do."""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.core.models import Role
from tests.support import ServerProcess, Session, tech_frame, ticket_frame


@pytest.fixture
async def floor(server: ServerProcess, dispatcher: Session) -> Session:
    """alice holds T-000001, bob holds T-000002, T-000003 is unassigned."""
    await dispatcher.ok(tech_frame("alice"))
    await dispatcher.ok(tech_frame("bob"))
    for n in range(3):
        await dispatcher.ok(ticket_frame(f"ticket {n + 1}"))
    await dispatcher.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
    await dispatcher.ok({"type": "assign", "ticket_id": "T-000002", "tech_id": "bob"})
    return dispatcher


async def test_technician_sees_only_their_own_tickets(server: ServerProcess, floor: Session) -> None:
    alice = await Session.open(server.url, await server.token(Role.TECHNICIAN, "alice", "alice"))
    assert alice.welcome["role"] == "technician" and alice.welcome["tech_id"] == "alice"
    assert alice.snapshot is not None
    assert [t["id"] for t in alice.snapshot["tickets"]] == ["T-000001"]
    assert {t["id"] for t in alice.snapshot["technicians"]} == {"alice", "bob"}

    # Events about bob's work never reach alice; technician events and her own tickets do.
    await floor.ok({"type": "set_priority", "ticket_id": "T-000002", "priority": "P1"})
    await floor.ok({"type": "set_tech_status", "tech_id": "bob", "status": "on_site"})
    await floor.ok({"type": "assign", "ticket_id": "T-000003", "tech_id": "alice"})
    moved = await floor.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "bob"})
    await alice.until_seq(moved["seq"])
    assert [(e["kind"], e.get("ticket", {}).get("id")) for e in alice.events] == [
        ("technician_status_changed", None),
        ("ticket_assigned", "T-000003"),
        ("ticket_assigned", "T-000001"),  # taken from her: she must hear of it to drop it
    ]

    # Resuming gives her the same filtered view.
    resumed = await Session.open(server.url, await server.token(Role.TECHNICIAN, "alice2", "alice"), last_seq=7)
    await resumed.until_seq(moved["seq"])
    assert [e["seq"] for e in resumed.events] == [e["seq"] for e in alice.events]


async def test_technician_may_work_own_tickets_only(server: ServerProcess, floor: Session) -> None:
    alice = await Session.open(server.url, await server.token(Role.TECHNICIAN, "alice", "alice"))
    for status in ("in_progress", "on_hold", "resolved"):
        await alice.ok({"type": "set_status", "ticket_id": "T-000001", "status": status})
    await alice.ok({"type": "set_tech_status", "tech_id": "alice", "status": "break"})
    refusals: list[dict[str, Any]] = [
        {"type": "set_status", "ticket_id": "T-000002", "status": "in_progress"},
        {"type": "add_note", "ticket_id": "T-000002", "text": "peeking"},
        # A stale version must not turn into a conflict that carries bob's ticket to her.
        {"type": "set_status", "ticket_id": "T-000002", "status": "in_progress", "expected_version": 99},
        {"type": "set_tech_status", "tech_id": "bob", "status": "off_shift"},
        {"type": "assign", "ticket_id": "T-000003", "tech_id": "alice"},
        {"type": "unassign", "ticket_id": "T-000001"},
        {"type": "set_priority", "ticket_id": "T-000001", "priority": "P4"},
        {"type": "bulk_assign", "ticket_ids": ["T-000003"], "tech_id": "alice"},
        {"type": "add_technician", "tech_id": "eve", "name": "Eve"},
        {"type": "suggest", "ticket_id": "T-000003"},
        {"type": "history", "ticket_id": "T-000002"},
        ticket_frame(),
    ]
    for frame in refusals:
        reply = await alice.call(frame)
        assert reply["type"] == "error" and reply["code"] == "forbidden", (frame, reply)
    # A technician cannot cancel: that is the dispatcher's call.
    await floor.ok({"type": "assign", "ticket_id": "T-000003", "tech_id": "alice"})
    reply = await alice.call({"type": "set_status", "ticket_id": "T-000003", "status": "cancelled"})
    assert reply["code"] == "forbidden"


async def test_intake_creates_only(server: ServerProcess, floor: Session) -> None:
    intake = await Session.open(server.url, await server.token(Role.INTAKE, "monitoring"))
    created = await intake.ok(ticket_frame("Disk full"))
    assert created["ticket_id"] == "T-000004"
    for frame in (
        {"type": "assign", "ticket_id": "T-000004", "tech_id": "alice"},
        {"type": "set_status", "ticket_id": "T-000004", "status": "cancelled"},
        {"type": "set_tech_status", "tech_id": "alice", "status": "break"},
        {"type": "suggest", "ticket_id": "T-000004"},
    ):
        assert (await intake.call(frame))["code"] == "forbidden"


async def test_viewer_reads_only(server: ServerProcess, floor: Session) -> None:
    viewer = await Session.open(server.url, await server.token(Role.VIEWER, "wallboard"))
    assert viewer.snapshot is not None and len(viewer.snapshot["tickets"]) == 3
    for frame in (ticket_frame(), {"type": "assign", "ticket_id": "T-000003", "tech_id": "alice"}):
        assert (await viewer.call(frame))["code"] == "forbidden"
    history = await viewer.ok({"type": "history", "ticket_id": "T-000001"})
    assert len(history["events"]) == 2


async def test_technician_token_may_exist_before_the_technician(server: ServerProcess, dispatcher: Session) -> None:
    zoe = await Session.open(server.url, await server.token(Role.TECHNICIAN, "zoe", "zoe"))
    assert zoe.snapshot is not None and zoe.snapshot["tickets"] == []
    assert (await zoe.call({"type": "set_tech_status", "tech_id": "zoe", "status": "available"}))["code"] == "not_found"
    await dispatcher.ok(tech_frame("zoe"))
    await zoe.ok({"type": "set_tech_status", "tech_id": "zoe", "status": "on_site"})
