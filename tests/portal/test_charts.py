"""The portal's SVG charts: values map to coordinates, empty data says so, text is escaped."""

from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np
import pytest

from neurogate.gateway.portal.charts import LinearScale, daily_bars, nice_ceiling, traces

DAYS = [date(2026, 11, 28) + timedelta(days=i) for i in range(4)]


def _bars(**overrides: object) -> str:
    options: dict[str, object] = {
        "days": DAYS, "series": [("Focus", [0, 10, 20, 40]), ("Ward", [5, 0, 0, 0])],
        "title": "Messages", "desc": "Focus 70, Ward 5", "empty_message": "Nothing yet",
        "day_label": lambda d: d.strftime("%d"),
        "value_label": lambda name, day, n: f"{name} {n} on {day.isoformat()}",
    }
    options.update(overrides)
    return str(daily_bars(**options))  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "expected"), [
    (0.0, 1.0), (1.0, 1.0), (3.0, 5.0), (40.0, 50.0), (1200.0, 2000.0), (0.3, 0.5),
    (2.5, 2.5), (101.0, 200.0),
])
def test_nice_ceiling_rounds_up_to_one_two_two_and_a_half_or_five(value: float,
                                                                   expected: float) -> None:
    """Axis tops are the next 1, 2, 2.5 or 5 times a power of ten."""
    assert nice_ceiling(value) == pytest.approx(expected)


def test_linear_scale_maps_domain_onto_a_downward_extent() -> None:
    """0 maps to the bottom pixel, the top of the domain to the top pixel."""
    y = LinearScale((0.0, 50.0), (200.0, 10.0))
    assert y(0.0) == 200.0
    assert y(50.0) == 10.0
    assert y(25.0) == pytest.approx(105.0)
    assert LinearScale((3.0, 3.0), (0.0, 10.0))(3.0) == 5.0


def test_daily_bars_heights_are_proportional_to_values() -> None:
    """Each bar's height is its value over the axis top (50 here) times the plot height."""
    svg = _bars()
    rects = re.findall(r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" '
                       r'data-day="([\d-]+)" data-value="(\d+)">', svg)
    assert len(rects) == 8  # two series, four days
    heights = {(day, int(value)): float(height) for _, height, day, value in rects}
    tallest = heights[(DAYS[3].isoformat(), 40)]
    assert heights[(DAYS[2].isoformat(), 20)] == pytest.approx(tallest / 2, abs=0.1)
    assert heights[(DAYS[1].isoformat(), 10)] == pytest.approx(tallest / 4, abs=0.1)
    assert heights[(DAYS[0].isoformat(), 0)] == 0.0
    bottoms = {round(float(y) + float(h), 1) for y, h, _, _ in rects}
    assert len(bottoms) == 1  # every bar stands on the same baseline
    ticks = re.findall(r'<text class="tick"[^>]*text-anchor="end">([^<]+)</text>', svg)
    assert ticks == ["0", "10", "20", "30", "40", "50"]


def test_daily_bars_have_one_group_per_series_with_titles_and_legend() -> None:
    """One <g class="series"> per app, each bar titled, the chart titled and described."""
    svg = _bars()
    assert re.findall(r'<g class="series series-(\d)" data-series="([^"]+)">', svg) == [
        ("0", "Focus"), ("1", "Ward")]
    assert "<title>Focus 40 on 2026-12-01</title>" in svg
    assert re.search(r'<title id="chart-\d+-title">Messages</title>', svg)
    assert re.search(r'<desc id="chart-\d+-desc">Focus 70, Ward 5</desc>', svg)
    assert 'role="img"' in svg and "style=" not in svg
    assert svg.count('class="swatch series-') == 2


@pytest.mark.parametrize("series", [[], [("Focus", [0, 0, 0, 0])]])
def test_daily_bars_without_data_say_nothing_was_shared(series: list[object]) -> None:
    """No series, or only zeros: no bars, the empty message instead."""
    svg = _bars(series=series)
    assert "<rect" not in svg
    assert '<text class="chart-empty"' in svg and ">Nothing yet</text>" in svg
    assert "<title" in svg and "<desc" in svg


def test_chart_text_is_escaped() -> None:
    """Names and titles with markup are escaped, never injected."""
    svg = _bars(series=[("<script>x</script>", [1, 2, 3, 4])], title='a "b" & <c>')
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg and "a &#34;b&#34; &amp; &lt;c&gt;" in svg


def test_traces_stack_rows_and_keep_every_point_count() -> None:
    """Stacked rows get their own bands; the polyline is decimated, the count kept."""
    t = np.arange(2500) / 250.0
    rows = [("C3", np.sin(t)), ("C4", np.cos(t))]
    svg = str(traces(t=t, rows=rows, t_range=(0.0, 10.0), title="Raw", desc="2 rows",
                     empty_message="none", max_points=500))
    assert re.findall(r'data-series="([^"]+)" data-points="(\d+)"', svg) == [
        ("C3", "2500"), ("C4", "2500")]
    lines = re.findall(r'<polyline class="line" points="([^"]+)"', svg)
    assert all(len(points.split()) == 500 for points in lines)
    mean_y = [np.mean([float(p.split(",")[1]) for p in points.split()]) for points in lines]
    assert mean_y[0] < mean_y[1]  # the first row sits above the second


def test_traces_markers_put_one_dot_per_value_at_its_time() -> None:
    """An index: one dot per value, x from the time, higher values higher up."""
    t = np.array([0.0, 5.0, 10.0])
    svg = str(traces(t=t, rows=[("global", np.array([1.0, 2.0, 3.0]))], t_range=(0.0, 10.0),
                     title="Focus", desc="3 values", empty_message="none", stacked=False,
                     markers=True, width=720))
    dots = [(float(x), float(y)) for x, y in
            re.findall(r'<circle class="dot" cx="([\d.]+)" cy="([\d.]+)"', svg)]
    assert len(dots) == 3
    assert dots[0][0] == 64.0 and dots[2][0] == 708.0  # left and right edges of the plot
    assert dots[0][1] > dots[1][1] > dots[2][1]


def test_traces_without_values_say_so() -> None:
    """No values in the span: the message, no line."""
    svg = str(traces(t=np.array([]), rows=[], t_range=(0.0, 10.0), title="Focus", desc="",
                     empty_message="No value in these seconds"))
    assert "<polyline" not in svg and "No value in these seconds" in svg
