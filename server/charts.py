"""Charts drawn on the server as SVG: the console needs no charting script, and each
chart is a picture with a name (``role="img"`` and a title) beside a table of its figures
for whoever would rather read. Colours and dashes come from the stylesheet's classes
(``chart-*``): the page's CSP forbids inline styles.

Pure: figures in, markup out; every text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 36
"""The margins: room for the value axis on the left and the labels below."""
TICKS = 4


@dataclass(frozen=True)
class Series:
    name: str
    css_class: str  # chart-<something>, defined in the stylesheet
    values: Sequence[float]


def stacked_bars(
    chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series]
) -> Markup:
    """One bar per label, its series stacked; every ``label_every``-th label shown."""
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top = _nice_top(max(totals, default=0))
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = inner_w / max(len(labels), 1)
    parts = [_axis(top, inner_h)]
    every = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        x = LEFT + i * slot + slot * 0.15
        base = 0.0
        for s in series:
            value = s.values[i]
            if value > 0:
                height = inner_h * value / top
                y = TOP + inner_h - (inner_h * base / top) - height
                parts.append(
                    Markup(
                        '<rect class="{}" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}">'
                        "<title>{}: {} {:g}</title></rect>"
                    ).format(s.css_class, x, y, slot * 0.7, height, label, s.name, value)
                )
            base += value
        if i % every == 0:
            parts.append(_label_below(LEFT + i * slot + slot / 2, label))
    return _svg(chart_id, title, parts, series)


def lines(
    chart_id: str,
    title: str,
    xs: Sequence[float],
    ticks: Sequence[tuple[float, str]],
    series: Sequence[Series],
) -> Markup:
    """One line per series over the positions ``xs`` (a value of NaN leaves that point
    out), with the labels ``ticks`` (position, text) under the axis."""
    finite = [v for s in series for v in s.values if v == v]
    top = _nice_top(max(finite, default=0))
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    low, high = min(xs, default=0.0), max(xs, default=1.0)
    span = (high - low) or 1.0

    def x_of(x: float) -> float:
        return LEFT + inner_w * (x - low) / span

    parts = [_axis(top, inner_h)]
    for s in series:
        points = [
            f"{x_of(x):.1f},{TOP + inner_h - inner_h * v / top:.1f}"
            for x, v in zip(xs, s.values, strict=True)
            if v == v
        ]
        if len(points) == 1:  # a line of one point would not show: a dot
            cx, cy = points[0].split(",")
            parts.append(
                Markup(
                    '<circle class="{}" cx="{}" cy="{}" r="4"><title>{}</title></circle>'
                ).format(s.css_class, cx, cy, s.name)
            )
        elif points:
            parts.append(
                Markup(
                    '<polyline class="{}" fill="none" points="{}"><title>{}</title></polyline>'
                ).format(s.css_class, " ".join(points), s.name)
            )
    for at, label in ticks:  # the axis's ends are labelled inward, so no label is cut
        anchor = "start" if at == low else "end" if at == high else "middle"
        parts.append(_label_below(x_of(at), label, anchor))
    return _svg(chart_id, title, parts, series)


def _nice_top(highest: float) -> float:
    """The axis's top: 1, 2 or 5 times a power of ten, at least ``highest`` (and 1)."""
    if highest <= 1:
        return 1.0
    power = 10 ** (len(str(int(highest))) - 1)
    for factor in (1, 2, 5, 10):
        if factor * power >= highest:
            return float(factor * power)
    return float(10 * power)


def _axis(top: float, inner_h: float) -> Markup:
    ticks = []
    for n in range(TICKS + 1):
        y = TOP + inner_h - inner_h * n / TICKS
        ticks.append(
            Markup(
                '<line class="chart-grid" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}"/>'
                '<text class="chart-tick" x="{}" y="{:.1f}" text-anchor="end">{:g}</text>'
            ).format(LEFT, WIDTH - RIGHT, y, y, LEFT - 6, y + 4, top * n / TICKS)
        )
    return Markup("").join(ticks)


def _label_below(x: float, label: str, anchor: str = "middle") -> Markup:
    return Markup('<text class="chart-tick" x="{:.1f}" y="{}" text-anchor="{}">{}</text>').format(
        x, HEIGHT - BOTTOM + 16, anchor, label
    )


def _svg(chart_id: str, title: str, parts: list[Markup], series: Sequence[Series]) -> Markup:
    legend = [
        Markup(
            '<rect class="{}" x="{}" y="{}" width="10" height="10"/>'
            '<text class="chart-tick" x="{}" y="{}">{}</text>'
        ).format(s.css_class, LEFT + 150 * n, HEIGHT - 14, LEFT + 150 * n + 14, HEIGHT - 5, s.name)
        for n, s in enumerate(series)
    ]
    return Markup(
        '<svg class="chart" id="{0}" viewBox="0 0 {1} {2}" role="img" '
        'aria-labelledby="{0}-title" preserveAspectRatio="xMidYMid meet">'
        '<title id="{0}-title">{3}</title>{4}</svg>'
    ).format(chart_id, WIDTH, HEIGHT, title, Markup("").join(parts + legend))
