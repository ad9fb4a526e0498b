"""The scriptable commands: tickets, technicians and outage simulation over the board's own protocol.

    dispatch ticket new --title T --client C --priority P1 [--site S] [--category C] [--skills a,b]
    dispatch ticket list [--lane P1] [--json]
    dispatch assign TICKET_ID TECH_ID [--expected-version N]
    dispatch tech list [--json]
    dispatch tech status TECH_ID STATUS
    dispatch callout send TECH_ID [--reason TEXT] | accept CALLOUT_ID | decline CALLOUT_ID | list
    dispatch incident update INCIDENT_ID --message TEXT
    dispatch simulate [--scenario NAME] [--rate 30/min] [--duration 10m] [--speed 10] [--seed 7] [--team]
    dispatch import FILE.csv|FILE.json [--dry-run]          (dispatch/importer.py)

Each takes `--server URL` (or DISPATCH_SERVER, default ws://127.0.0.1:8765) and `--token T` (or
DISPATCH_TOKEN). Results go to stdout; a failure is one line on stderr and one of these exit statuses,
the same for every command, so that a script can branch on them:

    0    done
    1    the server found the request invalid, or another failure; `import`: some rows were skipped
    2    usage: a bad option or value, no token, an unusable import file, an unsupported option
    3    the token was refused, or its role may not do this (forbidden) -- as `dispatch board`
    4    not found: no such ticket or technician
    5    conflict: the change changes nothing (already assigned to them, already on break) or the
         ticket moved on (`--expected-version`, a closed ticket)
    6    cannot reach the server, or the connection dropped before the server answered
    7    rate limited by the server (after the client backed off and resent 8 times)
    130  interrupted (Ctrl+C); `simulate` prints its summary first
    141  stdout was closed early (`dispatch ticket list | head`), as other Unix tools
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed, InvalidURI
from websockets.uri import parse_uri

from dispatch.client import (
    DEFAULT_SERVER,
    AccessRefused,
    CommandSession,
    new_command_id,
    server_addresses,
    tls_context,
)
from dispatch.core.calendars import ALWAYS_OPEN, Calendar
from dispatch.core.durations import DurationError, format_left, parse_duration
from dispatch.core.models import OPEN_STATUSES, Category, Priority, TechStatus, Ticket
from dispatch.core.protocol import (
    Ack,
    AddTechnician,
    AnswerCallout,
    Assign,
    CalloutCommand,
    Command,
    CreateTicket,
    Error,
    ErrorCode,
    GetHistory,
    History,
    ServerFrame,
    SetTechStatus,
    Snapshot,
    TicketEvent,
    UpdateClients,
    Welcome,
)
from dispatch.core.sla import current_target, read_clock
from dispatch.simulator import SCENARIOS, Outage, parse_rate, play, roster

__all__ = [
    "ExitCode",
    "CommandFailed",
    "EXIT_STATUS_HELP",
    "add_commands",
    "connection_options",
    "open_session",
    "send",
    "run",
    "validation_message",
]


class ExitCode(IntEnum):
    """Exit statuses of the scriptable commands (the module docstring says when each is used)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    REFUSED = 3
    NOT_FOUND = 4
    CONFLICT = 5
    UNREACHABLE = 6
    RATE_LIMITED = 7
    INTERRUPTED = 130
    BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a pipeline reader that stopped early


# The simulator builds a run's tickets up front (about 1.5 s per 100,000): keep a run to that.
MAX_SIMULATED_TICKETS = 100_000
# `simulate` lines up its columns for the shipped clients (the longest has 16 characters).
CLIENT_WIDTH = 18

EXIT_FOR_ERROR = {
    ErrorCode.INVALID: ExitCode.FAILED,
    ErrorCode.FORBIDDEN: ExitCode.REFUSED,
    ErrorCode.NOT_FOUND: ExitCode.NOT_FOUND,
    ErrorCode.CONFLICT: ExitCode.CONFLICT,
    ErrorCode.RATE_LIMITED: ExitCode.RATE_LIMITED,
    ErrorCode.UNAVAILABLE: ExitCode.UNREACHABLE,
}

