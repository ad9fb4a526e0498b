"""Technicians: availability, skills, and load against capacity as a bar."""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style

from dispatch.core.models import Technician, TechStatus
from dispatch.model import BoardModel
from dispatch.widgets.row_list import RowList, pad

STATUS_MARK = {
    TechStatus.AVAILABLE: "●",
    TechStatus.BUSY: "◐",
    TechStatus.ON_SITE: "◆",
    TechStatus.BREAK: "◌",
    TechStatus.OFF_SHIFT: "○",
}
BAR = 6
# The width from which the status is written out (and skills follow it).
WITH_STATUS = 2 + 10 + BAR + 6 + 10


class TechnicianPanel(RowList[Technician]):
    """One row per technician: status mark, id, load bar with count, skills."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "technicians--available",
        "technicians--busy",
        "technicians--away",
        "technicians--full",
        "technicians--cursor",
        "technicians--dim",
    }

    ROW_BASE_CLASSES: ClassVar[frozenset[str]] = frozenset({"technicians--cursor"})

    def __init__(self, model: BoardModel, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="technicians")
        self.model = model
        self.loads: dict[str, int] = {}

    def on_mount(self) -> None:
        self.border_title = "Technicians"

    def row_key(self, row: Technician) -> Hashable:
        return row.id

    def row_signature(self, row: Technician) -> Hashable:
        return (row, self.loads.get(row.id, 0))

    def render_row(self, row: Technician, width: int, selected: bool) -> list[Segment]:
        styles = self.styles_for_rows
        base = styles["technicians--cursor"] if selected else styles["base"]
        dim = base + styles.get("technicians--dim", Style())
        load = self.loads.get(row.id, 0)
        if row.status in (TechStatus.BREAK, TechStatus.OFF_SHIFT):
            status_style = styles.get("technicians--away", Style())
        elif row.status is TechStatus.AVAILABLE:
            status_style = styles.get("technicians--available", Style())
        else:
            status_style = styles.get("technicians--busy", Style())
        filled = min(BAR, round(BAR * load / row.capacity)) if row.capacity else BAR
        full = load >= row.capacity
        bar_style = base + (styles.get("technicians--full", Style()) if full else status_style)
        skills = ",".join(row.skills) or "-"
        segments = [
            Segment(STATUS_MARK[row.status] + " ", base + status_style),
            pad(row.id, 10, base),
            Segment("█" * filled, bar_style),
            Segment("░" * (BAR - filled), dim),
            pad(f" {load}/{row.capacity}", 6, base),
        ]
        if width < WITH_STATUS:  # a narrow panel: the mark says the status, the bar the load
            return segments
        return [
            *segments,
            pad(f"{row.status.value.replace('_', ' ')}", 10, base + status_style),
            pad(skills, max(width - WITH_STATUS, 0), dim),
        ]
