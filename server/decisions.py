"""The decision log read back: `dispatch-server --db PATH decisions [--since 2h] [--ticket T]`.

The server appends one JSON line per allocation (manual, bulk, auto, escalation) after the change is
committed: when, which ticket at which priority, from whom to whom, by whom and why, the SLA time
left, and the candidates that were considered with their scores. This answers "why did alice get
this one?" the morning after.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dispatch.core.sla import format_left

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class DecisionLogError(Exception):
    """A one-line reason the log cannot be shown."""


def default_decision_log(db: str | Path) -> Path:
    """`dispatch.db` keeps its decisions in `dispatch.decisions.jsonl` beside it."""
    db = Path(db)
    return db.with_name(f"{db.stem}.decisions.jsonl")


def parse_since(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise DecisionLogError(f"--since takes a number and s, m, h or d (like 30m or 2h), not {text!r}")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def read_decisions(path: Path, since: timedelta | None = None, ticket: str | None = None,
                   now: datetime | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Records from the log, oldest first; a damaged line is skipped with a note on stderr."""
    if not path.exists():
        raise DecisionLogError(f"no decision log at {path}")
    start = (now or datetime.now(UTC)) - since if since is not None else None
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                ts = datetime.fromisoformat(record["ts"])
            except (ValueError, KeyError, TypeError):
                print(f"{path}:{number}: not a decision record, skipped", file=sys.stderr)
                continue
            if start is not None and ts < start:
                continue
            if ticket is not None and record.get("ticket") != ticket:
                continue
            records.append(record)
    return records


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
    try:
        since = parse_since(args.since) if args.since else None
        path = Path(args.file) if args.file else default_decision_log(args.db)
        records = read_decisions(path, since, args.ticket)
    except DecisionLogError as exc:
        print(f"dispatch-server: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        for record in records:
            print(json.dumps(record))
    else:
        print(format_table(records))
    return 0
