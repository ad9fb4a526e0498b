"""Exposure beyond loopback, and abuse limits: wss, Origin, Bearer tokens, rate and connection caps.

Every refusal is checked for the exact status or close code docs/protocol.md promises, and for the
others going on unharmed.

The limits, token checks and timeouts run on both storage engines (`both_engines`): they are the server's,
whichever stores for it, and a token is looked up in its database. On SQLite only: wss (transport, and
its own server fixture) and the integrity check at start (of the SQLite file).
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from dispatch.app import DispatchApp
from dispatch.client import CommandSession
from dispatch.core.models import Role
from dispatch.core.protocol import CreateTicket, Error
from tests.support import ServerProcess, Session, both_engines, ticket_frame, timeout
from tests.test_board import SIZE, until
from tests.test_cli import assert_one_line_failure, run_cli
from tests.test_operator import run_cli as run_server_cli

# --- wss ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the private CA a client is told to trust
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA and a certificate it issued for the loopback address."""
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    files = TlsFiles(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    authority.cert_pem.write_to_path(str(files.ca))
    issued.private_key_pem.write_to_path(str(files.key))
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(files.cert), append=True)
    return files


@pytest.fixture
def tls_server(tmp_path: Path, tls_files: TlsFiles) -> Iterator[ServerProcess]:
    options = ("--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.key))
    process = ServerProcess(db=tmp_path / "dispatch.db", workdir=tmp_path, options=options).start()
    yield process
    process.stop()


async def test_wss_carries_the_protocol_to_scripts_and_the_board_that_trust_the_ca(
    tls_server: ServerProcess, tls_files: TlsFiles
) -> None:
    assert tls_server.url.startswith("wss://127.0.0.1:")
    trusting = ssl.create_default_context(cafile=str(tls_files.ca))
    token = await tls_server.token(Role.DISPATCHER, "ana")
    watcher = await Session.open(tls_server.url, token, ssl=trusting)

    created = await run_cli(
        "ticket", "new", "--title", "VPN down", "--client", "Acme", "--priority", "P1", "--ca-file", str(tls_files.ca),
        server=tls_server.url, token=token,
    )  # fmt: skip
    assert created.code == 0, created
    event = await watcher.until_event(lambda e: e["kind"] == "ticket_created")
    assert event["ticket"]["title"] == "VPN down"

    app = DispatchApp(tls_server.url, token, tls=trusting)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.board is not None and "T-000001" in app.model.state.tickets)
        assert app.link_state.connected

    # Health over HTTPS on the same port, also as `stats --server wss://... --ca-file` asks it.
    health_url = tls_server.url.replace("wss://", "https://") + "/healthz"
    with urllib.request.urlopen(health_url, context=trusting, timeout=timeout(10)) as response:
        assert response.status == 200 and response.read().startswith(b"ok")
    stats = run_server_cli(tls_server.db, "stats", "--server", tls_server.url, "--ca-file", str(tls_files.ca))
    assert stats.returncode == 0, stats.stderr
    # The watcher at least; the board's connection may not be gone yet on the server's side.
    open_connections = re.search(r"^connections +(\d+) open$", stats.stdout, re.MULTILINE)
    assert open_connections is not None and int(open_connections[1]) >= 1, stats.stdout
    await watcher.close()


async def test_a_script_that_does_not_trust_the_certificate_stops_with_one_line(
    tls_server: ServerProcess, tls_files: TlsFiles
) -> None:
    token = await tls_server.token(Role.DISPATCHER, "ana")
    untrusting = await run_cli("ticket", "list", server=tls_server.url, token=token)
    assert_one_line_failure(untrusting, 6, "certificate verify failed")
    bad_ca = await run_cli("ticket", "list", "--ca-file", str(tls_files.key.parent / "nope.pem"),
                           server=tls_server.url, token=token)  # fmt: skip
    assert_one_line_failure(bad_ca, 2, "nope.pem")
    # The board keeps retrying (the certificate may be fixed server-side) and says what to do.
    board = DispatchApp(tls_server.url, token)
    async with board.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "pass --ca-file" in board.link_state.detail)
        assert not board.link_state.connected
    # Plain ws:// to a wss port does not get in either.
    with pytest.raises((OSError, InvalidHandshake)):
        await Session.open(tls_server.url.replace("wss://", "ws://"), token)


async def test_a_ca_file_meant_for_a_wss_server_does_not_break_a_ws_one(
    server: ServerProcess, tls_files: TlsFiles
) -> None:
    token = await server.token(Role.DISPATCHER, "ana")
    listed = await run_cli("ticket", "list", "--ca-file", str(tls_files.ca), server=server.url, token=token)
    assert listed.code == 0, listed


