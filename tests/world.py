"""A seeded outage with a history, for screenshots and snapshot tests: same ids, times and looks every run.

The server runs with a fixed clock, restarted at four moments before NOW, so tickets have different
ages and their SLAs stand at different points (fine, 75 % used, breached) when the board looks at NOW.
It runs with a roster (ROSTER): ivan came on for the night shift at 23:20 and is still on the outage
(10h10 on the clock at NOW), the others came in at 07:55, judy is on call and was called out at 09:27.
A fixed clock never reaches a shift's edge, so nobody's status changes by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dispatch.core.models import Role
from dispatch.simulator import Outage, roster
from tests.support import ServerProcess, Session

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)  # a Monday
# (minutes before NOW, tickets created then)
WAVES = ((95, 6), (22, 10), (12, 10), (3, 12))
NIGHT_SHIFT_STARTED = NOW - timedelta(hours=10, minutes=10)  # ivan came on
ROSTER = """
[technicians.alice]
shifts = ["mon-fri 06:00-15:00"]
[technicians.bob]
shifts = ["mon-fri 09:00-18:00"]
[technicians.carol]
shifts = ["mon-fri 06:00-15:00"]
[technicians.dave]
shifts = ["mon-fri 09:00-18:00"]
[technicians.erin]
shifts = ["mon-fri 09:00-18:00"]
[technicians.frank]
shifts = ["mon-fri 08:00-17:00"]
[technicians.grace]
shifts = ["mon-fri 09:00-18:00"]
[technicians.heidi]
shifts = ["mon-fri 07:00-16:00"]
[technicians.ivan]
shifts = ["mon-sun 22:00-07:00"]
on_call = ["mon-sun 07:00-12:00"]
[technicians.judy]
shifts = ["mon-fri 14:00-23:00"]
on_call = ["mon-fri 08:00-14:00"]
[technicians.mallory]
shifts = ["mon-fri 09:00-18:00"]
[technicians.oscar]
shifts = ["mon-fri 06:00-15:00"]

[fatigue]
max_hours_per_day = 10
min_rest_hours = 11

[callouts]
after = "5m"
answer_within = "5m"
"""


@dataclass
class World:
    server: ServerProcess
    dispatcher: str
    technician: str  # alice's token
    viewer: str
    callee: str = ""  # judy's token (a call-out waits for her answer); none in a world without one


async def seeded_world(workdir: Path) -> World:
    team = workdir / "roster.toml"
    team.write_text(ROSTER)
    server = ServerProcess(db=workdir / "world.db", workdir=workdir, options=("--roster", str(team)))
    outage = Outage("isp-outage", seed=11).tickets(sum(count for _, count in WAVES))
    technicians = {command.tech_id: command for command in roster()}
    server.start("--port", "0", "--fixed-clock", NIGHT_SHIFT_STARTED.isoformat())
    session = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana-night"))
    await session.ok(technicians.pop("ivan").model_dump(exclude={"command_id"}))
    await session.close()
    server.stop()
    ticket_number = 0
    for wave, (minutes_before, count) in enumerate(WAVES):
        server.start("--port", "0", "--fixed-clock", (NOW - timedelta(minutes=minutes_before)).isoformat())
        token = await server.token(Role.DISPATCHER, f"ana-{wave}")
        session = await Session.open(server.url, token)
        if wave == 0:
            for command in technicians.values():
                await session.ok(command.model_dump(exclude={"command_id"}))
            for tech_id, status in (("judy", "off_shift"), ("oscar", "break"), ("heidi", "on_site"), ("ivan", "busy")):
                await session.ok({"type": "set_tech_status", "tech_id": tech_id, "status": status})
        for report in outage[ticket_number : ticket_number + count]:
            await session.ok(report.model_dump(mode="json", exclude={"command_id"}))
        ticket_number += count
        if wave == 0:
            for n, tech in ((1, "alice"), (2, "bob"), (3, "ivan"), (4, "alice")):
                await session.ok({"type": "assign", "ticket_id": f"T-{n:06d}", "tech_id": tech})
            await session.ok({"type": "set_status", "ticket_id": "T-000001", "status": "in_progress"})
            await session.ok({"type": "add_note", "ticket_id": "T-000001", "text": "ISP confirms fibre cut, ETA 11:00"})
        if wave == 2:
            for n, tech in ((8, "frank"), (9, "dave")):
                await session.ok({"type": "assign", "ticket_id": f"T-{n:06d}", "tech_id": tech})
        if wave == 3:
            await session.ok({"type": "callout", "tech_id": "judy", "reason": "the ISP outage: VPN and firewall"})
        await session.close()
        server.stop()
    server.start("--port", "0", "--fixed-clock", NOW.isoformat())
    world = World(
        server=server,
        dispatcher=await server.token(Role.DISPATCHER, "ana"),
        technician=await server.token(Role.TECHNICIAN, "alice-laptop", "alice"),
        viewer=await server.token(Role.VIEWER, "wallboard"),
        callee=await server.token(Role.TECHNICIAN, "judy-phone", "judy"),
    )
    # The SLA clock raises the breaches due at NOW on its first tick (all in one batch). Let that
    # happen before any board connects, so boards get them in their snapshot instead of as live
    # notifications that would appear in a screenshot or not depending on timing.
    watcher = await Session.open(server.url, world.viewer)
    await watcher.until_event(lambda e: e["kind"] == "sla_breached")
    await watcher.close()
    return world
