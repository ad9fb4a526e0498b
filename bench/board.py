"""Board benchmark: first paint and key-to-screen latency with 5,000 open tickets and 200 technicians
while the server streams 200 events a second; at the end the board must equal a fresh snapshot.

    .venv/bin/python bench/board.py [--tickets 5000] [--technicians 200] [--rate 200] [--presses 150]

Baseline, measured in the same run: Textual's DataTable given the same 5,000 tickets (one table, no
live updates), with the same key presses, under the same event stream hitting the server.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from dispatch.app import DispatchApp  # noqa: E402
from dispatch.client import CommandSession, new_command_id  # noqa: E402
from dispatch.core.protocol import AddTechnician, Assign, CreateTicket, SetPriority, Snapshot  # noqa: E402
from dispatch.screens.board import BoardScreen  # noqa: E402
from dispatch.widgets.lane import Lane  # noqa: E402
from tests.support import ServerProcess  # noqa: E402

PRIORITIES = ("P1", "P2", "P3", "P4")


async def seed(url: str, token: str, tickets: int, technicians: int) -> None:
    async with await CommandSession.open(url, token) as session:
        commands: list[Any] = [
            AddTechnician(type="add_technician", command_id=new_command_id(), tech_id=f"tech{n:03d}",
                          name=f"Tech {n}", skills=["network"] if n % 2 else ["software"], capacity=50)
            for n in range(technicians)
        ] + [
            CreateTicket(type="create_ticket", command_id=new_command_id(), title=f"Outage ticket {n}",
                         client=f"Client {n % 40}", priority=PRIORITIES[n % 4], skills=["network"])
            for n in range(tickets)
        ]  # fmt: skip
        for start in range(0, len(commands), 200):
            await asyncio.gather(*(session.call(c) for c in commands[start : start + 200]))


async def stream(url: str, token: str, rate: float, seconds: float, tickets: int, technicians: int) -> None:
    """Child process: change tickets at `rate` per second (priority moves and reassignments)."""
    rng = random.Random(5)
    async with await CommandSession.open(url, token) as session:
        pending: set[asyncio.Task[Any]] = set()
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            ticket_id = f"T-{rng.randint(1, tickets):06d}"
            if n % 2:
                command: Any = SetPriority(type="set_priority", command_id=new_command_id(), ticket_id=ticket_id,
                                           priority=rng.choice(PRIORITIES))  # fmt: skip
            else:
                command = Assign(type="assign", command_id=new_command_id(), ticket_id=ticket_id,
                                 tech_id=f"tech{rng.randrange(technicians):03d}")  # fmt: skip
            task = asyncio.create_task(session.call(command))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)


class FrameClock:
    """Timestamps of the frames the compositor produced (headless apps still compose each frame)."""

    def __init__(self, app: App[Any]) -> None:
        self.frames: list[float] = []
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            if renderable is not None:
                self.frames.append(time.perf_counter())
            original(screen, renderable)

        app._display = display  # type: ignore[method-assign]

    async def next_after(self, moment: float, timeout: float = 5.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            later = [f for f in self.frames if f > moment]
            if later:
                return later[0]
            await asyncio.sleep(0.0005)
        raise TimeoutError("no frame")


async def key_latencies(app: App[Any], clock: FrameClock, cursor: Any, presses: int) -> list[float]:
    """Press down or up; latency = key sent until the first frame composed after the cursor moved.

    The key is chosen so the cursor can move (up at the top would do nothing); a press whose move is
    not seen within 2 s (the row slid away under a live re-sort) is dropped and counted."""
    latencies: list[float] = []
    rng = random.Random(1)
    for _ in range(presses):
        before = cursor()
        key, expected = ("down", before + 1) if before < 5 else ("up", before - 1)
        sent = time.perf_counter()
        app.post_message(_key(key))
        while cursor() != expected and time.perf_counter() - sent < 2.0:
            await asyncio.sleep(0.0005)
        if cursor() == expected:
            moved = time.perf_counter()
            frame = await clock.next_after(moved)
            latencies.append((frame - sent) * 1000)
        await asyncio.sleep(rng.uniform(0.03, 0.08))  # a person's pace between keys
    return latencies


def _key(key: str) -> Any:
    from textual import events

    return events.Key(key, key)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


class TableBaseline(App[None]):
    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("id", "title", "client", "priority", "assignee")
        table.add_rows([(t.id, t.title, t.client, t.priority.value, t.assignee or "") for t in self.snapshot.tickets])
        table.focus()


async def run(args: argparse.Namespace) -> None:  # noqa: C901
    with tempfile.TemporaryDirectory() as workdir:
        server = ServerProcess(db=Path(workdir) / "bench.db", workdir=Path(workdir)).start()
        try:
            from dispatch.core.models import Role

            token = await server.token(Role.DISPATCHER, "bench")
            await seed(server.url, token, args.tickets, args.technicians)
            seconds = args.presses * 0.1 + 10
            streamer = subprocess.Popen([sys.executable, __file__, "--stream", server.url, token, str(args.rate),
                                         str(seconds), str(args.tickets), str(args.technicians)])  # fmt: skip

            # Our board.
            app = DispatchApp(server.url, token)
            clock = FrameClock(app)
            started = time.perf_counter()
            async with app.run_test(size=(160, 50)) as pilot:
                while not (isinstance(app.screen, BoardScreen)
                           and sum(len(lane.rows) for lane in app.screen.lanes) >= args.tickets * 0.9):  # fmt: skip
                    await asyncio.sleep(0.001)
                loaded = time.perf_counter()
                first_paint = (await clock.next_after(loaded) - started) * 1000
                lane = app.screen.query_one("#lane-p1", Lane)
                board = await key_latencies(app, clock, lambda: lane.cursor, args.presses)
                while streamer.poll() is None:
                    await asyncio.sleep(0.1)  # the board keeps applying events meanwhile
                async with await CommandSession.open(server.url, token) as check:
                    fresh = check.snapshot
                assert isinstance(fresh, Snapshot)
                deadline = time.perf_counter() + 30
                while app.model.state.seq < fresh.seq and time.perf_counter() < deadline:
                    await pilot.pause(0.05)
                ours = {t.id: t for t in app.model.state.tickets.values()}
                same = ours == {t.id: t for t in fresh.tickets} and app.model.state.seq == fresh.seq

            # The baseline, under a second identical stream.
            streamer = subprocess.Popen([sys.executable, __file__, "--stream", server.url, token, str(args.rate),
                                         str(seconds), str(args.tickets), str(args.technicians)])  # fmt: skip
            async with await CommandSession.open(server.url, token) as session:
                snapshot = session.snapshot
            assert isinstance(snapshot, Snapshot)
            table_app = TableBaseline(snapshot)
            table_clock = FrameClock(table_app)
            started = time.perf_counter()
            async with table_app.run_test(size=(160, 50)):
                table = table_app.query_one(DataTable)
                while table.row_count < len(snapshot.tickets):
                    await asyncio.sleep(0.001)
                table_paint = (await table_clock.next_after(time.perf_counter()) - started) * 1000
                table_keys = await key_latencies(table_app, table_clock, lambda: table.cursor_row, args.presses)
            while streamer.poll() is None:
                await asyncio.sleep(0.1)
        finally:
            server.stop()

    print(f"board: {args.tickets} open tickets, {args.technicians} technicians, server streaming "
          f"{args.rate:.0f} changes/s, {args.presses} key presses")  # fmt: skip
    print(f"{'':28}{'first paint':>12}{'key p50':>10}{'key p99':>10}")
    print(f"{'dispatch board (4 lanes)':28}{first_paint:>10.0f}ms{statistics.median(board):>8.1f}ms"
          f"{percentile(board, 0.99):>8.1f}ms")  # fmt: skip
    print(f"{'baseline: one DataTable':28}{table_paint:>10.0f}ms{statistics.median(table_keys):>8.1f}ms"
          f"{percentile(table_keys, 0.99):>8.1f}ms   (no live updates applied)")  # fmt: skip
    print(f"key presses measured: board {len(board)}/{args.presses}, baseline {len(table_keys)}/{args.presses}")
    print(f"board equals a fresh snapshot at the end: {'yes' if same else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--technicians", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--presses", type=int, default=150)
    parser.add_argument("--stream", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream:
        import faulthandler

        faulthandler.dump_traceback_later(40, exit=True)
        url, token, rate, seconds, tickets, technicians = args.stream
        asyncio.run(stream(url, token, float(rate), float(seconds), int(tickets), int(technicians)))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
