"""Storage: the append-only event log and the current-state tables, written together.

`Storage` is the interface the server and the operator commands use, and `Storage.open(db)` picks the
engine from the `--db` text: a `postgresql://` (or `postgres://`) URL is PostgreSQL (server/pgstorage.py,
asyncpg), anything else a SQLite file (`SqliteStorage`, below). Both keep the same tables and columns
(`TABLES`), migrated by the same numbered steps, so a database moves from one to the other by copying
rows (`dispatch-server import-sqlite`).

One `Storage` is the only writer of its database. Handlers never see SQL: they hand over a batch
(events, the state rows they changed, the replies of the commands that made them) and get it back
durable, in one transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import aiosqlite

from dispatch.core.models import OPEN_STATUSES, Incident, Role, Technician, Ticket
from dispatch.core.protocol import CalloutEvent, Event, SlaEvent, TechnicianEvent, TicketEvent, event_adapter
from dispatch.core.state import DispatchState, alert_key, incident_number, remember_work, ticket_number

__all__ = [
    "Storage",
    "SqliteStorage",
    "StorageError",
    "StorageUnavailable",
    "WriteTurn",
    "TokenRecord",
    "CommandRecord",
    "TABLES",
    "hash_token",
    "is_postgres_url",
]


class StorageError(Exception):
    """The database cannot be used (corrupt, newer schema, unwritable); the message is one line for users."""


class StorageUnavailable(StorageError):
    """The database cannot be reached right now (PostgreSQL stopped or restarting, the network between
    down): nothing of what was being written is stored, and it may be tried again later."""


class BatchWrites(Protocol):
    """What the writer does in its turn: look up stored replies, then store the batch it decided."""

    async def find_replies(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]: ...

    async def apply_batch(
        self,
        events: Sequence[tuple[Event, str]],
        tickets: Iterable[Ticket],
        technicians: Iterable[Technician],
        incidents: Iterable[Incident],
        commands: Sequence[CommandRecord],
        decisions: Sequence[tuple[int, str]] = (),
        decision_log_through: int | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class WriteTurn:
    """One batch's turn at writing the database (see `Storage.write_turn`)."""

    # Where the batch's reads and its write go: in the turn's transaction.
    writes: BatchWrites
    # Serialised events other servers stored after the seq the turn was asked from, in seq order: fold
    # them in before deciding.
    others: list[str]


