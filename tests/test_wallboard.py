"""The browser wallboard: `dispatch wallboard --web` against a real server, looked at by a real headless Chromium.

Chromium is driven over the DevTools protocol (a websocket, spoken with the project's own websockets client):
the page draws the board on a canvas (xterm.js), so its DOM holds no ticket text to dump. A script put into
the page before it loads keeps the text the board process sends over the page's websocket, escape
sequences dropped; the test waits (bounded) until that text shows the lanes and their tickets, checks the
page swapped its splash for the terminal, and takes a screenshot.

The README's screenshot is made the same way, against a livelier queue:

    python -m tests.test_wallboard screenshots/wallboard-web.png
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from dispatch.cli import build_parser
from dispatch.core.models import Role
from dispatch.wallboard import DEFAULT_HOST, board_command, page_address, page_template
from tests.support import ServerProcess, Session, tech_frame, ticket_frame, timeout

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed: apt-get install -y chromium (CI's .ci/run installs it, so it runs there)",
)

SCREEN = (1600, 900)
# Only the wallboard on loopback: the browser resolves no other name, so a page that reached for the
# internet would show it as a missing resource here instead of sending traffic out.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", f"--window-size={SCREEN[0]},{SCREEN[1]}",
    "--remote-debugging-port=0",
)  # fmt: skip

# Put into the page before its own script runs: keep the text of every binary frame the page's websocket
# receives (the board's screen updates), without escape sequences, and let a caller await some text.
KEEP_BOARD_TEXT = r"""
(() => {
  const escapes = new RegExp("\x1b(?:" + [
    String.raw`\[[0-9;?<=>!]*[ -\/]*[@-~]`,  // CSI: cursor moves, colours, modes
    String.raw`\][^\x07\x1b]*(?:\x07|\x1b\\)`,  // OSC: title, clipboard
    String.raw`[PX^_][^\x1b]*\x1b\\`,  // DCS and other strings
    String.raw`[()*+][0-9A-Za-z]`,  // character sets
    String.raw`[@-Z\\-_=>]`,  // the rest are one character
  ].join("|") + ")", "g");
  const decoder = new TextDecoder();
  const board = { text: "", pending: "", waiters: [] };
  board.view = () => board.text + board.pending.replace(escapes, "");
  board.check = () => {
    const view = board.view();
    board.waiters = board.waiters.filter((waiter) => {
      if (!waiter.needles.every((needle) => view.includes(needle))) return true;
      waiter.resolve(true);
      return false;
    });
  };
  board.until = (needles) => new Promise((resolve) => { board.waiters.push({ needles, resolve }); board.check(); });
  window.__board = board;
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        if (typeof event.data === "string") return;
        board.pending += decoder.decode(event.data, { stream: true });
        // An escape sequence may be cut between two frames: strip up to the last ESC only.
        const cut = board.pending.lastIndexOf("\x1b");
        if (cut > 0) {
          board.text += board.pending.slice(0, cut).replace(escapes, "");
          board.pending = board.pending.slice(cut);
        }
        board.check();
      });
    }
  };
})();
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- the wallboard process ------------------------------------------------------------------------