EXIT_STATUS_HELP = """\
exit status:
  0    done
  1    invalid request or other failure; import: some rows were skipped
  2    usage: bad option or value, no token, unusable import file
  3    token refused, or the role may not do this (forbidden)
  4    not found (no such ticket or technician)
  5    conflict (changes nothing, or the ticket moved on)
  6    cannot reach the server, or the connection dropped
  7    rate limited
  130  interrupted (Ctrl+C)
  141  stdout closed early (| head)

server and token: --server URL / DISPATCH_SERVER (default ws://127.0.0.1:8765; several
servers sharing one database: URL,URL,... the first that answers), --token T / DISPATCH_TOKEN"""


class CommandFailed(Exception):
    """A one-line reason for stderr, and the exit status the command ends with."""

    def __init__(self, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Target:
    """Where to connect and as whom."""

    url: str
    token: str
    tls: ssl.SSLContext | None = None


# --- the parser -----------------------------------------------------------------------------------


def connection_options() -> argparse.ArgumentParser:
    """The options every scripted command takes, as a parent parser."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "--server",
        default=os.environ.get("DISPATCH_SERVER", DEFAULT_SERVER),
        metavar="URL",
        help=f"websocket address, or several: URL,URL (the first that answers) (default: $DISPATCH_SERVER or "
        f"{DEFAULT_SERVER})",
    )
    group.add_argument(
        "--token", default=os.environ.get("DISPATCH_TOKEN"), metavar="T", help="access token (default: $DISPATCH_TOKEN)"
    )
    group.add_argument(
        "--ca-file",
        default=os.environ.get("DISPATCH_CA_FILE"),
        metavar="PEM",
        help="for wss://: trust this CA (a private one) instead of the system's (default: $DISPATCH_CA_FILE)",
    )
    return common


def _subparser(
    commands: Any, name: str, help_text: str, common: argparse.ArgumentParser, **kwargs: Any
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=help_text[0].upper() + help_text[1:] + ".",
        parents=[common],
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )
    return parser


def _priority(text: str) -> Priority:
    try:
        return Priority(text.strip().upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be one of P1, P2, P3, P4, not {text!r}") from None


def _rate(text: str) -> float:
    try:
        rate = parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc} (e.g. 30/min, 2/s, 600/h)") from None
    if not math.isfinite(rate):
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate (e.g. 30/min, 2/s, 600/h)")
    return rate


def _duration(text: str) -> float:
    """Seconds of simulated time, read by the one duration parser (dispatch.core.durations)."""
    try:
        return parse_duration(text).total_seconds()
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError("must be more than zero and finite")
    return value


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `ticket`, `assign`, `tech` and `simulate` to `dispatch`'s subcommands."""
    ticket = commands.add_parser("ticket", help="open and list tickets")
    ticket_commands = ticket.add_subparsers(dest="ticket_command", required=True, metavar="{new,list}")
    new = _subparser(ticket_commands, "new", "open a ticket and print its id", common)
    new.add_argument("--title", required=True, help="what is wrong, up to 200 characters")
    new.add_argument("--client", required=True, help="the client's name, up to 100 characters")
    new.add_argument("--priority", required=True, type=_priority, metavar="P1..P4", help="P1 critical .. P4 low")
    new.add_argument("--site", default="", help="where, up to 100 characters")
    new.add_argument("--category", choices=[c.value for c in Category], default=Category.OTHER.value)
    new.add_argument("--skills", default="", metavar="A,B", help="skills the work needs, comma-separated")
    new.add_argument(
        "--dedupe-key", metavar="K", help="an open ticket reported with the same key recently (the server's window,"
        " default 60 min) counts this report as a duplicate instead of opening a new ticket",
    )  # fmt: skip
    new.set_defaults(run=ticket_new, prog_name="dispatch ticket new")

    listing = _subparser(ticket_commands, "list", "list open tickets, most urgent SLA first", common)
    listing.add_argument("--lane", type=_priority, metavar="P1..P4", help="only this priority")
    listing.add_argument("--json", action="store_true", help="print a JSON list of ticket objects")
    listing.set_defaults(run=ticket_list, prog_name="dispatch ticket list")

    assign = _subparser(commands, "assign", "give a ticket to a technician (also a reassignment)", common)
    assign.add_argument("ticket_id", metavar="TICKET_ID")
    assign.add_argument("tech_id", metavar="TECH_ID")
    assign.add_argument(
        "--expected-version", type=int, metavar="N", help="refuse (exit 5) unless the ticket is still at version N"
    )
    assign.set_defaults(run=assign_ticket, prog_name="dispatch assign")

    tech = commands.add_parser("tech", help="add and list technicians, set availability")
    tech_commands = tech.add_subparsers(dest="tech_command", required=True, metavar="{add,list,status}")
    add = _subparser(tech_commands, "add", "put a technician on the roster (dispatcher token)", common)
    add.add_argument("tech_id", metavar="TECH_ID")
    add.add_argument("--name", required=True)
    add.add_argument("--skills", default="", metavar="A,B", help="comma-separated skills")
    add.add_argument("--capacity", type=int, default=3, help="active tickets at once (default: %(default)s)")
    add.add_argument(
        "--notify", metavar="URL", help="an apprise URL (ntfys://, mailto://, ...) where they hear of their"
        " assignments and call-outs; kept on the server, never shown on a board",
    )  # fmt: skip
    add.set_defaults(run=technician_add, prog_name="dispatch tech add")
    tech_list = _subparser(tech_commands, "list", "list technicians with status, load and skills", common)
    tech_list.add_argument("--json", action="store_true", help="print a JSON list of technician objects")
    tech_list.set_defaults(run=technician_list, prog_name="dispatch tech list")
    status = _subparser(tech_commands, "status", "set a technician's availability", common)
    status.add_argument("tech_id", metavar="TECH_ID")
    statuses = [s.value for s in TechStatus]
    status.add_argument("status", choices=statuses, metavar="STATUS", help=", ".join(statuses))
    status.set_defaults(run=technician_status, prog_name="dispatch tech status")

    simulate = _subparser(
        commands, "simulate", "play an outage burst into the server (intake or dispatcher token)", common
    )
    simulate.add_argument("--scenario", choices=SCENARIOS, default=SCENARIOS[0])
    simulate.add_argument(
        "--rate", type=_rate, default="30/min", metavar="N/UNIT", help="tickets per s, min or h (default: %(default)s)"
    )
    simulate.add_argument(
        "--duration", type=_duration, default="10m", metavar="TIME", help="simulated time: 90s, 10m, 1h (default: 10m)"
    )
    simulate.add_argument(
        "--speed", type=_speed, default=1.0, metavar="N", help="play N times faster than real time (default: 1)"
    )
    simulate.add_argument("--seed", type=int, default=7, metavar="N", help="same seed, same tickets (default: 7)")
    simulate.add_argument(
        "--team", action="store_true", help="first add the shipped team of twelve technicians (dispatcher token)"
    )
    simulate.set_defaults(run=simulate_outage, prog_name="dispatch simulate")

    callout = commands.add_parser("callout", help="call a technician in, answer a call-out, list those waiting")
    callout_commands = callout.add_subparsers(
        dest="callout_command", required=True, metavar="{send,accept,decline,list}"
    )
    send_one = _subparser(callout_commands, "send", "call an off-shift technician in (dispatcher token)", common)
    send_one.add_argument("tech_id", metavar="TECH_ID")
    send_one.add_argument("--reason", default="", help="said to them with the call-out")
    send_one.set_defaults(run=callout_send, prog_name="dispatch callout send")
    for verb, accept in (("accept", True), ("decline", False)):
        answer = _subparser(callout_commands, verb, f"{verb} a call-out sent to you (technician token)", common)
        answer.add_argument("callout_id", metavar="CALLOUT_ID")
        answer.set_defaults(run=callout_answer, accept=accept, prog_name=f"dispatch callout {verb}")
    waiting = _subparser(callout_commands, "list", "call-outs waiting for an answer (yours, with a technician token)",
                         common)  # fmt: skip
    waiting.set_defaults(run=callout_list, prog_name="dispatch callout list")

    incident = commands.add_parser("incident", help="tell the clients of an incident what is going on")
    incident_commands = incident.add_subparsers(dest="incident_command", required=True, metavar="{update}")
    update = _subparser(
        incident_commands, "update", "send a message to the contacts of every client with an open ticket in the"
        " incident, and record it on those tickets (dispatcher token)", common,
    )  # fmt: skip
    update.add_argument("incident_id", metavar="INCIDENT_ID")
    update.add_argument("--message", required=True, help="what the clients are told, up to 2000 characters")
    update.set_defaults(run=incident_update, prog_name="dispatch incident update")


# --- running a command ----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run a scripted command's coroutine; turn every user-facing failure into one line and a status."""
    prog: str = args.prog_name
    handler: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.run
    try:
        return asyncio.run(handler(args))
    except CommandFailed as failed:
        print(f"{prog}: {failed}", file=sys.stderr)
        return failed.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted{getattr(args, 'interrupted_note', '')}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`dispatch ticket list | head`): stop quietly, as cat and grep do, and
        # keep Python from complaining when it flushes stdout on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.BROKEN_PIPE


