"""Soak benchmark: the real server under a steady mixed load for a long time, reporting as it goes.

    .venv/bin/python bench/soak.py --minutes 30 [--rate 50] [--viewers 20] [--interval 30] [--db PATH]
    .venv/bin/python bench/soak.py --tickets 50000 [--serve '--burst-window 1']

One dispatcher connection sends `--rate` commands a second on a fixed schedule (several in flight) while
`--viewers` connections read every event. The mix: 16 tickets at a time are opened, assigned, started,
noted, re-prioritised, put on hold, reassigned, noted and resolved, with technician status changes in
between. Each `--interval` seconds one line: commands acked and their rate; ack latency (send -> ack on
the dispatcher); fan-out latency (send of the command -> each viewer's receipt of its event, matched by
the ack's seq, so the commit is included); the server's RSS, open fds and database+WAL size.

`--tickets N` measures what history costs in memory instead: N tickets opened, assigned and resolved
as fast as the server takes them (16 open at a time, over 4 connections), the server's RSS printed
after the first 1,000 and every 10,000, and the growth between the first and the last (goal: within
20 MiB at 50,000).

Baseline in the same run (the machine is shared and noisy): first the same paced load for `--baseline`
seconds against bench/raw_server.py (ack and broadcast only: no validation, no storage); the summary gives
the dispatch/raw latency ratios. Load and viewers share one process and event loop in both runs.

A healthy run: every line at --rate per second; ack p50 a few ms (p99 follows the disk: each commit waits
for an fdatasync, synchronous=FULL, and on a shared VM disk one can take 100-500 ms); no errors, no viewer
gaps; fds flat; RSS levelling off after the first minutes (closed tickets leave the server's memory,
so it follows the open work; the summary gives any creep per 1,000 tickets); db+WAL growing ~1 KiB per
command (the event log), the WAL itself staying at its ~4 MiB checkpoint size; SIGTERM at the end exits
0 within a second or two. Ctrl+C stops early, with the summary.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import functools
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dispatch.core.models import Role  # noqa: E402
from server.storage import Storage  # noqa: E402

TECHS = ("alice", "bob", "carol", "dave", "erin")
CATEGORIES = ("hardware", "software", "network", "security", "other")
PRIORITIES = ("P2", "P3", "P4", "P1")
SLOTS = 16  # open tickets at once: over 5 categories, every group stays under the burst threshold (5)
MAX_IN_FLIGHT = 128  # the server stops reading a connection at 256 unanswered commands
VIEWERS_PER_TOKEN = 50  # the server allows 64 connections per token


def start(command: list[str], stderr_path: Path) -> tuple[subprocess.Popen[str], str]:
    # A session of its own: Ctrl+C reaches only this script, which then stops the server with SIGTERM.
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT,
                                   start_new_session=True)  # fmt: skip
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 20)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("listening on"):
        process.kill()
        raise SystemExit(f"server did not start: {line!r} {stderr_path.read_text()[-2000:]}")
    return process, line.split()[-1]


async def make_token(db: Path, role: Role, name: str) -> str:
    """Stored the way `token create` stores it (as tests/support.py does)."""
    secret = f"soak-{name}-{os.urandom(8).hex()}"
    storage = await Storage.open(db)
    try:
        await storage.create_token(name, role, None, secret)
    finally:
        await storage.close()
    return secret


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def ms(values: Sequence[float]) -> str:
    return f"p50 {pct(values, 0.5):.2f} ms  p99 {pct(values, 0.99):.2f} ms"


async def hello(url: str, token: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(url, max_size=None, compression=None, open_timeout=10)
    await ws.send(json.dumps({"type": "hello", "token": token, "last_seq": None}))
    if (welcome := json.loads(await ws.recv()))["type"] != "welcome":
        raise SystemExit(f"refused: {welcome}")
    return ws, json.loads(await ws.recv())  # the snapshot


@dataclass
class Slot:
    stage: int = 0
    ticket: str | None = None
    priority: str = "P2"
    assignee: str = ""


class Mix:
    """The next command, valid given the ones sent before (assuming they succeed)."""

    def __init__(self, techs: dict[str, str]) -> None:
        self.slots, self.techs, self.creates = [Slot() for _ in range(SLOTS)], techs, dict[str, Slot]()
        self.opened = self.toggles = 0

    def next(self, i: int, command_id: str) -> dict[str, Any]:
        slot = self.slots[i % SLOTS]
        if slot.stage == 0:
            self.opened += 1
            slot.stage, slot.ticket, slot.assignee, slot.priority = 1, None, "", PRIORITIES[self.opened % 4]
            self.creates[command_id] = slot
            return {"type": "create_ticket", "title": f"Soak ticket {self.opened}", "priority": slot.priority,
                    "client": f"Client {self.opened % 97}", "category": CATEGORIES[i % SLOTS % 5]}  # fmt: skip
        if slot.ticket is None or slot.stage == 4:  # its create_ticket is not acked yet, or a technician's turn
            slot.stage += slot.stage == 4
            tech = TECHS[self.toggles % len(TECHS)]
            self.toggles += 1
            self.techs[tech] = "busy" if self.techs[tech] == "available" else "available"
            return {"type": "set_tech_status", "tech_id": tech, "status": self.techs[tech]}
        stage, ticket = slot.stage, {"ticket_id": slot.ticket}
        slot.stage = (stage + 1) % 10
        if stage in (1, 7):
            slot.assignee = TECHS[(TECHS.index(slot.assignee) + 1 if slot.assignee else self.opened) % len(TECHS)]
            return {"type": "assign", **ticket, "tech_id": slot.assignee}
        if stage in (3, 8):
            return {"type": "add_note", **ticket, "text": f"soak note {i}: called the client, waiting on parts"}
        if stage == 5:
            slot.priority = PRIORITIES[(PRIORITIES.index(slot.priority) + 1) % len(PRIORITIES)]
            return {"type": "set_priority", **ticket, "priority": slot.priority}
        return {"type": "set_status", **ticket, "status": {2: "in_progress", 6: "on_hold"}.get(stage, "resolved")}

    def replied(self, command_id: str, reply: dict[str, Any]) -> None:
        if (slot := self.creates.pop(command_id, None)) is not None and reply["type"] == "ack":
            slot.ticket = reply.get("ticket_id") or f"T-{reply['seq']:06}"  # raw_server's acks carry no ticket_id
        elif slot is not None:
            slot.stage = 0  # refused: open another


class Load:
    """One paced run: what was sent, what came back, and what the viewers saw."""

    def __init__(self, raw: bool, rate: float, stop: asyncio.Event, viewers: int) -> None:
        self.raw, self.rate, self.stop = raw, rate, stop
        self.sent: dict[str, float] = {}  # command_id -> send time (perf_counter)
        self.seq_sent: dict[int, float] = {}  # acked seq -> send time of its command
        self.seen: dict[int, list[float]] = {}  # seq -> viewer receipt times
        self.last_seq = [0] * viewers
        self.ack_ms: list[float] = []  # this interval's, in ms
        self.fan_ms: list[float] = []
        self.all_ack, self.all_fan = array.array("d"), array.array("d")
        self.errors: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.commands = self.gaps = self.unmatched = 0
        self.max_lag = 0.0
        self.finishing = self.broken = False

    async def read(self, who: str, ws: ClientConnection, on_frame: Callable[[dict[str, Any]], None]) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                on_frame(json.loads(raw))
        self.closes[f"{who} {ws.close_code}"] += 1
        if not self.finishing:
            self.errors[f"{who} connection closed ({ws.close_code})"] += 1
            self.broken = True
            self.stop.set()

    def on_reply(self, mix: Mix, frame: dict[str, Any]) -> None:
        if frame["type"] == "event":
            return
        if (sent := self.sent.pop(frame.get("command_id") or "", None)) is None:
            self.errors[f"unsolicited {frame['type']} {frame.get('code', '')}".strip()] += 1
            return
        mix.replied(frame["command_id"], frame)
        if frame["type"] == "ack":
            self.ack_ms.append((time.perf_counter() - sent) * 1000)
            self.seq_sent[frame["seq"]] = sent
        else:
            self.errors[str(frame.get("code", frame["type"]))] += 1

    def on_event(self, index: int, frame: dict[str, Any]) -> None:
        if frame["type"] == "event":
            seq = frame["event"]["seq"]
            self.seen.setdefault(seq, []).append(time.perf_counter())
            self.gaps += self.last_seq[index] > 0 and seq != self.last_seq[index] + 1
            self.last_seq[index] = seq

    async def drive(self, ws: ClientConnection, mix: Mix, seconds: float) -> None:
        """Send at absolute deadlines start + i/rate: a late send does not push the ones after it."""
        started = time.perf_counter()
        while not self.stop.is_set() and self.commands < seconds * self.rate:
            if (delay := started + self.commands / self.rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            if len(self.sent) >= MAX_IN_FLIGHT:  # the schedule slips; max_lag shows by how much
                await asyncio.sleep(0.001)
                continue
            command_id = f"soak-{os.getpid()}-{self.commands}"
            frame = {**mix.next(self.commands, command_id), "command_id": command_id}
            if self.raw:
                frame.setdefault("title", frame["type"])  # raw_server reads only command_id and title
            self.sent[command_id] = now = time.perf_counter()
            self.max_lag = max(self.max_lag, now - started - self.commands / self.rate)
            self.commands += 1
            await ws.send(json.dumps(frame))

    def interval(self, final: bool = False) -> tuple[list[float], list[float]]:
        """This interval's latencies: fan-out for every event all viewers have seen and whose ack is in."""
        done, stale = min(self.last_seq, default=0), time.perf_counter() - 30
        for seq in [s for s in self.seen if s <= done]:
            if (sent := self.seq_sent.pop(seq, None)) is not None:
                self.fan_ms.extend((t - sent) * 1000 for t in self.seen.pop(seq))
            elif final or self.seen[seq][0] < stale:  # not from one of our commands (or never acked)
                self.unmatched += 1
                del self.seen[seq]
        for seq in [s for s in self.seq_sent if s <= done and s not in self.seen]:
            del self.seq_sent[seq]
        ack, fan, self.ack_ms, self.fan_ms = self.ack_ms, self.fan_ms, [], []
        self.all_ack.extend(ack)
        self.all_fan.extend(fan)
        return ack, fan


