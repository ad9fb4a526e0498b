"""Ingest benchmark: acked create_ticket per second, fan-out latency to 20 viewers, and what it costs.

    .venv/bin/python bench/ingest.py [--tickets 6000] [--runs 3] [--steady-rate 200] [--steady-seconds 10]
    .venv/bin/python bench/ingest.py --db postgresql   # SQLite, PostgreSQL with one and two nodes (bench/nodes.py)

Several intake clients pipeline `create_ticket` (a few in flight each, as fast as acks return) while
20 viewers watch the event stream. For each run it measures, against our server (SQLite,
synchronous=FULL, group commit) and, in the same run, a raw websockets server that only acks and
broadcasts, the acked commands per second and the latency from send until each viewer sees the
event. Prints medians over the runs and the ratio to the baseline. The raw server runs twice at
saturation: writing each frame as it is made (websockets' broadcast, the issue's baseline), and writing
each connection's frames of a loop turn together (`--coalesce`), as ours writes a batch's: the second is
the fairer ceiling, since ours does that.

The load is generated outside this process, so the client side is never what limits: the senders run
in child processes of their own (SENDER_PROCESSES), the viewers in another. Each server's CPU (from
/proc) is shown next to the load generators' (what the children report), in percent of one core over
the run. Fan-out latency has two rows: at saturation (as fast as acks return), and at a steady
`--steady-rate` commands a second with the same 20 viewers (goal: p99 <= 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
SENDERS = 8
SENDER_PROCESSES = 2  # the senders split over this many child processes
IN_FLIGHT_PER_SENDER = int(os.environ.get("BENCH_IN_FLIGHT", "4"))
VIEWERS = int(os.environ.get("BENCH_VIEWERS", "20"))
# Frames told apart without parsing them: how an event frame starts (in both servers' spellings), and
# what only a ticket_created event holds (the titles are "bench ...").
EVENT_FRAME = (b'{"type":"event"', b'{"type": "event"')
CREATED = b"ticket_created"


def start(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 20)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("listening on"):
        process.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return process, line.split()[-1]


def token(db: Path, role: str, name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "server", "--db", str(db), "token", "create", "--role", role, "--name", name],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


async def hello(url: str, secret: str):  # type: ignore[no-untyped-def]
    ws = await connect(url, max_size=None, compression=None)
    await ws.send(json.dumps({"type": "hello", "token": secret, "last_seq": None}))
    await ws.recv()  # welcome
    await ws.recv()  # snapshot
    return ws


async def sender(url: str, secret: str, index: int, count: int, sent_at: dict[str, float], rate: float = 0) -> float:
    """Send `count` tickets (at `rate` a second on a fixed schedule, else as fast as acks return);
    return when the last ack arrived (closing is not part of the figure)."""
    ws = await hello(url, secret)
    paced_from = time.perf_counter()
    window = asyncio.Semaphore(IN_FLIGHT_PER_SENDER)
    acked = 0

    async def read_acks() -> None:
        nonlocal acked
        while acked < count:
            raw = await ws.recv(decode=False)
            if raw.startswith(EVENT_FRAME):  # everyone's events come here too: not parsed, to keep the load light
                continue
            frame = json.loads(raw)
            if frame["type"] == "ack":
                acked += 1
                window.release()
            elif frame["type"] == "error":
                raise SystemExit(f"refused: {frame}")

    reader = asyncio.create_task(read_acks())
    for n in range(count):
        if rate and (delay := paced_from + n / rate - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        await window.acquire()
        title = f"bench {index}-{n}"
        sent_at[title] = time.time()
        await ws.send(json.dumps({"type": "create_ticket", "command_id": f"{os.getpid()}-{index}-{n}", "title": title,
                                  "client": "Bench", "priority": "P2"}))  # fmt: skip
    await reader
    finished = time.time()
    # Events from the other senders keep coming: drain them while closing, or the client's flow
    # control pauses the socket and the close handshake waits out its timeout.
    drain = asyncio.create_task(_discard(ws))
    await ws.close()
    drain.cancel()
    return finished


async def _discard(ws) -> None:  # type: ignore[no-untyped-def]
    async for _ in ws:
        pass


async def viewers_main(url: str, secret: str, expected: int) -> None:
    """Child process: 20 viewers; prints {title: [receive times]} as JSON when all saw every event.
    While the load runs a frame is only timed and kept (undecoded); it is parsed after the run, so the
    viewers' CPU goes on receiving, as a board's socket would, not on the benchmark's bookkeeping."""
    received: list[tuple[float, bytes]] = []

    async def viewer() -> None:
        ws = await hello(url, secret)
        got = 0
        while got < expected:
            frame = await ws.recv(decode=False)
            # Only the tickets are timed: the server's own events (burst_detected) come on top.
            if CREATED in frame:
                got += 1
                received.append((time.time(), frame))
        await ws.close()

    await asyncio.gather(*(viewer() for _ in range(VIEWERS)))
    cpu = time.process_time()
    seen: dict[str, list[float]] = {}
    for at, frame in received:
        event = json.loads(frame)["event"]
        if event["kind"] == "ticket_created":
            seen.setdefault(event["ticket"]["title"], []).append(at)
    print(json.dumps({"seen": seen, "cpu": cpu}))


