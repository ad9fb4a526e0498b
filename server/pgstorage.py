"""PostgreSQL storage (`--db postgresql://USER@HOST/DB`): the same tables, columns and migrations as the
SQLite file, through asyncpg.

The SQL differs only where the dialects do: `$n` parameters, `ON CONFLICT ... DO UPDATE` for SQLite's
`INSERT OR REPLACE`, BIGINT for SQLite's 64-bit INTEGER, the decision columns computed from the JSON
record with jsonb (stored generated columns: PostgreSQL cannot index virtual ones), and a one-row
`schema_version` table for SQLite's `PRAGMA user_version`. Timestamps stay ISO text, as in SQLite, and
the columns compared or sorted as text (`events.ts`, `tokens.name`) use the "C" collation so that they
compare byte by byte there too, whatever the database's locale.

A pool of connections: the writer's batches and the readers (boards resuming, token checks, history)
run side by side, as they do on SQLite's WAL.

Several servers share one database: migrations run under an advisory lock so nodes that start together
migrate once; each batch is decided and written in a `write_turn` under the database-wide `WRITER_LOCK`,
after reading the events the other nodes stored meanwhile, and announces its last seq on
`EVENTS_CHANNEL` at commit. Each node also keeps a `NodeSession`, a connection of its own that listens on
that channel and holds `LEADER_LOCK` while the node is the leader.

A database that cannot be reached (stopped, restarting, the network down) raises `StorageUnavailable`
from the writer's turn and the readers, so the server can refuse and carry on rather than stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from dispatch.core.models import Incident, Role, Technician, Ticket
from dispatch.core.protocol import CalloutEvent, Event, TechnicianEvent, event_adapter
from dispatch.core.state import DispatchState, incident_number, remember_work, ticket_number
from server.storage import (
    _OPEN,
    _TICKET_COLUMNS,
    SCHEMA_VERSION,
    TABLES,
    CommandRecord,
    SqliteStorage,
    Storage,
    StorageError,
    StorageUnavailable,
    TokenRecord,
    WriteTurn,
    _event_ticket_id,
    _iso,
    _ticket_from_row,
    _ticket_row,
    apply_alert,
    duplicate_token,
    hash_token,
    live_token_matching,
)

__all__ = [
    "PG_MIGRATIONS",
    "EVENTS_CHANNEL",
    "LEADER_LOCK",
    "WRITER_LOCK",
    "NodeSession",
    "PostgresStats",
    "PostgresStorage",
    "redact",
]

# Advisory lock keys ("disp" and a number): held for a transaction, released at its end.
MIGRATION_LOCK = 0x6469_7370_0000_0001
WRITER_LOCK = 0x6469_7370_0000_0002
# Held for a session (a node's own connection) by the leader: freed when that session ends, also when
# the node dies (its socket closes) or PostgreSQL restarts.
LEADER_LOCK = 0x6469_7370_0000_0003
# NOTIFY channel: the payload is the last seq a committed batch stored.
EVENTS_CHANNEL = "dispatch_events"

CONNECT_TIMEOUT_S = 10.0
# The writer, and readers beside it: boards resuming, token checks at connect, history, revocations.
POOL_SIZE = 8

# Step n here is step n of server.storage.MIGRATIONS in PostgreSQL's dialect; the two tuples grow
# together (a test compares the schemas they make). Never edit one that has shipped.
PG_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        seq BIGINT PRIMARY KEY,
        ts TEXT COLLATE "C" NOT NULL,
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
        version BIGINT NOT NULL
    );
    CREATE TABLE technicians (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        skills TEXT NOT NULL,
        status TEXT NOT NULL,
        capacity BIGINT NOT NULL
    );
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        ticket_ids TEXT NOT NULL,
        opened_at TEXT NOT NULL
    );
    CREATE TABLE commands (
        "user" TEXT NOT NULL,
        command_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        reply TEXT NOT NULL,
        PRIMARY KEY ("user", command_id)
    );
    CREATE TABLE tokens (
        name TEXT COLLATE "C" PRIMARY KEY,
        role TEXT NOT NULL,
        tech_id TEXT,
        token_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    """,
    """
    ALTER TABLE tickets ADD COLUMN paused_at TEXT;
    ALTER TABLE tickets ADD COLUMN paused_seconds BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX events_kind ON events(kind) WHERE kind IN ('sla_warning', 'sla_breached', 'escalation');
    """,
    """
    ALTER TABLE tickets ADD COLUMN merged_into TEXT;
    ALTER TABLE tickets ADD COLUMN dedupe_key TEXT;
    ALTER TABLE tickets ADD COLUMN duplicates BIGINT NOT NULL DEFAULT 0;
    """,
    """
    CREATE TABLE decisions (
        seq BIGINT PRIMARY KEY,
        record TEXT NOT NULL
    );
    CREATE TABLE decision_log_through (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        seq BIGINT NOT NULL
    );
    INSERT INTO decision_log_through (id, seq) VALUES (1, 0);
    """,
    # `at` is Unix seconds, as SQLite's julianday arithmetic gives. A cast to timestamptz is not
    # immutable (it reads the session's time zone), so it is wrapped in a function that fixes the zone
    # to UTC, which is also how SQLite reads a time without an offset.
    """
    CREATE FUNCTION dispatch_epoch(iso TEXT) RETURNS DOUBLE PRECISION
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET timezone = 'UTC'
        AS $$ SELECT extract(epoch FROM iso::timestamptz)::double precision $$;
    ALTER TABLE decisions ADD COLUMN at DOUBLE PRECISION
        GENERATED ALWAYS AS (dispatch_epoch(record::jsonb ->> 'ts')) STORED;
    ALTER TABLE decisions ADD COLUMN ticket_id TEXT GENERATED ALWAYS AS (record::jsonb ->> 'ticket') STORED;
    ALTER TABLE decisions ADD COLUMN from_tech TEXT GENERATED ALWAYS AS (record::jsonb ->> 'from') STORED;
    ALTER TABLE decisions ADD COLUMN to_tech TEXT GENERATED ALWAYS AS (record::jsonb ->> 'to') STORED;
    CREATE INDEX decisions_at ON decisions(at);
    CREATE INDEX decisions_ticket ON decisions(ticket_id, seq);
    CREATE INDEX decisions_from ON decisions(from_tech, seq) WHERE from_tech IS NOT NULL;
    CREATE INDEX decisions_to ON decisions(to_tech, seq) WHERE to_tech IS NOT NULL;
    """,
    """
    ALTER TABLE tickets ADD COLUMN sla_tier TEXT NOT NULL DEFAULT 'standard';
    ALTER TABLE tickets ADD COLUMN calendar TEXT NOT NULL DEFAULT '24x7';
    ALTER TABLE tickets ADD COLUMN respond_warn_at TEXT;
    ALTER TABLE tickets ADD COLUMN resolve_warn_at TEXT;
    ALTER TABLE tickets ADD COLUMN hold_reason TEXT;
    """,
    """
    CREATE INDEX events_people ON events(kind, ts)
        WHERE kind IN ('technician_added', 'technician_status_changed',
                       'callout_sent', 'callout_answered', 'callout_expired');
    """,
    """
    ALTER TABLE technicians ADD COLUMN notify TEXT;
    """,
)

