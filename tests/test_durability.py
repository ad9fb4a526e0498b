"""Nothing acknowledged is lost: kill -9 in the middle of a burst, restart, resend everything (on both
storage engines)."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest
from websockets.exceptions import ConnectionClosed

from dispatch.core.models import Role
from dispatch.core.state import DispatchState
from tests.support import ServerProcess, Session, both_engines, stored_state, ticket_frame, timeout

CLIENTS = 4
TICKETS_PER_CLIENT = 250
IN_FLIGHT = 32
KILL_AFTER_ACKS = 300


def burst_frames(client: int) -> list[dict[str, object]]:
    return [
        {**ticket_frame(f"client {client} ticket {n}", client=f"Client {client}"), "command_id": f"c{client}-{n}"}
        for n in range(TICKETS_PER_CLIENT)
    ]


async def send_all(
    session: Session, frames: list[dict[str, object]], acks: dict[str, dict[str, object]], progress: asyncio.Event
) -> None:
    """Pipeline `frames` with a bounded number in flight, recording every ack, until done or cut off."""
    window = asyncio.Semaphore(IN_FLIGHT)
    mine: set[str] = set()

    async def read_acks() -> None:
        while len(mine) < len(frames):
            frame = await session.receive(timeout=30)
            if frame["type"] == "ack":
                acks[frame["command_id"]] = frame
                mine.add(frame["command_id"])
                window.release()
                if len(acks) >= KILL_AFTER_ACKS:
                    progress.set()
            elif frame["type"] == "error":
                raise AssertionError(frame)

    reader = asyncio.create_task(read_acks())
    try:
        for frame in frames:
            # Wait for room in the window, unless the reader stopped (the server was killed with every
            # slot in flight): then nobody would ever free a slot.
            room = asyncio.ensure_future(window.acquire())
            await asyncio.wait({room, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not room.done():
                room.cancel()
                break
            await session.ws.send(json.dumps(frame))
    except ConnectionClosed:
        pass  # the server was killed under us; the reader sees it too
    try:
        await reader
    except ConnectionClosed:
        pass


async def stored(server: ServerProcess) -> tuple[DispatchState, DispatchState]:
    """The database's current state and the state its event log replays to; on SQLite, after the full
    integrity check of the file."""
    if server.database is None:
        with sqlite3.connect(server.db) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    return await stored_state(server.where)


@pytest.mark.serve("--rate-limit", "0")  # a burst as fast as the server goes: the limit would pace it
@both_engines
async def test_kill_9_during_a_burst_loses_no_acked_ticket_and_retries_make_no_duplicate(
    server: ServerProcess,
) -> None:
    tokens = [await server.token(Role.INTAKE, f"intake-{n}") for n in range(CLIENTS)]
    sessions = [await Session.open(server.url, token) for token in tokens]
    acks: dict[str, dict[str, object]] = {}
    progress = asyncio.Event()
    senders = [asyncio.create_task(send_all(s, burst_frames(n), acks, progress)) for n, s in enumerate(sessions)]

    # Kill once a good part of the burst is acknowledged, while the rest is still in flight.
    await asyncio.wait_for(progress.wait(), timeout(60))
    server.kill9()
    await asyncio.gather(*senders, return_exceptions=True)
    acked_before = dict(acks)
    assert KILL_AFTER_ACKS <= len(acked_before) < CLIENTS * TICKETS_PER_CLIENT

    on_disk = {t.id: t.title for t in (await stored(server))[0].tickets.values()}
    for command_id, ack in acked_before.items():
        client, n = command_id.removeprefix("c").split("-")
        assert on_disk[str(ack["ticket_id"])] == f"client {client} ticket {n}", "an acked ticket was lost"

    # Restart and resend every command with its original id, as a client that lost its acks would.
    server.start()
    sessions = [await Session.open(server.url, token) for token in tokens]
    acks.clear()
    await asyncio.gather(*(send_all(s, burst_frames(n), acks, asyncio.Event()) for n, s in enumerate(sessions)))
    assert len(acks) == CLIENTS * TICKETS_PER_CLIENT
    for command_id, ack in acked_before.items():
        assert acks[command_id] == ack, "a re-sent command must get its original ack"

    # Every ticket once, and the event log alone rebuilds exactly the current-state tables.
    server.stop()
    state, replayed = await stored(server)
    titles = [t.title for t in state.tickets.values()]
    assert len(titles) == len(set(titles)) == CLIENTS * TICKETS_PER_CLIENT
    assert replayed == state
