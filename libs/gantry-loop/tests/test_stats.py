"""The interval math behind the report's "beyond noise" verdicts, against hand values."""

from __future__ import annotations

import math

import pytest

from gantry.loop.stats import Success, wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # By hand with z = 1.96: centre (p + z²/2n) / (1 + z²/n),
        # half-width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n).
        (5, 10, 0.2366, 0.7634),
        (0, 10, 0.0, 0.2775),  # upper end z²/(n + z²) = 3.8415/13.8415
        (10, 10, 0.7225, 1.0),
        (37, 200, 0.1373, 0.2446),
        (1, 200, 0.0009, 0.0278),
    ],
)
def test_wilson_interval_matches_hand_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got[0] == pytest.approx(low, abs=1e-4)
    assert got[1] == pytest.approx(high, abs=1e-4)


def test_interval_holds_the_rate_and_narrows_with_more_episodes() -> None:
    small, large = Success(20, 100), Success(200, 1000)
    assert small.interval[0] < 0.2 < small.interval[1]
    width = [s.interval[1] - s.interval[0] for s in (small, large)]
    assert width[1] < width[0] / 3  # ~1/sqrt(10) as wide
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing measured: nothing known


def test_gain_is_beyond_noise_only_when_intervals_do_not_overlap() -> None:
    sft = Success(20, 200)  # 10 %: 6.6–15.0 %
    assert Success(50, 200).beats(sft)  # 25 %: 19.5–31.4 %
    assert not Success(30, 200).beats(sft)  # 15 %: 10.7–20.6 %, overlaps
    assert not sft.beats(Success(50, 200))
    assert Success(37, 200).describe() == "37/200 = 18.5 % (13.7–24.5 %)"


def test_counts_are_checked() -> None:
    for k, n in ((3, 2), (-1, 5)):
        with pytest.raises(ValueError, match="k <= n"):
            Success(k, n)
    assert math.isclose(Success(1, 4).rate, 0.25)