def target_of(args: argparse.Namespace) -> Target:
    """The server and token from the options or the environment; usage errors before any connection."""
    token = args.token
    if not token:
        raise CommandFailed("no token: pass --token or set DISPATCH_TOKEN", ExitCode.USAGE)
    url: str = args.server
    for address in server_addresses(url) or [url]:
        try:
            parse_uri(address)
        except InvalidURI:
            raise CommandFailed(
                f"the server address must look like ws://HOST:PORT or wss://HOST:PORT, not {address!r}",
                ExitCode.USAGE,
            ) from None
    try:
        tls = tls_context(args.ca_file)
    except ValueError as exc:
        raise CommandFailed(str(exc), ExitCode.USAGE) from None
    return Target(url, token, tls)


@asynccontextmanager
async def open_session(target: Target) -> AsyncIterator[CommandSession]:
    """A `CommandSession` with the first of the target's servers that answers, or `CommandFailed` with
    status 3 (token) or 6 (none can be reached)."""
    unreachable: list[str] = []
    for url in server_addresses(target.url):
        try:
            session = await CommandSession.open(url, target.token, ssl_context=target.tls)
            break
        except AccessRefused:
            raise CommandFailed("the server refused the token (wrong or revoked)", ExitCode.REFUSED) from None
        except OSError as exc:
            unreachable.append(f"{url} ({_describe(exc)})")
    else:
        raise CommandFailed(f"cannot reach the server at {', '.join(unreachable)}", ExitCode.UNREACHABLE)
    try:
        yield session
    finally:
        await session.close()


