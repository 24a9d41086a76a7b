"""The figures of ``ce report`` as inline SVG: agreement heatmaps with their colour scale,
the K curves of Figure 1, the Table 3 bars and the flip rate against the reference's
margin. Every figure is sized from the lengths of its labels (estimated per character, on
the wide side), so that no label is clipped; a label too long to show whole is shortened
in the middle and keeps its full text as a tooltip. Titles are HTML captions (they wrap),
not SVG text."""

from __future__ import annotations

import html
from collections.abc import Sequence

FONT = 11  # px, every SVG label
CLOSE = 0.8  # the verdict line of the report: an agreement interval at or above it is "close"
JACCARD_SCALE = "colour scale: Jaccard agreement, 0 (nothing shared) to 1 (identical)"
MAX_LABEL = 26  # characters of a model name shown whole in a figure
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)
NARROW, WIDE = set("ijlI.,:;|!'()[]/ t"), set("mwMW@%")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def text_width(text: str, size: float = FONT) -> float:
    """An upper estimate of the rendered width of ``text`` in a sans-serif font (px)."""
    em = 0.0
    for c in text:
        if c in NARROW:
            em += 0.36
        elif c in WIDE:
            em += 0.98
        elif c.isupper() or c.isdigit():
            em += 0.72
        else:
            em += 0.64
    return em * size


