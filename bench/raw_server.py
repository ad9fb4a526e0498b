"""Baseline for bench/ingest.py: a websockets server that only acks and broadcasts.

No validation, no storage, no roles: the ceiling our server is compared with in the same run.
"""

from __future__ import annotations

import asyncio
import json
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

watchers: set[ServerConnection] = set()
seq = 0


async def handler(ws: ServerConnection) -> None:
    global seq
    await ws.recv()  # hello: no token check
    await ws.send(json.dumps({"type": "welcome", "role": "dispatcher", "user": "raw", "tech_id": None, "seq": seq}))
    await ws.send(json.dumps({"type": "snapshot", "seq": seq, "tickets": [], "technicians": [], "incidents": []}))
    watchers.add(ws)
    try:
        async for raw in ws:
            command = json.loads(raw)
            seq += 1
            event = {"seq": seq, "kind": "ticket_created", "ticket": {"title": command["title"]}}
            broadcast(watchers, json.dumps({"type": "event", "event": event}))
            broadcast([ws], json.dumps({"type": "ack", "command_id": command["command_id"], "seq": seq}))
    finally:
        watchers.discard(ws)


async def main() -> None:
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
