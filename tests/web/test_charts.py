import re

from web.charts import hbar_chart


def _svg(chart, chart_id="c"):
    return str(chart.svg(chart_id))


def test_bars_scale_to_the_axis_and_write_coordinates_with_a_dot_decimal(settings):
    settings.LANGUAGE_CODE = "de"  # a locale whose decimal mark is a comma
    chart = hbar_chart([("pneumonia", 0.8734), ("normal", 0.1266)], title="Class probabilities", label_width=150)
    svg = _svg(chart, "prob-chart")
    widths = [
        float(w) for w in re.findall(r'<rect x="150" y="\d+" width="([\d.]+)" height="16" rx="3" fill="#7fa7d3"', svg)
    ]
    assert widths == [262.0, 38.0]  # 87.34% and 12.66% of the 300 px plot, to one decimal
    assert '<title id="prob-chart-title">Class probabilities</title>' in svg
    assert 'aria-labelledby="prob-chart-title"' in svg
    assert "," not in re.sub(r"<title>.*?</title>|<text[^>]*>.*?</text>", "", svg)


def test_labels_are_escaped_truncated_and_highlighted_with_their_notes():
    label = "<script>alert(1)</script> a model with a long name"
    chart = hbar_chart([(label, 0.5), ("other", 0.25)], title="T & <b>", highlight=label, notes={label: "3/4 reviews"})
    svg = _svg(chart)
    assert "<script>" not in svg and "<b>" not in svg
    assert "T &amp; &lt;b&gt;" in svg
    assert "&lt;script&gt;alert(1)&lt;/scr…</text>" in svg  # 22 characters on the axis
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt; a model with a long name: 50.0% (3/4 reviews)" in svg
    )  # in full on hover
    assert svg.count('font-weight="700"') == 2 and 'fill="#0b5cad"' in svg
    assert '<tspan class="muted" style="font-size:10px">3/4 reviews</tspan>' in svg


def test_count_axes_have_whole_number_ticks():
    chart = hbar_chart([("Routine", 3), ("STAT", 0)], title="W", maximum=3, fmt=lambda v: f"{int(v)}")
    ticks = re.findall(r'text-anchor="middle" class="muted" style="font-size:10px">(\d+)</text>', _svg(chart))
    assert ticks == ["0", "1", "2", "3"]