# Forward migrations; PRAGMA user_version is the number applied. Never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        ticket_id TEXT,
        payload TEXT NOT NULL
    );
    CREATE INDEX events_ticket ON events(ticket_id, seq) WHERE ticket_id IS NOT NULL;
    CREATE TABLE tickets (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        client TEXT NOT NULL,
        site TEXT NOT NULL,
        category TEXT NOT NULL,
        priority TEXT NOT NULL,
        status TEXT NOT NULL,
        assignee TEXT,
        skills TEXT NOT NULL,
        incident_id TEXT,
        created_at TEXT NOT NULL,
        respond_by TEXT NOT NULL,
        resolve_by TEXT NOT NULL,
        responded_at TEXT,
        version INTEGER NOT NULL
    );
    CREATE TABLE technicians (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        skills TEXT NOT NULL,
        status TEXT NOT NULL,
        capacity INTEGER NOT NULL
    );
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        ticket_ids TEXT NOT NULL,
        opened_at TEXT NOT NULL
    );
    -- The reply of every applied command, so a re-sent command_id gets its original ack, also after
    -- a restart. Keyed by user as well: one client's ids can neither collide with nor reveal another's.
    CREATE TABLE commands (
        user TEXT NOT NULL,
        command_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        reply TEXT NOT NULL,
        PRIMARY KEY (user, command_id)
    ) WITHOUT ROWID;
    CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        tech_id TEXT,
        token_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    """,
    # 2: the SLA clock stands still while a ticket is on hold.
    """
    ALTER TABLE tickets ADD COLUMN paused_at TEXT;
    ALTER TABLE tickets ADD COLUMN paused_seconds INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX events_kind ON events(kind) WHERE kind IN ('sla_warning', 'sla_breached', 'escalation');
    """,
    # 3: merged duplicates and de-duplicated reports.
    """
    ALTER TABLE tickets ADD COLUMN merged_into TEXT;
    ALTER TABLE tickets ADD COLUMN dedupe_key TEXT;
    ALTER TABLE tickets ADD COLUMN duplicates INTEGER NOT NULL DEFAULT 0;
    """,
    # 4: decision records committed with the events they explain, so a crash between the commit and
    # the decision-log file write loses no line: the server re-appends them at its next start.
    # `decision_log_through` is the last seq known to be in the file (behind by at most one batch).
    """
    CREATE TABLE decisions (
        seq INTEGER PRIMARY KEY,
        record TEXT NOT NULL
    );
    CREATE TABLE decision_log_through (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL
    );
    INSERT INTO decision_log_through (id, seq) VALUES (1, 0);
    """,
    # 5: decisions are read back from here (`dispatch-server decisions`), by time, ticket and technician.
    # The columns are computed from the stored record (SQLite's JSON functions), so they cannot disagree
    # with it and the writer stores each record once, as before. `at` is Unix seconds.
    """
    ALTER TABLE decisions ADD COLUMN at REAL
        GENERATED ALWAYS AS ((julianday(json_extract(record, '$.ts')) - 2440587.5) * 86400.0) VIRTUAL;
    ALTER TABLE decisions ADD COLUMN ticket_id TEXT GENERATED ALWAYS AS (json_extract(record, '$.ticket')) VIRTUAL;
    ALTER TABLE decisions ADD COLUMN from_tech TEXT GENERATED ALWAYS AS (json_extract(record, '$.from')) VIRTUAL;
    ALTER TABLE decisions ADD COLUMN to_tech TEXT GENERATED ALWAYS AS (json_extract(record, '$.to')) VIRTUAL;
    CREATE INDEX decisions_at ON decisions(at);
    CREATE INDEX decisions_ticket ON decisions(ticket_id, seq);
    CREATE INDEX decisions_from ON decisions(from_tech, seq) WHERE from_tech IS NOT NULL;
    CREATE INDEX decisions_to ON decisions(to_tech, seq) WHERE to_tech IS NOT NULL;
    """,
    # 6: SLA contracts: the tier and calendar a ticket's clock runs on, its warning instants (counted in
    # the calendar's open time), and why it is on hold.
    """
    ALTER TABLE tickets ADD COLUMN sla_tier TEXT NOT NULL DEFAULT 'standard';
    ALTER TABLE tickets ADD COLUMN calendar TEXT NOT NULL DEFAULT '24x7';
    ALTER TABLE tickets ADD COLUMN respond_warn_at TEXT;
    ALTER TABLE tickets ADD COLUMN resolve_warn_at TEXT;
    ALTER TABLE tickets ADD COLUMN hold_reason TEXT;
    """,
    # 7: people's time: a technician's hours and call-outs are rebuilt at start from the log's recent
    # technician and call-out events, found by kind and time.
    """
    CREATE INDEX events_people ON events(kind, ts)
        WHERE kind IN ('technician_added', 'technician_status_changed',
                       'callout_sent', 'callout_answered', 'callout_expired');
    """,
    # 8: where a technician hears of their assignments (an apprise URL). Kept here only: the events and
    # snapshots boards receive never carry it.
    """
    ALTER TABLE technicians ADD COLUMN notify TEXT;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_TICKET_COLUMNS = (
    "id, title, client, site, category, priority, status, assignee, skills, incident_id,"
    " created_at, respond_by, resolve_by, responded_at, paused_at, paused_seconds, merged_into, dedupe_key,"
    " duplicates, version, sla_tier, calendar, respond_warn_at, resolve_warn_at, hold_reason"
)

_TICKET_PLACEHOLDERS = ", ".join("?" for _ in _TICKET_COLUMNS.split(","))

# Every table with the columns it stores at SCHEMA_VERSION (computed ones left out): the same in both
# engines (a test compares each engine's real schema with this), and what import-sqlite copies, in order.
TABLES: dict[str, tuple[str, ...]] = {
    "events": ("seq", "ts", "actor", "kind", "ticket_id", "payload"),
    "tickets": tuple(c.strip() for c in _TICKET_COLUMNS.split(",")),
    "technicians": ("id", "name", "skills", "status", "capacity", "notify"),
    "incidents": ("id", "title", "ticket_ids", "opened_at"),
    "commands": ("user", "command_id", "seq", "reply"),
    "tokens": ("name", "role", "tech_id", "token_hash", "created_at", "revoked_at"),
    "decisions": ("seq", "record"),
    "decision_log_through": ("id", "seq"),
}