def test_tls_options_are_checked_before_serving(tmp_path: Path, tls_files: TlsFiles) -> None:
    alone = run_server_cli(tmp_path / "d.db", "serve", "--port", "0", "--tls-cert", str(tls_files.cert))
    assert alone.returncode == 2 and "--tls-cert and --tls-key go together" in alone.stderr
    swapped = run_server_cli(
        tmp_path / "d.db", "serve", "--port", "0", "--tls-cert", str(tls_files.key), "--tls-key", str(tls_files.key)
    )
    assert swapped.returncode == 2 and swapped.stderr.count("\n") == 1 and "Traceback" not in swapped.stderr


# --- Origin and Bearer -------------------------------------------------------------------------------


@pytest.mark.serve("--allowed-origin", "https://noc.example.com")
@both_engines
async def test_a_browser_page_from_another_origin_is_refused_403(server: ServerProcess) -> None:
    token = await server.token(Role.DISPATCHER, "ana")
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.url, origin="https://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    allowed = await connect(server.url, origin="https://noc.example.com")  # type: ignore[arg-type]
    await allowed.send(json.dumps({"type": "hello", "token": token, "last_seq": None}))
    assert json.loads(await allowed.recv())["type"] == "welcome"
    await allowed.close()
    # No Origin header: not a browser (the board, a script), always let through.
    plain = await Session.open(server.url, token)
    await plain.close()


@both_engines
async def test_a_bearer_token_is_checked_before_the_upgrade(server: ServerProcess) -> None:
    token = await server.token(Role.DISPATCHER, "ana")
    other = await server.token(Role.VIEWER, "wall")
    for header in ("Bearer not-a-token", "Basic YW5hOnB3", f"Bearer {token}x"):
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url, additional_headers={"Authorization": header})
        assert refused.value.response.status_code == 401, header
        assert refused.value.response.headers["WWW-Authenticate"].startswith("Bearer")

    # A good one: the hello may leave the token out.
    ws = await connect(server.url, additional_headers={"Authorization": f"Bearer {token}"})
    await ws.send(json.dumps({"type": "hello", "last_seq": None}))
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome" and welcome["user"] == "ana"
    await ws.close()

    # Two different tokens in one connection: neither is trusted.
    ws = await connect(server.url, additional_headers={"Authorization": f"Bearer {token}"})
    await ws.send(json.dumps({"type": "hello", "token": other, "last_seq": None}))
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


@both_engines
async def test_a_connection_that_never_upgrades_or_never_says_hello_is_closed(server: ServerProcess) -> None:
    host, port = server.url.removeprefix("ws://").split(":")
    # Both at once, so their two 5 s timeouts run out together.
    reader, writer = await asyncio.open_connection(host, int(port))
    ws = await connect(server.url)
    # Silent TCP: closed after the 5 s handshake timeout (bounded here, generously, not timed).
    assert await asyncio.wait_for(reader.read(), timeout(15)) == b""
    writer.close()

    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), timeout(15))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


# --- rate limit --------------------------------------------------------------------------------------


@pytest.mark.serve("--rate-limit", "20")  # bursts of 40
@both_engines
async def test_over_the_rate_commands_are_refused_unapplied_then_the_connection_is_closed(
    server: ServerProcess, dispatcher: Session
) -> None:
    probe = await Session.open(server.url, await server.token(Role.DISPATCHER, "probe"))
    ids = [await dispatcher.send(ticket_frame(f"Flood {i}", client="Flood")) for i in range(80)]
    replies = [await dispatcher.reply_to(command_id) for command_id in ids if command_id is not None]
    acked = [r for r in replies if r["type"] == "ack"]
    limited = [r for r in replies if r["type"] == "error"]
    assert len(acked) + len(limited) == 80
    assert len(acked) >= 40 and limited, (len(acked), len(limited))
    assert all(r["code"] == "rate_limited" and r["command_id"] for r in limited)
    # The probe, on its own connection, is served as usual meanwhile.
    assert (await probe.call({"type": "suggest", "ticket_id": "T-000001"}))["type"] == "suggestions"

    # What was refused was not applied.
    fresh = await Session.open(server.url, await server.token(Role.VIEWER, "wall"))
    assert fresh.snapshot is not None
    assert len([t for t in fresh.snapshot["tickets"] if t["client"] == "Flood"]) == len(acked)

    # Going on regardless: closed with 4429 once 100 strikes build up; the others stay connected. A token
    # refilled now and then (a loaded machine reads slowly) only wears strikes off, so sending until the
    # close comes is bounded; tests/test_limits.py holds the rule itself.
    for i in range(20_000):
        try:
            await dispatcher.send({"type": "suggest", "ticket_id": "T-000001", "command_id": f"again-{i}"})
        except ConnectionClosed:
            break
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await dispatcher.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
    assert (await probe.call({"type": "suggest", "ticket_id": "T-000001"}))["type"] == "suggestions"
    await probe.close()
    await fresh.close()


