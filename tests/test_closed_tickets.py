"""Closed tickets leave the server's memory and stay in the database (issue 11): whatever reads them
still does, a board's fresh snapshot equals the state it kept up event by event, and a command about a
closed ticket (reopen it, undo its resolve, its history) is decided as before. Real server, real file."""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.core.models import Role
from dispatch.core.protocol import Snapshot, event_adapter
from dispatch.model import BoardModel
from tests.support import ServerProcess, Session


def board_from(session: Session) -> BoardModel:
    """A board's model fed what the session received: its snapshot, then every event since."""
    model = BoardModel()
    assert session.snapshot is not None
    frames: list[Any] = [Snapshot.model_validate(session.snapshot)]
    frames += [event_adapter.validate_python(e) for e in session.events]
    batch = model.apply_batch(frames)
    assert not batch.gap
    return model


async def catch_up(session: Session, seq: int) -> None:
    while not session.events or session.events[-1]["seq"] < seq:
        await session.receive()


# Both storages: each reads the closed tickets back its own way.
@pytest.mark.parametrize("server", ["sqlite", "postgres"], indirect=True)
async def test_closed_tickets_stay_readable_and_a_fresh_snapshot_equals_a_kept_board(server: ServerProcess) -> None:
    token = await server.token(Role.DISPATCHER, "ana")
    ana = await Session.open(server.url, token)
    wall = await Session.open(server.url, await server.token(Role.VIEWER, "wall"))
    await ana.ok({"type": "add_technician", "tech_id": "alice", "name": "Alice", "skills": ["network"]})
    ids = []
    for n in range(6):
        reply = await ana.ok({"type": "create_ticket", "title": f"Printer {n}", "client": "Acme", "priority": "P3"})
        ids.append(reply["ticket_id"])
    for ticket_id in ids[:4]:
        await ana.ok({"type": "assign", "ticket_id": ticket_id, "tech_id": "alice"})
    resolve = await ana.send({"type": "set_status", "ticket_id": ids[0], "status": "resolved"})
    assert resolve is not None
    await ana.reply_to(resolve)
    await ana.ok({"type": "set_status", "ticket_id": ids[1], "status": "resolved"})
    await ana.ok({"type": "set_status", "ticket_id": ids[4], "status": "cancelled"})

    # Out of memory, still there: its history, a reopening, and an undo of a resolve.
    history = await ana.ok({"type": "history", "ticket_id": ids[0]})
    assert [e["kind"] for e in history["events"]] == ["ticket_created", "ticket_assigned", "status_changed"]
    reopened = await ana.ok({"type": "set_status", "ticket_id": ids[1], "status": "in_progress"})
    assert reopened["version"] == 4
    undone = await ana.ok({"type": "undo", "of": resolve})
    assert undone["ticket_ids"] == [ids[0]]
    refused = await ana.call({"type": "assign", "ticket_id": ids[4], "tech_id": "alice"})
    assert refused["type"] == "error" and refused["code"] == "conflict", refused
    last = await ana.ok({"type": "set_status", "ticket_id": ids[2], "status": "resolved"})

    # The wallboard kept up event by event; a board connecting now gets the same from its snapshot,
    # the closed tickets of the day included (read from the database).
    await catch_up(wall, last["seq"])
    kept = board_from(wall)
    fresh = await Session.open(server.url, token)
    assert fresh.snapshot is not None and fresh.snapshot["seq"] == last["seq"]
    snapshot = board_from(fresh)
    assert snapshot.state.tickets == kept.state.tickets
    assert {t.id for t in snapshot.state.tickets.values() if not t.is_open} == {ids[2], ids[4]}
    for session in (ana, wall, fresh):
        await session.close()

    # After a restart memory starts from the open tickets only; numbering goes on after the last ticket
    # ever opened, even a closed one, and the snapshot still has the day's closed work.
    await ana.close()
    assert server.terminate() == 0
    server.start()
    ana = await Session.open(server.url, token)
    assert ana.snapshot is not None
    assert board_from(ana).state.tickets == kept.state.tickets
    await ana.ok({"type": "set_status", "ticket_id": ids[5], "status": "cancelled"})
    reply = await ana.ok({"type": "create_ticket", "title": "Scanner", "client": "Acme", "priority": "P4"})
    assert reply["ticket_id"] == "T-000007"
    history = await ana.ok({"type": "history", "ticket_id": ids[4]})
    assert history["events"][-1]["ticket"]["status"] == "cancelled"
    await ana.close()
