"""Allocation decisions read back: `dispatch-server --db PATH|URL decisions [--since 2h] [--ticket T]
[--technician TECH] [--format table|json]`.

The server stores one record per allocation (manual, bulk, rebalance, auto, preemption) in the
database, in the same transaction as the event it explains: when, which ticket at which priority, from
whom to whom, by whom and why, the SLA time left, and the candidates that were considered with their
scores. This command reads them from there, so it answers "why did alice get this one?" the morning
after wherever the decision-log file went. That file (`serve --decision-log FILE`, by default beside the
database) is the same records as JSON lines, an export stream for log shippers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dispatch.core.durations import DurationError, format_left, parse_duration
from server.storage import Storage, StorageError, is_postgres_url

__all__ = ["DecisionsError", "default_decision_log", "format_table", "read_decisions", "show_decisions"]


class DecisionsError(Exception):
    """A one-line reason the decisions cannot be shown."""


def default_decision_log(db: str | Path) -> Path:
    """Where `serve` writes the decision-log file unless told: `dispatch.db` -> `dispatch.decisions.jsonl`."""
    db = Path(db)
    return db.with_name(f"{db.stem}.decisions.jsonl")


async def read_decisions(
    db: str | Path,
    since: timedelta | None = None,
    ticket: str | None = None,
    technician: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The decisions stored in `db`, oldest first: made within `since` of `now`, about `ticket`, giving
    work to or taking it from `technician` (each filter only when given)."""
    if not is_postgres_url(db) and not Path(db).exists():
        # Storage.open would create an empty database: a typo in the path must not look like a quiet night.
        raise DecisionsError(f"no database at {db}")
    start = (now or datetime.now(UTC)) - since if since is not None else None
    # No full integrity check: that is the server's job at start, and it reads every page of the file.
    storage = await Storage.open(db, check_integrity=False, create=False)
    try:
        return await storage.find_decisions(since=start, ticket=ticket, technician=technician)
    finally:
        await storage.close()


def format_table(records: list[dict[str, Any]]) -> str:
    if not records:
        return "no decisions"
    lines = [f"{'time':<20} {'ticket':<9} {'pri':<3} {'from':<10} {'to':<10} {'by':<10} {'SLA left':>9}  why"]
    for r in records:
        ts = datetime.fromisoformat(r["ts"]).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        left = format_left(timedelta(seconds=r.get("sla_left_s", 0)))
        lines.append(
            f"{ts:<20} {r['ticket']:<9} {r['priority']:<3} {r.get('from') or '-':<10} {r.get('to') or 'queue':<10} "
            f"{r['actor']:<10} {left:>9}  {r.get('reason', '')}"
        )
        considered = r.get("candidates") or []
        if considered:
            shown = ", ".join(f"{c['tech_id']} {c['score']:.2f}" for c in considered[:5])
            lines.append(f"{'':<20} considered: {shown}")
    return "\n".join(lines)


def show_decisions(args: argparse.Namespace) -> int:
    """Print the decisions `args` asks for; exit status 2 with one line on stderr when it cannot."""
    try:
        since = parse_duration(args.since) if args.since else None
    except DurationError as exc:
        print(f"dispatch-server: --since: {exc}", file=sys.stderr)
        return 2
    try:
        records = asyncio.run(read_decisions(args.db, since, args.ticket, args.technician))
    except (DecisionsError, StorageError) as exc:
        print(f"dispatch-server: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        for record in records:
            print(json.dumps(record))
    else:
        print(format_table(records))
    return 0