class Wallboard:
    """A running `dispatch wallboard --web`, the token in its environment as an operator would give it."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, output: asyncio.Task[bytes]) -> None:
        self.process = process
        self.url = url
        self._output = output

    @classmethod
    @asynccontextmanager
    async def running(cls, server_url: str, token: str, workdir: Path, port: int = 0) -> AsyncIterator[Wallboard]:
        errors = workdir / "wallboard.err"
        with errors.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dispatch", "wallboard", "--web", "--port", str(port or free_port()),
                "--server", server_url,
                env={**os.environ, "DISPATCH_TOKEN": token}, stdout=subprocess.PIPE, stderr=stderr,
            )  # fmt: skip
        assert process.stdout is not None
        try:
            line = (await asyncio.wait_for(process.stdout.readline(), timeout(20))).decode()
            assert line.startswith("wallboard on http://127.0.0.1:"), (line, errors.read_text())
            wallboard = cls(process, line.split()[-1], asyncio.create_task(process.stdout.read()))
            yield wallboard
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), timeout(20))
                except TimeoutError:
                    process.kill()
                    await process.wait()

    async def stop(self) -> int:
        """SIGTERM, as a service manager stops it; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        status = await asyncio.wait_for(self.process.wait(), timeout(20))
        await self._output
        return status

    def boards(self) -> list[int]:
        """The processes it started for browsers (all its descendants, the shell's children too)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended while we looked
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
        found: list[int] = []
        todo = list(children.get(self.process.pid, []))
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found


# --- Chromium over the DevTools protocol ------------------------------------------------------------


class Page:
    """One tab, reached through the browser's DevTools connection (flattened sessions)."""

    def __init__(self, devtools: DevTools, session_id: str) -> None:
        self.devtools = devtools
        self.session_id = session_id

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.devtools.call(method, self.session_id, **params)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (a promise is awaited)."""
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


class DevTools:
    """A minimal DevTools protocol client: one command at a time; events are kept, to be waited for."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, session_id: str | None = None, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        frame: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session_id is not None:
            frame["sessionId"] = session_id
        await self.ws.send(json.dumps(frame))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result
            if "method" in reply:
                self.events.append(reply)

    async def until_event(self, method: str, seen: int = 0) -> None:
        """Wait for (or find among those kept since the `seen`th) an event named `method`."""
        while not any(event["method"] == method for event in self.events[seen:]):
            frame = json.loads(await self.ws.recv())
            if "method" in frame:
                self.events.append(frame)

    async def open(self, url: str, before_load: str) -> Page:
        """A new tab at the wall screen's size that runs `before_load` first in every document, at `url`."""
        target = await self.call("Target.createTarget", url="about:blank")
        attached = await self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        page = Page(self, attached["sessionId"])
        await page.call("Page.enable")
        await page.call("Runtime.enable")
        await page.call(
            "Emulation.setDeviceMetricsOverride", width=SCREEN[0], height=SCREEN[1], deviceScaleFactor=1, mobile=False
        )
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=before_load)
        await page.call("Page.navigate", url=url)
        return page