def short(name: str, limit: int = MAX_LABEL) -> str:
    """``name``, or its start and end around an ellipsis when longer than ``limit``."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return f"{name[:head]}…{name[-(limit - 1 - head) :]}"


def label(x: float, y: float, text: str, extra: str = "", full: str | None = None) -> str:
    """An SVG text element; shortened text keeps the whole as its tooltip."""
    tip = f"<title>{esc(full)}</title>" if full is not None and full != text else ""
    return f"<text x='{x:.1f}' y='{y:.1f}'{extra}>{tip}{esc(text)}</text>"


def svg(width: float, height: float, name: str, body: list[str]) -> str:
    return (
        f"<svg class='figure' role='img' aria-label='{esc(name)}' width='{width:.0f}'"
        f" height='{height:.0f}' viewBox='0 0 {width:.0f} {height:.0f}'"
        f" xmlns='http://www.w3.org/2000/svg'>{''.join(body)}</svg>"
    )


def figure(caption: str, drawing: str, note: str = "") -> str:
    """A figure: its caption (HTML, so it wraps), the SVG in a box that scrolls if the page
    is narrower than the drawing, and a note under it."""
    below = f"<p class='note'>{note}</p>" if note else ""
    return (
        f"<figure class='chart'><figcaption>{esc(caption)}</figcaption>"
        f"<div class='scroll'>{drawing}</div>{below}</figure>"
    )


def color(value: float | None) -> str:
    """White (0) to dark blue (1); light grey for no value."""
    if value is None:
        return "#eeeeee"
    v = max(0.0, min(1.0, value))
    r, g, b = (int(255 - v * (255 - c)) for c in (8, 48, 107))
    return f"rgb({r},{g},{b})"


def scale_legend(
    x: float, y: float, width: float = 200, scale: str = JACCARD_SCALE, close: bool = True
) -> tuple[list[str], float]:
    """The colour scale of the heatmaps: its title, 20 steps from 0 to 1, ticks, and where
    ``close``, the 0.8 line ("close"); returns (elements, height)."""
    steps, height = 20, 12
    parts = [label(x, y + FONT, scale)]
    top = y + FONT + 6
    for i in range(steps):
        parts.append(
            f"<rect x='{x + i * width / steps:.1f}' y='{top:.1f}' width='{width / steps + 0.5:.1f}'"
            f" height='{height}' fill='{color((i + 0.5) / steps)}'/>"
        )
    parts.append(f"<rect x='{x}' y='{top:.1f}' width='{width}' height='{height}' fill='none' stroke='#999'/>")
    for tick in (0, 0.2, 0.4, 0.6, 0.8, 1):
        tx = x + tick * width
        parts.append(
            f"<line x1='{tx:.1f}' y1='{top + height:.1f}' x2='{tx:.1f}' y2='{top + height + 4:.1f}'"
            " stroke='#444'/>"
        )
        parts.append(label(tx, top + height + 5 + FONT, f"{tick:g}", " text-anchor='middle'"))
    if not close:
        return parts, FONT + 6 + height + 5 + FONT + 4
    mark = x + CLOSE * width
    parts.append(
        f"<line x1='{mark:.1f}' y1='{top - 3:.1f}' x2='{mark:.1f}' y2='{top + height + 3:.1f}'"
        " stroke='#d62728' stroke-width='2'/>"
    )
    parts.append(label(x + width + 8, top + height - 1, f"≥ {CLOSE:g}: close", " fill='#d62728'"))
    return parts, FONT + 6 + height + 5 + FONT + 4


def heatmap(
    name: str,
    models: Sequence[str],
    cells: dict[tuple[str, str], dict],
    scale: str = JACCARD_SCALE,
    close: bool = True,
) -> str:
    """Agreement of every pair of ``models`` (in that order on both axes); ``cells`` maps a
    pair (either order) to {value, few, tip}. The diagonal (a model with itself) is blank.
    ``scale`` titles the colour scale (a value from 0 to 1); ``close``: mark the 0.8 line."""
    cell = 46
    names = [short(m) for m in models]
    widest = max(text_width(n) for n in names)
    left, top = widest + 12, 8
    size = len(models) * cell
    rise = widest * 0.7072 + FONT  # rotated column labels: 45 degrees down and right
    legend_top = top + size + 10 + rise + 8
    legend, legend_height = scale_legend(12, legend_top, scale=scale, close=close)
    width = max(
        left + size + rise + 8,
        12 + text_width(scale) + 12,
        12 + 200 + 8 + text_width("≥ 0.8: close") + 8,
    )
    height = legend_top + legend_height + 6
    parts = []
    for i, (a, shown) in enumerate(zip(models, names, strict=True)):
        y = top + i * cell + cell / 2 + FONT / 2 - 1
        parts.append(label(left - 6, y, shown, " text-anchor='end'", a))
        cx = left + i * cell + cell / 2
        cy = top + size + 10
        parts.append(
            f"<text x='{cx:.1f}' y='{cy:.1f}' transform='rotate(45 {cx:.1f} {cy:.1f})'>"
            f"{'<title>' + esc(a) + '</title>' if shown != a else ''}{esc(shown)}</text>"
        )
        for j, b in enumerate(models):
            found = cells.get((a, b)) or cells.get((b, a))
            x, y0 = left + j * cell, top + i * cell
            if a == b or found is None or found["value"] is None:
                tip = "a model with itself" if a == b else "no value"
                parts.append(
                    f"<rect x='{x}' y='{y0}' width='{cell - 2}' height='{cell - 2}' fill='#f4f4f4'>"
                    f"<title>{esc(a)} vs {esc(b)}: {tip}</title></rect>"
                )
                continue
            v = found["value"]
            parts.append(
                f"<rect x='{x}' y='{y0}' width='{cell - 2}' height='{cell - 2}' fill='{color(v)}'>"
                f"<title>{esc(found['tip'])}</title></rect>"
            )
            ink = "#fff" if v > 0.55 else "#000"
            text = f"{v:.2f}{'*' if found['few'] else ''}"
            parts.append(
                label(
                    x + cell / 2 - 1,
                    y0 + cell / 2 + FONT / 2 - 1,
                    text,
                    f" text-anchor='middle' fill='{ink}'",
                )
            )
    return svg(width, height, name, parts + legend)


def line_chart(name: str, series: dict[tuple[str, str], dict], ks: Sequence[int]) -> str:
    """Agreement against K: ``series`` maps a pair to {points: [(k, value)], lead: bool};
    the reference's pairs (lead) are drawn solid, the other pairs dashed. K values sit at
    even steps (1, 5, 10, 20, 50, 100 would crowd on a linear axis)."""
    plot_w, plot_h, left, top = 330, 200, 40, 10
    xs = sorted(set(ks)) or [1]
    step = plot_w / max(1, len(xs) - 1)
    pairs = list(series)
    keys = [f"{a} vs {b}" for a, b in pairs]
    shown = [f"{short(a, 22)} vs {short(b, 22)}" for a, b in pairs]
    legend_w = max((text_width(s) for s in shown), default=0) + 30
    legend_h = 16 * len(keys) + 10
    height = max(top + plot_h + 40, legend_h + top)
    width = left + plot_w + 20 + legend_w

    def sx(k: float) -> float:
        return left + (xs.index(k) * step if len(xs) > 1 else plot_w / 2)

    def sy(v: float) -> float:
        return top + plot_h - v * plot_h

    parts = []
    for tick in (0, 0.2, 0.4, 0.6, 0.8, 1):
        parts.append(
            f"<line x1='{left}' y1='{sy(tick):.1f}' x2='{left + plot_w}' y2='{sy(tick):.1f}'"
            f" stroke='{'#bbb' if tick else '#444'}' stroke-width='{0.6 if tick else 1}'/>"
        )
        parts.append(label(left - 6, sy(tick) + 4, f"{tick:g}", " text-anchor='end'"))
    parts.append(f"<line x1='{left}' y1='{sy(0)}' x2='{left}' y2='{sy(1)}' stroke='#444'/>")
    for k in xs:
        parts.append(label(sx(k), sy(0) + 16, f"{k:g}", " text-anchor='middle'"))
    parts.append(label(left + plot_w / 2, sy(0) + 32, "K (neighbours)", " text-anchor='middle'"))
    for n, (pair, key, text) in enumerate(zip(pairs, keys, shown, strict=True)):
        c = PALETTE[n % len(PALETTE)]
        lead = series[pair]["lead"]
        dash = "" if lead else " stroke-dasharray='5,3'"
        pts = [(k, v) for k, v in sorted(series[pair]["points"]) if v is not None and k in xs]
        path = " ".join(f"{sx(k):.1f},{sy(v):.1f}" for k, v in pts)
        parts.append(
            f"<polyline fill='none' stroke='{c}' stroke-width='{2 if lead else 1.4}'{dash} points='{path}'>"
            f"<title>{esc(key)}</title></polyline>"
        )
        for k, v in pts:
            parts.append(
                f"<circle cx='{sx(k):.1f}' cy='{sy(v):.1f}' r='2.5' fill='{c}'>"
                f"<title>{esc(key)}, K = {k}: {v:.3f}</title></circle>"
            )
        ly = top + 12 + 16 * n
        lx = left + plot_w + 20
        parts.append(
            f"<line x1='{lx}' y1='{ly - 4}' x2='{lx + 20}' y2='{ly - 4}' stroke='{c}'"
            f" stroke-width='2'{dash}/>"
        )
        parts.append(label(lx + 26, ly, text, f" fill='{c}'", key))
    return svg(width, height, name, parts)


def bar_chart(name: str, rows: list[dict]) -> str:
    """Accuracy before and under attack per model (``rows`` of Table 3, one attack and
    dataset), the 95% Wilson interval of the latter as a whisker."""
    bar, plot_w = 14, 300
    names = [short(r["model"]) for r in rows]
    left = max(text_width(n) for n in names) + 14
    legend_y = 10 + len(rows) * (2 * bar + 12) + 40
    width = left + plot_w + 60
    height = legend_y + 10
    parts = []
    y = 10
    for r, shown in zip(rows, names, strict=True):
        parts.append(label(left - 6, y + bar + 4, shown, " text-anchor='end'", r["model"]))
        for k, (field, fill) in enumerate(
            (("accuracy_before", "#1f77b4"), ("accuracy_under_attack", "#d62728"))
        ):
            v = r.get(field)
            top = y + k * bar
            if v is None:
                parts.append(label(left + 4, top + bar - 4, "no value"))
                continue
            parts.append(
                f"<rect x='{left}' y='{top}' width='{v * plot_w:.1f}' height='{bar - 2}' fill='{fill}'>"
                f"<title>{field.replace('_', ' ')}: {v:.3f}</title></rect>"
            )
            end = v * plot_w
            lo, hi = r.get(f"{field}_lo"), r.get(f"{field}_hi")
            if lo is not None and hi is not None:
                mid = top + bar / 2 - 1
                parts.append(
                    f"<line x1='{left + lo * plot_w:.1f}' y1='{mid:.1f}' x2='{left + hi * plot_w:.1f}'"
                    f" y2='{mid:.1f}' stroke='#222'>"
                    f"<title>95% Wilson interval {lo:.3f}–{hi:.3f}</title></line>"
                )
                end = max(end, hi * plot_w)
            parts.append(label(left + end + 4, top + bar - 3, f"{v:.2f}"))
        y += 2 * bar + 12
    for tick in (0, 0.5, 1):
        tx = left + tick * plot_w
        parts.append(f"<line x1='{tx}' y1='{y - 6}' x2='{tx}' y2='{y - 2}' stroke='#444'/>")
        parts.append(label(tx, y + 10, f"{tick:g}", " text-anchor='middle'"))
    parts.append(
        f"<rect x='{left}' y='{legend_y - 9}' width='10' height='10' fill='#1f77b4'/>"
        + label(left + 14, legend_y, "before attack")
        + f"<rect x='{left + 110}' y='{legend_y - 9}' width='10' height='10' fill='#d62728'/>"
        + label(left + 124, legend_y, "under attack (line: 95% interval)")
    )
    return svg(
        max(width, left + 124 + text_width("under attack (line: 95% interval)") + 8), height, name, parts
    )


RATE_AXES = ((0.05, 0.01), (0.1, 0.02), (0.2, 0.05), (0.3, 0.05), (0.4, 0.1), (0.6, 0.1), (0.8, 0.2))


def _rate_axis(value: float) -> tuple[float, float]:
    """(top, step) of a rate axis that holds ``value``: the smallest of RATE_AXES, else 0-1."""
    return next(((top, step) for top, step in RATE_AXES if value <= top), (1.0, 0.2))


MARGIN_AXIS = (
    "margin of the reference: its top probability minus the second",
    "deciles of its examples, least sure on the left; ticks: margin at each cut",
)


def margin_chart(name: str, reference: str, series: dict[str, dict]) -> str:
    """Flip rate against the decile of the reference's margin (Dutta et al.): ``series``
    maps each model paired with ``reference`` to {rows: flips_by_margin rows (decile,
    margin_lo, margin_hi, n, flip_rate), overall: the pair's flip rate or None}; one solid
    line per model, its overall flip rate dashed in the same colour. The deciles sit at even
    steps; the ticks between them carry the margins where the first model's deciles are cut."""
    plot_h, left, top = 180, 44, 24
    bands = max((r["decile"] for s in series.values() for r in s["rows"]), default=1)
    band = 40
    plot_w = band * bands
    highest = max(
        [r["flip_rate"] for s in series.values() for r in s["rows"] if r["flip_rate"] is not None]
        + [s["overall"] for s in series.values() if s["overall"] is not None]
        + [0.0]
    )
    ymax, ystep = _rate_axis(highest)
    shown = {m: short(m) for m in series}
    overall = {
        m: "no overall rate" if s["overall"] is None else f"overall {s['overall']:.0%}"
        for m, s in series.items()
    }
    legend = [f"{shown[m]} ({overall[m]})" for m in series]
    legend_w = max([text_width(t) for t in legend] + [text_width("dashed: overall flip rate")]) + 34
    legend_h = 16 * (len(series) + 1) + 10
    axis_w = max(text_width(t) for t in MARGIN_AXIS)
    width = max(left + plot_w + 20 + legend_w, left + plot_w / 2 + axis_w / 2 + 8, axis_w + 16)
    height = max(top + plot_h + 58, top + legend_h)

    def sx(decile: float) -> float:
        return left + (decile - 0.5) * band

    def sy(v: float) -> float:
        return top + plot_h - v / ymax * plot_h

    title = "flip rate: share of the examples whose correctness differs from {}'s"
    width = max(width, 4 + text_width(title.format(short(reference))) + 8)
    parts = [label(4, top - 10, title.format(short(reference)), "", title.format(reference))]
    for i in range(round(ymax / ystep) + 1):
        tick = i * ystep
        parts.append(
            f"<line x1='{left}' y1='{sy(tick):.1f}' x2='{left + plot_w}' y2='{sy(tick):.1f}'"
            f" stroke='{'#bbb' if i else '#444'}' stroke-width='{0.6 if i else 1}'/>"
        )
        parts.append(label(left - 6, sy(tick) + 4, f"{tick:.0%}", " text-anchor='end'"))
    parts.append(f"<line x1='{left}' y1='{sy(0):.1f}' x2='{left}' y2='{sy(ymax):.1f}' stroke='#444'/>")
    first = next((s["rows"] for s in series.values() if s["rows"]), [])
    by_decile = {r["decile"]: r for r in first}
    for cut in range(bands + 1):  # the margin where deciles cut - cut 0 is the smallest margin
        x = left + cut * band
        below, above = by_decile.get(cut), by_decile.get(cut + 1)
        if below is not None and above is not None:
            margin = (below["margin_hi"] + above["margin_lo"]) / 2
        elif above is not None:
            margin = above["margin_lo"]
        elif below is not None:
            margin = below["margin_hi"]
        else:
            continue
        parts.append(f"<line x1='{x}' y1='{sy(0):.1f}' x2='{x}' y2='{sy(0) + 4:.1f}' stroke='#444'/>")
        parts.append(label(x, sy(0) + 16, f"{margin:.2f}", " text-anchor='middle'"))
    for n, text in enumerate(MARGIN_AXIS):
        parts.append(label(left + plot_w / 2, sy(0) + 32 + 14 * n, text, " text-anchor='middle'"))
    for n, (model, s) in enumerate(series.items()):
        c = PALETTE[n % len(PALETTE)]
        key = f"{reference} vs {model}"
        pts = [r for r in sorted(s["rows"], key=lambda r: r["decile"]) if r["flip_rate"] is not None]
        path = " ".join(f"{sx(r['decile']):.1f},{sy(r['flip_rate']):.1f}" for r in pts)
        parts.append(
            f"<polyline fill='none' stroke='{c}' stroke-width='2' points='{path}'>"
            f"<title>{esc(key)}</title></polyline>"
        )
        for r in pts:
            flips = round(r["flip_rate"] * r["n"])
            parts.append(
                f"<circle cx='{sx(r['decile']):.1f}' cy='{sy(r['flip_rate']):.1f}' r='2.5' fill='{c}'>"
                f"<title>{esc(key)}, decile {r['decile']} (reference's margin"
                f" {r['margin_lo']:.3f}–{r['margin_hi']:.3f}): {flips} of {r['n']} flip,"
                f" {r['flip_rate']:.1%}</title></circle>"
            )
        if s["overall"] is not None:
            parts.append(
                f"<line x1='{left}' y1='{sy(s['overall']):.1f}' x2='{left + plot_w}'"
                f" y2='{sy(s['overall']):.1f}' stroke='{c}' stroke-width='1' stroke-dasharray='4,3'>"
                f"<title>{esc(key)}: overall flip rate {s['overall']:.1%}</title></line>"
            )
        ly, lx = top + 12 + 16 * n, left + plot_w + 20
        parts.append(
            f"<line x1='{lx}' y1='{ly - 4}' x2='{lx + 20}' y2='{ly - 4}' stroke='{c}' stroke-width='2'/>"
        )
        parts.append(label(lx + 26, ly, legend[n], f" fill='{c}'", f"{model} ({overall[model]})"))
    ly, lx = top + 12 + 16 * len(series), left + plot_w + 20
    parts.append(
        f"<line x1='{lx}' y1='{ly - 4}' x2='{lx + 20}' y2='{ly - 4}' stroke='#777' stroke-dasharray='4,3'/>"
    )
    parts.append(label(lx + 26, ly, "dashed: overall flip rate", " fill='#555'"))
    return svg(width, height, name, parts)
