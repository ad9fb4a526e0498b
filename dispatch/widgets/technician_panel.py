"""Technicians: availability, load against capacity as a bar, their time, skills.

Their time: the end of the shift they are on (`→15:00`, the dispatcher's local time) or how long they
work past it (`+0h25`), a call-out (`asked` while it waits, `called` once accepted), the on-call mark
`☎`, and hours on the clock in the last 24 h, coloured from `TIRED_HOURS` (the board is not told the
roster's fatigue limits; the assign picker says the server's word on them). Columns give way by
importance (`panel_columns`): a narrow panel keeps who, their status and load, and drops the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import ClassVar

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style

from dispatch.core.models import CalloutStatus, Technician, TechStatus
from dispatch.model import BoardModel, TechnicianTime, format_hours
from dispatch.widgets.columns import Column, content_width, cut_words, first_word_width, fit_columns
from dispatch.widgets.row_list import RowList

STATUS_MARK = {
    TechStatus.AVAILABLE: "●",
    TechStatus.BUSY: "◐",
    TechStatus.ON_SITE: "◆",
    TechStatus.BREAK: "◌",
    TechStatus.OFF_SHIFT: "○",
}
ON_CALL = "☎"
MARK, CALL = 2, 2  # the status mark and the on-call mark, around the id
BAR, SHIFT, HOURS = 4, 6, 5  # `███░`, `→15:00` / `+0h25` / `called`, `10h10`
SKILLS_CAP, NAME_CAP = 32, 24
# Left to right on screen; which of them show is decided by importance (`panel_columns`).
ON_SCREEN = ("id", "bar", "load", "status", "shift", "hours", "skills", "name")


def status_words(technician: Technician) -> str:
    return technician.status.value.replace("_", " ")


def skills_words(technician: Technician) -> str:
    # Spaces after the commas, so that a narrow column cuts between skills, not inside one.
    return ", ".join(technician.skills) or "-"


def panel_columns(technicians: Sequence[Technician]) -> tuple[Column, ...]:
    """The panel's columns, most important first, as wide as these technicians need: who always (with
    the status and on-call marks), then the status in words and the load (what a dispatcher assigns
    by), their time, the load as a bar, the skills, and the full name where there is room for it."""
    names = [t.name for t in technicians]
    skills = [skills_words(t) for t in technicians]
    return (
        Column("id", content_width((t.id for t in technicians), 12, 5), always=True),
        Column("status", content_width((status_words(t) for t in technicians), 10)),
        Column("load", content_width((f"{t.capacity}/{t.capacity}" for t in technicians), 7, 3)),
        Column("shift", SHIFT),
        Column("hours", HOURS),
        Column("bar", BAR),
        Column("skills", content_width(skills, SKILLS_CAP), least=first_word_width(skills, SKILLS_CAP)),
        Column("name", content_width(names, NAME_CAP), least=first_word_width(names, NAME_CAP)),
    )  # fmt: skip


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
        self.column_specs: tuple[Column, ...] = panel_columns(())
        self._subtitle: str | None = None

    def on_mount(self) -> None:
        self.border_title = "Technicians"

    def set_rows(self, rows: Sequence[Technician], *, follow: bool = True, words: bool = False) -> None:
        """`words`: the loads changed (they are not in the technicians' rows)."""
        # Widths follow the content: when they change, every cached row is stale. Measured only when
        # someone changed: the loads change on most flushes of a busy board, and the widths do not
        # depend on them.
        if rows != self.rows:
            specs = panel_columns(rows)
            if specs != self.column_specs:
                self.column_specs = specs
                self._strips.clear()
                self.refresh()  # every line, not only those whose row changed
        super().set_rows(rows, follow=follow, words=words)
        self._explain_columns()

    def on_resize(self) -> None:
        self._explain_columns()

    def _explain_columns(self) -> None:
        # What the time columns mean, as far as the panel's width lets it be said.
        shown = dict(fit_columns(max(self.size.width - MARK - CALL, 0), self.column_specs))
        words = [f"{ON_CALL} on call"]
        if "shift" in shown:
            words.insert(0, "→ shift ends")
        if "hours" in shown:
            words.append("hours in 24 h")
        subtitle = cut_words(" · ".join(words), max(self.size.width - 4, 0))
        if subtitle != self._subtitle:  # setting it repaints the whole panel, and rows change ten times a second
            self.border_subtitle = self._subtitle = subtitle

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
        widths = dict(fit_columns(width - MARK - CALL, self.column_specs))
        segments = [Segment(STATUS_MARK[row.status] + " ", base + status_style)]
        for name in ON_SCREEN:
            size = widths.get(name)
            if size is None:
                continue
            if name == "bar":
                filled = min(BAR, round(BAR * load / row.capacity)) if row.capacity else BAR
                full = load >= row.capacity
                bar_style = base + (styles.get("technicians--full", Style()) if full else status_style)
                segments += [Segment("█" * filled, bar_style), Segment("░" * (BAR - filled), dim)]
            else:
                text, style = self._cell(name, row, load, time, base, dim, status_style)
                segments.append(Segment(set_cell_size(cut_words(text, size), size), style))
            segments.append(Segment(" ", base))
            if name == "id":
                on_call = styles.get("technicians--on-call", Style())
                segments.append(Segment((ON_CALL if time.on_call else " ") + " ", base + on_call))
        return segments

    def _cell(
        self, name: str, row: Technician, load: int, time: TechnicianTime, base: Style, dim: Style, status: Style
    ) -> tuple[str, Style]:
        """A text column's words and style."""
        styles = self.styles_for_rows
        if name == "id":
            return row.id, base
        if name == "name":
            return row.name, dim
        if name == "load":
            return f"{load}/{row.capacity}", base
        if name == "status":
            return status_words(row), base + status
        if name == "shift":
            if time.callout is not None:
                return shift_words(time), base + styles.get("technicians--callout", Style())
            if time.overtime is not None:
                return shift_words(time), base + styles.get("technicians--overtime", Style())
            return shift_words(time), dim
        if name == "hours":
            hours_style = styles.get("technicians--tired", Style()) if time.tired else dim
            return format_hours(time.hours).rjust(HOURS), base + hours_style
        return skills_words(row), dim


def team_summary(technicians: Sequence[Technician], loads: dict[str, int]) -> str:
    """The panel folded to one line: `12 techs: 9 free · 2 busy · 1 off`. Free: available with room for
    more work; off: on a break or off shift; busy: the rest (at work, on site, or full)."""
    free = busy = off = 0
    for technician in technicians:
        if technician.status in (TechStatus.BREAK, TechStatus.OFF_SHIFT):
            off += 1
        elif technician.status is TechStatus.AVAILABLE and loads.get(technician.id, 0) < technician.capacity:
            free += 1
        else:
            busy += 1
    return f"{len(technicians)} tech{'s' if len(technicians) != 1 else ''}: {free} free · {busy} busy · {off} off"
