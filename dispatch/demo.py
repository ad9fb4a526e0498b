"""`dispatch demo`: the whole product on one machine from one command.

An embedded server (in a thread of this process, so quitting the board leaves nothing behind) on a
temporary SQLite file, with the shipped SLA contracts and roster (dispatch/data/sla.toml, roster.toml:
examples of `serve --sla` and `--roster`); the shipped team of twelve technicians; an ISP outage played
through the real protocol, with technicians working their tickets; and the dispatcher's board open on
it all.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import secrets
import shutil
import tempfile
import threading
from pathlib import Path

from dispatch.client import CommandSession, new_command_id
from dispatch.core.models import Role, TechStatus, TicketStatus
from dispatch.core.protocol import Ack, SetStatus, SetTechStatus, Snapshot
from dispatch.simulator import Outage, play, roster

DEMO_USER = "you"
DATA = Path(__file__).parent / "data"


class EmbeddedServer:
    """A dispatch server on a temporary database, running in a background thread."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="dispatch-demo-"))
        self.url = ""
        self.tokens: dict[str, str] = {}
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dispatch-demo-server", daemon=True)

    def start(self) -> EmbeddedServer:
        self._thread.start()
        self._ready.wait(30)
        if self._failure is not None or not self.url:
            raise RuntimeError(f"the demo server did not start: {self._failure}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the main thread, which prints one line
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        # Imported here: the board's process only needs the server when it runs the demo.
        from server.embedded import running
        from server.roster import load_roster
        from server.settings import ServerSettings
        from server.sla import load_contracts
        from server.storage import Storage

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        storage = await Storage.open(self.workdir / "demo.db")
        try:
            for name, role in (
                (DEMO_USER, Role.DISPATCHER),
                ("simulator", Role.DISPATCHER),
                ("monitoring", Role.INTAKE),
            ):
                self.tokens[name] = secrets.token_urlsafe(32)
                await storage.create_token(name, role, None, self.tokens[name])
            logging.getLogger("dispatch.server").setLevel(logging.WARNING)
            # The shipped contracts and roster: gold clients on office hours, the team's shifts and rest.
            settings = ServerSettings(
                port=0, contracts=load_contracts(str(DATA / "sla.toml")), roster=load_roster(str(DATA / "roster.toml"))
            )
            async with running(storage, settings, io.StringIO(), stop=self._stop) as server:
                self.url = server.url
                self._ready.set()
                await server.wait()
        finally:
            await storage.close()


async def run_outage(url: str, setup_token: str, intake_token: str, seed: int = 7) -> None:
    """The demo's world: the team comes on shift, the outage arrives, technicians work their tickets."""
    async with await CommandSession.open(url, setup_token) as floor:
        for command in roster():
            await floor.call(command)
        # Not everyone is at their desk.
        for tech_id, status in (
            ("judy", TechStatus.OFF_SHIFT),
            ("oscar", TechStatus.BREAK),
            ("heidi", TechStatus.ON_SITE),
        ):
            await floor.call(SetTechStatus(type="set_tech_status", command_id=new_command_id(), tech_id=tech_id,
                                           status=status))  # fmt: skip
        async with await CommandSession.open(url, intake_token) as monitoring:
            await asyncio.gather(
                play(monitoring, Outage("isp-outage", seed), per_second=0.4, duration_s=3600, opening_burst=18),
                _technicians_at_work(url, setup_token, random.Random(seed)),
            )


async def _technicians_at_work(url: str, token: str, rng: random.Random) -> None:
    """Every few seconds a technician starts or resolves one of their tickets, as people do."""
    async with await CommandSession.open(url, token) as floor:
        while True:
            await asyncio.sleep(rng.uniform(2.0, 5.0))
            async with await CommandSession.open(url, token) as look:
                snapshot = look.snapshot
            if not isinstance(snapshot, Snapshot):
                continue
            held = [
                t
                for t in snapshot.tickets
                if t.assignee and t.status in (TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS)
            ]
            if not held:
                continue
            ticket = rng.choice(held)
            status = TicketStatus.IN_PROGRESS if ticket.status is TicketStatus.ASSIGNED else TicketStatus.RESOLVED
            reply = await floor.call(SetStatus(type="set_status", command_id=new_command_id(), ticket_id=ticket.id,
                                               status=status, expected_version=ticket.version))  # fmt: skip
            _ = isinstance(reply, Ack)  # a lost race with the dispatcher is fine: try another next time


def run_demo() -> int:
    from dispatch.app import DispatchApp

    server = EmbeddedServer()
    try:
        server.start()
    except RuntimeError as exc:
        print(f"dispatch demo: {exc}")
        return 1
    assert server._loop is not None
    world = asyncio.run_coroutine_threadsafe(
        run_outage(server.url, server.tokens["simulator"], server.tokens["monitoring"]), server._loop
    )
    try:
        app = DispatchApp(server.url, server.tokens[DEMO_USER])
        app.run()
        if world.done() and not world.cancelled() and world.exception() is not None:
            print(f"dispatch demo: the outage simulation stopped: {world.exception()}")
        return app.return_code or 0
    finally:
        world.cancel()
        server.stop()
