"""Several servers on one PostgreSQL (`serve --node NAME` on one `--db postgresql://…`), for real.

Every node here is a real `dispatch-server` process on a fresh database of the run's embedded PostgreSQL
(tests/conftest.py): a command on one node reaches boards on the others in the one seq order, the rules
hold whichever node a command reaches, a node killed with -9 loses nothing acked while clients carry on
at the other, the leader's duties move when it dies, and PostgreSQL itself may restart under load.
"""

from __future__ import annotations

import asyncio
import copy
import io
import socket
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from textual.widgets import Static
from websockets.exceptions import ConnectionClosed

from dispatch.app import DispatchApp
from dispatch.core.decide import Decider, DeciderSettings, Request
from dispatch.core.models import Priority, Role
from dispatch.core.protocol import Ack, AddTechnician, BurstEvent, Command, CreateTicket, Error, Event, SetPriority
from dispatch.core.state import Actor, DispatchState
from dispatch.screens.board import BoardScreen
from server.embedded import running
from server.settings import ServerSettings
from server.storage import Storage
from tests.support import (
    EmbeddedPostgres,
    ServerProcess,
    Session,
    stored_state,
    tech_frame,
    ticket_frame,
    timeout,
)  # fmt: skip
from tests.test_board import SIZE, board_loaded, until
from tests.test_cli import assert_one_line_failure, run_cli
from tests.test_durability import CLIENTS, KILL_AFTER_ACKS, TICKETS_PER_CLIENT, burst_frames, send_all
from tests.test_snapshots import screen_lines

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


# --- a node dies -------------------------------------------------------------------------------------------------


async def test_kill_9_of_a_node_during_a_burst_on_both_loses_no_acked_command_and_retries_on_the_other_make_none_twice(
    node: Node, postgres_url: str
) -> None:
    a, b = node("a"), node("b")
    tokens = [await a.token(Role.INTAKE, f"intake-{n}") for n in range(CLIENTS)]
    # Half the clients on each node.
    on_a = [n for n in range(CLIENTS) if n % 2 == 0]
    sessions = [await Session.open((a if n in on_a else b).url, token) for n, token in enumerate(tokens)]
    acks: dict[str, dict[str, object]] = {}
    progress = asyncio.Event()
    senders = [asyncio.create_task(send_all(s, burst_frames(n), acks, progress)) for n, s in enumerate(sessions)]
    await asyncio.wait_for(progress.wait(), timeout(60))
    a.kill9()
    # A's clients are cut off; B's go on to the end of their burst meanwhile.
    await asyncio.gather(*senders, return_exceptions=True)
    acked_before = dict(acks)
    assert KILL_AFTER_ACKS <= len(acked_before) < CLIENTS * TICKETS_PER_CLIENT

    # A's clients move to B and resend everything with the original command ids.
    moved = [await Session.open(b.url, tokens[n]) for n in on_a]
    await asyncio.gather(
        *(send_all(s, burst_frames(n), acks, asyncio.Event()) for n, s in zip(on_a, moved, strict=True))
    )
    assert len(acks) == CLIENTS * TICKETS_PER_CLIENT
    for command_id, ack in acked_before.items():
        assert acks[command_id] == ack, "a command acked by the dead node must get its original ack on the other"

    state, replayed = await stored_state(postgres_url)
    titles = sorted(t.title for t in state.tickets.values())
    assert titles == sorted(f"client {c} ticket {n}" for c in range(CLIENTS) for n in range(TICKETS_PER_CLIENT))
    assert replayed == state


# --- the leader -----------------------------------------------------------------------------------------------


def leader_gauge(http_url: str) -> str:
    with urllib.request.urlopen(f"{http_url}/metrics", timeout=timeout(10)) as response:
        text: str = response.read().decode()
    return next(line for line in text.splitlines() if line.startswith("dispatch_leader "))


