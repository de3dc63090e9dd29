"""Charts as inline SVG, rendered on the server from plain numbers: readable without JavaScript.

Pages are served with `Content-Security-Policy: default-src 'self'`, so charts carry no `style`
attributes or elements: only SVG presentation attributes (fill, font-size, text-anchor) and
classes. Every chart is `role="img"` with a `<title>` (and `aria-label`) saying what it shows;
every bar has a `<title>` child with its exact value, which browsers show on hover.

Labels come from alerts (rule titles, agent names), which anyone able to send an alert controls:
every piece of text goes through `escape` before it joins the markup.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

# Fixed palettes. Each color reaches at least 4.5:1 against white (WCAG AA for text, and well
# over the 3:1 asked of graphics), and the band colors differ in lightness as well as hue.
BAND_COLORS: dict[str, str] = {
    "low": "#0969da",  # blue
    "medium": "#9a6700",  # amber
    "high": "#cf222e",  # red
    "critical": "#6639ba",  # purple
}
STATUS_COLORS: dict[str, str] = {
    "unknown": "#6e7781",
    "new": "#0969da",
    "in_progress": "#9a6700",
    "on_hold": "#8250df",
    "resolved": "#1a7f37",
    "closed": "#57606a",
    "other": "#953800",
}
SERIES_COLORS: tuple[str, ...] = ("#0969da", "#1a7f37", "#9a6700", "#cf222e", "#6639ba")
BAR_COLOR = "#0969da"
TEXT = "#1f2328"
MUTED = "#57606a"
GRID = "#d0d7de"

FONT_SIZE = 12
SMALL = 11
CHAR_WIDTH = 7.2  # advance of a FONT_SIZE sans-serif character (DejaVu is wide), for fitting labels
ROW = 22  # height of one horizontal bar's row
Series = Mapping[str, Any]  # {"name": str, "color": str, "values": Sequence[float | None]}


def human_duration(seconds: float | None) -> str:
    """A duration as people read it: "45 s", "42 min", "3.2 h", "2.5 d"; "–" when unknown."""
    if seconds is None or math.isnan(seconds):
        return "–"
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def count_label(value: float | None) -> str:
    return "–" if value is None else f"{round(value):,}"


def nice_ticks(top: float, count: int = 4) -> list[int]:
    """Round axis ticks from 0 to at least `top`: about `count` steps of 1, 2 or 5 × 10^k."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    for m in (1, 2, 5, 10):
        step = m * magnitude
        n = math.ceil(top / step)
        if n <= count + 1:  # the smallest round step that needs at most one extra line
            break
    return [int(i * step) for i in range(n + 1)]


def _n(x: float) -> str:
    # Coordinates to a tenth of a pixel keep the markup short.
    return f"{x:.1f}".removesuffix(".0")


def _e(value: object) -> str:
    return str(escape(str(value)))


def _clip(label: str, chars: int) -> str:
    return label if len(label) <= chars else label[: max(1, chars - 1)] + "…"


def _svg(width: float, height: float, title: str, body: str, css: str = "") -> Markup:
    t = _e(title)
    cls = f"graph {css}".strip()
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" role="img" aria-label="{t}"'
        f' width="{_n(width)}" height="{_n(height)}" viewBox="0 0 {_n(width)} {_n(height)}"'
        f' font-family="system-ui, sans-serif" font-size="{FONT_SIZE}" fill="{TEXT}">'
        f"<title>{t}</title>{body}</svg>"
    )


def empty_chart(title: str, message: str, width: float = 440, height: float = 60) -> Markup:
    """A chart with nothing to show: the message where the bars would be."""
    body = (
        f'<text class="message" x="{_n(width / 2)}" y="{_n(height / 2)}"'
        f' text-anchor="middle" dominant-baseline="middle" fill="{MUTED}">{_e(message)}</text>'
    )
    return _svg(width, height, f"{title}: {message}", body, "graph-empty")