@asynccontextmanager
async def chromium(workdir: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with its own throwaway profile, and a DevTools connection to it."""
    assert CHROMIUM is not None
    profile = workdir / "chromium-profile"
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    said: list[str] = []
    try:
        async with asyncio.timeout(timeout(30)):
            while not said or not said[-1].startswith("DevTools listening on "):
                line = (await process.stderr.readline()).decode()
                if not line:
                    raise RuntimeError("Chromium ended before it listened:\n" + "".join(said))
                said.append(line)
        # Keep reading what it says, or a full pipe would stall it.
        chatter = asyncio.create_task(process.stderr.read())
        async with connect(said[-1].split()[-1], max_size=None, open_timeout=timeout(10)) as ws:
            yield DevTools(ws)
        chatter.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


# --- the queue on the wall ---------------------------------------------------------------------------

TICKETS = (
    ("P1", "Internet down at head office", "Acme Corp"),
    ("P2", "VPN will not connect", "Globex Logistics"),
    ("P3", "Printer jam on floor 3", "Initech"),
    ("P4", "New starter laptop", "Umbrella Health"),
    ("P1", "Card terminals offline", "Vandelay Imports"),
)


async def seed(server: ServerProcess) -> list[str]:
    """A few technicians and tickets in every lane, one assigned; the tickets' ids."""
    session = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
    try:
        await session.ok(tech_frame("alice", ["network"]))
        await session.ok(tech_frame("bob", ["printers"]))
        ids: list[str] = []
        for priority, title, client in TICKETS:
            await session.ok(ticket_frame(title, client, priority))
            ids.append(f"T-{len(ids) + 1:06d}")
        await session.ok({"type": "assign", "ticket_id": ids[0], "tech_id": "alice"})
        return ids
    finally:
        await session.close()


@dataclass
class Shown:
    """What the page was once the board was on it."""

    classes: list[str]  # the body's: textual-serve's page marks the terminal shown with "-first-byte"
    addresses: list[str]  # every href and src in the page
    canvases: int  # the terminal's drawing surfaces
    page: Page  # still open


@asynccontextmanager
async def shown_in_chromium(
    wallboard: Wallboard, workdir: Path, needles: list[str], screenshot: Path
) -> AsyncIterator[Shown]:
    """Open the wallboard in Chromium, wait until the board's text shows `needles`, save a screenshot;
    the page stays open inside the block."""
    async with chromium(workdir) as devtools:
        page = await devtools.open(wallboard.url, KEEP_BOARD_TEXT)
        try:
            async with asyncio.timeout(timeout(30)):
                await page.evaluate(f"window.__board.until({json.dumps(needles)})")
        except TimeoutError:
            await page.screenshot(screenshot)
            text = await page.evaluate("window.__board.view()")
            raise AssertionError(f"the page never showed {needles}; it shows {text[-2000:]!r} ({screenshot})") from None
        # xterm.js draws on the next animation frames, once the font it measures with is in.
        await page.evaluate(
            "document.fonts.ready.then(() => new Promise((done) =>"
            " requestAnimationFrame(() => requestAnimationFrame(() => done(true)))))"
        )
        await page.screenshot(screenshot)
        yield Shown(
            classes=(await page.evaluate("document.body.className")).split(),
            addresses=await page.evaluate("[...document.querySelectorAll('[href],[src]')].map((e) => e.href || e.src)"),
            canvases=await page.evaluate("document.querySelectorAll('.xterm-screen canvas').length"),
            page=page,
        )


# --- the tests ----------------------------------------------------------------------------------------


@needs_chromium
async def test_the_wallboard_shows_the_lanes_in_chromium(server: ServerProcess, tmp_path: Path) -> None:
    ids = await seed(server)
    viewer = await server.token(Role.VIEWER, "wall")
    async with Wallboard.running(server.url, viewer, tmp_path) as wallboard:
        needles = ["P1", "P4", *ids]
        async with shown_in_chromium(wallboard, tmp_path, needles, tmp_path / "wallboard.png") as shown:
            assert "-first-byte" in shown.classes  # the splash gave way to the terminal
            assert shown.canvases > 0
            # The page is whole from the wallboard alone: nothing from the internet (fonts included).
            assert shown.addresses and all(a.startswith(wallboard.url + "/") for a in shown.addresses), shown.addresses
            # The browser's board runs with the viewer token in its environment, never on a command line.
            boards = wallboard.boards()
            commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() for pid in boards]
            assert any("-m dispatch board" in command for command in commands), commands
            assert not any(viewer in command for command in commands)
            environments = [Path(f"/proc/{pid}/environ").read_bytes() for pid in boards]
            assert any(f"DISPATCH_TOKEN={viewer}".encode() in environment for environment in environments)
            # Stopped with a browser still watching, it ends that browser's board before it exits.
            assert await wallboard.stop() == 0
            assert not [pid for pid in boards if Path(f"/proc/{pid}").exists()]


@needs_chromium
async def test_a_restarted_wallboard_comes_back_on_the_page_by_itself(server: ServerProcess, tmp_path: Path) -> None:
    ids = await seed(server)
    viewer = await server.token(Role.VIEWER, "wall")
    port = free_port()
    async with Wallboard.running(server.url, viewer, tmp_path, port) as first:
        async with shown_in_chromium(first, tmp_path, ids, tmp_path / "before.png") as shown:
            page = shown.page
            loads = len(page.devtools.events)
            assert await first.stop() == 0  # as a deploy restarts it; the page's session ends
            async with Wallboard.running(server.url, viewer, tmp_path, port):
                # Nobody presses "Restart" on a wall screen: the page reloads once the wallboard answers.
                async with asyncio.timeout(timeout(30)):
                    await page.devtools.until_event("Page.loadEventFired", loads)
                    await page.evaluate(f"window.__board.until({json.dumps(ids)})")
                await page.screenshot(tmp_path / "after.png")


