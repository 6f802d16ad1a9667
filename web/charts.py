"""Geometry for the small inline-SVG charts (no chart library, no CDN).

Functions return plain data; the numbers are computed here so the templates stay free of
arithmetic. Bar charts also draw their own SVG (``BarChart.svg``): the admin dashboard shows
three of them, and as a template include they were a third of that page's time.
"""

from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from web.formatting import percent_text


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
    ticks: list[tuple[float, str]]

    @property
    def value_x(self) -> int:
        return self.label_width + self.plot_width + 8

    def svg(self, chart_id: str) -> SafeString:
        """The chart as inline SVG, labelled by its title for screen readers. Numbers are written
        with a dot decimal whatever the locale: SVG coordinates are not prose."""
        ticks = format_html_join(
            "",
            '<line class="grid-line" x1="{0}" x2="{0}" y1="4" y2="{1}"/>'
            '<text x="{0}" y="{2}" text-anchor="middle" class="muted" style="font-size:10px">{3}</text>',
            ((f"{x:.1f}", self.height - 16, self.height - 3, tick) for x, tick in self.ticks),
        )
        bars = format_html_join("", "{}", ((self._bar_svg(bar),) for bar in self.bars))
        return format_html(
            '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-title" '
            'xmlns="http://www.w3.org/2000/svg"><title id="{}-title">{}</title>{}{}</svg>',
            self.width,
            self.height,
            chart_id,
            chart_id,
            self.title,
            ticks,
            bars,
        )

    def _bar_svg(self, bar: Bar) -> SafeString:
        bold = mark_safe(' font-weight="700"') if bar.highlight else ""
        note = format_html(' <tspan class="muted" style="font-size:10px">{}</tspan>', bar.note) if bar.note else ""
        hover = f"{bar.label}: {bar.text}" + (f" ({bar.note})" if bar.note else "")
        return format_html(
            '<g><text x="{}" y="{}" text-anchor="end"{}>{}</text>'
            '<rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="#e6eaef"/>'
            '<rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="{}"><title>{}</title></rect>'
            '<text x="{}" y="{}"{}>{}{}</text></g>',
            self.label_width - 8,
            bar.y + 12,
            bold,
            Truncator(bar.label).chars(22),
            self.label_width,
            bar.y,
            self.plot_width,
            self.bar_height,
            self.label_width,
            bar.y,
            f"{bar.width:.1f}",
            self.bar_height,
            "#0b5cad" if bar.highlight else "#7fa7d3",
            hover,
            self.value_x,
            bar.y + 12,
            bold,
            bar.text,
            note,
        )


def hbar_chart(
    rows: list[tuple[str, float]],
    *,
    title: str,
    maximum: float | None = None,
    fmt=percent_text,
    highlight: str | None = None,
    notes: dict[str, str] | None = None,
    label_width: int = 150,
    plot_width: int = 300,
) -> BarChart:
    """Horizontal bars, one per (label, value).

    Without ``maximum`` the values are fractions (probabilities, rates) on a 0-100 % axis;
    with it they are counts on a 0..maximum axis.
    """
    top = (maximum if maximum is not None else 1.0) or 1.0
    if maximum is None:
        ticks = [(label_width + plot_width * f, f"{int(f * 100)}%") for f in (0, 0.25, 0.5, 0.75, 1)]
    else:
        # Whole-number ticks only: half a study means nothing.
        steps = sorted({round(top * f) for f in (0, 0.25, 0.5, 0.75, 1)})
        ticks = [(label_width + plot_width * step / top, str(step)) for step in steps]
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
        ticks=ticks,
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
