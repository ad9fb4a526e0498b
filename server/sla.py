"""SLA contracts for the server: read the file (`serve --sla FILE`), re-read it on SIGHUP, and
`dispatch-server sla check FILE --client NAME --priority P2 [--at ISO-TIME]` to try a contract out.

    dispatch-server sla check sla.toml --client "Acme Corp" --priority P2 --at 2026-12-04T17:00:00+00:00
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime

from dispatch.core.contracts import Contracts
from dispatch.core.durations import format_duration
from dispatch.core.models import Priority
from dispatch.core.sla import clock_fields
from server.settings import read_config_file

__all__ = ["add_sla_parser", "load_contracts", "run_sla_check"]

log = logging.getLogger("dispatch.server")


def load_contracts(path: str | None) -> Contracts:
    """The contracts of the file at `path` (none: the built-in terms); a one-line ConfigError if the
    file cannot be read or has a mistake."""
    if path is None:
        return Contracts()
    return Contracts.parse(read_config_file(path), path)


def add_sla_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sla = commands.add_parser("sla", help="try an SLA contracts file out (needs no database)")
    sla_commands = sla.add_subparsers(dest="sla_command", required=True)
    check = sla_commands.add_parser("check", help="print the due times a ticket would get")
    check.add_argument("file", help="the SLA contracts file (TOML), as given to serve --sla")
    check.add_argument("--client", required=True, help="the client's name, as tickets carry it")
    check.add_argument("--priority", required=True, choices=[p.value for p in Priority])
    check.add_argument("--at", metavar="ISO-TIME", type=_instant, help="when the ticket comes in (default: now)")


def run_sla_check(args: argparse.Namespace) -> int:
    contracts = load_contracts(args.file)
    at: datetime = args.at or datetime.now(UTC)
    terms = contracts.terms(args.client, Priority(args.priority))
    clock = clock_fields(terms, at)
    calendar = terms.calendar

    def when(instant: datetime) -> str:
        """In the calendar's own time zone, and in UTC beside it when that differs."""
        local = f"{calendar.local(instant):%a %Y-%m-%d %H:%M} {calendar.timezone}"
        return local if calendar.timezone == "UTC" else f"{local}  ({instant.astimezone(UTC):%a %H:%M} UTC)"

    print(f"client      {args.client}")
    print(f"tier        {terms.tier}")
    print(f"calendar    {calendar.name} ({calendar.timezone})")
    respond, resolve = format_duration(terms.target.respond), format_duration(terms.target.resolve)
    print(f"targets     respond {respond}, resolve {resolve} (open time)")
    print(f"opened      {when(at)}")
    print(f"respond by  {when(clock['respond_by'])}")
    print(f"resolve by  {when(clock['resolve_by'])}")
    print(f"warnings    {when(clock['respond_warn_at'])}, {when(clock['resolve_warn_at'])}")
    return 0


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2026-12-04T17:00:00+00:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
