"""`dispatch-server`: the headless server and its operator commands.

    dispatch-server --version
    dispatch-server --db PATH serve [--host H] [--port P] [--log FILE] [--auto-assign] [--decision-log FILE]
                                    [--policy FILE] [--sla FILE] [--roster FILE] [--tls-cert FILE --tls-key FILE]
                                    [--allowed-origin URL ...] [--notify URL ...] [--node NAME]
                                    [--rate-limit N] [--max-connections N] [--max-connections-per-token N]
                                    [--http-port P] [--client-label NAME]
    dispatch-server --db PATH token create --role ROLE --name NAME [--tech TECH_ID]
    dispatch-server --db PATH token list
    dispatch-server --db PATH token revoke NAME
    dispatch-server --db PATH report [--incident INC-7 | --since 6h] [--out DIR]
    dispatch-server --db PATH decisions [--since 2h] [--ticket T] [--technician TECH] [--format table|json]
    dispatch-server --db PATH backup FILE [--force] | restore FILE [--force]
    dispatch-server --db PATH stats [--server URL] [--decision-log FILE]
    dispatch-server --db postgresql://USER@HOST/DB import-sqlite FILE
    dispatch-server sla check FILE --client NAME --priority P2 [--at ISO-TIME]

PATH is a SQLite file; a postgresql:// (or postgres://) URL in its place keeps everything in PostgreSQL
instead (server/pgstorage.py), where every command works the same but backup and restore (pg_dump's job).

Every default of `serve` comes from server.settings.DEFAULTS, which its --help shows; durations
(`--since`) are read by dispatch.core.durations (30m, 2h, 1d, 1w, 1h30m; more than zero).

Every failure a user can cause (corrupt or newer database, port in use, duplicate token name, a policy
file with a typo) is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import re
import secrets
import signal
import ssl
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import IO

from dispatch.core.allocation import AllocationPolicy
from dispatch.core.config import ConfigError
from dispatch.core.models import Role
from dispatch.core.version import version_line
from server.app import DispatchServer, install_stop_signals
from server.decisions import default_decision_log, show_decisions
from server.embedded import running
from server.http import HttpListenError
from server.notify import usable
from server.operations import add_operations_parsers, run_operation
from server.report import ReportError, add_report_parser, run_report
from server.roster import load_roster, pending_technicians
from server.settings import DEFAULTS, ServerSettings, read_config_file
from server.sla import add_sla_parser, load_contracts, run_sla_check
from server.storage import Storage, StorageError, is_postgres_url

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a pipeline reader that stopped early
log = logging.getLogger("dispatch.server")
TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


class _Refused(Exception):
    """A one-line reason to stop with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dispatch-server", description="Dispatch board server (headless).")
    parser.add_argument("--version", action="version", version=version_line("dispatch-server"))
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="SQLite database file (created if missing), or postgresql://USER@HOST/DB; every command but sla needs it",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the websocket server")
    # Every default below is DEFAULTS' (server/settings.py), shown by --help as "(default ...)".
    serve.add_argument("--host", default=DEFAULTS.host, help="address to listen on (default %(default)s)")
    serve.add_argument("--port", type=int, default=DEFAULTS.port, help="0 picks a free port (default %(default)s)")
    serve.add_argument("--log", metavar="FILE", help="write every event as a JSON line here (default: stdout)")
    serve.add_argument(
        "--node", metavar="NAME", default=DEFAULTS.node,
        help="this server's name, told to clients, when several share one PostgreSQL "
             "(default: HOST:PORT; the host name for 0.0.0.0)",
    )  # fmt: skip
    serve.add_argument("--auto-assign", action="store_true", help="assign new and returned tickets by itself")
    serve.add_argument(
        "--decision-log", metavar="FILE", help="one JSON line per allocation (default: beside the database)"
    )
    serve.add_argument(
        "--preempt", action="store_true", help="with --auto-assign: a P1 nobody free can take may displace P3/P4 work"
    )
    serve.add_argument("--policy", metavar="FILE", help="allocation weights, TOML ([allocation] table)")
    serve.add_argument(
        "--sla", metavar="FILE", help="SLA contracts, TOML: tiers, calendars, clients (re-read on SIGHUP)"
    )
    serve.add_argument(
        "--roster", metavar="FILE", help="shifts, on-call rotations, fatigue rules, call-outs, TOML (re-read on SIGHUP)"
    )
    serve.add_argument(
        "--notify", metavar="URL", action="append", default=[],
        help="an apprise URL (ntfys://, mailto://, json://, ...) that hears of P1 escalations, SLA breaches,"
        " bursts and call-outs (repeatable)",
    )  # fmt: skip
    serve.add_argument(
        "--dedupe-window", metavar="MIN", type=float, default=DEFAULTS.dedupe_window_minutes,
        help="a report with a dedupe key joins an open ticket with that key this many minutes old "
        "(default %(default)g)",
    )  # fmt: skip
    serve.add_argument(
        "--burst-threshold", metavar="N", type=int, default=DEFAULTS.burst_threshold,
        help="this many incident-less tickets from one client, site or category is a burst "
        "(default %(default)s; 0: off)",
    )  # fmt: skip
    serve.add_argument(
        "--burst-window", metavar="MIN", type=float, default=DEFAULTS.burst_window_minutes,
        help="... within MIN minutes (default %(default)g)",
    )  # fmt: skip
    intake = serve.add_argument_group("HTTP intake and metrics")
    intake.add_argument(
        "--http-port", metavar="P", type=_port, default=DEFAULTS.http_port,
        help="also listen for HTTP: POST /v1/tickets, /v1/alerts/alertmanager, /v1/alerts/grafana, "
        "GET /metrics (0 picks a free port; default: no HTTP listener)",
    )  # fmt: skip
    intake.add_argument(
        "--client-label", metavar="NAME", default=DEFAULTS.client_label,
        help="the alert label that names the client an alert is about (default %(default)s)",
    )  # fmt: skip
    security = serve.add_argument_group("exposure beyond loopback")
    security.add_argument("--tls-cert", metavar="FILE", help="PEM certificate (chain): serve wss:// instead of ws://")
    security.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    security.add_argument(
        "--allowed-origin", metavar="URL", action="append", default=[],
        help="a web page origin allowed to connect (repeatable); other browser origins get 403",
    )  # fmt: skip
    security.add_argument(
        "--rate-limit", metavar="N", type=_non_negative, default=DEFAULTS.rate_limit,
        help="commands per second one connection may sustain, bursts of 2N (default %(default)g; 0: no limit)",
    )  # fmt: skip
    security.add_argument(
        "--max-connections", metavar="N", type=_positive, default=DEFAULTS.max_connections,
        help="in all (default %(default)s)",
    )  # fmt: skip
    security.add_argument(
        "--max-connections-per-token", metavar="N", type=_positive, default=DEFAULTS.max_connections_per_token,
        help="per token (default %(default)s)",
    )  # fmt: skip
    # For tests, screenshots and demos that must look the same every time: the clock stands still.
    serve.add_argument("--fixed-clock", metavar="ISO8601", type=_utc_datetime, help=argparse.SUPPRESS)

    token = commands.add_parser("token", help="create, list or revoke access tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="print a new token as the last line")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", required=True, help="unique name; shown as the actor of this token's changes")
    create.add_argument("--tech", metavar="TECH_ID", help="the technician this token acts as (role technician)")
    token_commands.add_parser("list", help="list tokens (never their secrets)")
    revoke = token_commands.add_parser("revoke", help="revoke a token and close its open connections")
    revoke.add_argument("name")
    decisions = commands.add_parser(
        "decisions", help="the allocation decisions stored in the database: who got what, when and why"
    )
    decisions.add_argument("--since", metavar="DURATION", help="only the last 30m, 2h, 1d ...")
    decisions.add_argument("--ticket", metavar="T", help="only decisions about this ticket")
    decisions.add_argument("--technician", metavar="TECH", help="only work given to or taken from this technician")
    decisions.add_argument("--format", choices=("table", "json"), default="table")
    add_report_parser(commands)
    add_operations_parsers(commands)
    add_sla_parser(commands)
    return parser


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number >= 0")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def _tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise _Refused("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise _Refused(f"cannot read {exc.filename}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise _Refused(f"cannot use {cert} with {key} as a TLS certificate: {exc.strerror or exc}") from None
    return context


def _utc_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.db is None and args.command != "sla":
        parser.error("the following arguments are required: --db")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    # One line per connection would drown the allocation lines an operator reads.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    # While PostgreSQL is away asyncpg retries its pool's floor and logs each failure with a traceback;
    # the server says it once in its own words ("cannot store: ... unreachable", "the database is back").
    logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)
    try:
        if args.command == "serve":
            return asyncio.run(_serve(args))
        if args.command == "report":
            return asyncio.run(run_report(args))
        if args.command == "decisions":
            return show_decisions(args)
        if args.command in ("backup", "restore", "stats", "import-sqlite"):
            return run_operation(args)
        if args.command == "sla":
            return run_sla_check(args)
        return asyncio.run(_token(args))
    except (StorageError, _Refused, ReportError, ConfigError) as exc:
        print(f"dispatch-server: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (`token list | head`): stop quietly, as cat and grep do, and keep
        # Python from complaining when it flushes stdout on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


async def _serve(args: argparse.Namespace) -> int:
    # Options that can be wrong are read before the database opens: a refusal then leaves nothing
    # running (an open aiosqlite connection's thread would keep the process alive).
    allocation = (
        AllocationPolicy.from_toml(read_config_file(args.policy), args.policy) if args.policy else AllocationPolicy()
    )
    contracts = load_contracts(args.sla)
    roster = load_roster(args.roster)
    tls = _tls_context(args.tls_cert, args.tls_key)
    for url in args.notify:
        if not usable(url):
            # Only the scheme: the rest of a notification URL is often a token.
            raise _Refused(f"--notify {url.split('://', 1)[0]}://…: not a URL apprise can send to")
    storage = await Storage.open(args.db)
    try:
        with ExitStack() as files:
            event_log: IO[str] = files.enter_context(open(args.log, "a", encoding="utf-8")) if args.log else sys.stdout
            # On PostgreSQL there is no "beside the database": the file is written only when asked for.
            decision_path = args.decision_log or (None if is_postgres_url(args.db) else default_decision_log(args.db))
            decision_log = files.enter_context(open(decision_path, "a", encoding="utf-8")) if decision_path else None
            settings = ServerSettings(
                host=args.host, port=args.port, allocation=allocation, auto_assign=args.auto_assign,
                contracts=contracts, roster=roster,
                preempt=args.preempt, decision_log=decision_log, dedupe_window_minutes=args.dedupe_window,
                burst_threshold=args.burst_threshold, burst_window_minutes=args.burst_window,
                tls=tls, allowed_origins=tuple(args.allowed_origin),
                rate_limit=args.rate_limit,
                max_connections=args.max_connections, max_connections_per_token=args.max_connections_per_token,
                http_port=args.http_port, client_label=args.client_label,
                notify=tuple(args.notify), node=args.node,
            )  # fmt: skip
            if args.fixed_clock is not None:
                fixed: datetime = args.fixed_clock
                settings.clock = lambda: fixed
            stop = asyncio.Event()
            install_stop_signals(stop)
            listening = False
            try:
                async with running(storage, settings, event_log, stop=stop) as server:
                    listening = True
                    pending = pending_technicians(roster, server.server.state.technicians)
                    if pending:
                        log.info("roster: %s not on the team yet; their entries apply once added", ", ".join(pending))
                    _reload_files_on_sighup(server.server, args.sla, args.roster)
                    # Printed on stdout once the socket is bound: scripts and tests wait for this line.
                    print(f"listening on {server.url}", flush=True)
                    if server.server.http_url is not None:
                        print(f"http on {server.server.http_url}", flush=True)
                    await server.wait()
            except HttpListenError as exc:
                raise _Refused(exc.strerror) from None
            except OSError as exc:
                if listening:
                    raise _Refused(f"stopped: {exc}") from None
                if exc.errno == errno.EADDRINUSE:
                    raise _Refused(f"port {args.port} on {args.host} is already in use") from None
                raise _Refused(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
            except StorageError as exc:
                if not listening:
                    raise  # the database could not be loaded: its own one-line reason
                raise _Refused(f"stopped: {exc}") from None
            except Exception as exc:
                raise _Refused(f"stopped: {exc}") from None
    finally:
        await storage.close()
    return 0


def _reload_files_on_sighup(server: DispatchServer, sla: str | None, roster: str | None) -> None:
    """SIGHUP re-reads the SLA and roster files: new tickets get the new terms, open ones keep theirs;
    shifts and call-outs follow the new roster. A file with a mistake keeps the old contents of both
    and says why in one line."""

    def reload() -> None:
        try:
            contracts, people = load_contracts(sla), load_roster(roster)
        except ConfigError as exc:
            log.error("files not reloaded, the old terms and roster stand: %s", exc)
            return
        server.use_files(contracts, people)
        log.info(
            "reloaded %s", " and ".join(path for path in (sla, roster) if path) or "nothing (no --sla or --roster)"
        )

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


async def _token(args: argparse.Namespace) -> int:
    storage = await Storage.open(args.db)
    try:
        if args.token_command == "create":
            role = Role(args.role)
            if role is Role.TECHNICIAN and not args.tech:
                raise _Refused("a technician token needs --tech TECH_ID")
            if role is not Role.TECHNICIAN and args.tech:
                raise _Refused("--tech is only for --role technician")
            # The name is the actor shown on every board: the same strict alphabet as any identifier.
            if not TOKEN_NAME.fullmatch(args.name):
                raise _Refused(
                    "a token name is letters, digits and . _ : - (at most 64), starting with a letter or digit"
                )
            if args.tech and not TOKEN_NAME.fullmatch(args.tech):
                raise _Refused("a technician id is letters, digits and . _ : - (at most 64)")
            token = secrets.token_urlsafe(32)
            await storage.create_token(args.name, role, args.tech, token)
            print(f"created {role} token {args.name!r}" + (f" for technician {args.tech}" if args.tech else ""))
            print("store it now: only its hash is kept")
            print(token)
        elif args.token_command == "list":
            for record in await storage.list_tokens():
                state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
                tech = record.tech_id or "-"
                print(f"{record.name:<20} {record.role:<11} {tech:<12} created {record.created_at}  {state}")
        elif args.token_command == "revoke":
            if not await storage.revoke_token(args.name):
                raise _Refused(f"no active token named {args.name!r}")
            print(f"revoked {args.name!r}; a running server closes its connections within a second")
    finally:
        await storage.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
