"""Several servers on one PostgreSQL (`serve --node NAME` on one `--db postgresql://…`), for real.

Every node here is a real `dispatch-server` process on a fresh database of the run's embedded PostgreSQL
(tests/conftest.py): a command on one node reaches boards on the others in the one seq order, the rules
hold whichever node a command reaches, a node killed with -9 loses nothing acked while clients carry on
at the other, the leader's duties move when it dies, and PostgreSQL itself may restart under load.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from dispatch.app import DispatchApp
from dispatch.core.models import Role
from dispatch.core.state import DispatchState, apply_event
from server.storage import Storage
from tests.support import EmbeddedPostgres, ServerProcess, Session, tech_frame, ticket_frame, timeout
from tests.test_durability import CLIENTS, KILL_AFTER_ACKS, TICKETS_PER_CLIENT, burst_frames, send_all

Node = Callable[..., ServerProcess]


@pytest.fixture
def node(tmp_path: Path, postgres_url: str) -> Iterator[Node]:
    """Start a node named NAME on this test's database: `node("a", *serve_options)`."""
    started: list[ServerProcess] = []

    def start(name: str, *options: str) -> ServerProcess:
        workdir = tmp_path / name
        workdir.mkdir()
        process = ServerProcess(
            db=workdir / "unused.db", workdir=workdir, database=postgres_url,
            options=("--node", name, "--rate-limit", "0", *options),
        ).start()  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


async def stored_state(url: str) -> tuple[DispatchState, DispatchState]:
    """The database's current state, and the state its event log replays to (they must be equal)."""
    storage = await Storage.open(url)
    try:
        replayed = DispatchState()
        for event in await storage.all_events():
            apply_event(replayed, event)
        return await storage.load_state(), replayed
    finally:
        await storage.close()


def seqs(session: Session) -> list[int]:
    return [event["seq"] for event in session.events]


# --- one truth, whichever node --------------------------------------------------------------------------------


async def test_a_command_on_one_node_reaches_boards_on_the_other_and_every_rule_holds_across_them(
    node: Node,
) -> None:
    a, b = node("a"), node("b")
    ana_token = await a.token(Role.DISPATCHER, "ana")
    ana_a, ana_b = await Session.open(a.url, ana_token), await Session.open(b.url, ana_token)
    wall_a = await Session.open(a.url, await a.token(Role.VIEWER, "wall-a"))
    wall_b = await Session.open(b.url, await b.token(Role.VIEWER, "wall-b"))
    assert (ana_a.welcome["node"], ana_b.welcome["node"]) == ("a", "b")

    created = await ana_a.ok(ticket_frame("Printer on fire", priority="P1"))
    seen = await wall_b.until_event(lambda e: e["kind"] == "ticket_created")
    assert (seen["seq"], seen["ticket"]["id"]) == (created["seq"], created["ticket_id"])

    # Writes on either node go into one log, one seq after another.
    second = await ana_b.ok(ticket_frame("Mail down"))
    await ana_a.ok(tech_frame("alice", ["network"]))
    assert second["seq"] == created["seq"] + 1

    # A command re-sent to the other node with the same id gets its original ack and changes nothing.
    once = {**ticket_frame("Only once"), "command_id": "once-1"}
    first = await ana_a.call(once)
    assert await ana_b.call(once) == first

    # expected_version is checked against the one current version.
    ticket_id = created["ticket_id"]
    await ana_b.ok({"type": "set_priority", "ticket_id": ticket_id, "priority": "P2", "expected_version": 1})
    stale = await ana_a.call({"type": "set_priority", "ticket_id": ticket_id, "priority": "P3", "expected_version": 1})
    assert stale["code"] == "conflict" and stale["current"]["priority"] == "P2"

    # Every board, on either node, has every event once, in seq order.
    last = (await ana_a.ok({"type": "assign", "ticket_id": ticket_id, "tech_id": "alice"}))["seq"]
    for wall in (wall_a, wall_b):
        await wall.until_seq(last)
        assert seqs(wall) == list(range(1, last + 1))
    assert wall_a.events == wall_b.events

    # A board that moves to the other node resumes there from its last seq.
    moved = await Session.open(b.url, await a.token(Role.VIEWER, "moved"), last_seq=3)
    assert moved.snapshot is None
    await moved.until_seq(last)
    assert moved.events == wall_a.events[3:]
    for session in (ana_a, ana_b, wall_a, wall_b, moved):
        await session.close()