@dataclass(frozen=True)
class TokenRecord:
    name: str
    role: Role
    tech_id: str | None
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True)
class CommandRecord:
    """An applied command's reply, stored with the batch that applied it."""

    user: str
    command_id: str
    seq: int
    reply: str


def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a plain SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def is_postgres_url(db: str | Path) -> bool:
    """Whether `--db` names a PostgreSQL database (a libpq URL) rather than a SQLite file."""
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


def live_token_matching(token: str, live: Iterable[tuple[TokenRecord, str]]) -> TokenRecord | None:
    """The record among (live token, its hash) pairs whose hash is `token`'s.

    Every hash is compared, each in constant time, with no early exit: how long a wrong guess takes says
    nothing about how close it was nor which token it nearly matched."""
    wanted = hash_token(token).encode()
    found: TokenRecord | None = None
    for record, token_hash in live:
        if hmac.compare_digest(wanted, token_hash.encode()):
            found = record
    return found


def duplicate_token(name: str) -> StorageError:
    return StorageError(
        f"a token named {name!r} already exists (names are never reused, revoked ones included: choose another name)"
    )


class Storage(ABC):
    """A dispatch database: what the server, its writer and the operator commands read and write.

    Two engines implement it: `SqliteStorage` (a file) and `server.pgstorage.PostgresStorage`. Each is
    the only writer of its database within its process; `apply_batch` is the one write of the server.

    Several servers on one PostgreSQL: the writer decides and stores each batch in a `write_turn`, which
    there holds a database-wide lock and hands over the events the other servers stored meanwhile.
    """

    @staticmethod
    async def open(db: str | Path, *, check_integrity: bool = True, create: bool = True) -> Storage:
        """Open the database `db` names, creating its tables if needed (unless not `create`) and migrating
        them; raises `StorageError` with a one-line reason. A postgresql:// or postgres:// URL is
        PostgreSQL; anything else the path of a SQLite file."""
        if is_postgres_url(db):
            # Imported here, not at the top: server.pgstorage builds on this module.
            from server.pgstorage import PostgresStorage

            return await PostgresStorage.connect(str(db), create=create)
        return await SqliteStorage.open_file(db, check_integrity=check_integrity, create=create)

    @abstractmethod
    async def close(self) -> None: ...

    @asynccontextmanager
    async def write_turn(self, after_seq: int) -> AsyncIterator[WriteTurn]:
        """The database's write turn for one batch, with the events other servers stored after
        `after_seq`. A SQLite file has one server: there is no one to wait for and nothing to fold in.
        PostgreSQL, shared by several, holds a database-wide lock for the turn."""
        yield WriteTurn(self, [])

    @abstractmethod
    async def load_state(self, now: datetime | None = None, *, closed_tickets: bool = True) -> DispatchState:
        """Current state from the state tables (not a replay: that is what the log is kept for); `now`
        (the server's clock) bounds how far back technicians' hours are rebuilt from the log. Without
        `closed_tickets`, resolved and cancelled tickets (and their alerts) stay on disk: what a server
        keeps in memory (`forget_closed`)."""

    @abstractmethod
    async def find_tickets(self, ticket_ids: Collection[str]) -> list[Ticket]:
        """The stored tickets with these ids (those that exist), as they are now."""

    @abstractmethod
    async def closed_tickets_since(self, created_since: datetime) -> list[Ticket]:
        """Resolved and cancelled tickets created at or after `created_since` (a snapshot's recent work)."""

    @abstractmethod
    async def apply_batch(
        self,
        events: Sequence[tuple[Event, str]],
        tickets: Iterable[Ticket],
        technicians: Iterable[Technician],
        incidents: Iterable[Incident],
        commands: Sequence[CommandRecord],
        decisions: Sequence[tuple[int, str]] = (),
        decision_log_through: int | None = None,
    ) -> None:
        """Write one batch in one transaction: events (with their serialised payload), changed rows,
        command replies, decision records (seq, JSON line), and how far the decision-log file is known
        to be written. Returns once it is durable; a failed batch leaves nothing behind."""

    @abstractmethod
    async def decisions_missing_from_log(self, last_in_file: int) -> list[str]:
        """Decision records that may not have reached the decision-log file: those after the last seq
        in the file or, for a file with no record (rotated, emptied), after the last one recorded as
        written, so a rotated log is not given the old lines again."""

    @abstractmethod
    async def find_decisions(
        self, *, since: datetime | None = None, ticket: str | None = None, technician: str | None = None
    ) -> list[dict[str, Any]]:
        """Decision records, oldest first: those made at or after `since`, about `ticket`, and moving work
        to or from `technician` (each filter only when given)."""

    @abstractmethod
    async def events_after(self, after_seq: int, up_to: int) -> list[str]:
        """Serialised events with after_seq < seq <= up_to, in order."""

    @abstractmethod
    async def all_events(self) -> list[Event]:
        """The whole log, parsed (for replay checks and tools, not the hot path)."""

    @abstractmethod
    async def ticket_history(self, ticket_id: str) -> list[str]:
        """Serialised events about one ticket, oldest first."""

    @abstractmethod
    async def find_replies(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Stored replies for (user, command_id) pairs that were applied before."""

    @abstractmethod
    async def create_token(self, name: str, role: Role, tech_id: str | None, token: str) -> None:
        """Store a new token's hash under a name never used before (else `StorageError`)."""

    @abstractmethod
    async def find_token(self, token: str) -> TokenRecord | None:
        """The live (not revoked) token with this secret, if any (see `live_token_matching`)."""

    @abstractmethod
    async def list_tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones included, by name."""

    @abstractmethod
    async def revoke_token(self, name: str) -> bool:
        """Revoke the live token `name`; False if there is none."""

    @abstractmethod
    async def revoked_names(self) -> set[str]: ...

    @abstractmethod
    async def table_counts(self) -> dict[str, int]:
        """The number of rows in each of `TABLES`."""


# The open statuses as SQL, for the queries that leave closed tickets on disk.
_OPEN = "(" + ", ".join(sorted(f"'{status.value}'" for status in OPEN_STATUSES)) + ")"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ticket_row(t: Ticket) -> tuple[object, ...]:
    return (
        t.id, t.title, t.client, t.site, t.category.value, t.priority.value, t.status.value, t.assignee,
        json.dumps(t.skills), t.incident_id, _iso(t.created_at), _iso(t.respond_by), _iso(t.resolve_by),
        _iso(t.responded_at), _iso(t.paused_at), t.paused_seconds, t.merged_into, t.dedupe_key, t.duplicates,
        t.version, t.sla_tier, t.calendar, _iso(t.respond_warn_at), _iso(t.resolve_warn_at),
        t.hold_reason.value if t.hold_reason else None,
    )  # fmt: skip


def _ticket_from_row(row: Sequence[object]) -> Ticket:
    keys = [c.strip() for c in _TICKET_COLUMNS.split(",")]
    values = dict(zip(keys, row, strict=True))
    values["skills"] = json.loads(str(values["skills"]))
    return Ticket.model_validate(values)


class SqliteStorage(Storage):
    """The one writer of a dispatch database in a SQLite file, through one aiosqlite connection."""

    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    async def open_file(cls, path: str | Path, *, check_integrity: bool = True, create: bool = True) -> SqliteStorage:
        """Open (creating if needed, unless not `create`) and migrate; raises `StorageError` with a one-line reason."""
        path = Path(path)
        if not create and not path.exists():
            raise StorageError(f"no database at {path}")
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {path}: {exc}") from None
        storage = cls(db, path)
        try:
            await storage._prepare(check_integrity)
        except sqlite3.DatabaseError as exc:
            await db.close()
            raise StorageError(f"database {path} is unreadable or corrupt: {exc}") from None
        except StorageError:
            await db.close()
            raise
        return storage

    async def _prepare(self, check_integrity: bool) -> None:
        db = self._db
        await db.execute("PRAGMA busy_timeout = 5000")
        (version,) = await self._one("PRAGMA user_version")
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"database {self.path} has schema version {version}, newer than this release"
                f" understands ({SCHEMA_VERSION}); upgrade dispatch-server"
            )
        if check_integrity and version > 0:
            # The full check (indexes against tables too), not quick_check: a server that starts on a
            # damaged file would acknowledge commands it may not be able to keep.
            (verdict,) = await self._one("PRAGMA integrity_check")
            if verdict != "ok":
                raise StorageError(f"database {self.path} failed its integrity check: {verdict}")
        # WAL lets readers (boards resuming, the CLI) run beside the writer; FULL makes an ack survive
        # power loss, not only a crash, and costs one fsync per batch thanks to group commit.
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = FULL")
        for number in range(version, SCHEMA_VERSION):
            await db.execute("BEGIN IMMEDIATE")
            try:
                await self._run_script(MIGRATIONS[number])
                await db.execute(f"PRAGMA user_version = {number + 1}")
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def _run_script(self, script: str) -> None:
        # executescript() would COMMIT first; run the statements one by one inside our transaction.
        for statement in script.split(";"):
            if statement.strip():
                await self._db.execute(statement)

    async def _one(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...]:
        async with self._db.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return tuple(row)

    async def close(self) -> None:
        await self._db.close()

    # --- the narrow interface ------------------------------------------------------------------------

    async def load_state(self, now: datetime | None = None, *, closed_tickets: bool = True) -> DispatchState:
        """Current state from the state tables (not a replay: that is what the log is kept for); `now`
        (the server's clock) bounds how far back technicians' hours are rebuilt from the log. Without
        `closed_tickets`, resolved and cancelled tickets (and their alerts) stay on disk."""
        state = DispatchState()
        where = "" if closed_tickets else f" WHERE status IN {_OPEN}"
        async with self._db.execute(f"SELECT {_TICKET_COLUMNS} FROM tickets{where}") as cursor:
            async for row in cursor:
                ticket = _ticket_from_row(row)
                state.tickets[ticket.id] = ticket
                if ticket.id.startswith("T-"):
                    state.last_ticket_number = max(state.last_ticket_number, ticket_number(ticket.id))
        if not closed_tickets:  # the numbering goes on from the last ticket ever opened
            (last,) = await self._one("SELECT MAX(CAST(SUBSTR(id, 3) AS INTEGER)) FROM tickets WHERE id LIKE 'T-%'")
            state.last_ticket_number = max(state.last_ticket_number, int(last or 0))
        async with self._db.execute("SELECT id, name, skills, status, capacity, notify FROM technicians") as cursor:
            async for row in cursor:
                tech = Technician(id=row[0], name=row[1], skills=json.loads(row[2]), status=row[3], capacity=row[4],
                                  notify=row[5])  # fmt: skip
                state.technicians[tech.id] = tech
        async with self._db.execute("SELECT id, title, ticket_ids, opened_at FROM incidents") as cursor:
            async for row in cursor:
                incident = Incident(id=row[0], title=row[1], ticket_ids=json.loads(row[2]), opened_at=row[3])
                state.incidents[incident.id] = incident
                state.last_incident_number = max(state.last_incident_number, incident_number(incident.id))
        # Alerts already raised, so each is raised once also across restarts.
        async with self._db.execute(
            "SELECT payload FROM events WHERE kind IN ('sla_warning', 'sla_breached', 'escalation')"
        ) as cursor:
            async for (payload,) in cursor:
                apply_alert(state, event_adapter.validate_json(payload))
        # Each technician's time on the clock and call-outs over the last eight days (what the fatigue
        # rules look back on), and the call-outs still waiting.
        since = ((now or datetime.now(UTC)) - timedelta(days=8)).isoformat()
        async with self._db.execute(
            "SELECT payload FROM events WHERE kind IN ('technician_added', 'technician_status_changed',"
            " 'callout_sent', 'callout_answered', 'callout_expired') AND ts >= ? ORDER BY seq",
            (since,),
        ) as cursor:
            async for (payload,) in cursor:
                event = event_adapter.validate_json(payload)
                if isinstance(event, TechnicianEvent | CalloutEvent):
                    remember_work(state, event)
        # Call-out ids go on from the last one ever sent, older than eight days too.
        (sent,) = await self._one("SELECT COUNT(*) FROM events WHERE kind = 'callout_sent'")
        state.last_callout_number = max(state.last_callout_number, int(sent))
        (seq,) = await self._one("SELECT COALESCE(MAX(seq), 0) FROM events")
        state.seq = int(seq)
        if not closed_tickets:
            state.alerts = {alert for alert in state.alerts if alert[0] in state.tickets}
        return state

    async def find_tickets(self, ticket_ids: Collection[str]) -> list[Ticket]:
        """The stored tickets with these ids (those that exist), as they are now."""
        ids = list(ticket_ids)
        found: list[Ticket] = []
        for start in range(0, len(ids), 400):  # under SQLite's bound-parameter limit
            chunk = ids[start : start + 400]
            sql = f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE id IN ({', '.join('?' for _ in chunk)})"
            async with self._db.execute(sql, chunk) as cursor:
                found.extend(_ticket_from_row(row) for row in await cursor.fetchall())
        return found

    async def closed_tickets_since(self, created_since: datetime) -> list[Ticket]:
        """Resolved and cancelled tickets created at or after `created_since` (a snapshot's recent work)."""
        sql = f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE status NOT IN {_OPEN} AND created_at >= ?"
        async with self._db.execute(sql, (created_since.isoformat(),)) as cursor:
            return [_ticket_from_row(row) for row in await cursor.fetchall()]

    async def apply_batch(
        self,
        events: Sequence[tuple[Event, str]],
        tickets: Iterable[Ticket],
        technicians: Iterable[Technician],
        incidents: Iterable[Incident],
        commands: Sequence[CommandRecord],
        decisions: Sequence[tuple[int, str]] = (),
        decision_log_through: int | None = None,
    ) -> None:
        """Write one batch in one transaction: events (with their serialised payload), changed rows,
        command replies, decision records (seq, JSON line), and how far the decision-log file is known
        to be written. Returns once it is durable."""
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        try:
            if events:
                await db.executemany(
                    "INSERT INTO events (seq, ts, actor, kind, ticket_id, payload) VALUES (?, ?, ?, ?, ?, ?)",
                    [(e.seq, e.ts.isoformat(), e.actor, e.kind, _event_ticket_id(e), payload) for e, payload in events],
                )
            ticket_rows = [_ticket_row(t) for t in tickets]
            if ticket_rows:
                await db.executemany(
                    f"INSERT OR REPLACE INTO tickets ({_TICKET_COLUMNS}) VALUES ({_TICKET_PLACEHOLDERS})",
                    ticket_rows,
                )
            tech_rows = [(t.id, t.name, json.dumps(t.skills), t.status.value, t.capacity, t.notify)
                         for t in technicians]  # fmt: skip
            if tech_rows:
                await db.executemany(
                    "INSERT OR REPLACE INTO technicians (id, name, skills, status, capacity, notify)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    tech_rows,
                )
            incident_rows = [(i.id, i.title, json.dumps(i.ticket_ids), _iso(i.opened_at)) for i in incidents]
            if incident_rows:
                await db.executemany(
                    "INSERT OR REPLACE INTO incidents (id, title, ticket_ids, opened_at) VALUES (?, ?, ?, ?)",
                    incident_rows,
                )
            if commands:
                await db.executemany(
                    "INSERT INTO commands (user, command_id, seq, reply) VALUES (?, ?, ?, ?)",
                    [(c.user, c.command_id, c.seq, c.reply) for c in commands],
                )
            if decisions:
                await db.executemany("INSERT INTO decisions (seq, record) VALUES (?, ?)", decisions)
            if decision_log_through is not None:
                await db.execute("UPDATE decision_log_through SET seq = ? WHERE id = 1", (decision_log_through,))
            await db.execute("COMMIT")
        except BaseException:
            # A failed batch leaves nothing behind; the server treats it as fatal (see server.app).
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise

    async def decisions_missing_from_log(self, last_in_file: int) -> list[str]:
        """Decision records that may not have reached the decision-log file: those after the last seq
        in the file or, for a file with no record (rotated, emptied), after the last one recorded as
        written, so a rotated log is not given the old lines again."""
        (through,) = await self._one("SELECT seq FROM decision_log_through WHERE id = 1")
        after = last_in_file if last_in_file > 0 else through
        async with self._db.execute("SELECT record FROM decisions WHERE seq > ? ORDER BY seq", (after,)) as cursor:
            return [row[0] for row in await cursor.fetchall()]

    async def find_decisions(
        self, *, since: datetime | None = None, ticket: str | None = None, technician: str | None = None
    ) -> list[dict[str, Any]]:
        """Decision records, oldest first: those made at or after `since`, about `ticket`, and moving work
        to or from `technician` (each filter only when given)."""
        conditions: list[str] = []
        params: list[object] = []
        if since is not None:
            conditions.append("at >= ?")
            params.append(since.timestamp())
        if ticket is not None:
            conditions.append("ticket_id = ?")
            params.append(ticket)
        if technician is not None:
            conditions.append("(from_tech = ? OR to_tech = ?)")
            params += [technician, technician]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        async with self._db.execute(f"SELECT record FROM decisions{where} ORDER BY seq", params) as cursor:
            return [json.loads(row[0]) for row in await cursor.fetchall()]

    async def events_after(self, after_seq: int, up_to: int) -> list[str]:
        """Serialised events with after_seq < seq <= up_to, in order."""
        async with self._db.execute(
            "SELECT payload FROM events WHERE seq > ? AND seq <= ? ORDER BY seq", (after_seq, up_to)
        ) as cursor:
            return [row[0] for row in await cursor.fetchall()]

    async def all_events(self) -> list[Event]:
        """The whole log, parsed (for replay checks and tools, not the hot path)."""
        async with self._db.execute("SELECT payload FROM events ORDER BY seq") as cursor:
            return [event_adapter.validate_json(row[0]) for row in await cursor.fetchall()]

    async def ticket_history(self, ticket_id: str) -> list[str]:
        """Serialised events about one ticket, oldest first."""
        async with self._db.execute(
            "SELECT payload FROM events WHERE ticket_id = ? ORDER BY seq", (ticket_id,)
        ) as cursor:
            return [row[0] for row in await cursor.fetchall()]

    async def find_replies(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Stored replies for (user, command_id) pairs that were applied before."""
        keys = list(keys)
        found: dict[tuple[str, str], str] = {}
        # Chunked to stay under SQLite's bound-parameter limit.
        for start in range(0, len(keys), 400):
            chunk = keys[start : start + 400]
            where = " OR ".join("(user = ? AND command_id = ?)" for _ in chunk)
            params = [value for key in chunk for value in key]
            async with self._db.execute(f"SELECT user, command_id, reply FROM commands WHERE {where}", params) as cur:
                for user, command_id, reply in await cur.fetchall():
                    found[(user, command_id)] = reply
        return found

    # --- tokens --------------------------------------------------------------------------------------

    async def create_token(self, name: str, role: Role, tech_id: str | None, token: str) -> None:
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            await self._db.execute(
                "INSERT INTO tokens (name, role, tech_id, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, role.value, tech_id, hash_token(token), datetime.now(UTC).isoformat()),
            )
            await self._db.execute("COMMIT")
        except sqlite3.IntegrityError:
            await self._db.execute("ROLLBACK")
            raise duplicate_token(name) from None

    async def find_token(self, token: str) -> TokenRecord | None:
        """The live (not revoked) token with this secret, if any.

        Every live token's hash is compared, each in constant time, with no early exit: how long a
        wrong guess takes says nothing about how close it was nor which token it nearly matched."""
        async with self._db.execute(
            "SELECT name, role, tech_id, created_at, revoked_at, token_hash FROM tokens WHERE revoked_at IS NULL"
        ) as cursor:
            rows = await cursor.fetchall()
        return live_token_matching(token, ((TokenRecord(r[0], Role(r[1]), r[2], r[3], r[4]), str(r[5])) for r in rows))

    async def list_tokens(self) -> list[TokenRecord]:
        async with self._db.execute(
            "SELECT name, role, tech_id, created_at, revoked_at FROM tokens ORDER BY name"
        ) as cursor:
            return [TokenRecord(r[0], Role(r[1]), r[2], r[3], r[4]) for r in await cursor.fetchall()]

    async def revoke_token(self, name: str) -> bool:
        await self._db.execute("BEGIN IMMEDIATE")
        cursor = await self._db.execute(
            "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (datetime.now(UTC).isoformat(), name),
        )
        await self._db.execute("COMMIT")
        return cursor.rowcount > 0

    async def revoked_names(self) -> set[str]:
        async with self._db.execute("SELECT name FROM tokens WHERE revoked_at IS NOT NULL") as cursor:
            return {row[0] for row in await cursor.fetchall()}

    async def table_counts(self) -> dict[str, int]:
        return {table: int((await self._one(f"SELECT COUNT(*) FROM {table}"))[0]) for table in TABLES}

    async def read_rows(self, table: str, chunk: int = 5_000) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The rows of one of `TABLES`, its columns in `TABLES`' order, `chunk` at a time (import-sqlite)."""
        columns = ", ".join(f'"{c}"' for c in TABLES[table])
        async with self._db.execute(f"SELECT {columns} FROM {table}") as cursor:
            while rows := await cursor.fetchmany(chunk):
                yield [tuple(row) for row in rows]


def apply_alert(state: DispatchState, event: Event) -> None:
    if isinstance(event, SlaEvent):
        state.alerts.add((event.ticket_id, alert_key(event.kind, event.target)))


def _event_ticket_id(event: Event) -> str | None:
    if isinstance(event, TicketEvent):
        return event.ticket.id
    return getattr(event, "ticket_id", None)
