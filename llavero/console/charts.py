"""Usage charts as inline SVG, drawn on the server.

Hand-written rather than a JS chart library because the console must work offline, under a CSP
without inline scripts, and for screen readers: an SVG with `role="img"`, `<title>` and `<desc>`
needs no script, no network and no canvas. Charts carry no words of their own (only the caller's
title and description, codes and numbers), so they suit both console languages.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup, escape

from llavero.core.codes import Code

WIDTH: Final = 640
PLOT_HEIGHT: Final = 200
LEFT, RIGHT, TOP, AXIS_LABELS = 56, 16, 12, 28
MAX_X_LABELS: Final = 8
LEGEND_ROW: Final = 20

# Verdicts of POST /v1/keys:verify in stacking order, with colours that read as
# allowed (green), throttled (amber), refused by a rule (purple) and bad key (red/grey).
# One colour per `Code` (tests/console/test_charts.py checks that none is missing).
OUTCOME_COLORS: Final[Mapping[str, str]] = {
    Code.VALID: "#1e8e3e",
    Code.RATE_LIMITED: "#f29900",
    Code.QUOTA_EXCEEDED: "#b06000",
    Code.IP_NOT_ALLOWED: "#8430ce",
    Code.REFERRER_NOT_ALLOWED: "#a142f4",
    Code.APP_NOT_ALLOWED: "#6a1b9a",
    Code.API_NOT_ALLOWED: "#c58af9",
    Code.ENVIRONMENT_MISMATCH: "#4a148c",
    Code.MALFORMED: "#d93025",
    Code.NOT_FOUND: "#a50e0e",
    Code.EXPIRED: "#80868b",
    Code.DISABLED: "#5f6368",
    Code.DELETED: "#3c4043",
}
FALLBACK_COLORS: Final = ("#1a73e8", "#12b5cb", "#e52592", "#9aa0a6", "#fa7b17", "#188038")
LINE_COLOR: Final = "#1a73e8"


@dataclass(frozen=True)
class _Axis:
    """A y axis from 0 to `top`, with tick values chosen from 1-2-5 steps."""

    top: float
    ticks: tuple[float, ...]

    def y(self, value: float) -> float:
        return TOP + PLOT_HEIGHT - (value / self.top) * PLOT_HEIGHT


def bar_chart(
    series: Sequence[tuple[str, Mapping[str, int]]],
    *,
    title: str,
    colors: Mapping[str, str] | None = None,
    description: str | None = None,
    names: Mapping[str, str] | None = None,
) -> Markup:
    """Requests per bucket, stacked by outcome code: `series` is `[(bucket_label, {code: n})]`.
    `names` are what the legend and tooltips show for a code (the code itself when absent)."""
    for label, counts in series:
        for code, count in counts.items():
            if count < 0:
                raise ValueError(f"series[{label!r}][{code!r}]: a count cannot be negative")
    codes = _ordered_codes(code for _, counts in series for code in counts)
    palette = _palette(codes, colors or {})
    shown = {code: (names or {}).get(code, code) for code in codes}
    axis = _axis(max((sum(counts.values()) for _, counts in series), default=0), whole=True)
    slot = (WIDTH - LEFT - RIGHT) / max(len(series), 1)
    bar_width = max(slot * 0.7, 1.0)
    parts = [_grid(axis)]
    for index, (label, counts) in enumerate(series):
        x = LEFT + index * slot + (slot - bar_width) / 2
        parts.append(_stack(label, counts, codes, palette, shown, axis, x, bar_width))
    parts.append(_x_labels([label for label, _ in series], lambda i: LEFT + (i + 0.5) * slot))
    legend, legend_height = _legend(codes, palette, shown)
    parts.append(legend)
    totals = {code: sum(counts.get(code, 0) for _, counts in series) for code in codes}
    summary = ", ".join(f"{shown[code]} {_number(total)}" for code, total in totals.items())
    return _svg(title, description or _span_summary(series, summary), parts, legend_height)


def line_chart(
    points: Sequence[tuple[str, float]], *, title: str, description: str | None = None
) -> Markup:
    """Units per bucket (e.g. tokens) as a line with a marker per bucket."""
    for label, value in points:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"points[{label!r}]: a value must be a finite number >= 0")
    axis = _axis(max((value for _, value in points), default=0))
    plot_width = WIDTH - LEFT - RIGHT

    def x_of(index: int) -> float:
        if len(points) == 1:
            return LEFT + plot_width / 2
        return LEFT + index * plot_width / (len(points) - 1)

    coordinates = [(x_of(i), axis.y(value)) for i, (_, value) in enumerate(points)]
    parts = [_grid(axis)]
    if len(coordinates) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{LINE_COLOR}" stroke-width="2"/>'
        )
    for (label, value), (x, y) in zip(points, coordinates, strict=True):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{LINE_COLOR}">'
            f"<title>{escape(label)}: {_number(value)}</title></circle>"
        )
    parts.append(_x_labels([label for label, _ in points], x_of))
    values = [value for _, value in points]
    summary = f"{_number(min(values))} – {_number(max(values))}" if values else ""
    return _svg(title, description or _span_summary(points, summary), parts, 0)


def _svg(title: str, description: str, parts: Iterable[str], extra_height: int) -> Markup:
    height = TOP + PLOT_HEIGHT + AXIS_LABELS + extra_height
    ident = (
        "chart-" + hashlib.blake2s(f"{title}\0{description}".encode(), digest_size=4).hexdigest()
    )
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" aria-labelledby="{ident}-title {ident}-desc" '
        f'font-family="system-ui, sans-serif" font-size="11" fill="#3c4043">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(description)}</desc>'
    )
    return Markup(head + "".join(parts) + "</svg>")


def _span_summary(series: Sequence[tuple[str, object]], summary: str) -> str:
    if not series:
        return "—"
    first, last = series[0][0], series[-1][0]
    span = first if first == last else f"{first} – {last}"
    return f"{span}: {summary}"


def _stack(
    label: str,
    counts: Mapping[str, int],
    codes: Sequence[str],
    palette: Mapping[str, str],
    shown: Mapping[str, str],
    axis: _Axis,
    x: float,
    width: float,
) -> str:
    rects: list[str] = []
    base = 0
    for code in codes:
        count = counts.get(code, 0)
        if count == 0:
            continue
        y_top, y_bottom = axis.y(base + count), axis.y(base)
        rects.append(
            f'<rect x="{x:.1f}" y="{y_top:.1f}" width="{width:.1f}" '
            f'height="{y_bottom - y_top:.1f}" fill="{escape(palette[code])}">'
            f"<title>{escape(label)} · {escape(shown[code])}: {_number(count)}</title></rect>"
        )
        base += count
    return "<g>" + "".join(rects) + "</g>"


def _grid(axis: _Axis) -> str:
    lines = []
    for tick in axis.ticks:
        y = axis.y(tick)
        lines.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{"#5f6368" if tick == 0 else "#dadce0"}" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(tick)}</text>'
        )
    return '<g aria-hidden="true">' + "".join(lines) + "</g>"


def _x_labels(labels: Sequence[str], x_of: Callable[[int], float]) -> str:
    every = max(math.ceil(len(labels) / MAX_X_LABELS), 1)
    y = TOP + PLOT_HEIGHT + 18
    texts = [
        f'<text x="{x_of(i):.1f}" y="{y}" text-anchor="middle">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    ]
    return '<g aria-hidden="true">' + "".join(texts) + "</g>"


def _legend(
    codes: Sequence[str], palette: Mapping[str, str], shown: Mapping[str, str]
) -> tuple[str, int]:
    """Swatches in rows under the x labels; a row wraps when the next entry would not fit."""
    items: list[str] = []
    x, row = LEFT, 0
    for code in codes:
        width = 18 + 7 * len(shown[code]) + 16
        if x + width > WIDTH - RIGHT and x > LEFT:
            x, row = LEFT, row + 1
        y = TOP + PLOT_HEIGHT + AXIS_LABELS + row * LEGEND_ROW
        items.append(
            f'<rect x="{x}" y="{y}" width="12" height="12" fill="{escape(palette[code])}"/>'
            f'<text x="{x + 18}" y="{y + 10}">{escape(shown[code])}</text>'
        )
        x += width
    height = (row + 1) * LEGEND_ROW if codes else 0
    return '<g aria-hidden="true">' + "".join(items) + "</g>", height


def _ordered_codes(codes: Iterable[str]) -> list[str]:
    """Known verdicts in their fixed order (VALID at the bottom of a stack), others by name."""
    known = list(OUTCOME_COLORS)
    seen = set(codes)
    return [c for c in known if c in seen] + sorted(seen.difference(known))


def _palette(codes: Sequence[str], overrides: Mapping[str, str]) -> dict[str, str]:
    palette: dict[str, str] = {}
    spare = 0
    for code in codes:
        if code in overrides:
            palette[code] = overrides[code]
        elif code in OUTCOME_COLORS:
            palette[code] = OUTCOME_COLORS[code]
        else:
            palette[code] = FALLBACK_COLORS[spare % len(FALLBACK_COLORS)]
            spare += 1
    return palette


def _axis(maximum: float, *, whole: bool = False) -> _Axis:
    """About four ticks; `whole` keeps steps at 1 or more (there is no half a request)."""
    if maximum <= 0:
        return _Axis(top=1.0, ticks=(0.0,))
    magnitude = 10 ** math.floor(math.log10(maximum / 4))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude * 4 >= maximum)
    if whole:
        step = max(step, 1)
    count = math.ceil(maximum / step)
    return _Axis(top=count * step, ticks=tuple(i * step for i in range(count + 1)))


def _number(value: float) -> str:
    """Digits grouped with a narrow no-break space (the SI style), readable in es and en alike."""
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return text.replace(",", "\u202f")
