"""Technicians: availability, load against capacity as a bar, their time, skills.

Their time: the end of the shift they are on (`→15:00`, the dispatcher's local time) or how long they
work past it (`+0h25`), a call-out (`asked` while it waits, `called` once accepted), the on-call mark
`☎`, and hours on the clock in the last 24 h, coloured from `TIRED_HOURS` (the board is not told the
roster's fatigue limits; the assign picker says the server's word on them). A narrow panel keeps who,
the on-call mark, the load and the hours, and drops the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from functools import cache
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style

from dispatch.core.models import CalloutStatus, Technician, TechStatus
from dispatch.model import BoardModel, TechnicianTime, format_hours
from dispatch.widgets.row_list import RowList, pad

STATUS_MARK = {
    TechStatus.AVAILABLE: "●",
    TechStatus.BUSY: "◐",
    TechStatus.ON_SITE: "◆",
    TechStatus.BREAK: "◌",
    TechStatus.OFF_SHIFT: "○",
}
ON_CALL = "☎"
# Column widths, each with its gap. Always shown: the status mark, the id, the on-call mark, the load.
MARK, ID, CALL, LOAD = 2, 8, 2, 6
# The others, in the order they give way as the panel narrows (the first kept longest); skills take
# what is left, from SKILLS cells.
HOURS, BAR, SHIFT, STATUS, SKILLS = 6, 5, 7, 10, 8
GIVE_WAY = (("hours", HOURS), ("bar", BAR), ("shift", SHIFT), ("status", STATUS), ("skills", SKILLS))


@cache
def panel_columns(width: int) -> frozenset[str]:
    """The optional columns a panel row `width` cells wide shows."""
    room = width - MARK - ID - CALL - LOAD
    shown: list[str] = []
    for name, size in GIVE_WAY:
        if size > room:
            break
        shown.append(name)
        room -= size
    return frozenset(shown)


def shift_words(time: TechnicianTime) -> str:
    """The shift column: a call-out first (it is what happens now), then overtime, then the shift end."""
    callout = time.callout
    if callout is not None:
        return "asked" if callout.status is CalloutStatus.WAITING else "called"
    if time.overtime is not None:
        return "+" + format_hours(time.overtime.total_seconds() / 3600)
    if time.shift_end is not None:
        return f"→{time.shift_end.astimezone():%H:%M}"
    return ""


class TechnicianPanel(RowList[Technician]):
    """One row per technician: status mark, id, on-call mark, load bar with count, status, time, skills."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "technicians--available",
        "technicians--busy",
        "technicians--away",
        "technicians--full",
        "technicians--cursor",
        "technicians--dim",
        "technicians--tired",
        "technicians--overtime",
        "technicians--callout",
        "technicians--on-call",
    }

    ROW_BASE_CLASSES: ClassVar[frozenset[str]] = frozenset({"technicians--cursor"})

    def __init__(self, model: BoardModel, now: Callable[[], datetime], *, id: str | None = None) -> None:
        super().__init__(id=id, classes="technicians")
        self.model = model
        self.now = now
        self.loads: dict[str, int] = {}

    def on_mount(self) -> None:
        self.border_title = "Technicians"

    def on_resize(self) -> None:
        # What the time columns mean, as far as the panel's width lets it be said.
        shown = panel_columns(self.size.width)
        self.border_subtitle = (f"→ shift ends · {ON_CALL} on call · hours in 24 h" if "shift" in shown
                                else f"{ON_CALL} on call · hours in 24 h")  # fmt: skip

    def row_key(self, row: Technician) -> Hashable:
        return row.id

    def row_signature(self, row: Technician) -> Hashable:
        # The time columns as they read: the hours and the overtime move on while the row does not change.
        time = self.model.technician_time(row, self.now())
        return (row, self.loads.get(row.id, 0), shift_words(time), format_hours(time.hours), time.tired)

    def render_row(self, row: Technician, width: int, selected: bool) -> list[Segment]:
        styles = self.styles_for_rows
        base = styles["technicians--cursor"] if selected else styles["base"]
        dim = base + styles.get("technicians--dim", Style())
        load = self.loads.get(row.id, 0)
        time = self.model.technician_time(row, self.now())
        if row.status in (TechStatus.BREAK, TechStatus.OFF_SHIFT):
            status_style = styles.get("technicians--away", Style())
        elif row.status is TechStatus.AVAILABLE:
            status_style = styles.get("technicians--available", Style())
        else:
            status_style = styles.get("technicians--busy", Style())
        shown = panel_columns(width)
        segments = [
            Segment(STATUS_MARK[row.status] + " ", base + status_style),
            pad(row.id, ID, base),
            pad(ON_CALL if time.on_call else "", CALL, base + styles.get("technicians--on-call", Style())),
        ]
        if "bar" in shown:
            filled = min(BAR - 1, round((BAR - 1) * load / row.capacity)) if row.capacity else BAR - 1
            full = load >= row.capacity
            bar_style = base + (styles.get("technicians--full", Style()) if full else status_style)
            segments += [
                Segment("█" * filled, bar_style),
                Segment("░" * (BAR - 1 - filled), dim),
                Segment(" ", base),
            ]
        segments.append(pad(f"{load}/{row.capacity}", LOAD, base))
        if "status" in shown:
            segments.append(pad(row.status.value.replace("_", " "), STATUS, base + status_style))
        if "shift" in shown:
            words = shift_words(time)
            if time.callout is not None:
                shift_style = styles.get("technicians--callout", Style())
            elif time.overtime is not None:
                shift_style = styles.get("technicians--overtime", Style())
            else:
                shift_style = dim
            segments.append(pad(words, SHIFT, base + shift_style))
        if "hours" in shown:
            hours_style = styles.get("technicians--tired", Style()) if time.tired else dim
            segments += [pad(format_hours(time.hours).rjust(HOURS - 1), HOURS - 1, base + hours_style),
                         Segment(" ", base)]  # fmt: skip
        if "skills" in shown:
            used = MARK + ID + CALL + LOAD + sum(size for name, size in GIVE_WAY[:-1] if name in shown)
            segments.append(pad(",".join(row.skills) or "-", max(width - used, 0), dim))
        return segments
