"""Env seeds with owners: each range named once, here, and no two overlap (kdcc.marl.scoring says why).

    REPORT        0 – 999           `kdcc eval`'s default (0–99), --pareto, --ablate: figures to read
    SELECTION     1,000 – 9,999     what --keep and precision `auto` decide on
    PROBE         10,000 – 49,999   the fixed probe and the certificates' states (kdcc.marl.probe)
    DAGGER        50,000 – 99,999   distill's student rollouts (training)
    COLLECT       100,000 – 199,999 the teacher rollouts a compile (and `kdcc collect`) trains on
    CONFIRMATION  200,000 – 299,999 the chosen student's score, measured once after the choice

Plain data (no torch), so the command line can name a default without importing the world.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdcc.core.errors import KdccError

__all__ = ["SeedRange", "REPORT", "SELECTION", "PROBE", "DAGGER", "COLLECT", "CONFIRMATION", "SEED_RANGES"]


@dataclass(frozen=True)
class SeedRange:
    """Env seeds [start, stop) owned by one use."""

    name: str
    start: int
    stop: int

    def first(self, episodes: int, offset: int = 0) -> int:
        """The first seed of `episodes` episodes from `start + offset`; a KdccError when they leave the range."""
        if episodes < 0 or offset < 0 or self.start + offset + episodes > self.stop:
            raise KdccError(f"{episodes} episodes from seed {self.start + offset} leave the {self.name} seeds "
                            f"{self.start}–{self.stop - 1} (they would reuse seeds another use owns)")
        return self.start + offset

    def span(self, episodes: int, offset: int = 0) -> list[int]:
        """[first, last] seed of `episodes` episodes, as reports print them."""
        first = self.first(episodes, offset)
        return [first, first + episodes - 1]


REPORT = SeedRange("report", 0, 1_000)
SELECTION = SeedRange("selection", 1_000, 10_000)
PROBE = SeedRange("probe", 10_000, 50_000)
DAGGER = SeedRange("DAgger", 50_000, 100_000)
COLLECT = SeedRange("collect", 100_000, 200_000)
CONFIRMATION = SeedRange("confirmation", 200_000, 300_000)
SEED_RANGES = (REPORT, SELECTION, PROBE, DAGGER, COLLECT, CONFIRMATION)
