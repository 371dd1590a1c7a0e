"""The benchmark report: Markdown tables and the latency-against-rate plot."""

from __future__ import annotations

from pathlib import Path

from wiki_lib.commands.bench import plot_curve, reference_loop_s, to_markdown

POINTS = [
    {
        "rate_events_per_s": r,
        "p50_s": p50,
        "p90_s": p90,
        "p99_s": p99,
        "max_s": mx,
        "measured_events": n,
    }
    for r, p50, p90, p99, mx, n in [
        (50.0, 2.1, 3.0, 4.2, 5.0, 1500),
        (350.0, 2.9, 4.4, 6.1, 7.5, 10500),
    ]
]


def test_markdown_has_a_table_per_suite_and_the_curve(tmp_path: Path) -> None:
    png = plot_curve(POINTS, tmp_path / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = {
        "at": "2026-11-28T22:00:00+00:00",
        "machine": {"cores": 2},
        "figures": {"limits": {"copy_rows_per_s": 123456.0}, "curve": POINTS},
        "curve_plot": png.name,
    }
    text = to_markdown(report)
    assert "| cores | 2 |" in text
    assert "## limits" in text and "| copy_rows_per_s | 123456.0 |" in text
    assert "| 350 | 2.9 | 4.4 | 6.1 | 7.5 | 10500 |" in text
    assert "![latency percentiles against input rate](curve.png)" in text


def test_reference_loop_takes_longer_for_more_work() -> None:
    short = reference_loop_s(iterations=10_000, rounds=1)
    long = reference_loop_s(iterations=2_000_000, rounds=1)
    assert 0 < short < long
