"""Operator tools for a dispatch database: backup, restore, stats, and moving to PostgreSQL.

    dispatch-server --db PATH backup FILE [--force]
    dispatch-server --db PATH restore FILE [--force]
    dispatch-server --db PATH stats [--server URL [--ca-file PEM]] [--decision-log FILE]
    dispatch-server --db postgresql://USER@HOST/DB import-sqlite FILE

Short synchronous tools, so they use the standard `sqlite3` module rather than the server's aiosqlite
connection. `backup` is safe while the server is serving: SQLite's online backup API copies one
consistent snapshot in a single read transaction, and in WAL mode a reader never blocks the writer.
`restore` refuses while a server has the database open, checks the backup before touching anything,
and keeps the database it replaces as `PATH.before-restore`.

With `--db postgresql://…`, `stats` asks PostgreSQL; `backup` and `restore` say in one line that they
copy SQLite files and that pg_dump and pg_restore are PostgreSQL's own. `import-sqlite` copies a SQLite
database (a consistent snapshot, so also while its server serves) into an empty PostgreSQL one, in one
transaction, and commits only if every table then holds as many rows as the file's.

Every failure a user can cause is one line on stderr (`dispatch-server: <reason>`) and exit status 2,
never a traceback. `stats` exits 1 when it was asked about a server (`--server`) that is not healthy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import re
import sqlite3
import ssl
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from server.decisions import default_decision_log
from server.pgstorage import PostgresStats, PostgresStorage
from server.storage import SCHEMA_VERSION, TABLES, SqliteStorage, StorageError, is_postgres_url

__all__ = ["add_operations_parsers", "run_operation"]

EXIT_UNHEALTHY = 1
EXIT_USAGE = 2
# The tables a dispatch database has from schema version 1 on; a file without them is not one.
_TABLES = frozenset({"events", "tickets", "technicians", "incidents", "commands", "tokens"})
# Long enough to ride out a commit of the running server (a batch takes milliseconds), short enough
# that a `restore` against a live server answers at once.
_RESTORE_PROBE_TIMEOUT_S = 0.5
_READ_TIMEOUT_S = 10.0
_HEALTH_TIMEOUT_S = 5.0
_CLOSED_STATUSES = ("resolved", "cancelled")


class _Refused(Exception):
    """A one-line reason to stop with exit status 2."""


def add_operations_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `backup`, `restore` and `stats` to dispatch-server's subcommands."""
    backup = commands.add_parser(
        "backup", help="copy the database to FILE; safe while the server is serving (SQLite online backup)"
    )
    backup.add_argument("file", metavar="FILE", help="where to write the backup (a single SQLite file)")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    restore = commands.add_parser("restore", help="replace the database with a backup; the server must be stopped")
    restore.add_argument("file", metavar="FILE", help="a backup made by `backup`")
    restore.add_argument(
        "--force", action="store_true", help="replace an existing PATH.before-restore from an earlier restore"
    )

    stats = commands.add_parser("stats", help="events, tickets, technicians, tokens and file sizes")
    stats.add_argument(
        "--server", metavar="URL", help="also ask this server's /healthz (ws://HOST:PORT): its live connections"
    )
    stats.add_argument("--ca-file", metavar="PEM", help="for a wss:// server with a private CA: trust this CA")
    stats.add_argument("--decision-log", metavar="FILE", help="the decision log (default: beside the database)")

    move = commands.add_parser(
        "import-sqlite", help="copy a SQLite database into the empty PostgreSQL one --db names, and check the counts"
    )
    move.add_argument("file", metavar="FILE", help="the SQLite database (dispatch.db); it is only read")


