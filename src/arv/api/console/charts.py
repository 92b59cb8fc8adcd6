"""The views chart: an SVG drawn on the server, so it needs no script and prints as it shows."""

from __future__ import annotations

from datetime import date

from markupsafe import escape

from arv.api.console.words import Words

WIDTH = 600
HEIGHT = 160
# Room under the bars for the first and last day's dates.
AXIS = 20


def views_chart(days: list[tuple[date, int]], words: Words) -> str:
    """Bars of views per day, oldest left; the picture's accessible name says the total and the
    busiest day, and each bar's title its day and count (the table beside it has every figure)."""
    if not days:
        return ""
    top = max(count for _, count in days) or 1
    step = WIDTH / len(days)
    bars = []
    for index, (day, count) in enumerate(days):
        height = (HEIGHT - AXIS) * count / top
        x = index * step + step * 0.15
        bars.append(
            f'<rect x="{x:.1f}" y="{HEIGHT - AXIS - height:.1f}" width="{step * 0.7:.1f}" '
            f'height="{height:.1f}"><title>{day.isoformat()}: {count}</title></rect>'
        )
    busiest_day, busiest = max(days, key=lambda entry: entry[1])
    label = words.views_chart_label.format(
        days=len(days), total=sum(count for _, count in days), busiest=busiest, day=busiest_day.isoformat()
    )
    first, last = days[0][0].isoformat(), days[-1][0].isoformat()
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        f"{''.join(bars)}"
        f'<text x="0" y="{HEIGHT - 4}">{first}</text>'
        f'<text x="{WIDTH}" y="{HEIGHT - 4}" text-anchor="end">{last}</text>'
        "</svg>"
    )
