"""Console room: a bar chart of hits per day as inline SVG, drawn on the server.

No chart library and no script: a few rectangles with a title each (the browser shows it as
a tooltip). Every text in it is a date or a number of ours, and escaped all the same.

>>> svg = bars({"2026-01-01": 2, "2026-01-03": 4}, ["2026-01-01", "2026-01-02", "2026-01-03"])
>>> svg.count("<rect"), "2026-01-03: 4" in svg
(3, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 640, 160, 24


def days(since: date, until: date) -> list[str]:
    """Every UTC day from ``since`` to ``until`` inclusive, as ISO dates."""
    count = (until - since).days + 1
    return [(since + timedelta(days=n)).isoformat() for n in range(max(count, 0))]


def bars(
    per_day: Mapping[str, int],
    labels: Sequence[str],
    title: str = "hits per day",
    small: bool = False,
) -> Markup:
    """An SVG bar per day of ``labels`` (zero where ``per_day`` has none); ``small``: a
    sparkline without axis texts (a table cell)."""
    values = [int(per_day.get(day, 0)) for day in labels]
    top = max(values, default=0) or 1
    width, tall, pad = (140, 30, 2) if small else (WIDTH, HEIGHT, PAD)
    slot = (width - 2 * pad) / max(len(values), 1)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {tall}" width="{width}"'
        f' height="{tall}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<line x1="{pad}" y1="{tall - pad}" x2="{width - pad}" y2="{tall - pad}"/>',
    ]
    if not small:
        parts.append(f'<text x="{pad}" y="12">max {top}</text>')
    for n, (day, value) in enumerate(zip(labels, values, strict=True)):
        height = (tall - 2 * pad - (2 if small else 8)) * value / top
        x = pad + n * slot + slot * 0.1
        y = tall - pad - height
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{height:.1f}">'
            f"<title>{escape(day)}: {value}</title></rect>"
        )
    if labels and not small:
        parts.append(f'<text x="{PAD}" y="{HEIGHT - 6}">{escape(labels[0])}</text>')
        last = escape(labels[-1])
        parts.append(f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" text-anchor="end">{last}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (numbers of ours; every text escaped above)
