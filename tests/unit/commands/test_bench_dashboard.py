"""The dashboard benchmark's pure helpers: quantiles, growth per hour, memory summaries."""

from __future__ import annotations

import pytest

from wiki_lib.bench.dashboard import growth_per_hour, memory_summary, quantile


def test_quantile_interpolates_like_numpy() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert quantile(values, 0.5) == pytest.approx(2.5)
    assert quantile(values, 0.95) == pytest.approx(3.85)
    assert quantile(values, 0.0) == 1.0
    assert quantile(values, 1.0) == 4.0
    assert quantile([7.0], 0.95) == 7.0


def test_quantile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_growth_per_hour_is_the_least_squares_slope() -> None:
    # 2 MiB a minute, with noise that cancels out: 120 MiB an hour
    samples = [(60.0 * i, 50.0 + 2.0 * i + (0.5 if i % 2 else -0.5)) for i in range(31)]
    assert growth_per_hour(samples) == pytest.approx(120.0, abs=1.0)


def test_flat_or_short_series_grow_by_nothing() -> None:
    assert growth_per_hour([(0.0, 10.0), (60.0, 10.0), (120.0, 10.0)]) == 0.0
    assert growth_per_hour([(0.0, 10.0)]) == 0.0
    assert growth_per_hour([]) == 0.0
    assert growth_per_hour([(5.0, 1.0), (5.0, 3.0)]) == 0.0


def test_a_falling_series_has_a_negative_slope() -> None:
    assert growth_per_hour([(0.0, 30.0), (1800.0, 20.0), (3600.0, 10.0)]) == pytest.approx(-20.0)


def test_memory_summary_scales_and_skips_missing_samples() -> None:
    samples = [
        {"t_s": 0.0, "heap": 10_000_000.0},
        {"t_s": 1800.0, "heap": None},
        {"t_s": 3600.0, "heap": 12_000_000.0},
    ]
    assert memory_summary(samples, "heap", scale=1e6) == "10.0 → 12.0, +2.0/h"
    assert memory_summary(samples, "missing") == "n/a"
