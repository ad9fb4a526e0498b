"""Allocation decisions live in the database: `dispatch-server decisions` reads them from there, whether
and wherever `serve --decision-log` wrote its export file."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatch.core.models import Role
from server.decisions import read_decisions
from server.storage import MIGRATIONS, Storage
from tests.support import ServerProcess, Session, tech_frame, ticket_frame
from tests.test_operator import run_cli

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _record(seq: int, minutes_ago: int, ticket: str, from_tech: str | None, to_tech: str | None) -> dict[str, Any]:
    return {
        "ts": (NOW - timedelta(minutes=minutes_ago)).isoformat(), "seq": seq, "ticket": ticket, "priority": "P2",
        "from": from_tech, "to": to_tech, "actor": "ana", "kind": "manual", "reason": "manual by ana",
        "sla_target": "respond", "sla_left_s": 600, "candidates": [],
    }  # fmt: skip


# Five allocations over three hours: alice takes T-1, T-1 moves to bob, T-2 to alice, T-2 back to the
# queue, T-3 to carol.
RECORDS = [
    _record(3, 180, "T-000001", None, "alice"),
    _record(5, 90, "T-000001", "alice", "bob"),
    _record(8, 60, "T-000002", None, "alice"),
    _record(9, 30, "T-000002", "alice", None),
    _record(12, 1, "T-000003", None, "carol"),
]


@dataclass(frozen=True)
class Query:
    name: str
    since: timedelta | None = None
    ticket: str | None = None
    technician: str | None = None

    def __str__(self) -> str:
        return self.name


QUERIES = [
    (Query("everything"), [3, 5, 8, 9, 12]),
    (Query("the last 90 minutes, the edge included", since=timedelta(minutes=90)), [5, 8, 9, 12]),
    (Query("the last 2 minutes", since=timedelta(minutes=2)), [12]),
    (Query("one ticket", ticket="T-000001"), [3, 5]),
    (Query("a technician: work given and taken", technician="alice"), [3, 5, 8, 9]),
    (Query("a technician who only received", technician="bob"), [5]),
    (Query("a technician with none", technician="dave"), []),
    (Query("all three at once", since=timedelta(minutes=100), ticket="T-000001", technician="bob"), [5]),
    (Query("a ticket with none in the window", since=timedelta(minutes=10), ticket="T-000001"), []),
]


async def _database_with(path: Path, records: list[dict[str, Any]]) -> None:
    storage = await Storage.open(path)
    try:
        await storage.apply_batch([], [], [], [], [], decisions=[(r["seq"], json.dumps(r)) for r in records])
    finally:
        await storage.close()


@pytest.mark.parametrize(("query", "seqs"), QUERIES, ids=str)
async def test_the_filters(tmp_path: Path, query: Query, seqs: list[int]) -> None:
    db = tmp_path / "dispatch.db"
    await _database_with(db, RECORDS)
    found = await read_decisions(db, query.since, query.ticket, query.technician, now=NOW)
    assert [r["seq"] for r in found] == seqs
    assert found == [r for r in RECORDS if r["seq"] in seqs]  # the records as stored, whole


async def test_decisions_stored_before_this_release_are_found_too(tmp_path: Path) -> None:
    # A database at schema 4 (records stored, no columns to filter them by) is migrated on opening.
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as connection:
        for script in MIGRATIONS[:4]:
            connection.executescript(script)
        connection.execute("PRAGMA user_version = 4")
        connection.executemany("INSERT INTO decisions (seq, record) VALUES (?, ?)", [
            (r["seq"], json.dumps(r)) for r in RECORDS
        ])  # fmt: skip
    connection.close()
    found = await read_decisions(db, technician="carol", now=NOW)
    assert [r["seq"] for r in found] == [12]


async def test_served_with_a_decision_log_elsewhere_then_read_from_the_database(tmp_path: Path) -> None:
    elsewhere = tmp_path / "exports" / "elsewhere.jsonl"
    elsewhere.parent.mkdir()
    server = ServerProcess(
        db=tmp_path / "dispatch.db", workdir=tmp_path, options=("--auto-assign", "--decision-log", str(elsewhere))
    ).start()
    try:
        ana = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
        await ana.ok(tech_frame("alice", ["network"]))
        created = await ana.ok(ticket_frame("VPN down", priority="P1", skills=["network"]))
        auto = await ana.until_event(lambda e: e["kind"] == "ticket_assigned" and e["actor"] == "auto")
        assert (auto["ticket"]["id"], auto["ticket"]["assignee"]) == (created["ticket_id"], "alice")
        await ana.ok(tech_frame("bob", ["network"]))
        await ana.ok({"type": "assign", "ticket_id": created["ticket_id"], "tech_id": "bob"})
        await ana.close()
    finally:
        assert server.terminate() == 0
    exported = [json.loads(line) for line in elsewhere.read_text().splitlines()]
    elsewhere.unlink()  # the database has them whatever becomes of the export
    assert not (tmp_path / "dispatch.decisions.jsonl").exists()

    done = run_cli(server.db, "decisions", "--format", "json")
    assert done.returncode == 0, done.stderr
    stored = [json.loads(line) for line in done.stdout.splitlines()]
    assert stored == exported
    assert [(r["kind"], r["from"], r["to"]) for r in stored] == [("auto", None, "alice"), ("manual", "alice", "bob")]
    assert stored[0]["seq"] == auto["seq"] and stored[0]["candidates"]

    only_bob = run_cli(server.db, "decisions", "--format", "json", "--technician", "bob", "--since", "1h")
    assert [json.loads(line)["to"] for line in only_bob.stdout.splitlines()] == ["bob"]
    table = run_cli(server.db, "decisions", "--technician", "alice")
    assert table.returncode == 0 and "manual by ana" in table.stdout and "considered: alice" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "5x"), "dispatch-server: --since: '5x' is not a duration: use e.g. 30m, 2h, 1d"),
        (("--since", "0m"), "dispatch-server: --since: '0m' is not a duration: it must be more than zero"),
    ],
)
def test_a_bad_since_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    done = run_cli(tmp_path / "dispatch.db", "decisions", *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(message), done.stderr


def test_a_path_with_no_database_is_refused_not_created(tmp_path: Path) -> None:
    done = run_cli(tmp_path / "typo.db", "decisions")
    assert (done.returncode, done.stderr) == (2, f"dispatch-server: no database at {tmp_path / 'typo.db'}\n")
    assert not (tmp_path / "typo.db").exists()
