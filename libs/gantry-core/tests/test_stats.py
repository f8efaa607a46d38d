import pytest

from gantry.core.stats import wilson_interval


def test_wilson_interval_matches_known_values() -> None:
    # 37/60 (the vla evaluation); statsmodels proportion_confint(method="wilson") agrees.
    low, high = wilson_interval(37, 60)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.7291, abs=1e-4)
    assert tuple(round(x, 3) for x in wilson_interval(5, 10)) == (0.237, 0.763)
    assert round(wilson_interval(0, 4)[1], 3) == 0.49


def test_wilson_interval_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 0.9
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(3, 2)
