"""Geometry for the small inline-SVG charts (no chart library, no CDN).

Functions return plain data that templates/includes/*.svg.html draw; the numbers are
computed here so the templates stay free of arithmetic.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # the value as shown next to the bar
    y: float
    width: float
    highlight: bool = False
    note: str = ""


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    width: int
    height: int
    label_width: int
    plot_width: int
    bar_height: int
    row_height: int

    @property
    def value_x(self) -> int:
        return self.label_width + self.plot_width + 8

    @property
    def ticks(self) -> list[tuple[float, str]]:
        return [(self.label_width + self.plot_width * f, f"{int(f * 100)}%") for f in (0, 0.25, 0.5, 0.75, 1)]


def hbar_chart(
    rows: list[tuple[str, float]],
    *,
    title: str,
    maximum: float | None = None,
    fmt=lambda v: f"{v * 100:.1f}%",
    highlight: str | None = None,
    notes: dict[str, str] | None = None,
    label_width: int = 150,
    plot_width: int = 300,
) -> BarChart:
    """Horizontal bars, one per (label, value). ``maximum`` defaults to 1 (probabilities, rates)."""
    top = maximum if maximum is not None else 1.0
    top = top or 1.0
    bar_height, row_height = 16, 26
    bars = [
        Bar(
            label=label,
            value=value,
            text=fmt(value),
            y=8 + i * row_height,
            width=max(min(value / top, 1.0), 0.0) * plot_width,
            highlight=label == highlight,
            note=(notes or {}).get(label, ""),
        )
        for i, (label, value) in enumerate(rows)
    ]
    height = 8 + len(rows) * row_height + 18
    return BarChart(
        title=title,
        bars=bars,
        width=label_width + plot_width + 110,
        height=height,
        label_width=label_width,
        plot_width=plot_width,
        bar_height=bar_height,
        row_height=row_height,
    )


@dataclass(frozen=True)
class Segment:
    label: str
    count: int
    x: float
    width: float
    css: str


def stacked_bar(parts: list[tuple[str, int, str]], *, width: int = 460) -> list[Segment]:
    """One horizontal bar split by counts, e.g. today's studies by status. Parts: (label, count, css class)."""
    total = sum(count for _, count, _ in parts)
    segments, x = [], 0.0
    for label, count, css in parts:
        if not count:
            continue
        w = width * count / total
        segments.append(Segment(label=label, count=count, x=x, width=w, css=css))
        x += w
    return segments