def _legend(
    entries: Sequence[tuple[str, str]], y: float, x: float = 0, width: float = 0
) -> tuple[str, float]:
    """Color keys and their texts from (x, y), wrapped before `width`; the markup and the y of
    its last line."""
    parts: list[str] = []
    x0 = x
    for text, color in entries:
        need = 14 + len(text) * CHAR_WIDTH
        if width and x > x0 and x + need > width:
            x, y = x0, y + 18
        parts.append(
            f'<rect x="{_n(x)}" y="{_n(y - 10)}" width="10" height="10" fill="{_e(color)}"/>'
            f'<text class="legend" x="{_n(x + 14)}" y="{_n(y)}">{_e(text)}</text>'
        )
        x += need + 16
    return "".join(parts), y


def stacked_columns(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    empty: str,
    tips: Sequence[str] | None = None,
    width: float = 1100,
    height: float = 260,
) -> Markup:
    """Vertical bars, one per label, each stacked from `series` (bottom first).

    `tips` are the bars' full names for tooltips (labels may be abbreviated, "10:00" for a date
    and hour). The legend shows each series' total.
    """
    tips = tips if tips is not None else labels
    totals = [sum((s["values"][i] or 0) for s in series) for i in range(len(labels))]
    if not labels or not any(totals):
        return empty_chart(title, empty, width)
    ticks = nice_ticks(max(totals))
    small_char = CHAR_WIDTH * SMALL / FONT_SIZE
    # Room on the left for the longest tick label ("1,000,000").
    left, right, top, bottom = max(36.0, len(f"{ticks[-1]:,}") * small_char + 8), 8.0, 30.0, 22.0
    plot_w, plot_h = width - left - right, height - top - bottom
    scale = plot_h / ticks[-1]
    col = plot_w / len(labels)
    bar = max(1.0, col * 0.78)
    legend, _ = _legend(
        [
            (f"{s['name']} {count_label(sum(v or 0 for v in s['values']))}", s["color"])
            for s in series
        ],
        14,
        left,
    )
    parts: list[str] = [legend]
    for t in ticks:
        y = top + plot_h - t * scale
        parts.append(
            f'<line x1="{_n(left)}" x2="{_n(width - right)}" y1="{_n(y)}" y2="{_n(y)}"'
            f' stroke="{GRID}" stroke-width="1"/>'
            f'<text class="axis" x="{_n(left - 4)}" y="{_n(y + 4)}" text-anchor="end"'
            f' font-size="{SMALL}" fill="{MUTED}">{t:,}</text>'
        )
    # Thin out the axis labels so they never overlap.
    label_w = max((len(x) for x in labels), default=1) * small_char + 6
    every = max(1, math.ceil(label_w / col))
    digits_fit = col >= len(f"{max(totals):,}") * small_char + 2
    for i, label in enumerate(labels):
        x = left + i * col + (col - bar) / 2
        y = top + plot_h
        for s in series:
            v = s["values"][i] or 0
            if v <= 0:
                continue
            h = v * scale
            y -= h
            parts.append(
                f'<rect class="mark" x="{_n(x)}" y="{_n(y)}" width="{_n(bar)}" height="{_n(h)}"'
                f' fill="{_e(s["color"])}"><title>{_e(tips[i])} · {_e(s["name"])}: {v:,}'
                "</title></rect>"
            )
        if totals[i] and digits_fit:
            parts.append(
                f'<text class="value" x="{_n(x + bar / 2)}" y="{_n(y - 3)}" text-anchor="middle"'
                f' font-size="{SMALL}">{totals[i]:,}</text>'
            )
        if i % every == 0:
            parts.append(
                f'<text class="axis" x="{_n(left + i * col + col / 2)}" y="{_n(height - 6)}"'
                f' text-anchor="middle" font-size="{SMALL}" fill="{MUTED}">{_e(label)}</text>'
            )
    return _svg(width, height, title, "".join(parts))