@pytest.mark.parametrize("role", [Role.DISPATCHER, Role.TECHNICIAN])
async def test_a_token_that_is_not_a_viewers_is_refused(server: ServerProcess, role: Role) -> None:
    token = await server.token(role, "ana", "alice" if role is Role.TECHNICIAN else None)
    port = free_port()
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "dispatch", "wallboard", "--web", "--port", str(port), "--server", server.url],
        env={**os.environ, "DISPATCH_TOKEN": token}, capture_output=True, text=True, timeout=timeout(30),
    )  # fmt: skip
    assert refused.returncode == 3
    assert refused.stdout == ""
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dispatch wallboard: "), refused.stderr
    assert f"this is a {role} token" in lines[0] and "viewer token only" in lines[0]
    assert token not in refused.stderr
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout(5)):
        pass  # it never listened


async def test_a_port_in_use_is_one_line(server: ServerProcess) -> None:
    viewer = await server.token(Role.VIEWER, "wall")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        failed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "dispatch", "wallboard", "--web", "--port", str(taken.getsockname()[1]),
             "--server", server.url],
            env={**os.environ, "DISPATCH_TOKEN": viewer}, capture_output=True, text=True, timeout=timeout(30),
        )  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.startswith("dispatch wallboard: cannot listen on 127.0.0.1:")
    assert failed.stderr.count("\n") == 1, failed.stderr


def test_it_listens_on_loopback_unless_told(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["wallboard", "--web"])
    assert (args.host, args.port) == (DEFAULT_HOST, 8080) and DEFAULT_HOST == "127.0.0.1"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["wallboard", "--help"])
    assert "--host 0.0.0.0 must be given explicitly" in " ".join(capsys.readouterr().out.split())


def test_the_board_command_carries_no_secret() -> None:
    assert board_command().endswith(" -m dispatch board")


@pytest.mark.parametrize(
    ("host", "port", "public_url", "address"),
    [
        ("127.0.0.1", 8080, None, "http://127.0.0.1:8080"),
        ("::1", 8080, None, "http://[::1]:8080"),
        ("0.0.0.0", 8080, "https://wall.example.net/", "https://wall.example.net"),
    ],
)
def test_page_address(host: str, port: int, public_url: str | None, address: str) -> None:
    assert page_address(host, port, public_url) == address


def test_a_wildcard_host_is_not_where_browsers_connect() -> None:
    assert "0.0.0.0" not in page_address("0.0.0.0", 8080)


def test_the_page_loads_no_font_from_the_internet() -> None:
    from textual_serve.server import Server

    packaged = (Path(Server("true").templates_path) / "app_index.html").read_text()
    page = page_template(packaged)
    assert "fonts.googleapis.com" in packaged and "fonts.googleapis.com" not in page
    assert "fonts/RobotoMono-VariableFont_wght.ttf" in page
    assert page.count("</body>") == 1 and "window.location.reload()" in page


# --- the README's screenshot ------------------------------------------------------------------------------


async def save_screenshot(path: Path) -> None:
    """The wallboard in Chromium at the wall screen's size, over an outage's first minutes."""
    from dispatch.simulator import Outage, roster

    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        server = ServerProcess(db=workdir / "dispatch.db", workdir=workdir).start()
        try:
            session = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
            for command in roster():
                await session.ok(command.model_dump(exclude={"command_id"}))
            for report in Outage("isp-outage", seed=11).tickets(24):
                await session.ok(report.model_dump(mode="json", exclude={"command_id"}))
            for n, tech in ((1, "alice"), (2, "bob"), (3, "ivan"), (5, "dave")):
                await session.ok({"type": "assign", "ticket_id": f"T-{n:06d}", "tech_id": tech})
            await session.close()
            viewer = await server.token(Role.VIEWER, "wall")
            async with Wallboard.running(server.url, viewer, workdir) as wallboard:
                async with shown_in_chromium(wallboard, workdir, ["P1", "T-000001", "alice"], path):
                    pass
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(save_screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots/wallboard-web.png")))
