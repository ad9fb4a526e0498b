"""Ingest benchmark: acked create_ticket per second, and fan-out latency to 20 viewers.

    .venv/bin/python bench/ingest.py [--tickets 6000] [--runs 3] [--db postgresql]

Several intake clients pipeline `create_ticket` (a few in flight each, as fast as acks return) while
20 viewers watch the event stream. For each run it measures, against our server (SQLite,
synchronous=FULL, group commit) and, in the same run, a raw websockets server that only acks and
broadcasts, the acked commands per second and the latency from send until each viewer sees the
event. Prints medians over the runs and the ratio to the baseline.
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
from pathlib import Path

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
SENDERS = 8
IN_FLIGHT_PER_SENDER = int(os.environ.get("BENCH_IN_FLIGHT", "4"))
VIEWERS = int(os.environ.get("BENCH_VIEWERS", "20"))


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


async def sender(url: str, secret: str, index: int, count: int, sent_at: dict[str, float]) -> float:
    """Send `count` tickets; return when the last ack arrived (closing is not part of the figure)."""
    ws = await hello(url, secret)
    window = asyncio.Semaphore(IN_FLIGHT_PER_SENDER)
    acked = 0

    async def read_acks() -> None:
        nonlocal acked
        while acked < count:
            frame = json.loads(await ws.recv())
            if frame["type"] == "ack":
                acked += 1
                window.release()
            elif frame["type"] == "error":
                raise SystemExit(f"refused: {frame}")

    reader = asyncio.create_task(read_acks())
    for n in range(count):
        await window.acquire()
        title = f"bench {index}-{n}"
        sent_at[title] = time.time()
        await ws.send(json.dumps({"type": "create_ticket", "command_id": f"{index}-{n}", "title": title,
                                  "client": "Bench", "priority": "P2"}))  # fmt: skip
    await reader
    finished = time.perf_counter()
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
    """Child process: 20 viewers; prints {title: [receive times]} as JSON when all saw every event."""
    seen: dict[str, list[float]] = {}

    async def viewer() -> None:
        ws = await hello(url, secret)
        got = 0
        while got < expected:
            frame = json.loads(await ws.recv())
            # Only the tickets are timed: the server's own events (burst_detected) come on top.
            if frame["type"] == "event" and frame["event"]["kind"] == "ticket_created":
                got += 1
                seen.setdefault(frame["event"]["ticket"]["title"], []).append(time.time())
        await ws.close()

    await asyncio.gather(*(viewer() for _ in range(VIEWERS)))
    print(json.dumps(seen))


async def one_run(url: str, send_secret: str, view_secret: str, total: int) -> tuple[float, float, float]:
    per_sender = total // SENDERS
    expected = per_sender * SENDERS
    watchers = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--viewers", url, view_secret, str(expected), stdout=asyncio.subprocess.PIPE
    )
    # Let all viewers finish their handshake before the burst starts.
    probe = await hello(url, view_secret)
    await probe.close()
    await asyncio.sleep(1.0)  # benchmark pacing only: the viewer process has no ready signal to await
    sent_at: dict[str, float] = {}
    started = time.perf_counter()
    finished = await asyncio.gather(*(sender(url, send_secret, i, per_sender, sent_at) for i in range(SENDERS)))
    elapsed = max(finished) - started
    out, _ = await watchers.communicate()
    seen: dict[str, list[float]] = json.loads(out)
    latencies = sorted((t - sent_at[title]) * 1000 for title, times in seen.items() for t in times)
    assert len(latencies) == expected * VIEWERS, "a viewer missed an event"
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    return expected / elapsed, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", default="", metavar="OPTIONS", help="more `serve` options, one string")
    parser.add_argument("--viewers", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql"), default="sqlite",
        help="postgresql: SQLite, PostgreSQL with one node and with two, side by side (bench/nodes.py)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.db == "postgresql":
        nodes = Path(__file__).with_name("nodes.py")
        os.execv(sys.executable, [sys.executable, str(nodes), "--tickets", str(args.tickets), "--runs", str(args.runs)])
    if args.viewers:
        url, secret, expected = args.viewers
        asyncio.run(viewers_main(url, secret, int(expected)))
        return

    results: dict[str, list[tuple[float, float, float]]] = {"raw": [], "dispatch": []}
    for run in range(args.runs):
        raw, raw_url = start([sys.executable, "bench/raw_server.py"])
        try:
            results["raw"].append(asyncio.run(one_run(raw_url, "-", "-", args.tickets)))
        finally:
            raw.kill()
        with tempfile.TemporaryDirectory() as workdir:
            db = Path(workdir) / "bench.db"
            send_secret, view_secret = token(db, "intake", "bench-intake"), token(db, "viewer", "bench-wall")
            ours, url = start([sys.executable, "-m", "server", "--db", str(db), "serve", "--port", "0",
                               "--log", os.path.join(workdir, "events.jsonl"), *args.serve.split()])  # fmt: skip
            try:
                results["dispatch"].append(asyncio.run(one_run(url, send_secret, view_secret, args.tickets)))
            finally:
                ours.terminate()
                ours.wait(10)
        print(f"run {run + 1}: raw {results['raw'][-1][0]:,.0f}/s  dispatch {results['dispatch'][-1][0]:,.0f}/s",
              file=sys.stderr)  # fmt: skip

    def median(name: str, index: int) -> float:
        return statistics.median(r[index] for r in results[name])

    print(f"ingest: {args.tickets} create_ticket from {SENDERS} clients ({IN_FLIGHT_PER_SENDER} in flight each), "
          f"{VIEWERS} viewers, medians of {args.runs} runs")  # fmt: skip
    print(f"{'':24}{'acked/s':>10}{'fan-out p50':>14}{'fan-out p99':>14}")
    for name, label in (("raw", "raw websockets baseline"), ("dispatch", "dispatch-server (FULL)")):
        print(f"{label:24}{median(name, 0):>10,.0f}{median(name, 1):>12.1f}ms{median(name, 2):>12.1f}ms")
    print(f"ratio dispatch/raw: {median('dispatch', 0) / median('raw', 0):.2f} of the raw rate")


if __name__ == "__main__":
    main()
