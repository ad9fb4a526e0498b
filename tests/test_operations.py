"""Operator tools: a backup taken while the real server serves and writes, restore, stats, and every
mistake answered with one line and exit status 2.

`run_operation` is called directly (the subcommands are wired into `dispatch-server` separately); the
parser test below proves the Namespaces it is given here are the ones argparse makes.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dispatch.core.models import Role
from server.decisions import default_decision_log
from server.operations import add_operations_parsers, run_operation
from server.storage import SCHEMA_VERSION, Storage
from tests.support import TIMEOUT_FACTOR, ServerProcess, Session, tech_frame, ticket_frame, timeout

Capture = pytest.CaptureFixture[str]


def operation(db: Path, command: str, **options: object) -> argparse.Namespace:
    by_command: dict[str, dict[str, object]] = {
        "backup": {"force": False},
        "restore": {"force": False},
        "stats": {"server": None, "decision_log": None, "ca_file": None},
    }
    defaults = by_command[command]
    return argparse.Namespace(db=str(db), command=command, **{**defaults, **options})


def run(capsys: Capture, db: Path, command: str, **options: object) -> tuple[int, str, str]:
    code = run_operation(operation(db, command, **options))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_refusal(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dispatch-server: "), err
    return lines[0]


def stats_lines(out: str) -> dict[str, str]:
    return {line[:13].strip(): line[14:] for line in out.splitlines()}


def titles_in(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return sorted(row[0] for row in connection.execute("SELECT title FROM tickets"))


def integrity(db: Path) -> list[tuple[str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute("PRAGMA integrity_check").fetchall()


async def eventually(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(TIMEOUT_FACTOR * timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_the_parsers_give_run_operation_what_it_reads() -> None:
    parser = argparse.ArgumentParser(prog="dispatch-server")
    parser.add_argument("--db", required=True)
    add_operations_parsers(parser.add_subparsers(dest="command", required=True))
    backup = parser.parse_args(["--db", "d.db", "backup", "b.db", "--force"])
    assert (backup.command, backup.db, backup.file, backup.force) == ("backup", "d.db", "b.db", True)
    restore = parser.parse_args(["--db", "d.db", "restore", "b.db"])
    assert (restore.command, restore.file, restore.force) == ("restore", "b.db", False)
    stats = parser.parse_args(["--db", "d.db", "stats", "--server", "ws://127.0.0.1:8765"])
    assert (stats.command, stats.server, stats.decision_log) == ("stats", "ws://127.0.0.1:8765", None)


def test_the_command_line_runs_them(tmp_path: Path) -> None:
    """Through `dispatch-server` itself, once server/cli.py wires the subcommands in (skipped until then)."""
    db = tmp_path / "dispatch.db"
    asyncio.run(make_database(db))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "server", "--db", str(db), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout(60))

    stats = cli("stats")
    if "invalid choice: 'stats'" in stats.stderr:
        pytest.skip("backup, restore and stats are not wired into dispatch-server yet")
    assert stats.returncode == 0 and "tokens        1 active, 0 revoked" in stats.stdout, stats.stderr
    backup = tmp_path / "backup.db"
    assert cli("backup", str(backup)).returncode == 0
    again = cli("backup", str(backup))
    assert again.returncode == 2 and again.stderr.startswith("dispatch-server: ") and "Traceback" not in again.stderr
    assert cli("backup", str(backup), "--force").returncode == 0
    restored = cli("restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "dispatch.db.before-restore").exists()


async def test_backup_while_the_server_is_taking_writes(server: ServerProcess, tmp_path: Path, capsys: Capture) -> None:
    session = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
    for n in range(50):
        await session.ok(ticket_frame(f"before {n}"))
    acked: list[int] = []
    stop = asyncio.Event()

    async def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            acked.append((await session.ok(ticket_frame(f"during {n}")))["seq"])
            n += 1

    writer = asyncio.create_task(keep_writing())
    await eventually(lambda: len(acked) >= 20)
    acked_before = acked[-1]
    backup = tmp_path / "backups" / "dispatch-1.db"
    backup.parent.mkdir()
    # In a thread, so the server keeps getting (and acking) writes from this loop during the copy.
    code = await asyncio.to_thread(run_operation, operation(server.db, "backup", file=str(backup)))
    acked_after = len(acked)
    await eventually(lambda: len(acked) >= acked_after + 20)
    stop.set()
    await writer
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(f"backed up {server.db} to {backup}: seq ")

    assert integrity(backup) == [("ok",)]
    with sqlite3.connect(backup) as connection:
        seqs = [row[0] for row in connection.execute("SELECT seq FROM events ORDER BY seq")]
        created = connection.execute("SELECT COUNT(*) FROM events WHERE kind = 'ticket_created'").fetchone()[0]
        tickets = connection.execute("SELECT COUNT(*) FROM tickets").fetchone()[0]
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    # One consistent moment: the log has no gap, holds every write acked before the backup began,
    # and the state tables agree with it (they are written in the same transaction).
    assert seqs == list(range(1, len(seqs) + 1))
    assert acked_before <= seqs[-1] < acked[-1]
    assert tickets == created
    assert f"seq {seqs[-1]}, {tickets} tickets" in out
    assert (version, mode) == (SCHEMA_VERSION, "delete")
    assert sorted(p.name for p in backup.parent.iterdir()) == [backup.name], "one self-contained file"

    # An existing file is never overwritten by accident.
    code, out, err = run(capsys, server.db, "backup", file=str(backup))
    assert "already exists" in one_line_refusal(code, err) and out == ""
    assert titles_in(backup) == sorted(
        [f"before {n}" for n in range(50)] + [f"during {n}" for n in range(tickets - 50)]
    )
    code, _, err = run(capsys, server.db, "backup", file=str(backup), force=True)
    assert code == 0, err
    assert len(titles_in(backup)) == 50 + len(acked)
    await session.close()


async def test_restore_is_refused_while_a_server_is_serving(
    server: ServerProcess, tmp_path: Path, capsys: Capture
) -> None:
    session = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
    await session.ok(ticket_frame("in the backup"))
    backup = tmp_path / "backup.db"
    assert run(capsys, server.db, "backup", file=str(backup))[0] == 0
    await session.ok(ticket_frame("only live"))
    # The server is idle now: no transaction open, only its connection. That must be enough.
    code, out, err = run(capsys, server.db, "restore", file=str(backup))
    assert "stop it before restoring" in one_line_refusal(code, err) and out == ""
    assert not (tmp_path / "dispatch.db.before-restore").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    # Nothing changed under the running server.
    ack = await session.ok(ticket_frame("still serving"))
    assert (ack["ticket_id"], ack["seq"]) == ("T-000003", 3)
    await session.close()


async def test_restore_into_a_stopped_database_then_serve_it(
    server: ServerProcess, tmp_path: Path, capsys: Capture
) -> None:
    token = await server.token(Role.DISPATCHER, "ana")
    session = await Session.open(server.url, token)
    await session.ok(tech_frame("alice"))
    # One client each: five tickets from one client within minutes would be a burst (an event of its own).
    for title in ("kept 1", "kept 2", "kept 3"):
        await session.ok(ticket_frame(title, client=title))
    await session.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
    backup = tmp_path / "backup.db"
    code, out, err = run(capsys, server.db, "backup", file=str(backup))
    assert code == 0 and "seq 5, 3 tickets" in out, err
    for title in ("lost 1", "lost 2"):
        await session.ok(ticket_frame(title, client=title))
    await session.close()
    assert server.terminate() == 0

    code, out, err = run(capsys, server.db, "restore", file=str(backup))
    assert code == 0, err
    kept = tmp_path / "dispatch.db.before-restore"
    assert out.splitlines() == [
        f"restored {backup} into {server.db}: seq 5, 3 tickets",
        f"the replaced database is kept as {kept}",
    ]
    # The replaced database is whole on its own (its WAL was folded in before it was moved aside).
    assert integrity(kept) == [("ok",)] and len(titles_in(kept)) == 5
    assert not (tmp_path / "dispatch.db-wal").exists() and not (tmp_path / "dispatch.db.before-restore-wal").exists()
    assert integrity(server.db) == [("ok",)]

    server.start()
    board = await Session.open(server.url, token)
    assert board.snapshot is not None and board.snapshot["seq"] == 5
    assert sorted(t["title"] for t in board.snapshot["tickets"]) == ["kept 1", "kept 2", "kept 3"]
    assert {t["id"]: t["assignee"] for t in board.snapshot["tickets"]}["T-000001"] == "alice"
    ack = await board.ok(ticket_frame("after the restore"))
    assert (ack["ticket_id"], ack["seq"]) == ("T-000004", 6)
    await board.close()
    assert server.terminate() == 0

    # A second restore would lose the first one's safety copy: only with --force.
    code, _, err = run(capsys, server.db, "restore", file=str(backup))
    assert "before-restore already exists" in one_line_refusal(code, err)
    code, _, err = run(capsys, server.db, "restore", file=str(backup), force=True)
    assert code == 0, err
    assert len(titles_in(kept)) == 4 and len(titles_in(server.db)) == 3


def test_restore_into_a_new_path(tmp_path: Path, capsys: Capture) -> None:
    source = tmp_path / "source.db"
    asyncio.run(make_database(source))
    code, out, err = run(capsys, tmp_path / "fresh.db", "restore", file=str(source))
    assert code == 0, err
    assert "kept as" not in out and not (tmp_path / "fresh.db.before-restore").exists()
    with sqlite3.connect(tmp_path / "fresh.db") as connection:
        assert connection.execute("SELECT name FROM tokens").fetchall() == [("ana",)]


def test_restore_over_a_corrupt_database_keeps_it_aside(tmp_path: Path, capsys: Capture) -> None:
    """The reason to restore at all: the server refuses the database it has."""
    source = tmp_path / "backup.db"
    asyncio.run(make_database(source))
    db = tmp_path / "dispatch.db"
    not_sqlite(db)
    garbage = db.read_bytes()
    code, out, err = run(capsys, db, "restore", file=str(source))
    assert code == 0, err
    assert (tmp_path / "dispatch.db.before-restore").read_bytes() == garbage
    assert integrity(db) == [("ok",)]


async def test_stats_counts_the_database_and_asks_the_server(
    server: ServerProcess, tmp_path: Path, capsys: Capture
) -> None:
    session = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
    await server.token(Role.VIEWER, "wall")
    await server.token(Role.INTAKE, "old-intake")
    storage = await Storage.open(server.db)
    await storage.revoke_token("old-intake")
    await storage.close()
    await session.ok(tech_frame("alice"))
    await session.ok(tech_frame("bob"))
    for n in range(3):
        await session.ok(ticket_frame(f"t{n}", client=f"Client {n}"))
    await session.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
    await session.ok({"type": "set_status", "ticket_id": "T-000002", "status": "resolved"})

    code, out, err = run(capsys, server.db, "stats", server=server.url)
    assert code == 0, err
    stats = stats_lines(out)
    assert stats["database"] == str(server.db)
    assert stats["schema"] == f"version {SCHEMA_VERSION} (this release reads up to {SCHEMA_VERSION})"
    assert stats["events"] == "7, last seq 7"
    assert stats["tickets"] == "2 open, 1 closed"
    assert stats["technicians"] == "2"
    assert stats["tokens"] == "2 active, 1 revoked"
    assert stats["size"].endswith(")") and "wal " in stats["size"]
    log = default_decision_log(server.db)
    assert log.stat().st_size > 0  # the assignment was logged
    assert stats["decision log"].startswith(f"{log}, ")
    assert stats["server"].startswith("200 ok seq=7 connections=1 protocol=1 (http://127.0.0.1:")
    assert stats["connections"] == "1 open"  # this session
    await session.close()

    # A stopped server: everything else is still reported, and the exit status says it.
    assert server.terminate() == 0
    code, out, err = run(capsys, server.db, "stats", server=server.url)
    assert code == 1 and err == ""
    stats = stats_lines(out)
    assert stats["events"] == "7, last seq 7" and stats["server"].startswith("not reachable at http://127.0.0.1:")
    assert stats["connections"] == "unknown (no answer)"
    code, out, _ = run(capsys, server.db, "stats", decision_log=str(tmp_path / "elsewhere.jsonl"))
    assert code == 0 and "server" not in stats_lines(out)
    assert stats_lines(out)["decision log"] == f"none at {tmp_path / 'elsewhere.jsonl'}"


# --- mistakes -----------------------------------------------------------------------------------------


async def make_database(path: Path) -> None:
    """A dispatch database as the server leaves it, with one token."""
    storage = await Storage.open(path)
    await storage.create_token("ana", Role.DISPATCHER, None, "secret")
    await storage.close()


def not_sqlite(path: Path) -> None:
    path.write_bytes(b"this is not a database, just bytes " * 200)


def damaged(path: Path) -> None:
    """A real dispatch database with a page in the middle of the event log overwritten."""
    asyncio.run(make_database(path))
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO events (seq, ts, actor, kind, ticket_id, payload) VALUES (?, 't', 'ana', 'k', NULL, ?)",
            [(n, "x" * 300) for n in range(1, 2001)],
        )
    connection.close()
    data = bytearray(path.read_bytes())
    middle = (len(data) // 4096 // 2) * 4096
    data[middle + 100 : middle + 1100] = b"\x00\x17" * 500
    path.write_bytes(bytes(data))


def newer(path: Path) -> None:
    asyncio.run(make_database(path))
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 999")
    connection.close()


def foreign(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    connection.close()


Setup = Callable[[Path], None]


def is_side_file(name: str, data: bytes) -> bool:
    return name.endswith("-shm") or (name.endswith("-wal") and not data)


@pytest.mark.parametrize(
    ("command", "prepare_db", "prepare_file", "options", "message"),
    [
        ("backup", None, None, {}, "no database at"),
        ("backup", make_database, lambda p: p.write_text("x"), {}, "already exists"),
        ("backup", make_database, None, {"file": "missing-dir/b.db"}, "no directory"),
        ("backup", make_database, None, {"file": "dispatch.db"}, "is the database itself"),
        ("backup", not_sqlite, None, {}, "unreadable or corrupt"),
        ("backup", foreign, None, {}, "not a dispatch database"),
        ("restore", make_database, None, {}, "no backup at"),
        ("restore", make_database, not_sqlite, {}, "is not a SQLite database"),
        ("restore", make_database, damaged, {}, "failed its integrity check"),
        ("restore", make_database, newer, {}, "newer than this release"),
        ("restore", make_database, foreign, {}, "not a dispatch database"),
        ("restore", None, newer, {}, "newer than this release"),
        ("stats", None, None, {}, "no database at"),
        ("stats", newer, None, {}, "newer than this release"),
        ("stats", make_database, None, {"server": "ftp://example.org"}, "--server takes ws://"),
    ],
    ids=[
        "backup-no-db", "backup-exists", "backup-no-dir", "backup-onto-db", "backup-corrupt-db", "backup-foreign-db",
        "restore-missing", "restore-not-sqlite", "restore-damaged", "restore-newer", "restore-foreign",
        "restore-newer-to-new-path", "stats-no-db", "stats-newer", "stats-bad-url",
    ],
)  # fmt: skip
def test_mistakes_are_one_line_exit_2_and_change_nothing(
    tmp_path: Path,
    capsys: Capture,
    command: str,
    prepare_db: Callable[[Path], Awaitable[None] | None] | None,
    prepare_file: Setup | None,
    options: dict[str, object],
    message: str,
) -> None:
    db = tmp_path / "dispatch.db"
    file = tmp_path / "backup.db"
    if prepare_db is make_database:
        asyncio.run(make_database(db))
    elif prepare_db is not None:
        prepare_db(db)
    if prepare_file is not None:
        prepare_file(file)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    if command in ("backup", "restore"):
        options = {"file": str(file), **options}
        if not str(options["file"]).startswith("/"):
            options["file"] = str(tmp_path / str(options["file"]))
    code, out, err = run(capsys, db, command, **options)
    assert message in one_line_refusal(code, err)
    assert out == ""
    # Reading a file may leave SQLite's empty side files beside it; no content changes, nothing else appears.
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert {name: data for name, data in after.items() if not is_side_file(name, data)} == before