_ALERT_KINDS = "('sla_warning', 'sla_breached', 'escalation')"
_PEOPLE_KINDS = (
    "('technician_added', 'technician_status_changed', 'callout_sent', 'callout_answered', 'callout_expired')"
)


def _upsert(table: str, key: str) -> str:
    """INSERT OR REPLACE, in PostgreSQL's words, of every column `TABLES` lists for `table`."""
    columns = TABLES[table]
    values = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) ON CONFLICT ({key}) DO UPDATE SET {updates}"


_UPSERT_TICKET = _upsert("tickets", "id")
_UPSERT_TECHNICIAN = _upsert("technicians", "id")
_UPSERT_INCIDENT = _upsert("incidents", "id")


def redact(url: str) -> str:
    """`url` fit to print: a password in it (user:PASSWORD@ or ?password=) becomes ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hosts = netloc.rpartition("@")
            if ":" in userinfo:
                netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
        query = re.sub(r"(^|&)password=[^&]*", r"\1password=***", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return url.split("://", 1)[0] + "://…"


def _check_url(url: str, where: str) -> None:
    """Refuse, in one line, a URL that names no database the way libpq reads it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- a port that is not a number raises here
    except ValueError as exc:
        raise StorageError(f"{where} is not a PostgreSQL URL ({exc}): write postgresql://USER@HOST[:PORT]/DB") from None
    if parts.path.count("/") > 1:
        raise StorageError(f"{where} is not a PostgreSQL URL: the database is one name after the host (/DB)")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    if isinstance(exc, OSError) and exc.errno:
        # asyncio's "Connect call failed ('127.0.0.1', 5432)" says less than the errno's own words.
        return os.strerror(exc.errno).lower()
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# What says the database cannot be reached now, rather than that a statement is wrong: the connection
# failed or was lost (08xxx), the server is shutting down or starting up (57xxx), or a socket error.
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    # A connection cut off in the middle of a statement can leave asyncpg's protocol in a state it refuses
    # to go on from ("cannot switch to state ..."): that connection is gone too.
    asyncpg.exceptions.InternalClientError,
)