def _describe(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return exc.strerror or str(exc) or type(exc).__name__


async def send(session: CommandSession, command: Command) -> ServerFrame:
    """Send one command and return its reply; `CommandFailed` (6) when the connection drops first."""
    try:
        return await session.call(command)
    except (ConnectionError, ConnectionClosed):
        raise CommandFailed("the connection to the server dropped before it answered", ExitCode.UNREACHABLE) from None
    except TimeoutError:
        raise CommandFailed("the server did not answer in time", ExitCode.UNREACHABLE) from None


def refusal(error: Error) -> CommandFailed:
    """The server's refusal as a failure with the exit status for its code."""
    return CommandFailed(error.message, EXIT_FOR_ERROR.get(error.code, ExitCode.FAILED))


async def _expect_ack(session: CommandSession, command: Command) -> Ack:
    reply = await send(session, command)
    if isinstance(reply, Error):
        raise refusal(reply)
    if not isinstance(reply, Ack):
        raise CommandFailed(f"unexpected answer from the server: {reply.type}", ExitCode.FAILED)
    return reply


def _snapshot(session: CommandSession) -> Snapshot:
    if not isinstance(session.snapshot, Snapshot):
        raise CommandFailed("the server did not send a snapshot", ExitCode.FAILED)
    return session.snapshot


def validation_message(error: ValidationError) -> str:
    """The first problem as `field: reason (got 'value')`, for a command checked before it is sent."""
    problems = error.errors(include_url=False)
    first = problems[0]
    location = ".".join(str(part) for part in first["loc"]) or "value"
    message = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    if isinstance(value, str) and first["type"] != "missing" and 0 < len(value) <= 40:
        message += f" (got {value!r})"
    more = len(problems) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return f"{location}: {message}"


def split_skills(text: str) -> list[str]:
    """`network, voip;firewall` -> ['network', 'voip', 'firewall']: commas or semicolons, blanks dropped."""
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


# --- ticket ---------------------------------------------------------------------------------------


async def ticket_new(args: argparse.Namespace) -> int:
    """`dispatch ticket new`: print the new ticket's id."""
    target = target_of(args)
    try:
        command = CreateTicket(
            type="create_ticket",
            command_id=new_command_id(),
            title=args.title,
            client=args.client,
            priority=args.priority,
            site=args.site,
            category=Category(args.category),
            skills=split_skills(args.skills),
            dedupe_key=args.dedupe_key,
        )
    except ValidationError as exc:
        raise CommandFailed(validation_message(exc), ExitCode.FAILED) from None
    async with open_session(target) as session:
        ack = await _expect_ack(session, command)
    if ack.deduplicated:
        print(f"{ack.ticket_id} (duplicate of an open ticket; count {ack.duplicates})")
    else:
        print(ack.ticket_id)
    return ExitCode.OK


def sla_order(ticket: Ticket) -> tuple[datetime, str]:
    """The board's lane order: the clock that counts now (respond-by until taken), then the id."""
    return current_target(ticket)[1], ticket.id


async def ticket_list(args: argparse.Namespace) -> int:
    """`dispatch ticket list`: open tickets, most urgent first, as a table or JSON."""
    target = target_of(args)
    async with open_session(target) as session:
        snapshot = _snapshot(session)
    tickets = sorted(
        (t for t in snapshot.tickets if t.status in OPEN_STATUSES and (args.lane is None or t.priority is args.lane)),
        key=sla_order,
    )
    if args.json:
        print(json.dumps([t.model_dump(mode="json") for t in tickets], indent=2, ensure_ascii=False))
        return ExitCode.OK
    if not tickets:
        print("no open tickets" + (f" in {args.lane}" if args.lane else ""), file=sys.stderr)
        return ExitCode.OK
    now = datetime.now(UTC)
    calendars = {c.name: Calendar.from_hours(c) for c in snapshot.calendars}
    rows = []
    for t in tickets:
        # Open time left on the ticket's own calendar, and the due time in that calendar's zone.
        calendar = calendars.get(t.calendar, ALWAYS_OPEN)
        reading = read_clock(t, now, calendar)
        due = f"{calendar.local(reading.due):%a %d %b %H:%M %Z}"
        rows.append([t.id, t.priority.value, t.status.value, t.assignee or "-", format_left(reading.left), due,
                     t.client, t.title])  # fmt: skip
    _print_table(["ID", "PRI", "STATUS", "ASSIGNEE", "SLA LEFT", "DUE", "CLIENT", "TITLE"], rows)
    return ExitCode.OK


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    # Plain aligned columns: readable in a terminal, and `awk`/`cut` friendly; the last column is not padded.
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))