def run_operation(args: argparse.Namespace) -> int:
    """Run `args.command` ('backup', 'restore', 'stats' or 'import-sqlite') on the database `args.db`; the
    exit status."""
    try:
        if args.command == "import-sqlite":
            return _import_sqlite(Path(args.file), args.db)
        if is_postgres_url(args.db):
            return _postgres_operation(args)
        if args.command == "backup":
            return _backup(Path(args.db), Path(args.file), force=getattr(args, "force", False))
        if args.command == "restore":
            return _restore(Path(args.db), Path(args.file), force=getattr(args, "force", False))
        if args.command == "stats":
            decision_log = getattr(args, "decision_log", None)
            return _stats(
                Path(args.db),
                getattr(args, "server", None),
                Path(decision_log) if decision_log else default_decision_log(args.db),
                getattr(args, "ca_file", None),
            )
        raise _Refused(f"unknown operation {args.command!r}")
    except (_Refused, StorageError) as exc:
        print(f"dispatch-server: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.Error as exc:
        # Anything the checks below did not foresee (a full disk, a vanished file) is still one line.
        print(f"dispatch-server: {args.command} failed: {_sqlite_reason(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"dispatch-server: {args.command} failed: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


# --- backup ------------------------------------------------------------------------------------------


def _backup(db: Path, target: Path, *, force: bool) -> int:
    if _same_file(db, target) or target.name in (f"{db.name}-wal", f"{db.name}-shm"):
        raise _Refused(f"{target} is the database itself: back up to another file")
    if target.exists() and not force:
        raise _Refused(f"{target} already exists: choose another name, or pass --force to overwrite it")
    if target.is_dir():
        raise _Refused(f"{target} is a directory: name the backup file")
    if not target.parent.is_dir():
        raise _Refused(f"cannot write {target}: no directory {target.parent}")
    # Written beside the target and renamed into place only once complete and checked, so a failed
    # or interrupted backup never leaves a half file under the real name (nor spoils the old one).
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        with _open_database(db, "database") as source:
            _check_schema(source, f"database {db}")
            destination = sqlite3.connect(partial, isolation_level=None)
            try:
                # pages=-1: the whole database in one step, i.e. one read transaction and so one
                # consistent snapshot. Stepwise copying would restart whenever the server commits.
                source.backup(destination, pages=-1)
                # A backup is one self-contained file: no -wal beside it to lose when it is copied.
                destination.execute("PRAGMA journal_mode = DELETE")
                rows = destination.execute("PRAGMA quick_check").fetchall()
                if [tuple(row) for row in rows] != [("ok",)]:
                    raise _Refused(f"{db} failed its check ({_first_problem(rows)}); {target} was not written")
                summary = _summary(destination)
            finally:
                destination.close()
        _fsync(partial)
        os.replace(partial, target)
        _fsync(target.parent)
    finally:
        partial.unlink(missing_ok=True)
    print(f"backed up {db} to {target}: seq {summary.seq}, {summary.tickets} tickets, {_size(target.stat().st_size)}")
    return 0


# --- restore -----------------------------------------------------------------------------------------


def _restore(db: Path, backup: Path, *, force: bool) -> int:
    if not backup.is_file():
        raise _Refused(f"no backup at {backup}")
    if _same_file(db, backup):
        raise _Refused(f"{backup} is the database itself")
    kept = _sibling(db, ".before-restore")
    if kept.exists() and not force:
        raise _Refused(f"{kept} already exists from an earlier restore: move it away, or pass --force to replace it")
    if not db.parent.is_dir():
        raise _Refused(f"cannot restore into {db}: no directory {db.parent}")

    # 1. Check the backup and copy it beside the database, before the live database is touched.
    incoming = db.with_name(f".{db.name}.restoring-{os.getpid()}")
    try:
        with _open_database(backup, "backup") as source:
            what = f"backup {backup}"
            try:
                rows = source.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.DatabaseError as exc:
                if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
                    raise _Refused(f"{what} is not a SQLite database") from None
                raise _Refused(f"{what} failed its integrity check: {_sqlite_reason(exc)}") from None
            if [tuple(row) for row in rows] != [("ok",)]:
                raise _Refused(f"{what} failed its integrity check: {_first_problem(rows)}")
            _check_schema(source, what)
            copy = sqlite3.connect(incoming, isolation_level=None)
            try:
                source.backup(copy, pages=-1)
                copy.execute("PRAGMA journal_mode = DELETE")
                summary = _summary(copy)
            finally:
                copy.close()
        _fsync(incoming)

        # 2. Swap it in, unless a server has the database open.
        if db.exists():
            _same_owner(incoming, db)
            with _exclusive(db):
                for old in (kept, _sibling(kept, "-wal"), _sibling(kept, "-shm")):
                    old.unlink(missing_ok=True)
                try:
                    # The old file gets its second name first and the new one replaces it atomically
                    # after, so the path never goes missing (a server started right then would create
                    # an empty database there).
                    os.link(db, kept)
                except OSError:
                    os.replace(db, kept)  # a filesystem without hard links
                # Normally gone after the checkpoint in _exclusive; if the database could not be read
                # (corrupt), its -wal belongs with it: SQLite pairs PATH.before-restore with its -wal.
                wal = _sibling(db, "-wal")
                if wal.exists():
                    os.replace(wal, _sibling(kept, "-wal"))
                _sibling(db, "-shm").unlink(missing_ok=True)
                os.replace(incoming, db)
        else:
            _sibling(db, "-wal").unlink(missing_ok=True)  # a stale -wal must never meet the new file
            _sibling(db, "-shm").unlink(missing_ok=True)
            os.replace(incoming, db)
        _fsync(db.parent)
    finally:
        incoming.unlink(missing_ok=True)
    print(f"restored {backup} into {db}: seq {summary.seq}, {summary.tickets} tickets")
    if kept.exists():
        print(f"the replaced database is kept as {kept}")
    return 0


@contextlib.contextmanager
def _exclusive(db: Path) -> Iterator[None]:
    """Hold `db` exclusively (refusing if a server has it open) and fold its WAL into the main file."""
    connection = sqlite3.connect(_uri(db, "rw"), uri=True, isolation_level=None, timeout=_RESTORE_PROBE_TIMEOUT_S)
    try:
        try:
            # In WAL mode every open connection, even an idle one, holds a shared lock on the file; an
            # exclusive-mode transaction needs all of them gone. (A plain BEGIN EXCLUSIVE would not
            # notice an idle server: in WAL mode it only excludes other writers.)
            connection.execute("PRAGMA locking_mode = EXCLUSIVE")
            connection.execute("BEGIN EXCLUSIVE")
            connection.execute("COMMIT")  # the lock stays: locking_mode is EXCLUSIVE
            # Checkpoint the WAL into the file and drop it, so PATH.before-restore is complete alone.
            connection.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.DatabaseError as exc:
            if _is_busy(exc):
                raise _Refused(
                    f"a server (or another program) has {db} open: stop it before restoring; nothing was changed"
                ) from None
            if getattr(exc, "sqlite_errorcode", None) not in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
                raise _Refused(f"cannot restore into {db}: {_sqlite_reason(exc)}") from None
            # Unreadable (corrupt): no server can be serving it. It is moved aside as it is.
        yield
    finally:
        connection.close()


# --- stats -------------------------------------------------------------------------------------------


def _stats(db: Path, server: str | None, decision_log: Path, ca_file: str | None = None) -> int:
    health_url = _health_url(server) if server is not None else None
    with _open_database(db, "database") as connection:
        version = _check_schema(connection, f"database {db}")
        (events, last_seq) = connection.execute("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events").fetchone()
        (open_tickets, closed_tickets) = connection.execute(
            "SELECT COALESCE(SUM(status NOT IN (?, ?)), 0), COALESCE(SUM(status IN (?, ?)), 0) FROM tickets",
            _CLOSED_STATUSES * 2,
        ).fetchone()
        (technicians,) = connection.execute("SELECT COUNT(*) FROM technicians").fetchone()
        (active, revoked) = connection.execute(
            "SELECT COALESCE(SUM(revoked_at IS NULL), 0), COALESCE(SUM(revoked_at IS NOT NULL), 0) FROM tokens"
        ).fetchone()
    main_size = db.stat().st_size
    wal = _sibling(db, "-wal")
    wal_size = wal.stat().st_size if wal.exists() else 0
    if decision_log.is_file():
        decisions = f"{decision_log}, {_size(decision_log.stat().st_size)}"
    else:
        decisions = f"none at {decision_log}"
    lines = [
        ("database", str(db)),
        ("schema", f"version {version} (this release reads up to {SCHEMA_VERSION})"),
        ("size", f"{_size(main_size + wal_size)} (file {_size(main_size)}, wal {_size(wal_size)})"),
        ("events", f"{events}, last seq {last_seq}"),
        ("tickets", f"{open_tickets} open, {closed_tickets} closed"),
        ("technicians", f"{technicians}"),
        ("tokens", f"{active} active, {revoked} revoked"),
        ("decision log", decisions),
    ]
    return _print_stats(lines, health_url, ca_file)


def _print_stats(lines: list[tuple[str, str]], health_url: str | None, ca_file: str | None) -> int:
    """Print the stats `lines`, and what the server at `health_url` says of itself; the exit status."""
    status = 0
    if health_url is not None:
        healthy, answer = _ask_health(health_url, ca_file)
        lines.append(("server", answer))
        connections = re.search(r"\bconnections=(\d+)", answer)
        lines.append(("connections", f"{connections[1]} open" if connections else "unknown (no answer)"))
        status = 0 if healthy else EXIT_UNHEALTHY
    for label, value in lines:
        print(f"{label:<13} {value}")
    return status


def _health_url(server: str) -> str:
    parts = urlsplit(server if "://" in server else f"ws://{server}")
    scheme = {"ws": "http", "http": "http", "wss": "https", "https": "https"}.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise _Refused(f"--server takes ws://HOST:PORT (or http://), not {server!r}")
    try:
        port = parts.port
    except ValueError:
        raise _Refused(f"--server has a bad port: {server!r}") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}{f':{port}' if port else ''}/healthz"


def _ask_health(url: str, ca_file: str | None = None) -> tuple[bool, str]:
    """(healthy, one line): the server's own /healthz answer, e.g. `200 ok seq=42 connections=3`."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except OSError as exc:  # ssl.SSLError included
            raise _Refused(f"cannot use {ca_file} as a CA file: {exc.strerror or exc}") from None
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=_HEALTH_TIMEOUT_S, context=context)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=_HEALTH_TIMEOUT_S)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        body = response.read(200).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return False, f"not reachable at {url}: {reason}"
    finally:
        connection.close()
    answer = " ".join(body.split()) or response.reason
    return response.status == 200, f"{response.status} {answer} ({url})"


# --- PostgreSQL ----------------------------------------------------------------------------------------


def _postgres_operation(args: argparse.Namespace) -> int:
    if args.command == "backup":
        raise _Refused(
            "backup copies a SQLite file; back up PostgreSQL with pg_dump (pg_dump -Fc -f dispatch.dump URL), see"
            " docs/operations.md"
        )
    if args.command == "restore":
        raise _Refused(
            "restore replaces a SQLite file; restore PostgreSQL with pg_restore from a pg_dump, see docs/operations.md"
        )
    if args.command == "stats":
        health_url = _health_url(args.server) if getattr(args, "server", None) is not None else None
        where, stats = asyncio.run(_read_postgres_stats(args.db))
        decision_log = getattr(args, "decision_log", None)
        if decision_log is None:
            decisions = "in the database (a file only with serve --decision-log FILE)"
        elif Path(decision_log).is_file():
            decisions = f"{decision_log}, {_size(Path(decision_log).stat().st_size)}"
        else:
            decisions = f"none at {decision_log}"
        lines = [
            ("database", where),
            ("schema", f"version {stats.schema_version} (this release reads up to {SCHEMA_VERSION})"),
            ("size", f"{_size(stats.size_bytes)} (PostgreSQL's pg_database_size)"),
            ("events", f"{stats.events}, last seq {stats.last_seq}"),
            ("tickets", f"{stats.open_tickets} open, {stats.closed_tickets} closed"),
            ("technicians", f"{stats.technicians}"),
            ("tokens", f"{stats.active_tokens} active, {stats.revoked_tokens} revoked"),
            ("decision log", decisions),
        ]
        return _print_stats(lines, health_url, getattr(args, "ca_file", None))
    raise _Refused(f"unknown operation {args.command!r}")


async def _read_postgres_stats(url: str) -> tuple[str, PostgresStats]:
    storage = await PostgresStorage.connect(url, create=False)
    try:
        return storage.where, await storage.stats()
    finally:
        await storage.close()


def _import_sqlite(source: Path, url: str) -> int:
    if not is_postgres_url(url):
        raise _Refused("import-sqlite copies into PostgreSQL: --db must be a postgresql:// URL")
    with tempfile.TemporaryDirectory(prefix="dispatch-import-") as scratch:
        # A snapshot, like `backup`'s: the file may be served and written while it is read, and is
        # migrated here (if it is older) without touching the original.
        snapshot = Path(scratch) / "snapshot.db"
        with _open_database(source, "SQLite database") as connection:
            _check_schema(connection, f"database {source}")
            copy = sqlite3.connect(snapshot, isolation_level=None)
            try:
                connection.backup(copy, pages=-1)
            finally:
                copy.close()
        where, counts = asyncio.run(_copy_into_postgres(snapshot, url))
    print(f"imported {source} into {where}")
    for table in TABLES:
        if table != "decision_log_through":
            print(f"  {table:<12} {counts[table]:>9}")
    print("every table holds as many rows as the file's")
    return 0


async def _copy_into_postgres(snapshot: Path, url: str) -> tuple[str, dict[str, int]]:
    source = await SqliteStorage.open_file(snapshot)
    try:
        target = await PostgresStorage.connect(url)
        try:
            return target.where, await target.import_sqlite(source)
        finally:
            await target.close()
    finally:
        await source.close()


# --- helpers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Summary:
    seq: int
    tickets: int


def _summary(connection: sqlite3.Connection) -> _Summary:
    (seq,) = connection.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    (tickets,) = connection.execute("SELECT COUNT(*) FROM tickets").fetchone()
    return _Summary(int(seq), int(tickets))


@contextlib.contextmanager
def _open_database(path: Path, what: str) -> Iterator[sqlite3.Connection]:
    """An existing SQLite file, for reading (never created by accident: a typo must not look like an
    empty board)."""
    if not path.exists():
        raise _Refused(f"no {what} at {path}")
    if not path.is_file():
        raise _Refused(f"{path} is not a file")
    try:
        # Read-write mode but query_only, rather than mode=ro: a read-only connection to a WAL database
        # leaves -wal and -shm files behind, and if root ran this they would lock the server's user out.
        # A normal connection removes them again when it is the last to close.
        connection = sqlite3.connect(_uri(path, "rw"), uri=True, isolation_level=None, timeout=_READ_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise _Refused(f"cannot open {what} {path}: {_sqlite_reason(exc)}") from None
    try:
        connection.execute("PRAGMA query_only = ON")
        yield connection
    except sqlite3.DatabaseError as exc:
        if _is_busy(exc):
            raise
        raise _Refused(f"{what} {path} is unreadable or corrupt: {_sqlite_reason(exc)}") from None
    finally:
        connection.close()


def _check_schema(connection: sqlite3.Connection, what: str) -> int:
    """The schema version; refuses a newer one, and a file that is not a dispatch database."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise _Refused(
            f"{what} has schema version {version}, newer than this release understands ({SCHEMA_VERSION});"
            " upgrade dispatch-server"
        )
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version < 1 or not _TABLES <= tables:
        raise _Refused(f"{what} is not a dispatch database")
    return int(version)


