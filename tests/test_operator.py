"""The operator's command line: tokens, startup failures, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from websockets.exceptions import ConnectionClosed

from dispatch.core.models import Role
from tests.support import ServerProcess, Session, both_engines, ticket_frame, timeout


def run_cli(db: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "--db", str(db), *args], capture_output=True, text=True, timeout=timeout(60)
    )


async def stored_tokens(server: ServerProcess) -> str:
    """The tokens table as stored, every column of every row, as text."""
    if server.database is None:
        with contextlib.closing(sqlite3.connect(server.db)) as file:
            return repr(file.execute("SELECT * FROM tokens").fetchall())
    connection = await asyncpg.connect(server.database)
    try:
        return repr([tuple(row) for row in await connection.fetch("SELECT * FROM tokens")])
    finally:
        await connection.close()


@both_engines  # the tokens table, and the watcher that closes a revoked token's connections, are each engine's
async def test_token_create_prints_the_token_last_and_stores_only_a_hash(server: ServerProcess) -> None:
    done = run_cli(server.where, "token", "create", "--role", "technician", "--name", "alice-phone", "--tech", "alice")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    assert len(token) >= 40
    stored = await stored_tokens(server)
    assert "alice-phone" in stored and token not in stored
    session = await Session.open(server.url, token)
    assert session.welcome["role"] == "technician" and session.welcome["user"] == "alice-phone"

    listing = run_cli(server.where, "token", "list")
    assert "alice-phone" in listing.stdout and "technician" in listing.stdout and token not in listing.stdout

    # Revoking closes the live connection (4401) within the watcher's poll.
    assert run_cli(server.where, "token", "revoke", "alice-phone").returncode == 0
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await session.receive(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401
    assert "revoked" in run_cli(server.where, "token", "list").stdout


TOKEN_MISTAKES = [
    (["token", "create", "--role", "technician", "--name", "x"], "needs --tech"),
    (["token", "create", "--role", "viewer", "--name", "x", "--tech", "a"], "only for --role technician"),
    (["token", "revoke", "nobody"], "no active token"),
    (["token", "create", "--role", "viewer", "--name", "wall\u001b[2J"], "token name"),
]


@pytest.mark.parametrize(("args", "message"), TOKEN_MISTAKES)
def test_token_mistakes_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    done = run_cli(tmp_path / "d.db", *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_duplicate_token_name_is_refused(tmp_path: Path) -> None:
    assert run_cli(tmp_path / "d.db", "token", "create", "--role", "viewer", "--name", "wall").returncode == 0
    done = run_cli(tmp_path / "d.db", "token", "create", "--role", "viewer", "--name", "wall")
    assert done.returncode == 2 and "already exists" in done.stderr


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """`token list | head`, `decisions | head`: the reader goes away, and the command stops as cat and
    grep do, without a traceback on the operator's terminal."""
    db = tmp_path / "dispatch.db"
    for number in range(3):
        assert run_cli(db, "token", "create", "--role", "viewer", "--name", f"wall-{number}").returncode == 0
    piped = subprocess.run(
        f"{sys.executable} -m server --db {db} token list | true", shell=True, capture_output=True, text=True,
        timeout=timeout(60),
    )  # fmt: skip
    assert (piped.stdout, piped.stderr) == ("", "")


def test_corrupt_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "corrupt.db"
    db.write_bytes(b"this is not a database, just bytes " * 200)
    done = run_cli(db, "serve", "--port", "0")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "corrupt" in done.stderr
    assert "Traceback" not in done.stderr


def test_newer_schema_is_one_line_and_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA user_version = 999")
    done = run_cli(db, "serve", "--port", "0")
    assert done.returncode == 2 and "newer" in done.stderr and "Traceback" not in done.stderr


def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(tmp_path / "d.db", "serve", "--port", str(port))
    assert done.returncode == 2 and "in use" in done.stderr and "Traceback" not in done.stderr


async def test_health_check(server: ServerProcess) -> None:
    host, port = server.url.removeprefix("ws://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status = await asyncio.wait_for(reader.readline(), timeout(5))
    writer.close()
    assert status.startswith(b"HTTP/1.1 200")


async def test_sigterm_drains_queued_commands_then_exits_0(server: ServerProcess) -> None:
    token = await server.token(Role.DISPATCHER, "ana")
    session = await Session.open(server.url, token)
    sent = [await session.send(ticket_frame(f"t{n}")) for n in range(500)]
    # Wait until the server is demonstrably mid-stream, then stop it.
    await session.reply_to(str(sent[0]))
    server.process.terminate()  # type: ignore[union-attr]
    acked: set[str] = set()
    try:
        while True:
            frame = await session.receive(timeout=10)
            if frame["type"] == "ack":
                acked.add(frame["ticket_id"])
    except ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 1001
    assert server.process.wait(timeout(10)) == 0  # type: ignore[union-attr]
    # Every ack the client saw is on disk.
    with sqlite3.connect(server.db) as connection:
        stored = {row[0] for row in connection.execute("SELECT id FROM tickets")}
    assert acked <= stored
    assert len(stored) >= len(acked) + 1


async def test_events_are_logged_as_json_lines_and_allocations_readably(server: ServerProcess) -> None:
    session = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
    await session.ok({"type": "add_technician", "tech_id": "alice", "name": "Alice"})
    await session.ok(ticket_frame(priority="P1"))
    await session.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
    await session.close()
    assert server.terminate() == 0
    lines = (server.workdir / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["technician_added", "ticket_created", "ticket_assigned"]
    assert "T-000001 P1 -> alice by ana" in server.stderr()
