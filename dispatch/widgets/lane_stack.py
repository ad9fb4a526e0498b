"""The lanes one above the other, with the rows going where the tickets are.

An empty lane folds to its title line (`P4 Low · 0`); the lanes with tickets share the rest, each
showing its most urgent few first and then P1 before P2 before P3, so that during an outage the P1
lane is the tallest. The focus view (`!`) folds P3 and P4 as well, whatever they hold. `lane_heights`
is the rule, pure and tested table-driven; `LaneStack` applies it whenever the terminal or the lanes'
contents change, and only touches a lane's height when it really changed (a layout costs a repaint).
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import events
from textual.containers import Vertical

from dispatch.core.models import Priority
from dispatch.widgets.lane import Lane

FOLDED = 1  # a folded lane is its title line
LEAST_ROWS = 3  # every lane with tickets shows at least its most urgent few, room permitting


def lane_heights(room: int, rows: Sequence[int], *, chrome: int, open_lanes: Sequence[bool] | None = None) -> list[int]:
    """Heights (in lines, with `chrome`, the lines a lane's borders take) of lanes holding `rows`
    tickets each, most urgent first, stacked in `room` lines. `open_lanes` says which may open at all
    (the focus view closes the others). Lanes with nothing to show fold; if there is not room for a
    row in each lane with tickets, the least urgent fold too."""
    count = len(rows)
    allowed = list(open_lanes) if open_lanes is not None else [True] * count
    opening = [i for i in range(count) if allowed[i] and rows[i] > 0]
    while opening and room - FOLDED * (count - len(opening)) - (chrome + 1) * len(opening) < 0:
        opening.pop()  # not even one row each: the least urgent lane folds
    heights = [FOLDED] * count
    if not opening:
        # Nothing to show anywhere: the first lane that may open keeps the room, saying it is empty.
        first = next((i for i in range(count) if allowed[i]), 0) if count else None
        if first is not None:
            heights[first] = max(room - FOLDED * (count - 1), FOLDED)
        return heights
    left = room - FOLDED * (count - len(opening)) - chrome * len(opening)
    shown = dict.fromkeys(opening, 0)
    # Round by round, a row to each lane that still has one to show, up to its most urgent few...
    for _ in range(LEAST_ROWS):
        for i in opening:
            if left and shown[i] < rows[i]:
                shown[i] += 1
                left -= 1
    # ...then the rest, most urgent lane first, until every ticket has a row.
    for i in opening:
        extra = min(rows[i] - shown[i], left)
        shown[i] += extra
        left -= extra
    # Room to spare goes to the most urgent open lane: new tickets there show without a reshuffle.
    shown[opening[0]] += left
    for i in opening:
        heights[i] = shown[i] + chrome
    return heights


class LaneStack(Vertical):
    """The board's lanes, sized by `lane_heights`."""

    def __init__(self, *lanes: Lane, id: str | None = None) -> None:
        super().__init__(*lanes, id=id)
        self.urgent_only = False
        """The focus view: P1 and P2 only."""
        self.short = False
        """A short terminal: a lane's border is its title line alone."""

    @property
    def lanes(self) -> list[Lane]:
        return list(self.query_children(Lane))

    def may_open(self, lane: Lane) -> bool:
        """Whether the lane may show rows: in the focus view only P1 and P2 (and a technician's own)."""
        return not self.urgent_only or lane.priority in (None, Priority.P1, Priority.P2)

    def on_resize(self, event: events.Resize) -> None:
        self.restack()

    def restack(self) -> None:
        """Share the height out again (the lanes' contents, the terminal or the view changed)."""
        lanes = self.lanes
        if not lanes or not self.size.height:
            return
        opens = [self.may_open(lane) for lane in lanes]
        heights = lane_heights(self.size.height, [len(lane.rows) for lane in lanes], chrome=1 if self.short else 2,
                               open_lanes=opens)  # fmt: skip
        for lane, height, may_open in zip(lanes, heights, opens, strict=True):
            lane.set_class(height == FOLDED, "-folded")
            lane.set_note("" if may_open else " · ! shows it")
            if lane.styles.height is None or lane.styles.height.value != height:
                lane.styles.height = height