def _first_problem(rows: list[tuple[object, ...]]) -> str:
    """The first problem an integrity check reported, as one line (its report spans many)."""
    lines = [line.strip() for row in rows for line in str(row[0]).splitlines()]
    problems = [line for line in lines if line and not line.startswith("***")]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return (problems[0] if problems else "unknown problem") + more


def _is_busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _sqlite_reason(exc: sqlite3.Error) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _uri(path: Path, mode: str) -> str:
    # as_uri() percent-encodes, so a path with '?' or '#' still names the file.
    return f"{path.resolve().as_uri()}?mode={mode}"


def _same_owner(path: Path, like: Path) -> None:
    """Give the restored file the owner and mode of the one it replaces: restored as root, it must still
    be writable by the server's own user."""
    status = like.stat()
    with contextlib.suppress(PermissionError):  # only root may give files away; others keep their own
        os.chown(path, status.st_uid, status.st_gid)
    os.chmod(path, stat.S_IMODE(status.st_mode))


def _sibling(path: Path, suffix: str) -> Path:
    """`dispatch.db` + `-wal` -> `dispatch.db-wal` (SQLite's own naming for its side files)."""
    return path.with_name(path.name + suffix)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _fsync(path: Path) -> None:
    """Make a written file (or a rename in a directory) durable before saying it is done."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{value:.1f} {unit}"