async def senders_main(url: str, secret: str, first: int, senders: int, per_sender: int, rate: float) -> None:
    """Child process: `senders` senders from index `first`; prints when each send happened, when it
    started and finished (wall clock, comparable across processes) and its own CPU time, as JSON."""
    sent_at: dict[str, float] = {}
    started = time.time()
    finished = await asyncio.gather(
        *(sender(url, secret, first + i, per_sender, sent_at, rate / SENDERS) for i in range(senders))
    )
    print(json.dumps({"sent_at": sent_at, "started": started, "finished": max(finished),
                      "cpu": time.process_time()}))  # fmt: skip


@dataclass(frozen=True)
class Run:
    """One load against one server."""

    acked_per_s: float
    fan_p50_ms: float
    fan_p99_ms: float
    server_cpu: float  # percent of one core over the run
    load_cpu: float  # the senders' and viewers' processes together, likewise


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_run(url: str, send_secret: str, view_secret: str, total: int, server_pid: int, rate: float = 0) -> Run:
    per_sender = total // SENDERS
    expected = per_sender * SENDERS
    watchers = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--viewers", json.dumps([url, view_secret, expected]), stdout=asyncio.subprocess.PIPE
    )
    # Let all viewers finish their handshake before the burst starts.
    probe = await hello(url, view_secret)
    await probe.close()
    await asyncio.sleep(1.0)  # benchmark pacing only: the viewer process has no ready signal to await
    server_cpu = cpu_seconds(server_pid)
    each = SENDERS // SENDER_PROCESSES
    senders = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--senders", json.dumps([url, send_secret, n * each, each, per_sender, rate]),
            stdout=asyncio.subprocess.PIPE,
        )
        for n in range(SENDER_PROCESSES)
    ]  # fmt: skip
    reports = [json.loads((await s.communicate())[0]) for s in senders]
    out, _ = await watchers.communicate()
    server_cpu = cpu_seconds(server_pid) - server_cpu
    viewed = json.loads(out)
    started, finished = min(r["started"] for r in reports), max(r["finished"] for r in reports)
    elapsed = finished - started
    sent_at = {title: at for r in reports for title, at in r["sent_at"].items()}
    seen: dict[str, list[float]] = viewed["seen"]
    latencies = sorted((t - sent_at[title]) * 1000 for title, times in seen.items() for t in times)
    assert len(latencies) == expected * VIEWERS, "a viewer missed an event"
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    # The children's CPU includes their start-up (imports, connecting): a little on top of the load.
    load_cpu = sum(r["cpu"] for r in reports) + viewed["cpu"]
    return Run(expected / elapsed, p50, p99, 100 * server_cpu / elapsed, 100 * load_cpu / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", default="", metavar="OPTIONS", help="more `serve` options, one string")
    parser.add_argument("--steady-rate", type=float, default=200.0, help="commands a second, the steady row")
    parser.add_argument("--steady-seconds", type=float, default=10.0)
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql"), default="sqlite",
        help="postgresql: SQLite, PostgreSQL with one node and with two, side by side (bench/nodes.py)",
    )  # fmt: skip
    # A child's arguments, as one JSON list: a token may begin with "-", which argparse takes for an option.
    parser.add_argument("--viewers", help=argparse.SUPPRESS)
    parser.add_argument("--senders", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.db == "postgresql":
        nodes = Path(__file__).with_name("nodes.py")
        os.execv(sys.executable, [sys.executable, str(nodes), "--tickets", str(args.tickets), "--runs", str(args.runs)])
    if args.viewers:
        asyncio.run(viewers_main(*json.loads(args.viewers)))
        return
    if args.senders:
        asyncio.run(senders_main(*json.loads(args.senders)))
        return

    steady = int(args.steady_rate * args.steady_seconds)
    results: dict[str, list[Run]] = {"raw": [], "raw coalesced": [], "dispatch": [], "raw steady": [],
                                      "dispatch steady": []}  # fmt: skip
    for run in range(args.runs):
        raw, raw_url = start([sys.executable, "bench/raw_server.py"])
        try:
            results["raw"].append(asyncio.run(one_run(raw_url, "-", "-", args.tickets, raw.pid)))
            results["raw steady"].append(asyncio.run(one_run(raw_url, "-", "-", steady, raw.pid, args.steady_rate)))
        finally:
            raw.kill()
        raw, raw_url = start([sys.executable, "bench/raw_server.py", "--coalesce"])
        try:
            results["raw coalesced"].append(asyncio.run(one_run(raw_url, "-", "-", args.tickets, raw.pid)))
        finally:
            raw.kill()
        with tempfile.TemporaryDirectory() as workdir:
            db = Path(workdir) / "bench.db"
            send_secret, view_secret = token(db, "intake", "bench-intake"), token(db, "viewer", "bench-wall")
            ours, url = start([sys.executable, "-m", "server", "--db", str(db), "serve", "--port", "0",
                               "--log", os.path.join(workdir, "events.jsonl"), *args.serve.split()])  # fmt: skip
            try:
                results["dispatch"].append(asyncio.run(one_run(url, send_secret, view_secret, args.tickets, ours.pid)))
                results["dispatch steady"].append(
                    asyncio.run(one_run(url, send_secret, view_secret, steady, ours.pid, args.steady_rate))
                )
            finally:
                ours.terminate()
                ours.wait(10)
        print(f"run {run + 1}: raw {results['raw'][-1].acked_per_s:,.0f}/s  "
              f"raw coalesced {results['raw coalesced'][-1].acked_per_s:,.0f}/s  "
              f"dispatch {results['dispatch'][-1].acked_per_s:,.0f}/s", file=sys.stderr)  # fmt: skip

    def median(name: str, figure: str) -> float:
        return statistics.median(getattr(r, figure) for r in results[name])

    print(f"ingest: {args.tickets} create_ticket from {SENDERS} clients ({IN_FLIGHT_PER_SENDER} in flight each,"
          f" in {SENDER_PROCESSES} processes), {VIEWERS} viewers (another process),"
          f" medians of {args.runs} runs")  # fmt: skip
    print(f"{'':32}{'acked/s':>10}{'fan-out p50':>14}{'fan-out p99':>14}{'server CPU':>12}{'load CPU':>10}")
    rows = (
        ("raw", "saturation: raw websockets"),
        ("raw coalesced", "saturation: raw, coalesced"),
        ("dispatch", "saturation: dispatch (FULL)"),
        ("raw steady", f"{args.steady_rate:.0f}/s: raw websockets"),
        ("dispatch steady", f"{args.steady_rate:.0f}/s: dispatch (FULL)"),
    )
    for name, label in rows:
        print(f"{label:32}{median(name, 'acked_per_s'):>10,.0f}{median(name, 'fan_p50_ms'):>12.1f}ms"
              f"{median(name, 'fan_p99_ms'):>12.1f}ms{median(name, 'server_cpu'):>11.0f}%"
              f"{median(name, 'load_cpu'):>9.0f}%")  # fmt: skip
    ours = median("dispatch", "acked_per_s")
    print(f"ratio dispatch/raw at saturation: {ours / median('raw', 'acked_per_s'):.2f} of the raw rate (goal >= 0.8),"
          f" {ours / median('raw coalesced', 'acked_per_s'):.2f} of the coalesced raw rate;"
          f" fan-out p99 at {args.steady_rate:.0f}/s: {median('dispatch steady', 'fan_p99_ms'):.1f} ms"
          " (goal <= 50 ms)")  # fmt: skip
    print("(CPU: percent of one core over the run; load = the senders' and viewers' processes together)")


if __name__ == "__main__":
    main()
