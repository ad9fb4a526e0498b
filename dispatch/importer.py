"""`dispatch import FILE.csv|FILE.json [--dry-run]`: tickets from a file, each row checked, none twice.

Columns (CSV header names, JSON keys; case-insensitive in CSV):

    title      required, text up to 200 characters
    client     required, text up to 100 characters
    priority   required, P1..P4 (p1 is read as P1)
    site       optional, text up to 100 characters
    category   optional: hardware, software, network, security, other (default other)
    skills     optional: in CSV comma- or semicolon-separated in one cell ("network; voip"),
               in JSON a list of strings

A CSV file is UTF-8 (a spreadsheet's byte-order mark is fine) with a header line; rows whose cells are
all empty are ignored. A JSON file is a list of objects. Any other column or key is refused, so that a
misspelt `categroy` is an error rather than silently dropped.

Every row is checked with the protocol's own `CreateTicket` model before anything is sent. A bad row
is reported on stderr as `FILE:LINE: reason` (CSV, the header is line 1) or `FILE: item N: reason`
(JSON, N counts from 1) and skipped; the good rows go in.

Re-running a file creates nothing twice: each row's `command_id` is a hash of the row's checked content
(plus, for identical rows, which occurrence it is), and the server answers a `command_id` it already
applied for the same token name with the original ack. So after fixing the bad rows, run the whole file
again: only the fixed rows become new tickets. Two consequences: a row identical to one imported before
with the same token name is "already present" even from another file (pass `--batch LABEL`, e.g. a date,
to import it again on purpose); and a token with a different name would import the file again.

Exit status: 0 every row is in (created now or before), 1 some rows were skipped (the others went in),
2 the file cannot be used at all (nothing sent), and 3, 6, 130 as for the other commands.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dispatch.core.protocol import Ack, CreateTicket, Error, ErrorCode, Welcome
from dispatch.scripting import (
    EXIT_STATUS_HELP,
    CommandFailed,
    ExitCode,
    open_session,
    refusal,
    send,
    split_skills,
    target_of,
    validation_message,
)

__all__ = ["COLUMNS", "REQUIRED", "ImportRow", "BadRow", "TicketFile", "read_ticket_file", "add_command"]

COLUMNS = ("title", "client", "priority", "site", "category", "skills")
REQUIRED = ("title", "client", "priority")
# Commands in flight at once: enough to keep the server's group commit busy, well under its 256 limit.
WINDOW = 64
# From this many rows a progress bar is drawn (on a terminal only).
PROGRESS_FROM = 100


@dataclass(frozen=True)
class ImportRow:
    """A checked row, ready to send."""

    where: str  # `tickets.csv:7` or `tickets.json: item 3`
    ticket: CreateTicket


@dataclass(frozen=True)
class BadRow:
    """A row that will not be sent, and why."""

    where: str
    reason: str


@dataclass
class TicketFile:
    """What a file holds: the rows that can go in, and those that cannot."""

    rows: list[ImportRow] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)


class FileRefused(Exception):
    """The file as a whole cannot be used (unreadable, not CSV/JSON, wrong header): nothing is sent."""


# --- reading --------------------------------------------------------------------------------------


def read_ticket_file(path: Path, batch: str = "") -> TicketFile:
    """Read and check every row of `path` (by its suffix, .csv or .json); raises `FileRefused`."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise FileRefused(f"{path}: expected a .csv or .json file")
    try:
        # Bytes, not read_text: the csv module wants the line endings as they are.
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileRefused(f"{path}: not UTF-8 text (save it as 'CSV UTF-8' or UTF-8 JSON)") from None
    except OSError as exc:
        raise FileRefused(f"{path}: {exc.strerror or exc}") from None
    records = _csv_records(path, text) if suffix == ".csv" else _json_records(path, text)
    result = TicketFile()
    occurrences: dict[str, int] = {}
    for where, values in records:
        if isinstance(values, str):
            result.bad.append(BadRow(where, values))
            continue
        blank = [key for key in REQUIRED if values.get(key) is None or values[key] == ""]
        if blank:
            result.bad.append(BadRow(where, f"{blank[0]} is {'empty' if blank[0] in values else 'missing'}"))
            continue
        try:
            ticket = CreateTicket.model_validate({"type": "create_ticket", "command_id": "unset", **values})
        except ValidationError as exc:
            result.bad.append(BadRow(where, validation_message(exc)))
            continue
        # The id comes from the checked values of the import's own columns, so "Acme " and "Acme" are
        # one ticket, a rerun of the file (or a fixed copy of it) sends the same ids, and a field the
        # protocol gains later does not change them.
        checked = ticket.model_dump(mode="json", include=set(COLUMNS))
        content = json.dumps([batch, checked], sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(content.encode()).hexdigest()
        occurrence = occurrences.get(digest, 0)
        occurrences[digest] = occurrence + 1
        command_id = f"import-{digest}-{occurrence}"
        result.rows.append(ImportRow(where, ticket.model_copy(update={"command_id": command_id})))
    return result


def _normalise(values: dict[str, Any]) -> dict[str, Any]:
    """What people type in spreadsheets: `p1`, `Network`, empty optional cells."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in REQUIRED and (value is None or value == ""):
            continue  # an empty optional cell means "the default"
        if key == "priority" and isinstance(value, str):
            value = value.strip().upper()
        elif key == "category" and isinstance(value, str):
            value = value.strip().lower()
        out[key] = value
    return out


def _csv_records(path: Path, text: str) -> Iterator[tuple[str, dict[str, Any] | str]]:
    # A 200 KiB title is a bad row to report, not a reason to give up on the whole file.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    line = 1
    try:
        for cells in reader:
            start, line = line, reader.line_num + 1  # a quoted cell may span lines: report the first
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = _check_header(path, start, cells)
                continue
            where = f"{path}:{start}"
            if len(cells) > len(header):
                yield where, f"{len(cells)} cells, but the header has {len(header)} columns"
                continue
            cells += [""] * (len(header) - len(cells))  # a spreadsheet may drop trailing empty cells
            pairs = list(zip(header, cells, strict=True))
            unnamed = [n for n, (name, cell) in enumerate(pairs, 1) if not name and cell.strip()]
            if unnamed:
                yield where, f"cell {unnamed[0]} has a value, but its column has no name in the header"
                continue
            values: dict[str, Any] = {name: cell for name, cell in pairs if name}
            if "skills" in values:
                values["skills"] = split_skills(values["skills"])
            yield where, _normalise(values)
    except csv.Error as exc:
        raise FileRefused(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
    if header is None:
        raise FileRefused(f"{path}: empty; the first line must name the columns, e.g. title,client,priority")


def _check_header(path: Path, line: int, cells: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in cells]
    expected = f"columns: {', '.join(REQUIRED)} (required), {', '.join(c for c in COLUMNS if c not in REQUIRED)}"
    for name in names:
        if not name:
            continue  # a spreadsheet's trailing empty columns; a value under one is a bad row
        if name not in COLUMNS:
            raise FileRefused(f"{path}:{line}: unknown column {name!r} ({expected})")
        if names.count(name) > 1:
            raise FileRefused(f"{path}:{line}: column {name!r} appears twice")
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise FileRefused(f"{path}:{line}: missing column{plural} {', '.join(missing)} ({expected})")
    return names


def _json_records(path: Path, text: str) -> Iterator[tuple[str, dict[str, Any] | str]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileRefused(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise FileRefused(f"{path}: nested too deeply to be a list of tickets") from None
    if not isinstance(items, list):
        raise FileRefused(f'{path}: expected a JSON list of ticket objects, e.g. [{{"title": ..., ...}}]')
    for index, item in enumerate(items):
        where = f"{path}: item {index + 1}"
        if not isinstance(item, dict):
            yield where, f"expected an object with {', '.join(REQUIRED)}, not {type(item).__name__}"
            continue
        unknown = [key for key in item if key not in COLUMNS]
        if unknown:
            yield where, f"unknown field {unknown[0]!r} (fields: {', '.join(COLUMNS)})"
            continue
        yield where, _normalise(item)


# --- sending --------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    created: int = 0
    present: int = 0
    refused: list[BadRow] = field(default_factory=list)


async def send_rows(
    args: argparse.Namespace, rows: list[ImportRow], on_sent: Callable[[], None] | None = None
) -> ImportResult:
    """Send the checked rows with up to `WINDOW` in flight; count what was new and what was there before."""
    result = ImportResult()
    async with open_session(target_of(args)) as session:
        # Events this run causes come after this seq; an ack at or below it is a row imported before.
        seq_at_start = session.welcome.seq if isinstance(session.welcome, Welcome) else 0
        window = asyncio.Semaphore(WINDOW)
        # A refusal that every row would meet, or a dropped connection: stop sending, let the rows in
        # flight finish (their replies or errors arrive at once), then report the first.
        fatal: list[CommandFailed] = []

        async def one(row: ImportRow) -> None:
            try:
                reply = await send(session, row.ticket)
            except CommandFailed as failed:
                fatal.append(failed)
                return
            finally:
                window.release()
            if isinstance(reply, Ack):
                if reply.seq > seq_at_start:
                    result.created += 1
                else:
                    result.present += 1
            elif isinstance(reply, Error) and reply.code in (ErrorCode.FORBIDDEN, ErrorCode.RATE_LIMITED):
                fatal.append(refusal(reply))
                return
            elif isinstance(reply, Error):
                result.refused.append(BadRow(row.where, f"refused by the server: {reply.message}"))
            else:
                result.refused.append(BadRow(row.where, f"unexpected answer from the server: {reply.type}"))
            if on_sent is not None:
                on_sent()

        in_flight: list[asyncio.Task[None]] = []
        for row in rows:
            await window.acquire()
            if fatal:
                break
            in_flight.append(asyncio.create_task(one(row)))
        await asyncio.gather(*in_flight)
        if fatal:
            raise fatal[0]
    return result


# --- the command ----------------------------------------------------------------------------------

IMPORT_DESCRIPTION = """\
Open tickets from a CSV file (a header line, then one ticket per line) or a JSON list of objects.

columns: title, client, priority (P1..P4) required; site, category (hardware, software, network,
security, other), skills (CSV: "network; voip" or "network,voip" in one cell; JSON: a list) optional.

Every row is checked before anything is sent; a bad row is reported as FILE:LINE: reason (JSON:
FILE: item N: reason) and skipped, the others go in. Running the same file again creates nothing
twice (each row's command id is a hash of its content), so fix the bad rows and run it again."""


def add_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `import` to `dispatch`'s subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "import",
        help="open tickets from a CSV or JSON file; re-running it creates nothing twice",
        description=IMPORT_DESCRIPTION,
        parents=[common],
        epilog=EXIT_STATUS_HELP.replace(
            "1    invalid request or other failure; import: some rows were skipped",
            "1    some rows were skipped (bad rows; the good ones went in)",
        ).replace("unusable import file", "a file that cannot be used (nothing sent)"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a .csv file with a header line, or a .json list")
    parser.add_argument("--dry-run", action="store_true", help="check every row and report; connect to nothing")
    parser.add_argument(
        "--batch",
        default="",
        metavar="LABEL",
        help="import rows identical to an earlier import as new tickets (a new label makes new ids)",
    )
    parser.set_defaults(
        run=import_file,
        prog_name="dispatch import",
        interrupted_note="; run it again: rows already in are not created twice",
    )


async def import_file(args: argparse.Namespace) -> int:
    """`dispatch import`: check, report bad rows, send the good ones, summarise."""
    path: Path = args.file
    if not args.dry_run:
        target_of(args)  # no token or a bad address: say so before reading a large file
    try:
        ticket_file = read_ticket_file(path, args.batch)
    except FileRefused as exc:
        print(f"dispatch import: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    for bad in ticket_file.bad:
        print(f"{bad.where}: {bad.reason}", file=sys.stderr)
    rows, skipped = ticket_file.rows, len(ticket_file.bad)
    if args.dry_run:
        print(f"{path}: {_count(len(rows), 'row')} ready, {skipped} skipped (dry run: nothing sent)")
        return ExitCode.FAILED if skipped else ExitCode.OK
    if not rows:
        print(f"{path}: nothing to import, {skipped} skipped")
        return ExitCode.FAILED if skipped else ExitCode.OK
    try:
        result = await _send_with_progress(args, rows)
    except CommandFailed as failed:
        if failed.exit_code is ExitCode.UNREACHABLE:
            again = f"{failed}; run the import again: rows already in are not created twice"
            raise CommandFailed(again, failed.exit_code) from None
        raise
    for bad in result.refused:
        print(f"{bad.where}: {bad.reason}", file=sys.stderr)
    skipped += len(result.refused)
    print(f"{path}: {result.created} created, {result.present} already present, {skipped} skipped")
    return ExitCode.FAILED if skipped else ExitCode.OK


async def _send_with_progress(args: argparse.Namespace, rows: list[ImportRow]) -> ImportResult:
    if len(rows) < PROGRESS_FROM or not sys.stderr.isatty():
        return await send_rows(args, rows)
    # Loaded only when drawn; rich comes with textual.
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("import", total=len(rows))
        return await send_rows(args, rows, on_sent=lambda: progress.advance(task))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