# --- assign and technicians -----------------------------------------------------------------------


async def assign_ticket(args: argparse.Namespace) -> int:
    """`dispatch assign T-000042 alice`."""
    target = target_of(args)
    try:
        command = Assign(
            type="assign",
            command_id=new_command_id(),
            ticket_id=args.ticket_id,
            tech_id=args.tech_id,
            expected_version=args.expected_version,
        )
    except ValidationError as exc:
        raise CommandFailed(validation_message(exc), ExitCode.FAILED) from None
    async with open_session(target) as session:
        await _expect_ack(session, command)
    print(f"{command.ticket_id} -> {command.tech_id}")
    return ExitCode.OK


async def technician_list(args: argparse.Namespace) -> int:
    """`dispatch tech list`: id, name, status, load against capacity, skills."""
    target = target_of(args)
    async with open_session(target) as session:
        snapshot = _snapshot(session)
    technicians = sorted(snapshot.technicians, key=lambda t: t.id)
    if args.json:
        print(json.dumps([t.model_dump(mode="json") for t in technicians], indent=2, ensure_ascii=False))
        return ExitCode.OK
    if not technicians:
        print("no technicians", file=sys.stderr)
        return ExitCode.OK
    # Load as the board counts it: open tickets held by the technician.
    load: dict[str, int] = {}
    for ticket in snapshot.tickets:
        if ticket.assignee is not None and ticket.status in OPEN_STATUSES:
            load[ticket.assignee] = load.get(ticket.assignee, 0) + 1
    rows = [
        [t.id, t.name, t.status.value, f"{load.get(t.id, 0)}/{t.capacity}", ",".join(t.skills) or "-"]
        for t in technicians
    ]
    _print_table(["ID", "NAME", "STATUS", "LOAD", "SKILLS"], rows)
    return ExitCode.OK