@asynccontextmanager
async def _reachable(where: str) -> AsyncIterator[None]:
    """Turn a lost or refused connection into `StorageUnavailable` (one line, no traceback)."""
    try:
        yield
    except _UNREACHABLE as exc:
        raise StorageUnavailable(f"PostgreSQL at {where} is unreachable: {_reason(exc)}") from exc


class _Turn:
    """The writer's reads and its write in one turn: one connection, in the turn's transaction."""

    def __init__(self, db: PoolConnectionProxy, where: str) -> None:
        self._db = db
        self.where = where

    async def find_replies(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        keys = list(keys)
        if not keys:
            return {}
        async with _reachable(self.where):
            return await self._find_replies(keys)

    async def _find_replies(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        # Two arrays, however many keys: no bound-parameter limit to chunk around.
        rows = await self._db.fetch(
            'SELECT c."user", c.command_id, c.reply FROM commands c'
            " JOIN unnest($1::text[], $2::text[]) AS k(user_name, command_id)"
            ' ON c."user" = k.user_name AND c.command_id = k.command_id',
            [user for user, _ in keys],
            [command_id for _, command_id in keys],
        )
        return {(row[0], row[1]): row[2] for row in rows}

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
        async with _reachable(self.where):
            await self._apply_batch(events, tickets, technicians, incidents, commands, decisions,
                                    decision_log_through)  # fmt: skip

    async def _apply_batch(
        self,
        events: Sequence[tuple[Event, str]],
        tickets: Iterable[Ticket],
        technicians: Iterable[Technician],
        incidents: Iterable[Incident],
        commands: Sequence[CommandRecord],
        decisions: Sequence[tuple[int, str]],
        decision_log_through: int | None,
    ) -> None:
        db = self._db
        ticket_rows = [_ticket_row(t) for t in tickets]
        tech_rows = [(t.id, t.name, json.dumps(t.skills), t.status.value, t.capacity, t.notify) for t in technicians]
        incident_rows = [(i.id, i.title, json.dumps(i.ticket_ids), _iso(i.opened_at)) for i in incidents]
        if events:
            await db.executemany(
                "INSERT INTO events (seq, ts, actor, kind, ticket_id, payload) VALUES ($1, $2, $3, $4, $5, $6)",
                [(e.seq, e.ts.isoformat(), e.actor, e.kind, _event_ticket_id(e), payload) for e, payload in events],
            )
        if ticket_rows:
            await db.executemany(_UPSERT_TICKET, ticket_rows)
        if tech_rows:
            await db.executemany(_UPSERT_TECHNICIAN, tech_rows)
        if incident_rows:
            await db.executemany(_UPSERT_INCIDENT, incident_rows)
        if commands:
            await db.executemany(
                'INSERT INTO commands ("user", command_id, seq, reply) VALUES ($1, $2, $3, $4)',
                [(c.user, c.command_id, c.seq, c.reply) for c in commands],
            )
        if decisions:
            await db.executemany("INSERT INTO decisions (seq, record) VALUES ($1, $2)", decisions)
        if decision_log_through is not None:
            await db.execute("UPDATE decision_log_through SET seq = $1 WHERE id = 1", decision_log_through)
        if events:
            # Delivered to listeners (the other nodes) only if and when this transaction commits.
            await db.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, str(events[-1][0].seq))


@dataclass(frozen=True)
class PostgresStats:
    """What `dispatch-server stats` shows of a PostgreSQL database."""

    schema_version: int
    size_bytes: int
    events: int
    last_seq: int
    open_tickets: int
    closed_tickets: int
    technicians: int
    active_tokens: int
    revoked_tokens: int


class PostgresStorage(Storage):
    """The one writer of a dispatch database in PostgreSQL, through a pool of asyncpg connections."""

    def __init__(self, pool: asyncpg.Pool, where: str, url: str) -> None:
        self._pool = pool
        # The URL without its password, for messages.
        self.where = where
        self._url = url  # for connections outside the pool (NodeSession)

    @classmethod
    async def connect(cls, url: str, *, create: bool = True) -> PostgresStorage:
        """Connect and migrate (creating the tables in an empty database, unless not `create`); raises
        `StorageError` with a one-line reason."""
        where = redact(url)
        _check_url(url, where)
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=POOL_SIZE,
                timeout=CONNECT_TIMEOUT_S,
                server_settings={"application_name": "dispatch-server"},
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            raise StorageError(f"cannot connect to PostgreSQL at {where}: {_reason(exc)}") from None
        storage = cls(pool, where, url)
        try:
            await storage._prepare(create)
        except BaseException as exc:
            await storage.close()
            if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
                raise StorageError(f"PostgreSQL database {where}: {_reason(exc)}") from None
            raise
        return storage

    async def _prepare(self, create: bool) -> None:
        async with self._pool.acquire() as db, db.transaction():
            # Nodes that start together migrate one at a time; the later ones find the work done.
            await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            if await db.fetchval("SELECT to_regclass('schema_version')") is None:
                if not create:
                    raise StorageError(f"no dispatch database at {self.where} (it has no dispatch tables)")
                await db.execute(
                    "CREATE TABLE schema_version (id BIGINT PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);"
                    " INSERT INTO schema_version (id, version) VALUES (1, 0)"
                )
            version = int(await db.fetchval("SELECT version FROM schema_version WHERE id = 1"))
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"database {self.where} has schema version {version}, newer than this release"
                    f" understands ({SCHEMA_VERSION}); upgrade dispatch-server"
                )
            for number in range(version, SCHEMA_VERSION):
                await db.execute(PG_MIGRATIONS[number])  # several statements: the simple query protocol
            if version < SCHEMA_VERSION:
                await db.execute("UPDATE schema_version SET version = $1 WHERE id = 1", SCHEMA_VERSION)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), CONNECT_TIMEOUT_S)
        except TimeoutError:
            self._pool.terminate()

    # --- the narrow interface ------------------------------------------------------------------------

    async def load_state(self, now: datetime | None = None, *, closed_tickets: bool = True) -> DispatchState:
        state = DispatchState()
        async with (
            _reachable(self.where),
            self._pool.acquire(timeout=CONNECT_TIMEOUT_S) as db,
            db.transaction(isolation="repeatable_read", readonly=True),
        ):
            # One snapshot, so the tables and the log agree even while another node writes.
            where = "" if closed_tickets else f" WHERE status IN {_OPEN}"
            for row in await db.fetch(f"SELECT {_TICKET_COLUMNS} FROM tickets{where}"):
                ticket = _ticket_from_row(tuple(row))
                state.tickets[ticket.id] = ticket
                if ticket.id.startswith("T-"):
                    state.last_ticket_number = max(state.last_ticket_number, ticket_number(ticket.id))
            if not closed_tickets:  # the numbering goes on from the last ticket ever opened
                last = await db.fetchval(r"SELECT MAX(SUBSTRING(id FROM 3)::BIGINT) FROM tickets WHERE id ~ '^T-\d+$'")
                state.last_ticket_number = max(state.last_ticket_number, int(last or 0))
            for row in await db.fetch("SELECT id, name, skills, status, capacity, notify FROM technicians"):
                tech = Technician(id=row[0], name=row[1], skills=json.loads(row[2]), status=row[3], capacity=row[4],
                                  notify=row[5])  # fmt: skip
                state.technicians[tech.id] = tech
            for row in await db.fetch("SELECT id, title, ticket_ids, opened_at FROM incidents"):
                incident = Incident(id=row[0], title=row[1], ticket_ids=json.loads(row[2]), opened_at=row[3])
                state.incidents[incident.id] = incident
                state.last_incident_number = max(state.last_incident_number, incident_number(incident.id))
            for row in await db.fetch(f"SELECT payload FROM events WHERE kind IN {_ALERT_KINDS}"):
                apply_alert(state, event_adapter.validate_json(row[0]))
            since = ((now or datetime.now(UTC)) - timedelta(days=8)).isoformat()
            for row in await db.fetch(
                f"SELECT payload FROM events WHERE kind IN {_PEOPLE_KINDS} AND ts >= $1 ORDER BY seq", since
            ):
                event = event_adapter.validate_json(row[0])
                if isinstance(event, TechnicianEvent | CalloutEvent):
                    remember_work(state, event)
            sent = await db.fetchval("SELECT COUNT(*) FROM events WHERE kind = 'callout_sent'")
            state.last_callout_number = max(state.last_callout_number, int(sent))
            state.seq = int(await db.fetchval("SELECT COALESCE(MAX(seq), 0) FROM events"))
        if not closed_tickets:
            state.alerts = {alert for alert in state.alerts if alert[0] in state.tickets}
        return state

    @asynccontextmanager
    async def write_turn(self, after_seq: int) -> AsyncIterator[WriteTurn]:
        """One transaction under `WRITER_LOCK`: whichever node holds it decides over a complete state (it
        first reads what the others stored after `after_seq`) and stores before the next may start."""
        async with self._locked() as db:
            # A statement of its own, after the lock's (READ COMMITTED): its snapshot is taken once the
            # lock is held, so it sees every batch committed before. Folded into the lock's statement,
            # it would miss those committed while it waited, and this batch would reuse their seqs.
            others = await db.fetch("SELECT payload FROM events WHERE seq > $1 ORDER BY seq", after_seq)
            yield WriteTurn(_Turn(db, self.where), [row[0] for row in others])

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[PoolConnectionProxy]:
        async with (
            _reachable(self.where),
            self._pool.acquire(timeout=CONNECT_TIMEOUT_S) as db,
            db.transaction(isolation="read_committed"),
        ):
            await db.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK)
            yield db

    async def find_tickets(self, ticket_ids: Collection[str]) -> list[Ticket]:
        async with _reachable(self.where):
            rows = await self._pool.fetch(
                f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE id = ANY($1::text[])", list(ticket_ids)
            )
        return [_ticket_from_row(tuple(row)) for row in rows]

    async def closed_tickets_since(self, created_since: datetime) -> list[Ticket]:
        async with _reachable(self.where):
            rows = await self._pool.fetch(
                f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE status NOT IN {_OPEN} AND created_at >= $1",
                created_since.isoformat(),
            )
        return [_ticket_from_row(tuple(row)) for row in rows]

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
        async with self._locked() as db:
            await _Turn(db, self.where).apply_batch(events, tickets, technicians, incidents, commands, decisions,
                                        decision_log_through)  # fmt: skip

    async def decisions_missing_from_log(self, last_in_file: int) -> list[str]:
        async with self._pool.acquire() as db:
            through = int(await db.fetchval("SELECT seq FROM decision_log_through WHERE id = 1"))
            after = last_in_file if last_in_file > 0 else through
            return [row[0] for row in await db.fetch("SELECT record FROM decisions WHERE seq > $1 ORDER BY seq", after)]

    async def find_decisions(
        self, *, since: datetime | None = None, ticket: str | None = None, technician: str | None = None
    ) -> list[dict[str, Any]]:
        conditions: list[str] = []
        params: list[object] = []
        if since is not None:
            params.append(since.timestamp())
            conditions.append(f"at >= ${len(params)}")
        if ticket is not None:
            params.append(ticket)
            conditions.append(f"ticket_id = ${len(params)}")
        if technician is not None:
            params.append(technician)
            conditions.append(f"(from_tech = ${len(params)} OR to_tech = ${len(params)})")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._pool.fetch(f"SELECT record FROM decisions{where} ORDER BY seq", *params)
        return [json.loads(row[0]) for row in rows]

    async def events_after(self, after_seq: int, up_to: int) -> list[str]:
        async with _reachable(self.where):
            rows = await self._pool.fetch(
                "SELECT payload FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq", after_seq, up_to
            )
        return [row[0] for row in rows]

    async def recent_bursts(self, within_events: int = 10_000) -> list[str]:
        """The burst reports among the log's last `within_events` events (what a new leader learns)."""
        async with _reachable(self.where):
            rows = await self._pool.fetch(
                "SELECT payload FROM events WHERE kind = 'burst_detected'"
                " AND seq > (SELECT COALESCE(MAX(seq), 0) FROM events) - $1 ORDER BY seq",
                within_events,
            )
        return [row[0] for row in rows]

    async def all_events(self) -> list[Event]:
        rows = await self._pool.fetch("SELECT payload FROM events ORDER BY seq")
        return [event_adapter.validate_json(row[0]) for row in rows]

    async def ticket_history(self, ticket_id: str) -> list[str]:
        async with _reachable(self.where):
            rows = await self._pool.fetch("SELECT payload FROM events WHERE ticket_id = $1 ORDER BY seq", ticket_id)
        return [row[0] for row in rows]

    async def find_replies(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        async with self._pool.acquire() as db:
            return await _Turn(db, self.where).find_replies(keys)

    # --- tokens --------------------------------------------------------------------------------------

    async def create_token(self, name: str, role: Role, tech_id: str | None, token: str) -> None:
        try:
            await self._pool.execute(
                "INSERT INTO tokens (name, role, tech_id, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                name, role.value, tech_id, hash_token(token), datetime.now(UTC).isoformat(),
            )  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise duplicate_token(name) from None

    async def find_token(self, token: str) -> TokenRecord | None:
        async with _reachable(self.where):
            rows = await self._pool.fetch(
                "SELECT name, role, tech_id, created_at, revoked_at, token_hash FROM tokens WHERE revoked_at IS NULL"
            )
        return live_token_matching(token, ((TokenRecord(r[0], Role(r[1]), r[2], r[3], r[4]), str(r[5])) for r in rows))

    async def list_tokens(self) -> list[TokenRecord]:
        rows = await self._pool.fetch("SELECT name, role, tech_id, created_at, revoked_at FROM tokens ORDER BY name")
        return [TokenRecord(r[0], Role(r[1]), r[2], r[3], r[4]) for r in rows]

    async def revoke_token(self, name: str) -> bool:
        revoked = await self._pool.fetchval(
            "UPDATE tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL RETURNING name",
            datetime.now(UTC).isoformat(), name,
        )  # fmt: skip
        return revoked is not None

    async def revoked_names(self) -> set[str]:
        return {row[0] for row in await self._pool.fetch("SELECT name FROM tokens WHERE revoked_at IS NOT NULL")}

    async def table_counts(self) -> dict[str, int]:
        async with self._pool.acquire() as db:
            return await self._counts(db)

    # --- operator tools ------------------------------------------------------------------------------

    async def stats(self) -> PostgresStats:
        row = await self._pool.fetchrow(
            "SELECT (SELECT version FROM schema_version WHERE id = 1), pg_database_size(current_database()),"
            " (SELECT COUNT(*) FROM events), (SELECT COALESCE(MAX(seq), 0) FROM events),"
            " (SELECT COUNT(*) FROM tickets WHERE status NOT IN ('resolved', 'cancelled')),"
            " (SELECT COUNT(*) FROM tickets WHERE status IN ('resolved', 'cancelled')),"
            " (SELECT COUNT(*) FROM technicians),"
            " (SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL),"
            " (SELECT COUNT(*) FROM tokens WHERE revoked_at IS NOT NULL)"
        )
        assert row is not None
        return PostgresStats(*(int(value) for value in row))

    async def import_sqlite(self, source: SqliteStorage) -> dict[str, int]:
        """Copy every row of `source` into this database, which must hold nothing yet, in one transaction
        that commits only if each table then has as many rows as the source's; the counts."""
        async with self._pool.acquire() as db, db.transaction():
            # No batch of a server on this database can slip in between the check and the copy.
            await db.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK)
            held = {table: n for table, n in (await self._counts(db)).items() if n and table != "decision_log_through"}
            if held:
                what = ", ".join(f"{n} {table}" for table, n in held.items())
                raise StorageError(
                    f"PostgreSQL database {self.where} is not empty ({what}): import-sqlite fills an empty one only"
                )
            for table, columns in TABLES.items():
                if table == "decision_log_through":
                    async for rows in source.read_rows(table):
                        await db.executemany("UPDATE decision_log_through SET seq = $2 WHERE id = $1", rows)
                    continue
                async for rows in source.read_rows(table):
                    await db.copy_records_to_table(table, records=rows, columns=columns)
            wanted = await source.table_counts()
            copied = await self._counts(db)
            if copied != wanted:
                differ = ", ".join(f"{t} {copied[t]} of {n}" for t, n in wanted.items() if copied[t] != n)
                raise StorageError(f"the copy does not add up ({differ}); nothing was imported")
        return copied

    @staticmethod
    async def _counts(db: PoolConnectionProxy) -> dict[str, int]:
        counts = ", ".join(f"(SELECT COUNT(*) FROM {table})" for table in TABLES)
        row = await db.fetchrow(f"SELECT {counts}")
        assert row is not None
        return {table: int(n) for table, n in zip(TABLES, row, strict=True)}


