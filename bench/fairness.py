"""Fairness benchmark: one client floods, how long does a dispatcher's single command take?

    .venv/bin/python bench/fairness.py [--probes 300] [--runs 3] [--rate-limit 0]

A "flooder" connection keeps 256 `create_ticket` in flight (the most the server reads ahead per
connection) for the whole run, as a runaway integration would. Meanwhile a "dispatcher" connection
sends one `add_note` at a time and measures its round trip. The baseline, in the same run and on the
same server, is the dispatcher's round trip with nobody flooding. Prints medians over the runs of the
p50/p99 round trip in both phases, their ratio, and the flooder's acked commands per second.

`--rate-limit` is passed to the server (default 0: off, to show the writer's turn-taking alone; try
the server's default of 500 to see both). `--root` runs the server of another checkout, for a
before/after comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # noqa: E402
from ingest import ROOT, hello, start, token  # noqa: E402

FLOOD_IN_FLIGHT = 256
FLOOD_SECONDS = 10.0  # the dispatcher probes at least this long beside the flood


async def round_trips(ws: ClientConnection, count: int, at_least_s: float = 0.0) -> list[float]:
    """`count` add_note round trips (more if needed to last `at_least_s`), one at a time, reading past
    events; seconds each."""
    times: list[float] = []
    deadline = time.perf_counter() + at_least_s
    for n in itertools.count():
        if n >= count and time.perf_counter() >= deadline:
            break
        command_id = f"probe-{time.monotonic_ns()}-{n}"
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "add_note", "command_id": command_id, "ticket_id": "T-000001",
                                  "text": "still with you"}))  # fmt: skip
        while True:
            raw = await ws.recv()
            assert isinstance(raw, str)
            if raw.startswith(('{"type":"ack"', '{"type":"error"')) and command_id in raw:
                assert raw.startswith('{"type":"ack"'), raw
                break
        times.append(time.perf_counter() - started)
    return times


@dataclass
class FloodResult:
    acked: int = 0
    refused: int = 0  # rate_limited
    closed: int = 0  # times the server closed it (4429) and it came straight back
    seconds: float = 0.0


async def flood(url: str, secret: str, stop: asyncio.Event) -> FloodResult:
    """Keep FLOOD_IN_FLIGHT create_ticket in flight until `stop`, ignoring `rate_limited` and coming
    back at once when closed, as a runaway integration would."""
    result = FloodResult()
    started = time.perf_counter()
    sent = 0
    while not stop.is_set():
        ws = await hello(url, secret)
        window = asyncio.Semaphore(FLOOD_IN_FLIGHT)
        in_flight = 0

        async def read(ws: ClientConnection = ws, window: asyncio.Semaphore = window) -> None:
            nonlocal in_flight
            try:
                while not (stop.is_set() and in_flight == 0):
                    raw = await ws.recv()
                    assert isinstance(raw, str)
                    if raw.startswith(('{"type":"ack"', '{"type":"error"')):
                        in_flight -= 1
                        window.release()
                        if raw.startswith('{"type":"ack"'):
                            result.acked += 1
                        else:
                            result.refused += 1
            finally:
                for _ in range(FLOOD_IN_FLIGHT):  # never leave the sender waiting for a slot
                    window.release()

        reader = asyncio.create_task(read())
        try:
            while not stop.is_set() and not reader.done():
                await window.acquire()
                frame = {"type": "create_ticket", "command_id": f"flood-{sent}", "title": f"flood {sent}",
                         "client": "Loop", "priority": "P4"}  # fmt: skip
                await ws.send(json.dumps(frame))
                sent += 1
                in_flight += 1
        except ConnectionClosed:
            pass  # the reader sees the close too, and counts it
        try:
            await reader
        except ConnectionClosed:
            result.closed += 1
        await ws.close()
    result.seconds = time.perf_counter() - started
    return result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


async def one_run(url: str, flooder_token: str, dispatcher_token: str, probes: int) -> dict[str, float]:
    dispatcher = await hello(url, dispatcher_token)
    await round_trips(dispatcher, 20)  # warm up
    quiet = await round_trips(dispatcher, probes)
    stop = asyncio.Event()
    flooding = asyncio.create_task(flood(url, flooder_token, stop))
    await asyncio.sleep(1.0)  # let the flood fill its window
    loaded = await round_trips(dispatcher, probes, at_least_s=FLOOD_SECONDS)
    stop.set()
    flooded = await flooding
    await dispatcher.close()
    return {
        "quiet_p50": pct(quiet, 0.5), "quiet_p99": pct(quiet, 0.99),
        "flood_p50": pct(loaded, 0.5), "flood_p99": pct(loaded, 0.99),
        "flood_rate": flooded.acked / flooded.seconds,
        "flood_refused": flooded.refused / flooded.seconds,
        "flood_closed": flooded.closed,
    }  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate-limit", default="0")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose server to run")
    parser.add_argument("--serve", default="", metavar="OPTIONS", help="more `serve` options, one string")
    args = parser.parse_args()
    ingest.ROOT = args.root  # tokens and server both from that checkout (its schema may be older)
    results = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            db = Path(folder) / "fair.db"
            flooder_token = token(db, "intake", "flooder")
            dispatcher_token = token(db, "dispatcher", "ana")
            command = [sys.executable, "-m", "server", "--db", str(db), "serve", "--port", "0",
                       "--log", str(Path(folder) / "events.jsonl")]  # fmt: skip
            command += args.serve.split()
            if args.rate_limit != "none":  # "none": a server from before the option existed
                command += ["--rate-limit", args.rate_limit]
            process, url = start(command)
            try:
                setup = await hello(url, dispatcher_token)
                await setup.send(json.dumps({"type": "create_ticket", "command_id": "t1", "title": "VPN down",
                                             "client": "Acme", "priority": "P1"}))  # fmt: skip
                while '"ack"' not in str(await setup.recv()):
                    pass
                await setup.close()
                result = await one_run(url, flooder_token, dispatcher_token, args.probes)
            finally:
                process.terminate()
                process.wait(10)
        results.append(result)
        print(
            f"run {run + 1}: dispatcher round trip p50 {result['quiet_p50']:.1f} ms / p99 {result['quiet_p99']:.1f} ms"
            f" alone, p50 {result['flood_p50']:.1f} / p99 {result['flood_p99']:.1f} ms beside the flood"
            f" (flood: {result['flood_rate']:.0f} commands/s acked, {result['flood_refused']:.0f}/s rate_limited,"
            f" closed {result['flood_closed']:.0f} times)",
            flush=True,
        )
    median = {key: statistics.median(r[key] for r in results) for key in results[0]}
    print(
        f"median of {args.runs}: alone p50 {median['quiet_p50']:.1f} ms p99 {median['quiet_p99']:.1f} ms;"
        f" beside a {FLOOD_IN_FLIGHT}-in-flight flood p50 {median['flood_p50']:.1f} ms p99 {median['flood_p99']:.1f} ms"
        f" -> x{median['flood_p50'] / median['quiet_p50']:.1f} (p50), x{median['flood_p99'] / median['quiet_p99']:.1f}"
        f" (p99); flood {median['flood_rate']:.0f} commands/s"
    )


if __name__ == "__main__":
    asyncio.run(main())