async def test_when_the_leader_dies_another_node_takes_over_auto_assign_and_nothing_is_assigned_twice(
    node: Node, postgres_url: str
) -> None:
    a = node("a", "--auto-assign")
    await a.logged("this node is the leader now")
    b = node("b", "--auto-assign", "--http-port", "0")
    assert b.process is not None and b.process.stdout is not None
    http_b = b.process.stdout.readline().split()[-1]
    assert leader_gauge(http_b) == "dispatch_leader 0.0"
    ana = await Session.open(b.url, await b.token(Role.DISPATCHER, "ana"))
    await ana.ok(tech_frame("alice", capacity=50))

    def assigned(session: Session) -> set[str]:
        return {e["ticket"]["id"] for e in session.events if e["kind"] == "ticket_assigned"}

    # Created on B, placed by the leader on A, which hears of them from B.
    created = {(await ana.ok(ticket_frame(f"before {n}")))["ticket_id"] for n in range(3)}
    await ana.until_event(lambda _: assigned(ana) >= created)

    a.kill9()
    await b.logged("this node is the leader now")  # within 10 s: a try every 2 s once the lock is free
    assert leader_gauge(http_b) == "dispatch_leader 1.0"
    created |= {(await ana.ok(ticket_frame(f"after {n}")))["ticket_id"] for n in range(3)}
    await ana.until_event(lambda _: assigned(ana) >= created)

    storage = await Storage.open(postgres_url)
    try:
        assignments = [e for e in await storage.all_events() if e.kind == "ticket_assigned"]
    finally:
        await storage.close()
    assert sorted(e.ticket.id for e in assignments) == sorted(created), "each ticket is assigned exactly once"
    assert {e.actor for e in assignments} == {"auto"}
    await ana.close()


# --- PostgreSQL itself goes away -----------------------------------------------------------------------------


async def keep_creating(
    url: str, token: str, prefix: str, count: int, acks: dict[str, dict[str, Any]], refused: asyncio.Event
) -> None:
    """Create `count` tickets one after another, resending one refused as `unavailable`, or lost with a
    connection the node closed, with the same id until it is acked, as a client should."""
    session: Session | None = None
    for n in range(count):
        frame = {**ticket_frame(f"{prefix} {n}"), "command_id": f"{prefix}-{n}"}
        while True:
            try:
                session = session or await Session.open(url, token)
                reply = await session.call(frame)
            except ConnectionClosed:
                session = None
                refused.set()
                await asyncio.sleep(0.05)
                continue
            if reply["type"] == "ack":
                break
            assert reply["code"] == "unavailable", reply
            refused.set()
            await asyncio.sleep(0.05)
        acks[frame["command_id"]] = reply


