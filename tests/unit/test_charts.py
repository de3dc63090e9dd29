"""SVG charts: bars in proportion, empty states, escaped labels, no inline styles."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from markupsafe import Markup

from casefold.web.charts import (
    BAND_COLORS,
    empty_chart,
    grouped_hbar_chart,
    hbar_chart,
    human_duration,
    nice_ticks,
    stacked_columns,
)

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert('x')</script>&\"q\""


def parse(markup: Markup) -> ET.Element:
    """The chart as XML: well-formed, which also proves every label was escaped."""
    return ET.fromstring(str(markup))


def bars(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}rect[@class='mark']")


def tip(el: ET.Element) -> str:
    found = el.find(f"{SVG}title")
    assert found is not None
    return found.text or ""


def band_series(values: dict[str, list[int]]) -> list[dict[str, object]]:
    return [{"name": k, "color": BAND_COLORS[k], "values": v} for k, v in values.items()]


def test_every_chart_is_an_accessible_image_without_inline_style():
    charts = [
        stacked_columns(
            ["a", "b"], band_series({"low": [1, 2]}), title="Alerts", empty="No alerts"
        ),
        hbar_chart([("x", 3)], title="Top", empty="none"),
        grouped_hbar_chart(
            ["high"],
            [{"name": "ack", "color": "#000000", "values": [5]}],
            title="Times",
            empty="none",
        ),
        empty_chart("Nothing", "No alerts in the last 24 hours"),
    ]
    for chart in charts:
        assert isinstance(chart, Markup)
        root = parse(chart)
        assert root.get("role") == "img"
        assert root.get("aria-label")
        assert root.find(f"{SVG}title") is not None
        assert "style" not in str(chart)
        assert "<script" not in str(chart)


def test_column_heights_are_proportional_and_stacked():
    chart = stacked_columns(
        ["10:00", "11:00", "12:00"],
        band_series({"low": [10, 0, 5], "high": [10, 40, 0]}),
        title="Alerts per hour",
        empty="No alerts",
        tips=["t10", "t11", "t12"],
    )
    root = parse(chart)
    rects = {tip(r): r for r in bars(root)}
    # Zero values draw nothing; the rest carry their exact value in the tooltip.
    assert sorted(rects) == ["t10 · high: 10", "t10 · low: 10", "t11 · high: 40", "t12 · low: 5"]
    h = {k: float(r.get("height", "0")) for k, r in rects.items()}
    assert h["t11 · high: 40"] == pytest.approx(4 * h["t10 · low: 10"], rel=0.01)
    assert h["t12 · low: 5"] == pytest.approx(h["t10 · low: 10"] / 2, rel=0.01)
    # Stacked: high sits on top of low in the same column.
    low, high = rects["t10 · low: 10"], rects["t10 · high: 10"]
    assert low.get("x") == high.get("x")
    assert float(high.get("y", "0")) + float(high.get("height", "0")) == pytest.approx(
        float(low.get("y", "0")), abs=0.1
    )
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "low 15" in texts and "high 50" in texts  # legend with the series' totals
    assert "40" in texts  # the column total, where it fits
    assert {"10:00", "11:00", "12:00"} <= set(texts)


def test_many_columns_thin_out_the_axis_labels():
    labels = [f"{h:02d}:00" for h in range(24)]
    chart = stacked_columns(labels, band_series({"low": [1] * 24}), title="t", empty="e", width=400)
    shown = [t.text for t in parse(chart).iter(f"{SVG}text") if t.get("class") == "axis"]
    hours = [t for t in shown if t and ":" in t]
    assert 4 <= len(hours) < 24
    assert hours[0] == "00:00"


def test_empty_data_gives_the_message():
    for chart in (
        stacked_columns(
            ["a", "b"], band_series({"low": [0, 0]}), title="Alerts", empty="No alerts here"
        ),
        stacked_columns([], [], title="Alerts", empty="No alerts here"),
        hbar_chart([], title="Top", empty="No alerts here"),
        hbar_chart([("a", 0), ("b", 0)], title="Top", empty="No alerts here"),
        grouped_hbar_chart(
            ["low"],
            [{"name": "x", "color": "#000", "values": [None]}],
            title="T",
            empty="No alerts here",
        ),
    ):
        root = parse(chart)
        assert not bars(root)
        assert [t.text for t in root.iter(f"{SVG}text")] == ["No alerts here"]
        assert "No alerts here" in (root.get("aria-label") or "")


def test_horizontal_bars_are_proportional_with_values_shown():
    chart = hbar_chart(
        [("5712 sshd brute force", 200), ("31108 web", 50), ("zero", 0)],
        title="Top rules",
        empty="none",
    )
    root = parse(chart)
    rects = bars(root)
    assert [tip(r) for r in rects] == ["5712 sshd brute force: 200", "31108 web: 50"]
    w = [float(r.get("width", "0")) for r in rects]
    assert w[0] == pytest.approx(4 * w[1], rel=0.01)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert ["200", "50", "0"] == [
        t.text for t in root.iter(f"{SVG}text") if t.get("class") == "value"
    ]
    assert "zero" in texts


def test_long_labels_are_clipped_with_the_full_name_on_hover():
    long = "sshd: brute force trying to get access to the system. Non existent user."
    root = parse(hbar_chart([(long, 3)], title="Top", empty="none", label_width=150))
    label = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "label")
    assert label.text and label.text.endswith("…") and len(label.text) < len(long)
    assert tip(label) == long
    assert tip(bars(root)[0]) == f"{long}: 3"


def test_labels_from_alerts_are_escaped():
    stacked = stacked_columns(
        [HOSTILE], [{"name": HOSTILE, "color": "#000", "values": [1]}], title=HOSTILE, empty="e"
    )
    hbar = hbar_chart([(HOSTILE, 1)], title=HOSTILE, empty="e", tips=[HOSTILE])
    grouped = grouped_hbar_chart(
        [HOSTILE], [{"name": HOSTILE, "color": "#000", "values": [1]}], title="t", empty="e"
    )
    empty = empty_chart(HOSTILE, HOSTILE)
    for chart in (stacked, hbar, grouped, empty):
        markup = str(chart)
        assert "<script>" not in markup
        assert "&lt;script&gt;" in markup
        root = parse(chart)  # the escaped text reads back as the original
        everything = [t.text or "" for t in root.iter() if t.text] + [root.get("aria-label", "")]
        assert any(HOSTILE in t for t in everything)


def test_grouped_bars_share_one_scale_and_say_no_data():
    chart = grouped_hbar_chart(
        ["critical", "low"],
        [
            {"name": "to acknowledge", "color": "#0969da", "values": [600, None]},
            {"name": "to resolve", "color": "#1a7f37", "values": [7200, 3600]},
        ],
        title="Mean times",
        empty="none",
        fmt=human_duration,
    )
    root = parse(chart)
    rects = {tip(r): float(r.get("width", "0")) for r in bars(root)}
    assert set(rects) == {
        "critical · to acknowledge: 10 min",
        "critical · to resolve: 2.0 h",
        "low · to resolve: 1.0 h",
    }
    assert rects["critical · to resolve: 2.0 h"] == pytest.approx(
        12 * rects["critical · to acknowledge: 10 min"], rel=0.01
    )
    values = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "value"]
    assert values == ["10 min", "2.0 h", "no data", "1.0 h"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "–"),
        (0, "0 s"),
        (42, "42 s"),
        (42 * 60, "42 min"),
        (3.2 * 3600, "3.2 h"),
        (2.5 * 86400, "2.5 d"),
    ],
)
def test_human_duration(seconds: float | None, text: str):
    assert human_duration(seconds) == text


def test_nice_ticks():
    assert nice_ticks(0) == [0, 1]
    assert nice_ticks(6) == [0, 2, 4, 6]
    assert nice_ticks(7)[-1] >= 7
    ticks = nice_ticks(12345)
    assert ticks[0] == 0 and ticks[-1] >= 12345 and len(ticks) <= 6
    assert all(re.fullmatch(r"[125]0*", str(b - a)) for a, b in zip(ticks, ticks[1:], strict=False))


def test_a_long_legend_wraps_inside_the_chart():
    names = ["acknowledge deadline missed", "resolve deadline missed", "a third series"]
    chart = grouped_hbar_chart(
        ["high"],
        [{"name": n, "color": "#000000", "values": [i + 1]} for i, n in enumerate(names)],
        title="t",
        empty="e",
        width=300,
    )
    root = parse(chart)
    keys = [r for r in root.iter(f"{SVG}rect") if r.get("class") != "mark"]
    assert len(keys) == 3
    assert all(float(k.get("x", "0")) < 300 for k in keys)
    assert len({k.get("y") for k in keys}) > 1  # more than one line
    bars_top = min(float(r.get("y", "0")) for r in bars(root))
    assert bars_top > max(float(k.get("y", "0")) for k in keys)  # the bars start below it


def test_big_counts_keep_their_axis_labels_inside():
    chart = stacked_columns(
        ["a", "b"], band_series({"low": [999_999, 10]}), title="t", empty="e", width=600
    )
    root = parse(chart)
    ticks = [
        t for t in root.iter(f"{SVG}text") if t.get("class") == "axis" and "," in (t.text or "")
    ]
    assert ticks[-1].text == "1,000,000"
    # right-aligned at x: the label's width fits to the left of it
    assert float(ticks[-1].get("x", "0")) >= len("1,000,000") * 6
