"""Baseline for bench/ingest.py: a websockets server that only acks and broadcasts.

No validation, no storage, no roles: the ceiling our server is compared with in the same run.

    python bench/raw_server.py              # each frame written as it is made (websockets' broadcast)
    python bench/raw_server.py --coalesce   # each connection's frames of one loop turn in one write

The second is the fairer ceiling for a server that writes a batch's frames to a client together (ours
does): the same few system calls per client, and still nothing else.
"""

from __future__ import annotations

import asyncio
import json
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.protocol import State

watchers: set[ServerConnection] = set()
seq = 0
COALESCE = "--coalesce" in sys.argv
# With --coalesce: what each connection is sent in this turn of the event loop, written at its end.
outbox: dict[ServerConnection, list[bytes]] = {}


def send(connections: set[ServerConnection] | list[ServerConnection], message: str) -> None:
    if not COALESCE:
        broadcast(connections, message)
        return
    if not outbox:
        asyncio.get_running_loop().call_soon(flush)
    encoded = message.encode()
    for ws in connections:
        outbox.setdefault(ws, []).append(encoded)


def flush() -> None:
    for ws, frames in outbox.items():
        if ws.protocol.state is State.OPEN and ws.transport is not None:
            for frame in frames:
                ws.protocol.send_text(frame)
            ws.transport.write(b"".join(ws.protocol.data_to_send()))
    outbox.clear()


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
            send(watchers, json.dumps({"type": "event", "event": event}))
            send([ws], json.dumps({"type": "ack", "command_id": command["command_id"], "seq": seq}))
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
