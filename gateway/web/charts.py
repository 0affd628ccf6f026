"""Inline SVG charts drawn on the server: no chart library, nothing loaded from outside."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

PALETTE = ["#2b6cb0", "#d69e2e", "#38a169", "#c53030", "#805ad5", "#dd6b20", "#319795"]


def bar_chart(
    labels: list[str], series: dict[str, list[float]], *, width: int = 720, height: int = 220
) -> Markup:
    """Stacked bars: one bar per label, one colour per series; with a legend."""
    pad_l, pad_b, pad_t = 48, 40, 24
    n = max(len(labels), 1)
    totals = [sum(vals[i] for vals in series.values()) for i in range(len(labels))]
    top = max(totals, default=0) or 1
    plot_h = height - pad_b - pad_t
    slot = (width - pad_l - 8) / n
    bar_w = max(2.0, slot * 0.7)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width}" y2="{height - pad_b}" '
        'stroke="#999"/>',
        f'<text x="4" y="{pad_t + 4}" font-size="10">{escape(_short(top))}</text>',
    ]
    for i, label in enumerate(labels):
        x = pad_l + i * slot + (slot - bar_w) / 2
        y = float(height - pad_b)
        for j, (name, vals) in enumerate(series.items()):
            h = vals[i] / top * plot_h
            if h <= 0:
                continue
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(name)} {escape(label)}: '
                f"{vals[i]:g}</title></rect>"
            )
        if n <= 31 and (n <= 12 or i % max(1, n // 12) == 0):
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - pad_b + 14}" font-size="9" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    for j, name in enumerate(series):
        lx = pad_l + j * 90
        parts.append(
            f'<rect x="{lx}" y="4" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>'
            f'<text x="{lx + 14}" y="13" font-size="10">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 -- every text part is escaped above


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1000:
        return f"{value / 1000:.0f}k"
    return f"{value:g}"