async def technician_add(args: argparse.Namespace) -> int:
    """`dispatch tech add alice --name "Alice Moreau" --skills network,firewall --capacity 4`."""
    target = target_of(args)
    try:
        command = AddTechnician(
            type="add_technician", command_id=new_command_id(), tech_id=args.tech_id, name=args.name,
            skills=[skill for skill in args.skills.split(",") if skill.strip()], capacity=args.capacity,
            notify=args.notify,
        )  # fmt: skip
    except ValidationError as exc:
        raise CommandFailed(validation_message(exc), ExitCode.FAILED) from None
    async with open_session(target) as session:
        await _expect_ack(session, command)
    print(f"{command.tech_id} added ({', '.join(command.skills) or 'no skills'}, capacity {command.capacity})")
    return ExitCode.OK


async def technician_status(args: argparse.Namespace) -> int:
    """`dispatch tech status alice break`."""
    target = target_of(args)
    try:
        command = SetTechStatus(
            type="set_tech_status", command_id=new_command_id(), tech_id=args.tech_id, status=TechStatus(args.status)
        )
    except ValidationError as exc:
        raise CommandFailed(validation_message(exc), ExitCode.FAILED) from None
    async with open_session(target) as session:
        await _expect_ack(session, command)
    print(f"{command.tech_id} -> {command.status.value}")
    return ExitCode.OK


# --- incidents -----------------------------------------------------------------------------------


async def incident_update(args: argparse.Namespace) -> int:
    """`dispatch incident update INC-1 --message "ISP fixed the line; checking each site"`: prints whom
    the update went to, client by client."""
    target = target_of(args)
    try:
        command = UpdateClients(command_id=new_command_id(), incident_id=args.incident_id, message=args.message)
    except ValidationError as exc:
        raise CommandFailed(validation_message(exc), ExitCode.FAILED) from None
    async with open_session(target) as session:
        ack = await _expect_ack(session, command)
        clients: dict[str, list[str]] = {}
        tickets = {t.id: t for t in _snapshot(session).tickets}
        for ticket_id in ack.ticket_ids or []:
            clients.setdefault(tickets[ticket_id].client if ticket_id in tickets else "?", []).append(ticket_id)
        # Whom each client's update went to is in its tickets' history (the SLA file is the server's).
        lines = []
        for ticket_ids in clients.values():
            history = await send(session, GetHistory(command_id=new_command_id(), ticket_id=ticket_ids[0]))
            events = history.events if isinstance(history, History) else []
            sent_to = [e.reason for e in events if isinstance(e, TicketEvent) and e.kind == "client_updated"]
            lines.append(f"  {sent_to[-1] if sent_to else 'recorded'} ({', '.join(ticket_ids)})")
    print(f"{ack.incident_id}: update recorded on {len(ack.ticket_ids or [])} open tickets")
    print("\n".join(lines))
    return ExitCode.OK


# --- call-outs -----------------------------------------------------------------------------------


async def callout_send(args: argparse.Namespace) -> int:
    """`dispatch callout send bob --reason "core switch down"`: prints the call-out's id."""
    command = CalloutCommand(command_id=new_command_id(), tech_id=args.tech_id, reason=args.reason)
    async with open_session(target_of(args)) as session:
        ack = await _expect_ack(session, command)
    warning = f" (against the rule: {ack.override})" if ack.override else ""
    print(f"{ack.callout_id} -> {args.tech_id}{warning}")
    return ExitCode.OK


async def callout_answer(args: argparse.Namespace) -> int:
    """`dispatch callout accept CO-3` (or decline), with the called technician's own token."""
    command = AnswerCallout(command_id=new_command_id(), callout_id=args.callout_id, accept=args.accept)
    async with open_session(target_of(args)) as session:
        await _expect_ack(session, command)
    print(f"{args.callout_id} {'accepted: you are available' if args.accept else 'declined'}")
    return ExitCode.OK


