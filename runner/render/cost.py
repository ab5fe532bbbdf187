"""The break-even as a text table and as a chart (.svg hand-written; .png with matplotlib, if installed)."""

from __future__ import annotations

import math
from pathlib import Path

from runner.cost import BreakEven, money
from runner.errors import TunerError
from runner.render.terminal import table_text

_EPSILON = 1e-9  # float noise in tick arithmetic
_ROWS = 12  # about a dozen months shown by default


def break_even_table(b: BreakEven, step: int | None = None, colour: bool = False) -> str:
    """Both cumulative costs every `step` months (default: about a dozen rows); the break-even month and the
    last month are always shown."""
    step = step or max(1, math.ceil(b.months / _ROWS))
    months = set(range(0, b.months + 1, step)) | {b.months}
    marked = b.break_even_month if b.break_even_month is not None and b.break_even_month <= b.months else None
    if marked is not None:
        months.add(marked)
    rows = [(str(m), money(b.cumulative_prompted[m]), money(b.cumulative_tuned[m]),
             money(b.cumulative_tuned[m] - b.cumulative_prompted[m], signed=True),
             "<- break-even" if m == marked else "") for m in sorted(months)]
    table = table_text(("month", "prompted", "tuned", "tuned - prompted", ""), rows, colour, right_aligned=(0, 1, 2, 3))
    return f"{_headline(b)}\n\n{table}"


def _headline(b: BreakEven) -> str:
    head = (f"training {money(b.training_usd)}; {money(b.monthly_prompted_usd)} vs {money(b.monthly_tuned_usd)} "
            f"a month; saving {money(b.monthly_saving_usd)} a month")
    if b.months_to_pay_back is None:
        return f"{head}: never pays back (the tuned model is not cheaper per call)"
    tail = f"pays back in month {b.break_even_month} ({b.months_to_pay_back:.1f} months)"
    if b.break_even_month > b.months:
        tail += f", after the {b.months} months shown"
    return f"{head}: {tail}"


def _subtitle(b: BreakEven) -> str:
    """The headline, short enough for the chart's width."""
    head = f"training {money(b.training_usd)}, saving {money(b.monthly_saving_usd)} a month"
    if b.months_to_pay_back is None:
        return f"{head}: never pays back"
    return f"{head}: break-even in month {b.break_even_month} ({b.months_to_pay_back:.1f} months)"


_SVG_W, _SVG_H = 720, 420
_LEFT, _RIGHT, _TOP, _BOTTOM = 84, 24, 96, 64
_LEGEND_Y = 62  # legend and status sit above the plot, so they never cover a line
_PROMPTED_COLOUR, _TUNED_COLOUR, _MARK_COLOUR = "#d62728", "#1f77b4", "#2ca02c"


