"""Save SVG screenshots of the board against a real server with a seeded outage: `make screenshots`.

Each screen is reached the way a person would (keys), then saved with `app.save_screenshot`. The world
(tests/world.py) has a roster: people's time in the panel, a call-out waiting for judy.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dispatch.app import DispatchApp  # noqa: E402
from dispatch.screens.board import BoardScreen  # noqa: E402
from dispatch.screens.callout import CalloutPrompt  # noqa: E402
from dispatch.screens.detail import TicketDetail  # noqa: E402
from dispatch.screens.forecast import ForecastScreen  # noqa: E402
from dispatch.screens.pickers import AssignPicker, ConfirmPrompt  # noqa: E402
from dispatch.screens.technicians import TechniciansScreen  # noqa: E402
from tests.world import NOW, seeded_world  # noqa: E402

OUT = ROOT / "screenshots"
SIZE = (150, 44)


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise RuntimeError("the board did not reach the expected state")
        await pilot.pause(0.05)


def loaded(app: DispatchApp, count: int):  # type: ignore[no-untyped-def]
    """The board shows `count` tickets and, on a board that asks for it, the server's forecast."""
    return lambda: (
        isinstance(app.screen, BoardScreen)
        and sum(len(lane.rows) for lane in app.screen.lanes) >= count
        and (app.model.tech_id is not None or app.model.forecast is not None)
    )


def overlay_open(app: DispatchApp):  # type: ignore[no-untyped-def]
    """The technician panel is over the board (T), with the whole team in it."""
    return lambda: isinstance(app.screen, TechniciansScreen) and len(app.screen.panel.rows) == 12


# The same outage at the sizes people use: a default terminal (or a phone over SSH), a laptop, a wide screen.
BOARD_SIZES = ((80, 24), (120, 36), (200, 50))


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        world = await seeded_world(Path(workdir))
        try:
            for width, height in BOARD_SIZES:
                app = DispatchApp(world.server.url, world.dispatcher, clock=lambda: NOW)
                async with app.run_test(size=(width, height)) as pilot:
                    await wait_for(pilot, loaded(app, 30))
                    await pilot.pause(0.3)
                    app.save_screenshot(f"dispatcher-board-{width}x{height}.svg", str(OUT))
                    if width < 120:  # the panel folded to a line: T opens it over the board
                        await pilot.press("T")
                        await wait_for(pilot, overlay_open(app))
                        await pilot.pause(0.3)
                        app.save_screenshot(f"technicians-overlay-{width}x{height}.svg", str(OUT))
            app = DispatchApp(world.server.url, world.dispatcher, clock=lambda: NOW)
            async with app.run_test(size=SIZE) as pilot:
                await wait_for(pilot, loaded(app, 30))
                await pilot.pause(0.3)
                app.save_screenshot("dispatcher-board.svg", str(OUT))
                await pilot.press("a")
                await wait_for(pilot, lambda: isinstance(app.screen, AssignPicker)
                               and app.screen.query_one("#candidates").option_count > 0)  # fmt: skip
                app.save_screenshot("assign-picker.svg", str(OUT))
                await pilot.press("escape", "slash", *"depot")
                await pilot.pause(0.3)
                app.save_screenshot("filter.svg", str(OUT))
                await pilot.press("escape", "slash", *"T-000001 alice", "enter", "enter")
                await wait_for(pilot, lambda: isinstance(app.screen, TicketDetail)
                               and "note" in str(app.screen.query_one("#history").render()))  # fmt: skip
                app.save_screenshot("ticket-detail.svg", str(OUT))
                await pilot.press("escape", "escape")
                # The forecast, with one more network engineer than the team has.
                await pilot.press("f")
                await wait_for(pilot, lambda: isinstance(app.screen, ForecastScreen) and app.screen.base is not None)
                await pilot.press("plus", "enter")
                await wait_for(pilot, lambda: isinstance(app.screen, ForecastScreen) and app.screen.answer is not None)
                app.save_screenshot("forecast-what-if.svg", str(OUT))
                await pilot.press("escape")
                # A mistaken assignment, and z: what it would take back. Enter takes it back.
                await wait_for(pilot, lambda: isinstance(app.screen, BoardScreen))
                await pilot.press("A")
                await wait_for(pilot, lambda: bool(app.session.recent))
                await pilot.press("z")
                await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPrompt))
                await pilot.pause(0.3)
                app.save_screenshot("undo.svg", str(OUT))
                await pilot.press("enter")
                await wait_for(pilot, lambda: not app.session.recent and isinstance(app.screen, BoardScreen))
                world.server.kill9()
                await wait_for(pilot, lambda: app.screen.has_class("-stale"))
                await pilot.pause(0.3)
                app.save_screenshot("reconnecting.svg", str(OUT))
            world.server.start("--port", "0", "--fixed-clock", NOW.isoformat())
            app = DispatchApp(world.server.url, world.technician, clock=lambda: NOW)
            # A technician's phone or laptop terminal: their own lane at 80x24.
            async with app.run_test(size=(80, 24)) as pilot:
                await wait_for(pilot, loaded(app, 2))
                await pilot.pause(0.3)
                app.save_screenshot("technician-lane.svg", str(OUT))
            # judy's phone-sized board: the call-out waiting for her answer (y / n).
            app = DispatchApp(world.server.url, world.callee, clock=lambda: NOW)
            async with app.run_test(size=(80, 24)) as pilot:
                await wait_for(pilot, lambda: isinstance(app.screen, CalloutPrompt))
                await pilot.pause(0.3)
                app.save_screenshot("callout.svg", str(OUT))
        finally:
            world.server.stop()
    for path in sorted(OUT.glob("*.svg")):
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    asyncio.run(main())