async def callout_list(args: argparse.Namespace) -> int:
    """`dispatch callout list`: the call-outs waiting for an answer, one a line."""
    async with open_session(target_of(args)) as session:
        snapshot = _snapshot(session)
    if not snapshot.callouts:
        print("no call-outs waiting", file=sys.stderr)
        return ExitCode.OK
    rows = [
        [c.id, c.tech_id, c.ticket_id or "-", f"{c.expires_at.astimezone():%H:%M:%S}", c.reason]
        for c in snapshot.callouts
    ]
    _print_table(["ID", "TECHNICIAN", "TICKET", "ANSWER BY", "REASON"], rows)
    return ExitCode.OK


# --- simulate -------------------------------------------------------------------------------------


@dataclass
class _Tally:
    created: int = 0
    present: int = 0
    by_priority: dict[str, int] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return self.created + self.present


async def simulate_outage(args: argparse.Namespace) -> int:
    """`dispatch simulate`: one line per ticket as the server takes it, then a summary."""
    expected = args.rate * args.duration
    if expected > MAX_SIMULATED_TICKETS:
        raise CommandFailed(
            f"--rate times --duration is about {expected:,.0f} tickets; at most {MAX_SIMULATED_TICKETS:,} per run",
            ExitCode.USAGE,
        )
    target = target_of(args)
    outage = Outage(args.scenario, args.seed)
    tally = _Tally()

    async with open_session(target) as session:
        seq_at_start = session.welcome.seq if isinstance(session.welcome, Welcome) else 0
        if args.team:
            await _add_team(session)

        def on_ticket(ticket: CreateTicket, reply: ServerFrame) -> None:
            if isinstance(reply, Error):
                raise refusal(reply)
            if not isinstance(reply, Ack):
                raise CommandFailed(f"unexpected answer from the server: {reply.type}", ExitCode.FAILED)
            # A command id the server already applied (same seed, same token name) gets its original ack.
            again = reply.seq <= seq_at_start
            if again:
                tally.present += 1
            else:
                tally.created += 1
            tally.by_priority[ticket.priority.value] = tally.by_priority.get(ticket.priority.value, 0) + 1
            line = f"{reply.ticket_id}  {ticket.priority.value}  {ticket.client.ljust(CLIENT_WIDTH)}  {ticket.title}"
            print(line + ("  (already present)" if again else ""), flush=True)

        playing = asyncio.create_task(
            play(session, outage, per_second=args.rate, duration_s=args.duration, speed=args.speed, on_ticket=on_ticket)
        )
        interrupted = _cancel_on_interrupt(playing)
        lost: str | None = None
        try:
            await playing
        except asyncio.CancelledError:
            if not interrupted():
                raise
        except (ConnectionError, ConnectionClosed):
            lost = "the connection to the server dropped"
        except TimeoutError:
            lost = "the server did not answer in time"
        finally:
            _restore_interrupt()
    priorities = ", ".join(f"{p} {n}" for p, n in sorted(tally.by_priority.items())) or "none"
    summary = (
        f"{args.scenario} seed {args.seed}: {tally.sent} ticket{'s' if tally.sent != 1 else ''} ({priorities}); "
        f"{tally.created} created, {tally.present} already present"
    )
    if interrupted():
        print(f"stopped by Ctrl+C. {summary}", flush=True)
        return ExitCode.INTERRUPTED
    if lost is not None:
        print(f"stopped. {summary}", flush=True)
        raise CommandFailed(lost, ExitCode.UNREACHABLE)
    print(summary, flush=True)
    return ExitCode.OK


async def _add_team(session: CommandSession) -> None:
    for command in roster():
        reply = await send(session, command)
        # Already on the roster (a second run) is fine; anything else is not.
        if isinstance(reply, Error) and reply.code is not ErrorCode.CONFLICT:
            raise refusal(reply)


def _cancel_on_interrupt(task: asyncio.Task[Any]) -> Callable[[], bool]:
    """Make Ctrl+C cancel `task` (so the summary still prints); returns 'was it interrupted?'."""
    seen: list[bool] = []

    def interrupt() -> None:
        seen.append(True)
        task.cancel()

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, interrupt)
    except (NotImplementedError, RuntimeError):  # not on this platform: Ctrl+C ends with status 130 anyway
        pass
    return lambda: bool(seen)


def _restore_interrupt() -> None:
    try:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
    except (NotImplementedError, RuntimeError):
        pass
