"""Held-out success with its uncertainty: Wilson score intervals, and when a gain is real.

A stage's success is k successes in n held-out episodes. The Wilson interval is used
rather than p ± z·sqrt(p(1-p)/n) because it stays inside [0, 1] and keeps its coverage
near 0 % and 100 %, where a policy starts and where a small task ends.

A gain between two stages counts as beyond noise only when their 95 % intervals do not
overlap (the later stage's lower bound above the earlier one's upper bound). That is
stricter than a two-proportion test at the 5 % level, and simple to read off a plot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


@dataclass(frozen=True)
class Success:
    """k successes out of n episodes, with the 95 % Wilson interval."""

    k: int
    n: int

    def __post_init__(self) -> None:
        if self.n < 0 or not 0 <= self.k <= max(self.n, 0):
            raise ValueError(f"need 0 <= k <= n, got k={self.k}, n={self.n}")

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)

    def beats(self, earlier: Success) -> bool:
        """True when this success is above `earlier` beyond noise (intervals apart)."""
        return self.interval[0] > earlier.interval[1]

    def describe(self) -> str:
        """'37/200 = 18.5 % (13.7–24.5 %)'."""
        low, high = self.interval
        return f"{self.k}/{self.n} = {100 * self.rate:.1f} % ({100 * low:.1f}–{100 * high:.1f} %)"


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion k/n ((0, 1) when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # Exact ends at k = 0 and k = n (the formula gives them up to rounding).
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high