@pytest.mark.serve("--rate-limit", "20")
@both_engines
async def test_our_scripting_client_backs_off_and_gets_everything_applied(server: ServerProcess) -> None:
    token = await server.token(Role.INTAKE, "monitoring")
    async with await CommandSession.open(server.url, token) as session:
        commands = [
            CreateTicket(type="create_ticket", command_id=f"mon-{i}", title=f"Alert {i}", client="Acme", priority="P3")
            for i in range(70)
        ]
        replies = await asyncio.gather(*(session.call(c) for c in commands))
    assert not [r for r in replies if isinstance(r, Error)], [r for r in replies if isinstance(r, Error)][:3]
    fresh = await Session.open(server.url, await server.token(Role.VIEWER, "wall"))
    assert fresh.snapshot is not None and len(fresh.snapshot["tickets"]) == 70
    await fresh.close()


# --- connection caps ---------------------------------------------------------------------------------


@pytest.mark.serve("--max-connections-per-token", "2")
@both_engines
async def test_one_token_cannot_hold_more_than_its_connections(server: ServerProcess) -> None:
    token = await server.token(Role.VIEWER, "wall")
    first, second = await Session.open(server.url, token), await Session.open(server.url, token)
    ws = await connect(server.url)
    await ws.send(json.dumps({"type": "hello", "token": token, "last_seq": None}))
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409
    # Another token is not affected; and room made is room to use.
    other = await Session.open(server.url, await server.token(Role.VIEWER, "wall-2"))
    await first.close()
    third = await _open_when_room(server.url, token)
    for session in (second, other, third):
        await session.close()


@pytest.mark.serve("--max-connections-per-token", "1")
@both_engines
async def test_a_board_over_its_tokens_cap_says_why_and_gets_in_once_there_is_room(server: ServerProcess) -> None:
    token = await server.token(Role.VIEWER, "wall")
    holder = await Session.open(server.url, token)
    app = DispatchApp(server.url, token)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "has too many open connections (4409)" in app.link_state.detail)
        await holder.close()
        # Its backoff retries get in, and the board opens.
        await until(pilot, lambda: app.link_state.connected and app.board is not None, timeout=30)


async def _open_when_room(url: str, token: str) -> Session:
    # The server sees a close a moment after the client does; retry on 4409 until it has.
    for _ in range(100):
        try:
            return await Session.open(url, token)
        except ConnectionClosed:
            await asyncio.sleep(0.05)
    raise AssertionError("the closed connection's place was never given back")


@pytest.mark.serve("--max-connections", "3")
@both_engines
async def test_past_the_total_cap_the_upgrade_gets_503_and_health_still_answers(server: ServerProcess) -> None:
    token = await server.token(Role.VIEWER, "wall")
    held = [await Session.open(server.url, token) for _ in range(3)]
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.url)
    assert refused.value.response.status_code == 503
    health = server.url.replace("ws://", "http://") + "/healthz"
    with urllib.request.urlopen(health, timeout=timeout(10)) as response:
        assert response.status == 200
    for session in held:
        await session.close()


# --- integrity at start ------------------------------------------------------------------------------


# On SQLite only: it damages the SQLite file.
async def test_an_index_that_disagrees_with_its_table_stops_the_server_with_one_line(server: ServerProcess) -> None:
    # Damage quick_check cannot see: the events index no longer matches the rows it indexes.
    dispatcher = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
    for i in range(3):
        await dispatcher.ok(ticket_frame(f"Ticket {i}"))
    await dispatcher.close()
    assert server.terminate() == 0
    with sqlite3.connect(server.db) as db:
        db.execute("PRAGMA writable_schema = ON")
        db.execute(
            "UPDATE sqlite_master SET sql = 'CREATE INDEX events_ticket ON events(actor, seq)"
            " WHERE ticket_id IS NOT NULL' WHERE name = 'events_ticket'"
        )
    with sqlite3.connect(server.db) as db:
        assert db.execute("PRAGMA quick_check").fetchone() == ("ok",)
    done = run_server_cli(server.db, "serve", "--port", "0")
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and "failed its integrity check" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