async def closed_by_server(session: Session) -> tuple[int, str]:
    """Read on until the server closes the connection: its close code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await session.receive()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_postgres_restarted_under_load_refuses_then_carries_on_and_loses_nothing_acked(
    node: Node, postgres: EmbeddedPostgres, postgres_url: str
) -> None:
    a, b = node("a", "--http-port", "0"), node("b")
    assert a.process is not None and a.process.stdout is not None
    http_a = a.process.stdout.readline().split()[-1]
    token = await a.token(Role.INTAKE, "monitoring")
    wall_token = await b.token(Role.VIEWER, "wall")
    wall = await Session.open(b.url, wall_token)
    acks: dict[str, dict[str, Any]] = {}
    refused = asyncio.Event()
    per_loader = 150
    load = [
        asyncio.create_task(keep_creating(url, token, f"n{i}", per_loader, acks, refused))
        for i, url in enumerate((a.url, b.url))
    ]
    try:
        async with asyncio.timeout(timeout(30)):
            while len(acks) < 50:
                await asyncio.sleep(0.01)
        postgres.pause()
        await asyncio.wait_for(refused.wait(), timeout(10))
        # The wall on B is told, not left showing a live board: closed with the reason, to come back.
        assert await closed_by_server(wall) == (1013, "the database cannot be reached: try again later")
        # A board that connects now is told to come back later (or try another node), not left hanging.
        with pytest.raises(ConnectionClosed) as closed:
            late = await Session.open(a.url, token)
            await late.receive()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        # HTTP intake says so too, with 503: nothing applied, send it again later.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout(10))) as http:
            async with http.post(f"{http_a}/v1/tickets", json={"title": "Via HTTP", "client": "Acme", "priority": "P2"},
                                 headers={"Authorization": f"Bearer {token}"}) as response:  # fmt: skip
                assert response.status == 503
                assert "the database cannot be reached" in (await response.json())["error"]
        postgres.resume()
        await asyncio.wait_for(asyncio.gather(*load), timeout(60))
    finally:
        for task in load:
            task.cancel()
    assert len(acks) == 2 * per_loader

    state, replayed = await stored_state(postgres_url)
    assert sorted(t.title for t in state.tickets.values()) == sorted(
        f"n{i} {n}" for i in range(2) for n in range(per_loader)
    ), "every acked command once, none lost, none twice"
    assert replayed == state
    # The wall, back on B from where it was, has every event once, in order.
    back = await Session.open(b.url, wall_token, last_seq=seqs(wall)[-1])
    assert back.snapshot is None, "resumed with the events it missed"
    await back.until_seq(state.seq, timeout=20)
    assert seqs(wall) + seqs(back) == list(range(1, state.seq + 1))


# --- a board on several nodes --------------------------------------------------------------------------------


async def test_a_board_given_both_nodes_moves_to_the_other_when_its_node_dies_and_misses_nothing(node: Node) -> None:
    a, b = node("a"), node("b")
    ana = await Session.open(b.url, await b.token(Role.DISPATCHER, "ana"))
    for n in range(3):
        await ana.ok(ticket_frame(f"before {n}"))
    app = DispatchApp(f"{a.url},{b.url}", await a.token(Role.DISPATCHER, "dan"))

    def connection() -> str:
        return str(app.screen.query_one("#connection", Static).render())

    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 3))
        assert "connected to a" in connection()
        a.kill9()
        await until(pilot, lambda: "connected to b" in connection(), timeout=30)
        for n in range(3):
            await ana.ok(ticket_frame(f"after {n}"))
        await until(pilot, board_loaded(app, 6))
        fresh = await Session.open(b.url, await b.token(Role.VIEWER, "check"))
        assert fresh.snapshot is not None
        assert app.model.state.seq == fresh.snapshot["seq"]
        ours = {t.id: t.model_dump(mode="json") for t in app.model.state.tickets.values()}
        assert ours == {t["id"]: t for t in fresh.snapshot["tickets"]}


async def test_a_node_listening_on_every_address_is_named_by_its_host(tmp_path: Path) -> None:
    """`serve --host 0.0.0.0` without `--node`: its boards' headers name the machine, not 0.0.0.0, so
    that two such nodes are told apart."""
    process = ServerProcess(db=tmp_path / "d.db", workdir=tmp_path).start("--host", "0.0.0.0", "--port", "0")
    try:
        port = process.url.rsplit(":", 1)[1]
        session = await Session.open(f"ws://127.0.0.1:{port}", await process.token(Role.VIEWER, "wall"))
        assert session.welcome["node"] == f"{socket.gethostname()}:{port}"
        await session.close()
    finally:
        process.stop()


async def test_at_80_columns_a_long_node_name_gives_way_to_the_sla_counts(node: Node) -> None:
    name = "dispatch-eu-west-1a.servicedesk.example.com"
    a = node(name)
    app = DispatchApp(f"{a.url},{a.url}", await a.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, BoardScreen) and app.model.has_snapshot)
        # (No lines at all until the board's screen is first laid out.)
        await until(pilot, lambda: "connected to dispatch-eu" in "".join(screen_lines(app)[:1]))
        await pilot.pause()
        header = screen_lines(app)[0]
        assert header.rstrip().endswith("at risk 0  breached 0"), header
        assert "connected to dispatch-eu-west-1a" in header and "…" in header, header


# --- the deciding part, without a socket ------------------------------------------------------------------------

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ANA = Actor("ana", Role.DISPATCHER)


def decide_on(decider: Decider, others: list[Decider], *commands: Command) -> list[Event]:
    """One batch on one node; the other nodes fold in what it stored, as their write turns do."""
    decided = decider.decide([Request("ana", ANA, c) for c in commands], {}, NOW)
    for other in others:
        other.absorb(decided.events)
    return decided.events


def report(n: int, client: str = "Acme") -> CreateTicket:
    return CreateTicket(command_id=f"r{n}", title=f"Report {n}", client=client, priority=Priority.P3)


def test_only_the_leader_does_what_must_run_once_and_a_new_leader_does_not_do_it_again() -> None:
    settings = DeciderSettings(auto_assign=True, burst_threshold=3)
    a = Decider(DispatchState(), settings)
    b = Decider(DispatchState(), replace(settings, leader=False))
    decide_on(a, [b], AddTechnician(command_id="t", tech_id="alice", name="Alice", capacity=10))

    # A follower takes commands but neither assigns nor reports a burst...
    made_on_b = decide_on(b, [a], report(1), report(2), report(3))
    assert [e.kind for e in made_on_b] == ["ticket_created"] * 3
    # ...the leader does, on its next batch, even one with nothing of its own (a catch-up).
    done_by_a = decide_on(a, [b])
    assert sorted(e.kind for e in done_by_a) == ["burst_detected"] + ["ticket_assigned"] * 3
    assert (a.state.tickets, a.state.technicians, a.state.seq) == (b.state.tickets, b.state.technicians, b.state.seq)

    # A dies; B takes over, learning from the log what A reported: a fourth report is assigned, and the
    # burst is not reported again for one more ticket (a new leader that had not learnt would).
    reported = [e for e in done_by_a if isinstance(e, BurstEvent)]
    forgetful = Decider(copy.deepcopy(b.state), settings)
    b.became_leader(NOW, reported, timedelta(seconds=30))
    b.settings = replace(b.settings, leader=True)
    assert [e.kind for e in decide_on(b, [], report(4))] == ["ticket_created", "ticket_assigned"]
    assert "burst_detected" in [e.kind for e in decide_on(forgetful, [], report(4))]


async def test_a_board_says_when_the_database_cannot_be_reached_and_carries_on_once_it_is_back(
    node: Node, postgres: EmbeddedPostgres
) -> None:
    a = node("a")
    ana_token = await a.token(Role.DISPATCHER, "ana")
    ana = await Session.open(a.url, ana_token)
    script = await a.token(Role.DISPATCHER, "script")
    ticket_id = (await ana.ok(ticket_frame("VPN down", priority="P3")))["ticket_id"]
    app = DispatchApp(a.url, await a.token(Role.DISPATCHER, "dan"))
    # Retries a fifth of a second apart: the board is back moments after the database, not after a
    # backoff grown through the outage.
    app.session.link.backoff = lambda attempt: 0.2

    def header() -> str:
        return str(app.screen.query_one("#connection", Static).render())

    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 1))
        assert "● connected" in header()
        change = SetPriority(command_id="raise-1", ticket_id=ticket_id, priority=Priority.P1)
        postgres.pause()
        try:
            refused = await app.session.send_command(change, f"{ticket_id} to P1", [ticket_id])
            # Noticed with no command sent too (the SLA clock's look each second): the board does not go
            # on saying "connected"; its header gives the server's reason while it retries.
            await until(pilot, lambda: "reconnecting #" in header() and "the database cannot be reached" in header())
            await a.logged("lost this node's database session")
            # A script is told why in one line: the server's reason once, not the close frames both ways.
            listing = await run_cli("ticket", "list", server=a.url, token=script)
            assert_one_line_failure(listing, 6, "the database cannot be reached: try again later (1013)")
            assert listing.err.count("the database cannot be reached") == 1, listing.err
            await a.logged("cannot read revoked tokens")
        finally:
            postgres.resume()
        # The change was refused as `unavailable` (said "Not saved") or, when the node had already closed
        # the board, never applied (said "Not sent"): which comes first is the clock's second. Either way
        # nothing changed, and the dispatcher is told to try again.
        if isinstance(refused, Error):
            assert refused.code == "unavailable"
            title = "Not saved: try again"
            said = f"{ticket_id} to P1: the database cannot be reached, nothing was changed. Try again in a moment."
        else:
            assert refused is None
            title, said = "", f"Not sent: {ticket_id} to P1 (not connected). Try again once reconnected."
        await until(pilot, lambda: any(n.title == title and n.message == said for n in app._notifications))
        assert app.model.state.tickets[ticket_id].priority is Priority.P3
        await until(pilot, lambda: "● connected" in header(), timeout=20)
        # Sent again once the database is back: applied, and the board shows it.
        assert isinstance(await app.session.send_command(change, f"{ticket_id} to P1", [ticket_id]), Ack)
        await until(pilot, lambda: app.model.state.tickets[ticket_id].priority is Priority.P1)
        # Resumed from where it was, nothing missed: the board equals the server after a new ticket.
        ana = await Session.open(a.url, ana_token)
        await ana.ok(ticket_frame("Printer jammed"))
        await until(pilot, board_loaded(app, 2))
        fresh = await Session.open(a.url, await a.token(Role.VIEWER, "check"))
        snapshot = fresh.snapshot
        assert snapshot is not None
        await until(pilot, lambda: app.model.state.seq == snapshot["seq"])
        ours = {t.id: t.model_dump(mode="json") for t in app.model.state.tickets.values()}
        assert ours == {t["id"]: t for t in snapshot["tickets"]}
    # The operator's log says it in its own lines, not with the database driver's tracebacks.
    await a.logged("the database is back")
    await a.logged("revoked tokens can be read again")
    assert "Traceback" not in a.stderr(), a.stderr()
    assert a.stderr().count("cannot read revoked tokens") == 1, "said once, not every second"


async def test_a_client_from_a_node_further_ahead_resumes_with_the_events_it_missed_not_a_snapshot(
    postgres_url: str,
) -> None:
    storage_a, storage_b = await Storage.open(postgres_url), await Storage.open(postgres_url)
    await storage_a.create_token("ana", Role.DISPATCHER, None, "token-ana")
    settings_b = ServerSettings(port=0, node="b", leader_retry_s=600, clock_interval_s=600)
    try:
        async with (
            running(storage_a, ServerSettings(port=0, node="a"), io.StringIO()) as a,
            running(storage_b, settings_b, io.StringIO()) as b,
        ):
            assert b.server.node is not None
            b.server.node.leave()  # B hears no more of A's batches: as if their news were late
            ana = await Session.open(a.url, "token-ana")
            for n in range(3):
                last = (await ana.ok(ticket_frame(f"on A {n}")))["seq"]
            moved = await Session.open(b.url, "token-ana", last_seq=1)
            assert moved.welcome["seq"] == last and moved.snapshot is None
            await moved.until_seq(last)
            assert seqs(moved) == list(range(2, last + 1))
            for session in (ana, moved):
                await session.close()
    finally:
        for storage in (storage_a, storage_b):
            await storage.close()


async def test_a_ticket_closed_on_one_node_leaves_the_others_memory_and_is_reopened_there_as_before(
    node: Node,
) -> None:
    a, b = node("a"), node("b")
    token = await a.token(Role.DISPATCHER, "ana")
    ana_a, ana_b = await Session.open(a.url, token), await Session.open(b.url, token)
    created = await ana_a.ok(ticket_frame("Printer on fire"))
    ticket_id = created["ticket_id"]
    await ana_a.ok({"type": "set_status", "ticket_id": ticket_id, "status": "resolved"})
    # B folds the resolve in with its next write turn, lets the ticket go, and brings it back to decide.
    reopened = await ana_b.ok({"type": "set_status", "ticket_id": ticket_id, "status": "new"})
    assert reopened["version"] == 3
    stale = await ana_a.call(
        {"type": "set_status", "ticket_id": ticket_id, "status": "resolved", "expected_version": 2}
    )
    assert stale["code"] == "conflict" and stale["current"]["status"] == "new", stale
    history = await ana_a.ok({"type": "history", "ticket_id": ticket_id})
    assert [e["kind"] for e in history["events"]] == ["ticket_created", "status_changed", "status_changed"]
    for session in (ana_a, ana_b):
        await session.close()