def hbar_chart(
    items: Sequence[tuple[str, float | None]],
    *,
    title: str,
    empty: str,
    colors: Sequence[str] | None = None,
    fmt: Callable[[float | None], str] = count_label,
    tips: Sequence[str] | None = None,
    width: float = 440,
    label_width: float = 180,
) -> Markup:
    """Horizontal bars, one row per (label, value), longest bar the largest value.

    `colors` gives each row its color (default one color); `fmt` writes values (counts with
    thousands separators by default); `tips` are the rows' full names when labels are clipped.
    A None value is drawn as "no data", without a bar.
    """
    if not items or not any(v for _, v in items):
        return empty_chart(title, empty, width)
    value_w = 56.0
    plot_w = width - label_width - value_w
    top = max((v or 0) for _, v in items)
    chars = int((label_width - 8) / CHAR_WIDTH)
    parts: list[str] = []
    for i, (label, value) in enumerate(items):
        y = i * ROW
        tip = tips[i] if tips is not None else label
        color = colors[i % len(colors)] if colors else BAR_COLOR
        shown_label = _clip(label, chars)
        # The full name on hover when the label had to be cut or says less than the tooltip.
        hint = f"<title>{_e(tip)}</title>" if tip != shown_label else ""
        parts.append(
            f'<text class="label" x="{_n(label_width - 8)}" y="{_n(y + 15)}"'
            f' text-anchor="end">{_e(shown_label)}{hint}</text>'
        )
        w = (value or 0) / top * plot_w if top else 0.0
        if value is not None and value > 0:
            parts.append(
                f'<rect class="mark" x="{_n(label_width)}" y="{_n(y + 4)}" width="{_n(max(w, 1))}"'
                f' height="{ROW - 8}" fill="{_e(color)}"><title>{_e(tip)}: {_e(fmt(value))}'
                "</title></rect>"
            )
        shown = "no data" if value is None else fmt(value)
        parts.append(
            f'<text class="value" x="{_n(label_width + w + 4)}" y="{_n(y + 15)}"'
            f' font-size="{SMALL}">{_e(shown)}</text>'
        )
    return _svg(width, len(items) * ROW + 4, title, "".join(parts))


def grouped_hbar_chart(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    empty: str,
    fmt: Callable[[float | None], str] = count_label,
    width: float = 440,
    label_width: float = 110,
) -> Markup:
    """Horizontal bars grouped by category: one bar per series in each, on one shared scale.

    Series values may be None ("no data", no bar), e.g. a mean time with nothing to average.
    """
    values = [v for s in series for v in s["values"] if v is not None]
    if not categories or not any(values):
        return empty_chart(title, empty, width)
    value_w = 56.0
    plot_w = width - label_width - value_w
    top = max(values)
    bar_h = 14.0
    group_h = len(series) * (bar_h + 2) + 10
    legend, last_line = _legend([(s["name"], s["color"]) for s in series], 14, 0, width)
    legend_h = last_line + 8
    parts: list[str] = [legend]
    chars = int((label_width - 8) / CHAR_WIDTH)
    for i, category in enumerate(categories):
        y0 = legend_h + i * group_h
        shown_label = _clip(category, chars)
        hint = f"<title>{_e(category)}</title>" if shown_label != category else ""
        parts.append(
            f'<text class="label" x="{_n(label_width - 8)}" y="{_n(y0 + 12)}"'
            f' text-anchor="end">{_e(shown_label)}{hint}</text>'
        )
        for j, s in enumerate(series):
            value = s["values"][i]
            y = y0 + j * (bar_h + 2)
            w = (value or 0) / top * plot_w
            if value is not None and value > 0:
                parts.append(
                    f'<rect class="mark" x="{_n(label_width)}" y="{_n(y)}" width="{_n(max(w, 1))}"'
                    f' height="{_n(bar_h)}" fill="{_e(s["color"])}"><title>{_e(category)} ·'
                    f" {_e(s['name'])}: {_e(fmt(value))}</title></rect>"
                )
            shown = "no data" if value is None else fmt(value)
            parts.append(
                f'<text class="value" x="{_n(label_width + w + 4)}" y="{_n(y + bar_h - 3)}"'
                f' font-size="{SMALL}">{_e(shown)}</text>'
            )
    return _svg(width, legend_h + len(categories) * group_h, title, "".join(parts))
