"""`dispatch demo`: the embedded server, the outage and the board, and nothing left behind."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import subprocess
import sys
import threading
import time

from dispatch.app import DispatchApp
from dispatch.demo import DEMO_USER, EmbeddedServer, run_outage
from dispatch.screens.board import BoardScreen
from tests.support import timeout
from tests.test_board import until


async def test_the_board_shows_the_outage_arriving_and_stopping_leaves_no_thread() -> None:
    server = EmbeddedServer().start()
    assert server._loop is not None
    world = asyncio.run_coroutine_threadsafe(
        run_outage(server.url, server.tokens["simulator"], server.tokens["monitoring"]), server._loop
    )
    try:
        app = DispatchApp(server.url, server.tokens[DEMO_USER])
        async with app.run_test(size=(140, 40)) as pilot:
            # The opening burst lands within seconds, then tickets keep arriving.
            await until(pilot, lambda: isinstance(app.screen, BoardScreen) and len(app.model.state.tickets) >= 15)
            assert len(app.model.state.technicians) == 12
            seen = len(app.model.state.tickets)
            await until(pilot, lambda: len(app.model.state.tickets) > seen, timeout=20)
    finally:
        world.cancel()
        server.stop()
    assert not any(t.name == "dispatch-demo-server" and t.is_alive() for t in threading.enumerate())
    assert not server.workdir.exists(), "the temporary database is removed"


def test_dispatch_demo_quits_cleanly_from_a_terminal() -> None:
    """The real command in a pseudo-terminal: it draws the board, Ctrl+Q quits, exit 0, no child left."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "dispatch", "demo"], stdin=child, stdout=child, stderr=child, close_fds=True,
        env={**os.environ, "COLUMNS": "140", "LINES": "40", "TERM": "xterm-256color"},
    )  # fmt: skip
    os.close(child)
    screen = b""
    deadline = time.monotonic() + timeout(30)
    try:
        while b"P1 Critical" not in screen and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                screen += os.read(main, 65536)
        assert b"P1 Critical" in screen, "the board was drawn"
        os.write(main, b"\x11")  # Ctrl+Q
        while process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    os.read(main, 65536)
                except OSError:
                    break
        # The server and the simulation are threads of this one process (the test above checks they
        # stop), so a clean exit of the process is everything gone.
        assert process.wait(timeout(10)) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main)
