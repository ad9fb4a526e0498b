"""The per-connection limits as rules: no socket, no wall clock (the allowance's clock is a list)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from server.limits import RATE_LIMIT_STRIKES, CommandAllowance, TakeTurns


@dataclass(frozen=True)
class Flood:
    """A connection's frames: after `wait` seconds (of the injected clock), `frames` frames back to back."""

    wait: float
    frames: int


@dataclass(frozen=True)
class Case:
    # Clock steps are exact binary fractions (0.25 s at 4/s), and no refill lands on a whole token by
    # rounding, so no row depends on floating point.
    name: str
    rate: float
    burst: float
    script: list[Flood]
    allowed: int  # frames let through, in all
    strikes: int  # at the end
    closed: bool  # exhausted at some point: the server would have closed the connection

    def __str__(self) -> str:
        return self.name


def _slowing_down(strikes: int, frames: int, rate: float) -> list[Flood]:
    return [Flood(0, strikes), *[Flood(1 / rate, 1) for _ in range(frames)]]


CASES = [
    Case("a burst within the allowance", 10, 5, [Flood(0, 5)], allowed=5, strikes=0, closed=False),
    Case("each refused frame is a strike", 10, 5, [Flood(0, 8)], allowed=5, strikes=3, closed=False),
    Case("one short of the limit", 10, 5, [Flood(0, 5 + 99)], allowed=5, strikes=99, closed=False),
    Case("100 refusals close", 10, 5, [Flood(0, 5 + 100)], allowed=5, strikes=100, closed=True),
    # The old rule reset the count here, so a flood on a loaded server was never closed.
    Case(
        "a token refilled mid-flood takes a quarter off, not all",
        4,
        20,
        [Flood(0, 20 + 60), Flood(0.25, 1 + 55)],
        allowed=21,
        strikes=100,
        closed=True,
    ),  # fmt: skip
    Case(
        "a refill every 30 frames does not save a flood",
        4,
        20,
        [Flood(0, 20), *[Flood(0.25, 30) for _ in range(10)]],
        allowed=27,
        strikes=100,
        closed=True,
    ),  # fmt: skip
    Case(
        "slowing to the rate wears 50 strikes off",
        4,
        20,
        [Flood(0, 20), *_slowing_down(50, 14, rate=4)],
        allowed=34,
        strikes=0,
        closed=False,
    ),  # fmt: skip
    Case("the last strike wears off too", 4, 1, [Flood(0, 2), Flood(0.25, 1)], allowed=2, strikes=0, closed=False),
    # Our scripting client: 70 commands in flight at 20/s (bursts of 40), each refused one resent after
    # 25-50 ms, then twice as long each time (dispatch.client): waves of refusals, never closed.
    Case(
        "a client backing off with 70 in flight",
        20,
        40,
        [
            Flood(0, 70),
            Flood(0.0375, 30),
            Flood(0.075, 30),
            Flood(0.15, 28),
            Flood(0.3, 25),
            Flood(0.6, 19),
            Flood(1.2, 7),
        ],
        allowed=70,
        strikes=0,
        closed=False,
    ),  # fmt: skip
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_strike_rule(case: Case) -> None:
    now = [0.0]
    allowance = CommandAllowance(case.rate, case.burst, clock=lambda: now[0])
    allowed, closed = 0, False
    for flood in case.script:
        now[0] += flood.wait
        for _ in range(flood.frames):
            if closed:
                break  # the server stops reading a connection it closed
            allowed += allowance.take()
            closed = allowance.exhausted
    assert (allowed, allowance.strikes, closed) == (case.allowed, case.strikes, case.closed)


def test_the_limit_is_100_strikes_and_may_be_set() -> None:
    assert RATE_LIMIT_STRIKES == 100
    allowance = CommandAllowance(rate=1, burst=1, clock=lambda: 0.0, strikes_limit=3)
    assert [allowance.take() for _ in range(4)] == [True, False, False, False]
    assert allowance.exhausted


def test_the_allowance_refills_at_the_rate_up_to_the_burst() -> None:
    now = [0.0]
    allowance = CommandAllowance(rate=10, burst=5, clock=lambda: now[0])
    assert [allowance.take() for _ in range(6)] == [True] * 5 + [False]
    now[0] += 0.25  # 2.5 frames' worth
    assert [allowance.take() for _ in range(3)] == [True, True, False]
    now[0] += 60  # a long quiet spell refills only up to the burst
    assert sum(allowance.take() for _ in range(10)) == 5


async def test_a_flood_on_one_connection_does_not_delay_a_single_command_on_another() -> None:
    turns: TakeTurns[str, str] = TakeTurns()
    for i in range(1_000):
        turns.put("flood", f"flood-{i}")
    turns.put("dispatcher", "reassign T-000042")
    turns.put("flood", "flood-last")
    # One batch takes at most 8 from the flood, and the dispatcher's command is in the first one.
    first = await turns.next_batch(limit=2_000, per_owner=8)
    assert first is not None and "reassign T-000042" in first and len(first) == 9
    assert [x for x in first if x.startswith("flood")] == [f"flood-{i}" for i in range(8)]  # in order
    # A small limit is shared in turns too.
    turns.put("dispatcher", "unassign T-000043")
    second = await turns.next_batch(limit=2, per_owner=8)
    assert second == ["flood-8", "unassign T-000043"] or second == ["unassign T-000043", "flood-8"]
    turns.close()
    rest: list[str] = []
    while (batch := await turns.next_batch(limit=300, per_owner=32)) is not None:
        assert len(batch) <= 32
        rest += batch
    assert rest == [f"flood-{i}" for i in range(9, 1_000)] + ["flood-last"] and len(turns) == 0