async def run_load(url: str, tokens: tuple[str, list[str]], args: argparse.Namespace, seconds: float, raw: bool,
                   stop: asyncio.Event, tick: Callable[[float, Load, bool], None] | None = None,
                   finish: Callable[[], Awaitable[None]] | None = None) -> tuple[Load, Mix]:  # fmt: skip
    load = Load(raw, args.rate, stop, args.viewers)
    ws, snapshot = await hello(url, tokens[0])
    techs = {t["id"]: t["status"] for t in snapshot.get("technicians", [])}
    setup = {f"setup-{os.getpid()}-{t}": t for t in TECHS if t not in techs and not raw}
    for command_id, tech in setup.items():
        await ws.send(json.dumps({"type": "add_technician", "command_id": command_id, "tech_id": tech,
                                  "name": tech.title(), "capacity": 100}))  # fmt: skip
    while setup:
        if setup.pop((reply := json.loads(await ws.recv())).get("command_id") or "", None) and reply["type"] != "ack":
            raise SystemExit(f"setup refused: {reply}")
    mix = Mix({t: techs.get(t, "available") for t in TECHS})
    viewers = [(await hello(url, tokens[1][i // VIEWERS_PER_TOKEN]))[0] for i in range(args.viewers)]
    tasks = [asyncio.create_task(load.read("dispatcher", ws, functools.partial(load.on_reply, mix)))]
    tasks += [asyncio.create_task(load.read("viewer", v, functools.partial(load.on_event, i)))
              for i, v in enumerate(viewers)]  # fmt: skip
    driver = asyncio.create_task(load.drive(ws, mix, seconds))
    started = next_tick = time.perf_counter()
    while not driver.done():  # a tick a second: samples the server, prints a line each --interval
        await asyncio.wait([driver], timeout=max(next_tick - time.perf_counter(), 0))
        if tick is not None and time.perf_counter() >= next_tick:
            tick(next_tick - started, load, False)
            next_tick += 1.0
    if not driver.cancelled() and (failure := driver.exception()) is not None:
        load.errors[f"sending stopped: {failure!r}"] += 1
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):  # the last replies, then the last events
            while load.sent and not load.broken:
                await asyncio.sleep(0.05)
            while load.seq_sent and min(load.last_seq) < max(load.seq_sent) and not load.broken:
                await asyncio.sleep(0.05)
    if load.sent:
        load.errors[f"no reply after 30 s ({len(load.sent)})"] += 1
    if tick is not None:
        tick(time.perf_counter() - started, load, True)
    load.finishing = True
    if finish is not None:
        await finish()  # with the clients still reading, so the server's closing handshakes complete
    await asyncio.gather(*(c.close() for c in [ws, *viewers]))
    await asyncio.gather(*tasks)
    load.interval(final=True)
    return load, mix


async def main_async(args: argparse.Namespace, workdir: Path) -> None:
    stop, loop = asyncio.Event(), asyncio.get_running_loop()
    # The first Ctrl+C stops the load and still prints the summary; a second one aborts.
    loop.add_signal_handler(signal.SIGINT, lambda: (stop.set(), loop.remove_signal_handler(signal.SIGINT)))
    raw_process, raw_url = start([sys.executable, "bench/raw_server.py"], workdir / "raw.err")
    try:
        base, _ = await run_load(raw_url, ("-", ["-"]), args, args.baseline, True, stop)
    finally:
        raw_process.kill()
        raw_process.wait(10)
    print(f"raw websockets baseline ({base.commands} commands in {args.baseline:g} s, {args.viewers} viewers): "
          f"ack {ms(base.all_ack)}, fan-out {ms(base.all_fan)}", flush=True)  # fmt: skip
    if stop.is_set():
        raise SystemExit("interrupted before the soak")
    db = Path(args.db) if args.db else workdir / "soak.db"
    tokens = (await make_token(db, Role.DISPATCHER, f"soak-dispatcher-{os.getpid()}"),
              [await make_token(db, Role.VIEWER, f"soak-wall-{os.getpid()}-{n}")
               for n in range((args.viewers - 1) // VIEWERS_PER_TOKEN + 1)])  # fmt: skip
    server, url = start([sys.executable, "-m", "server", "--db", str(db), "serve", "--port", "0",
                         "--log", str(workdir / "events.jsonl")], workdir / "server.err")  # fmt: skip
    samples: list[tuple[float, float, int]] = []  # (seconds, RSS MiB, open fds), once a second
    shutdown: list[str] = []
    last_line = 0.0

    def db_mib() -> float:
        return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists()) / 2**20

    def tick(elapsed: float, load: Load, final: bool) -> None:
        nonlocal last_line
        if server.poll() is None:
            rss = int(Path(f"/proc/{server.pid}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
            samples.append((elapsed, rss, len(os.listdir(f"/proc/{server.pid}/fd"))))
        if (elapsed - last_line < args.interval - 0.5 and not final) or not samples:
            return
        ack, fan = load.interval()
        rate, last_line = len(ack) / max(elapsed - last_line, 1e-9), elapsed
        print(f"{elapsed:7.1f}s {len(ack):7d} {rate:7.1f} {pct(ack, 0.5):8.2f} {pct(ack, 0.99):8.2f} "
              f"{pct(fan, 0.5):8.2f} {pct(fan, 0.99):8.2f} {samples[-1][1]:8.1f} {samples[-1][2]:5d} "
              f"{db_mib():7.2f}", flush=True)  # fmt: skip

    async def terminate() -> None:
        began = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        try:  # in a thread: the clients must go on reading to answer the server's closing handshakes
            code = await asyncio.to_thread(server.wait, 30)
            shutdown.append(f"SIGTERM -> exit status {code} after {time.perf_counter() - began:.2f} s")
            if code != 0:
                shutdown.append((workdir / "server.err").read_text()[-2000:])
        except subprocess.TimeoutExpired:
            server.kill()
            shutdown.append("SIGTERM -> still running after 30 s: killed")

    print(f"soak: {args.rate:g} commands/s for {args.minutes:g} min, {args.viewers} viewers, db {db}", flush=True)
    print(f"{'elapsed':>8} {'acked':>7} {'per s':>7} {'ack p50':>8} {'ack p99':>8} {'fan p50':>8} {'fan p99':>8} "
          f"{'RSS MiB':>8} {'fds':>5} {'db MiB':>7}   (latencies in ms)", flush=True)  # fmt: skip
    try:
        load, mix = await run_load(url, tokens, args, args.minutes * 60, False, stop, tick, terminate)
    finally:
        if server.poll() is None:
            server.kill()
    acked, ack, fan = len(load.all_ack), load.all_ack, load.all_fan
    errors = f"{sum(load.errors.values())} errors" + (f" {dict(load.errors)}" if load.errors else "")
    print(f"summary: {load.commands} commands sent, {acked} acked ({acked / max(last_line, 1e-9):.1f}/s), {errors}")
    ratios = [pct(ack, q) / pct(base.all_ack, q) for q in (0.5, 0.99)]
    print(f"  ack     {ms(ack)}  (raw {ms(base.all_ack)}: dispatch/raw p50 {ratios[0]:.1f}x, p99 {ratios[1]:.1f}x)")
    print(f"  fan-out {ms(fan)}  (raw {ms(base.all_fan)}); {len(fan)} deliveries, {load.gaps} viewer gaps, "
          f"{load.unmatched} events not from our commands")  # fmt: skip
    if samples:  # growth per ticket only means something once there are many (warm-up dominates before)
        growth = samples[-1][1] - samples[0][1]
        per = f", {growth * 1024 * 1000 / mix.opened:+.0f} KiB per 1,000" if mix.opened >= 1000 else ""
        print(f"  server  RSS {samples[0][1]:.1f} -> {samples[-1][1]:.1f} MiB (max {max(s[1] for s in samples):.1f}; "
              f"{mix.opened:,} tickets opened{per}), fds {samples[0][2]} -> {samples[-1][2]}, "
              f"db+WAL {db_mib():.2f} MiB after shutdown")  # fmt: skip
    print(f"  pacing  max {load.max_lag * 1000:.1f} ms behind schedule; connections closed {dict(load.closes)}")
    print(f"  shutdown {chr(10).join(shutdown) or 'not reached'}")


HISTORY_WORKERS = 16  # tickets open at once: one category each in turn, so no group reaches a burst (5)
HISTORY_CONNECTIONS = 4  # the workers' commands spread over this many connections (500 commands/s each)


async def history_run(args: argparse.Namespace, workdir: Path) -> None:
    """`--tickets N`: open, assign and resolve N tickets as fast as the server takes them (16 at a time),
    printing the server's RSS after the first 1,000 and every 10,000: what history costs in memory."""
    db = Path(args.db) if args.db else workdir / "soak.db"
    token = await make_token(db, Role.DISPATCHER, f"soak-history-{os.getpid()}")
    serve = ["serve", "--port", "0", "--log", str(workdir / "events.jsonl"), *args.serve.split()]
    server, url = start([sys.executable, "-m", "server", "--db", str(db), *serve], workdir / "server.err")
    replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
    connections = [(await hello(url, token))[0] for _ in range(HISTORY_CONNECTIONS)]

    async def read(ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                if '"type":"event"' in raw[:40]:
                    continue  # every event reaches every dispatcher: skipped unparsed
                frame = json.loads(raw)
                if (future := replies.pop(frame.get("command_id") or "", None)) is not None:
                    future.set_result(frame)

    readers = [asyncio.create_task(read(ws)) for ws in connections]
    counter = iter(range(10**9))

    async def call(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(20):
            command_id = f"history-{os.getpid()}-{next(counter)}"
            future = replies[command_id] = asyncio.get_running_loop().create_future()
            await ws.send(json.dumps({**frame, "command_id": command_id}))
            reply = await asyncio.wait_for(future, 30)
            if reply.get("code") != "rate_limited":
                return reply
            await asyncio.sleep(0.01 * 2 ** min(attempt, 6))
        raise SystemExit(f"still rate limited: {frame}")

    ws = connections[0]
    for tech in TECHS:
        reply = await call(ws, {"type": "add_technician", "tech_id": tech, "name": tech.title(), "capacity": 100})
        if reply["type"] != "ack":
            raise SystemExit(f"setup refused: {reply}")
    claimed = done = 0
    marks = [1000, *range(10_000, args.tickets + 1, 10_000)]
    rss_at: dict[int, float] = {}
    started = time.perf_counter()
    print(f"history: {args.tickets:,} tickets opened, assigned and resolved, {HISTORY_WORKERS} at a time; "
          f"server RSS as they go", flush=True)  # fmt: skip
    print(f"{'tickets':>8} {'elapsed':>8} {'per s':>7} {'RSS MiB':>8} {'db MiB':>7}", flush=True)

    def rss() -> float:
        return int(Path(f"/proc/{server.pid}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024

    async def worker(n: int) -> None:
        nonlocal done
        ws = connections[n % HISTORY_CONNECTIONS]
        nonlocal claimed
        while claimed < args.tickets:
            claimed += 1
            created = await call(ws, {"type": "create_ticket", "title": f"History ticket {claimed}", "priority": "P3",
                                      "client": f"Client {claimed % 97}", "category": CATEGORIES[n % 5]})  # fmt: skip
            ticket = {"ticket_id": created["ticket_id"]}
            await call(ws, {"type": "assign", **ticket, "tech_id": TECHS[done % len(TECHS)]})
            await call(ws, {"type": "set_status", **ticket, "status": "resolved"})
            done += 1
            if marks and done >= marks[0]:
                mark = marks.pop(0)
                rss_at[mark] = rss()
                elapsed = time.perf_counter() - started
                db_mib = sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists()) / 2**20
                print(f"{mark:>8,} {elapsed:>7.1f}s {done / elapsed:>7.0f} {rss_at[mark]:>8.1f} {db_mib:>7.1f}",
                      flush=True)  # fmt: skip

    try:
        await asyncio.gather(*(worker(n) for n in range(HISTORY_WORKERS)))
    finally:
        for ws in connections:
            await ws.close()
        await asyncio.gather(*readers)
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    first, last = min(rss_at), max(rss_at)
    growth = rss_at[last] - rss_at[first]
    print(f"summary: RSS {rss_at[first]:.1f} MiB after {first:,} tickets, {rss_at[last]:.1f} MiB after {last:,}: "
          f"{growth:+.1f} MiB ({growth * 1024 * 1000 / (last - first):+.1f} KiB per 1,000 tickets; "
          f"goal: within 20 MiB)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0, help="commands per second (server default limit: 500)")
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between report lines")
    parser.add_argument("--db", help="database path (default: a fresh one in a temporary directory)")
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds of raw-websockets baseline first")
    parser.add_argument("--tickets", type=int, help="instead: open and resolve this many tickets, RSS per 10,000")
    parser.add_argument("--serve", default="", help="with --tickets: more `serve` options, e.g. '--burst-window 1'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        asyncio.run((history_run if args.tickets else main_async)(args, Path(workdir)))


if __name__ == "__main__":
    main()
