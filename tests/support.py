"""Test support: start the real `dispatch-server` process, and talk to it with the plain websockets client.

Every wait here is bounded by a timeout scaled by one factor, `DISPATCH_TESTS_TIMEOUT_FACTOR` (default
1): a slow or loaded machine sets it (say to 3) instead of every test guessing its own margin. Tests use
`timeout(seconds)` for their own waits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from dispatch.core.models import Role
from server.storage import Storage

TIMEOUT_FACTOR_VARIABLE = "DISPATCH_TESTS_TIMEOUT_FACTOR"


def _timeout_factor() -> float:
    text = os.environ.get(TIMEOUT_FACTOR_VARIABLE, "1")
    try:
        factor = float(text)
    except ValueError:
        factor = 0.0
    if not 0 < factor < float("inf"):
        raise RuntimeError(f"{TIMEOUT_FACTOR_VARIABLE} must be a number > 0, not {text!r}")
    return factor


TIMEOUT_FACTOR = _timeout_factor()


def timeout(seconds: float) -> float:
    """How long a test waits for something that takes `seconds` at most on an ordinary machine."""
    return seconds * TIMEOUT_FACTOR


SERVER_START_TIMEOUT_S = 15.0


@dataclass
class ServerProcess:
    """A running `dispatch-server --db ... serve --port 0`, with its database and logs."""

    db: Path
    workdir: Path
    # `serve` options kept across restarts (`--port` may be given in `start`).
    options: tuple[str, ...] = ()
    process: subprocess.Popen[str] | None = None
    url: str = ""
    _starts: int = 0

    def start(self, *extra: str) -> ServerProcess:
        self._starts += 1
        stderr = open(self.workdir / f"server-{self._starts}.err", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--db", str(self.db), "serve",
             "--log", str(self.workdir / "events.jsonl"), *self.options, *(extra or ("--port", "0"))],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )  # fmt: skip
        stderr.close()
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout(SERVER_START_TIMEOUT_S))
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("listening on "):
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.stderr()}")
        self.url = line.split()[-1]
        return self

    def stderr(self) -> str:
        return (self.workdir / f"server-{self._starts}.err").read_text()

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout(10))

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, and the exit status once it has stopped."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(TIMEOUT_FACTOR * timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout(10))

    async def token(self, role: Role, name: str, tech_id: str | None = None) -> str:
        """A fresh token, stored the way `token create` stores it."""
        secret = f"test-{name}-{os.urandom(8).hex()}"
        storage = await Storage.open(self.db)
        try:
            await storage.create_token(name, role, tech_id, secret)
        finally:
            await storage.close()
        return secret


_ids = itertools.count(1)


def new_command_id() -> str:
    return f"cmd-{os.getpid()}-{next(_ids)}"


@dataclass
class Session:
    """One client connection: remembers the events it saw, and matches replies to command ids."""

    ws: ClientConnection
    welcome: dict[str, Any] = field(default_factory=dict)
    snapshot: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    others: list[dict[str, Any]] = field(default_factory=list)
    # Every frame after the handshake, in order, when asked for (tests of the frames' shapes).
    frames: list[dict[str, Any]] | None = None

    @classmethod
    async def open(cls, url: str, token: str, last_seq: int | None = None, **options: Any) -> Session:
        # No flow control: a test may leave frames unread, and a paused socket would make close() wait
        # out its 10 s timeout behind them.
        ws = await connect(url, max_size=None, max_queue=None, open_timeout=timeout(10), **options)
        await ws.send(json.dumps({"type": "hello", "token": token, "last_seq": last_seq}))
        session = cls(ws)
        session.welcome = json.loads(await asyncio.wait_for(ws.recv(), timeout(10)))
        assert session.welcome["type"] == "welcome", session.welcome
        if last_seq is None or last_seq > session.welcome["seq"]:
            session.snapshot = json.loads(await asyncio.wait_for(ws.recv(), timeout(10)))
            assert session.snapshot["type"] == "snapshot"
        return session

    async def close(self) -> None:
        await self.ws.close()

    # Each `timeout` below is in ordinary seconds: the wait scales it by the timeout factor.

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame, remembered by kind (event, reply, other)."""
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT_FACTOR * timeout))
        self._remember(frame)
        return frame

    def _remember(self, frame: dict[str, Any]) -> None:
        if self.frames is not None:
            self.frames.append(frame)
        if frame["type"] == "event":
            self.events.append(frame["event"])
        elif frame.get("command_id") is not None:
            self.replies[frame["command_id"]] = frame
        else:
            self.others.append(frame)

    async def send(self, frame: dict[str, Any] | str) -> str | None:
        if isinstance(frame, dict):
            frame = {"command_id": new_command_id(), **frame}
            await self.ws.send(json.dumps(frame))
            return str(frame["command_id"])
        await self.ws.send(frame)
        return None

    async def reply_to(self, command_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The reply to `command_id`, reading on while frames keep coming (each within `timeout`)."""
        while command_id not in self.replies:
            await self.receive(timeout)
        return self.replies.pop(command_id)

    async def call(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a command and return its reply (ack, error, suggestions, history)."""
        command_id = await self.send(frame)
        assert command_id is not None
        return await self.reply_to(command_id)

    async def ok(self, frame: dict[str, Any]) -> dict[str, Any]:
        reply = await self.call(frame)
        assert reply["type"] in ("ack", "suggestions", "history", "plan", "forecast"), reply
        return reply

    async def until_event(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """Wait for (or find among those already seen) an event matching `predicate`."""
        for event in self.events:
            if predicate(event):
                return event
        async with asyncio.timeout(TIMEOUT_FACTOR * timeout):
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.recv())
                self._remember(frame)
                if frame["type"] == "event" and predicate(frame["event"]):
                    found: dict[str, Any] = frame["event"]
                    return found

    async def until_seq(self, seq: int, timeout: float = 10.0) -> None:
        await self.until_event(lambda e: e["seq"] >= seq, timeout)


def ticket_frame(title: str = "Email down", client: str = "Acme", priority: str = "P2", **extra: Any) -> dict[str, Any]:
    return {"type": "create_ticket", "title": title, "client": client, "priority": priority, **extra}


def tech_frame(tech_id: str, skills: list[str] | None = None, capacity: int = 3) -> dict[str, Any]:
    return {"type": "add_technician", "tech_id": tech_id, "name": tech_id.title(), "skills": skills or [],
            "capacity": capacity}  # fmt: skip
