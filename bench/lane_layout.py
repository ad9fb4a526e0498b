"""What fitting a lane's columns to its content costs: `python bench/lane_layout.py [--tickets 5000] [--runs 5]`.

A lane asks for its columns (`lane_columns`, one pass over its tickets for the content widths) every
time its rows change, at most ten times a second, and cuts each drawn row's texts at a word. Both are
printed next to a baseline measured in the same run: what a refresh already did before, listing the
lane's row keys (`[t.id for t in rows]`), and cutting texts with `set_cell_size` (the old `pad`).
Medians of `--runs`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.cells import set_cell_size  # noqa: E402

from dispatch.core.models import Priority, Ticket  # noqa: E402
from dispatch.simulator import Outage  # noqa: E402
from dispatch.widgets.columns import cut_words, fit_columns  # noqa: E402
from dispatch.widgets.lane import lane_columns  # noqa: E402

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def tickets(count: int) -> list[Ticket]:
    reports = Outage("isp-outage", seed=11).tickets(count)
    return [
        Ticket(id=f"T-{n:06d}", title=r.title, client=r.client, site=r.site, priority=Priority.P1,
               assignee=("alice" if n % 3 else None), created_at=NOW, respond_by=NOW + timedelta(minutes=15),
               resolve_by=NOW + timedelta(hours=4))
        for n, r in enumerate(reports, start=1)
    ]  # fmt: skip


def median_seconds(work, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = tickets(args.tickets)
    keys = median_seconds(lambda: [t.id for t in rows], args.runs)
    columns = median_seconds(lambda: lane_columns(rows, own_lane=False), args.runs)
    print(f"per refresh of a {len(rows)}-ticket lane (median of {args.runs}):")
    print(f"  row keys (baseline)       {keys * 1e3:8.2f} ms")
    print(f"  content widths            {columns * 1e3:8.2f} ms   x{columns / keys:.1f} the baseline")
    specs = lane_columns(rows, own_lane=False)
    width = dict(fit_columns(76, specs))["title"]
    visible = rows[:50]  # a screenful
    padded = median_seconds(lambda: [set_cell_size(t.title, width) for t in visible], args.runs)
    cut = median_seconds(lambda: [set_cell_size(cut_words(t.title, width), width) for t in visible], args.runs)
    fitted = median_seconds(lambda: [fit_columns(76, specs) for _ in visible], args.runs)
    print(f"per screenful of 50 rows at 80 columns (title {width} cells):")
    print(f"  cut anywhere (baseline)   {padded * 1e6:8.1f} µs")
    print(f"  cut at a word             {cut * 1e6:8.1f} µs   x{cut / padded:.1f} the baseline")
    print(f"  fit columns (cached)      {fitted * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