class NodeSession:
    """This node's own connection to the database, outside the pool: it hears the other nodes' batches
    (LISTEN on `EVENTS_CHANNEL`) and holds `LEADER_LOCK` while the node leads. The lock is a session's,
    so it goes when the connection does: a node that dies, or loses PostgreSQL, leads no more."""

    def __init__(self, connection: asyncpg.Connection, where: str) -> None:
        self._db = connection
        self.where = where
        self.leading = False

    @classmethod
    async def open(cls, storage: PostgresStorage, stored: Callable[[int], None]) -> NodeSession:
        """Connect and listen; `stored(seq)` is called for every batch any node commits from now on."""

        def heard(_connection: object, _pid: int, _channel: str, payload: object) -> None:
            stored(int(str(payload)))

        async with _reachable(storage.where):
            connection = await asyncpg.connect(
                storage._url, timeout=CONNECT_TIMEOUT_S, server_settings={"application_name": "dispatch-server node"}
            )
            try:
                await connection.add_listener(EVENTS_CHANNEL, heard)
            except BaseException:
                connection.terminate()
                raise
        return cls(connection, storage.where)

    async def lead(self) -> bool:
        """Whether this node leads now: it takes the leader lock if it is free; a leader checks its session
        still holds it (a session that cannot answer holds nothing: `StorageUnavailable`)."""
        async with _reachable(self.where):
            if self.leading:
                await self._db.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT_S)
            else:
                taken = await self._db.fetchval(
                    "SELECT pg_try_advisory_lock($1)", LEADER_LOCK, timeout=CONNECT_TIMEOUT_S
                )
                self.leading = bool(taken)
        return self.leading

    def close(self) -> None:
        """Drop the connection at once (and with it the lock): a leader stepping down must not linger."""
        self.leading = False
        self._db.terminate()