def write_break_even_chart(b: BreakEven, path: str | Path, title: str = "Cumulative cost: prompted vs tuned") -> None:
    """Write a line chart of both cumulative costs, with the break-even month marked.

    .svg is hand-written (no plotting dependency). .png needs matplotlib, which tuner does not install:
    without it a TunerError suggests .svg.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".svg":
        path.write_text(break_even_svg(b, title), encoding="utf-8")
    elif suffix == ".png":
        _write_png(b, path, title)
    else:
        raise TunerError(f"cannot write a chart to {path}: unknown format {suffix or '(no extension)'!r}",
                         remedy="use a .svg path (or .png with matplotlib installed)")


def _xml(text: str) -> str:
    """XML text escaping (xml.sax.saxutils would pull urllib into every plan's start-up)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def break_even_svg(b: BreakEven, title: str = "Cumulative cost: prompted vs tuned") -> str:
    """The chart as SVG text: axes with ticks, both series, a legend and the break-even marker."""
    plot_w, plot_h = _SVG_W - _LEFT - _RIGHT, _SVG_H - _TOP - _BOTTOM
    x_step = _nice_step(b.months)
    y_top_raw = float(max(max(b.cumulative_prompted), max(b.cumulative_tuned), 0.01))
    y_step = _nice_step(y_top_raw)
    y_top = math.ceil(y_top_raw / y_step - _EPSILON) * y_step

    def x(month: float) -> float:
        return _LEFT + plot_w * month / b.months

    def y(usd: float) -> float:
        return _TOP + plot_h * (1 - usd / y_top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SVG_W}" height="{_SVG_H}" '
        f'viewBox="0 0 {_SVG_W} {_SVG_H}" role="img" aria-labelledby="chart-title" '
        f'font-family="sans-serif" font-size="12">',
        f'<title id="chart-title">{_xml(title)}</title>',
        f'<rect width="{_SVG_W}" height="{_SVG_H}" fill="white"/>',
        f'<text x="{_SVG_W / 2:.1f}" y="24" text-anchor="middle" font-size="16">{_xml(title)}</text>',
        f'<text x="{_SVG_W / 2:.1f}" y="42" text-anchor="middle" fill="#555">{_xml(_subtitle(b))}</text>',
        '<g id="grid" stroke="#e5e5e5">',
    ]
    y_ticks = [i * y_step for i in range(round(y_top / y_step) + 1)]
    out += [f'<line x1="{_LEFT}" y1="{y(v):.1f}" x2="{_LEFT + plot_w}" y2="{y(v):.1f}"/>' for v in y_ticks]
    out.append("</g>")
    out.append('<g id="axes" stroke="#333">')
    out.append(f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + plot_h}"/>')
    out.append(f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" y2="{_TOP + plot_h}"/>')
    out.append("</g>")
    out.append('<g id="ticks" fill="#333" stroke-width="1">')
    for m in range(0, b.months + 1, x_step):
        tick_y = _TOP + plot_h
        out.append(f'<line x1="{x(m):.1f}" y1="{tick_y}" x2="{x(m):.1f}" y2="{tick_y + 5}" stroke="#333"/>')
        out.append(f'<text x="{x(m):.1f}" y="{_TOP + plot_h + 18}" text-anchor="middle">{m}</text>')
    for v in y_ticks:
        out.append(f'<text x="{_LEFT - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{_axismoney(v, y_step)}</text>')
    out.append("</g>")
    out.append(f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_SVG_H - 16}" text-anchor="middle">month</text>')
    out.append(f'<text transform="translate(18 {_TOP + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
               "cumulative cost (USD)</text>")
    for series_id, values, colour in (("series-prompted", b.cumulative_prompted, _PROMPTED_COLOUR),
                                      ("series-tuned", b.cumulative_tuned, _TUNED_COLOUR)):
        points = " ".join(f"{x(m):.1f},{y(v):.1f}" for m, v in enumerate(values))
        out.append(f'<polyline id="{series_id}" fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
    out += _svg_break_even(b, x, y, plot_h)
    out += _svg_legend(_LEFT, _LEGEND_Y)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _svg_break_even(b: BreakEven, x, y, plot_h: float) -> list[str]:
    payback = b.months_to_pay_back
    right = _SVG_W - _RIGHT
    if payback is None:
        return [f'<text id="no-break-even" x="{right}" y="{_TOP - 12}" text-anchor="end" fill="#555">'
                "never pays back: tuned is not cheaper per call</text>"]
    if payback > b.months:
        return [f'<text id="break-even-beyond" x="{right}" y="{_TOP - 12}" text-anchor="end" fill="#555">'
                f"pays back in month {b.break_even_month}, after this chart</text>"]
    cost = b.monthly_prompted_usd * payback
    anchor = "end" if payback > b.months * 0.7 else "start"
    dx = -8 if anchor == "end" else 8
    return [
        '<g id="break-even">',
        f'<line x1="{x(payback):.1f}" y1="{_TOP}" x2="{x(payback):.1f}" y2="{_TOP + plot_h}" '
        f'stroke="{_MARK_COLOUR}" stroke-dasharray="4 4"/>',
        f'<circle cx="{x(payback):.1f}" cy="{y(cost):.1f}" r="5" fill="{_MARK_COLOUR}"/>',
        f'<text x="{x(payback) + dx:.1f}" y="{y(cost) + 18:.1f}" text-anchor="{anchor}" fill="{_MARK_COLOUR}">'
        f"break-even: month {b.break_even_month} ({payback:.1f} months, {_xml(money(cost))})</text>",
        "</g>",
    ]


def _svg_legend(left: float, cy: float) -> list[str]:
    out = ['<g id="legend">']
    for column, (label, colour) in enumerate((("prompted: base model, long prompt", _PROMPTED_COLOUR),
                                              ("tuned: training + cheaper calls", _TUNED_COLOUR))):
        x0 = left + column * 280
        out.append(f'<line x1="{x0}" y1="{cy}" x2="{x0 + 24}" y2="{cy}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{x0 + 30}" y="{cy + 4}">{label}</text>')
    out.append("</g>")
    return out


def _axismoney(value: float, step: float) -> str:
    decimals = 0 if step >= 1 else -math.floor(math.log10(step) + _EPSILON)
    return f"${value:,.{decimals}f}"


def _nice_step(span: float, target_ticks: int = 6) -> float | int:
    """A 1-2-5 step giving about target_ticks ticks over [0, span]; whole numbers for whole spans."""
    raw = max(span, _EPSILON) / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw - _EPSILON)
    return max(1, round(step)) if isinstance(span, int) else step


def _write_png(b: BreakEven, path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TunerError(f"cannot write {path}: PNG charts need matplotlib, which is not installed",
                         remedy=f"write {path.with_suffix('.svg')} instead (no dependency), "
                                "or `pip install matplotlib`") from None
    months = list(range(b.months + 1))
    fig, ax = plt.subplots(figsize=(7.2, 4.2))
    try:
        ax.plot(months, b.cumulative_prompted, color=_PROMPTED_COLOUR, label="prompted: base model, long prompt")
        ax.plot(months, b.cumulative_tuned, color=_TUNED_COLOUR, label="tuned: training + cheaper calls")
        if b.months_to_pay_back is not None and b.months_to_pay_back <= b.months:
            ax.axvline(b.months_to_pay_back, color=_MARK_COLOUR, linestyle="--",
                       label=f"break-even: month {b.break_even_month}")
        ax.set(title=title, xlabel="month", ylabel="cumulative cost (USD)")
        ax.legend()
        fig.savefig(path)
    finally:
        plt.close(fig)
