"""``ce report``: one self-contained HTML file (inline SVG and CSS, nothing fetched at view
time) with Table 2 and Table 3, agreement heatmaps per characteristic, the K-sensitivity
curves of Figure 1, attack accuracy bars, the chance-corrected view of error agreement, and
the provenance of every run."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime

from ce.query.compare import k_limits
from ce.query.measures import MEASURES
from ce.session import Session

PALETTE = [
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
]
LABELS = {m.name: m.label for m in MEASURES}


def esc(value) -> str:
    return html.escape(str(value))


def fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return esc(value)


def table_html(rows: list[dict], caption: str) -> str:
    if not rows:
        return f"<p class='empty'>{esc(caption)}: nothing in the store yet.</p>"
    head = "".join(f"<th>{esc(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return (
        f"<table><caption>{esc(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def color(value: float | None) -> str:
    """White (0) to dark blue (1)."""
    if value is None:
        return "#eeeeee"
    v = max(0.0, min(1.0, value))
    r, g, b = (int(255 - v * (255 - c)) for c in (8, 48, 107))
    return f"rgb({r},{g},{b})"


def heatmap(title: str, models: list[str], values: dict[tuple[str, str], float]) -> str:
    cell, left, top = 54, 110, 28
    size = len(models) * cell
    parts = [
        f"<svg class='figure' role='img' aria-label='{esc(title)}' width='{left + size + 10}'"
        f" height='{top + size + 90}' xmlns='http://www.w3.org/2000/svg'>",
        f"<text x='{left}' y='18' class='title'>{esc(title)}</text>",
    ]
    for i, a in enumerate(models):
        parts.append(
            f"<text x='{left - 6}' y='{top + i * cell + cell / 2 + 4}' text-anchor='end'>{esc(a)}</text>"
        )
        parts.append(
            f"<text transform='translate({left + i * cell + cell / 2},"
            f"{top + size + 8}) rotate(40)'>{esc(a)}</text>"
        )
        for j, b in enumerate(models):
            v = 1.0 if a == b else values.get((a, b), values.get((b, a)))
            parts.append(
                f"<rect x='{left + j * cell}' y='{top + i * cell}' width='{cell - 2}'"
                f" height='{cell - 2}' fill='{color(v)}'><title>{esc(a)} vs {esc(b)}:"
                f" {fmt(v)}</title></rect>"
            )
            if v is not None:
                ink = "#fff" if v > 0.55 else "#000"
                parts.append(
                    f"<text x='{left + j * cell + cell / 2 - 1}' y='{top + i * cell + cell / 2 + 4}'"
                    f" text-anchor='middle' fill='{ink}'>{v:.2f}</text>"
                )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, series: dict[str, list[tuple[float, float]]]) -> str:
    width, height, pad = 460, 260, 42
    xs = sorted({x for pts in series.values() for x, _ in pts}) or [0, 1]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1

    def sx(x):
        return pad + (x - x0) / (x1 - x0) * (width - 2 * pad)

    def sy(y):
        return height - pad - y * (height - 2 * pad)

    parts = [
        f"<svg class='figure' role='img' aria-label='{esc(title)}' width='{width + 190}'"
        f" height='{height}' xmlns='http://www.w3.org/2000/svg'>",
        f"<text x='{pad}' y='16' class='title'>{esc(title)}</text>",
        f"<line x1='{pad}' y1='{sy(0)}' x2='{width - pad}' y2='{sy(0)}' stroke='#444'/>",
        f"<line x1='{pad}' y1='{sy(0)}' x2='{pad}' y2='{sy(1)}' stroke='#444'/>",
    ]
    for tick in (0, 0.5, 1):
        parts.append(f"<text x='{pad - 6}' y='{sy(tick) + 4}' text-anchor='end'>{tick}</text>")
    for x in xs:
        parts.append(f"<text x='{sx(x)}' y='{height - pad + 16}' text-anchor='middle'>{x:g}</text>")
    parts.append(f"<text x='{width / 2}' y='{height - 6}' text-anchor='middle'>K</text>")
    for n, (label, pts) in enumerate(sorted(series.items())):
        c = PALETTE[n % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(pts) if y is not None)
        parts.append(f"<polyline fill='none' stroke='{c}' stroke-width='2' points='{path}'/>")
        parts.append(f"<text x='{width - pad + 16}' y='{30 + 16 * n}' fill='{c}'>{esc(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, rows: list[dict]) -> str:
    width, bar, pad = 520, 14, 150
    height = 40 + len(rows) * (2 * bar + 10) + 30
    parts = [
        f"<svg class='figure' role='img' aria-label='{esc(title)}' width='{width + 40}'"
        f" height='{height}' xmlns='http://www.w3.org/2000/svg'>",
        f"<text x='10' y='16' class='title'>{esc(title)}</text>",
    ]
    y = 34
    for r in rows:
        label = f"{r['model']} ({r['attack']})"
        parts.append(f"<text x='{pad - 6}' y='{y + bar + 4}' text-anchor='end'>{esc(label)}</text>")
        for k, (field, fill) in enumerate(
            (("accuracy_before", "#1f77b4"), ("accuracy_under_attack", "#d62728"))
        ):
            v = r[field] or 0.0
            parts.append(
                f"<rect x='{pad}' y='{y + k * bar}' width='{v * (width - pad)}'"
                f" height='{bar - 2}' fill='{fill}'><title>{field}: {v:.3f}</title></rect>"
            )
            parts.append(
                f"<text x='{pad + v * (width - pad) + 4}' y='{y + k * bar + bar - 4}'>{v:.2f}</text>"
            )
        y += 2 * bar + 10
    parts.append(
        f"<text x='{pad}' y='{y + 14}' fill='#1f77b4'>before attack</text>"
        f"<text x='{pad + 120}' y='{y + 14}' fill='#d62728'>under attack</text></svg>"
    )
    return "".join(parts)


def render(session: Session, k: int = 10, tpr: float = 0.95, ks=(1, 5, 10, 20, 50, 100)) -> str:
    rows2 = session.table2(k=k, tpr=tpr).rows()
    rows3 = session.table3().rows()
    k_max = max((k for _, k in k_limits(session.con)), default=None)
    usable = [x for x in ks if k_max is None or x <= k_max]
    rows_sweep = session.sweep(usable, tpr).rows() if usable else []
    sections = [
        "<h2>Table 2: agreement between models (Jaccard)</h2>",
        f"<p>k = {k} neighbours, OOD threshold keeps {tpr:.0%} of in-distribution points.</p>",
        table_html(rows2, "Table 2"),
    ]
    sections.append("<h2>Agreement per characteristic</h2><div class='grid'>")
    for dataset in sorted({r["dataset"] for r in rows2}):
        subset = [r for r in rows2 if r["dataset"] == dataset]
        models = sorted({r["model_i"] for r in subset} | {r["model_j"] for r in subset})
        for field, label in LABELS.items():
            for where, rows in _panels(field, subset).items():
                values = {(r["model_i"], r["model_j"]): r[field] for r in rows if r[field] is not None}
                if values:
                    sections.append(heatmap(f"{label}, {dataset}{where}", models, values))
    sections.append("</div>")
    chance = [
        {
            "dataset": r["dataset"],
            "pair": f"{r['model_i']} vs {r['model_j']}",
            "jaccard": r["errors"],
            "chance": r["errors_chance"],
            "above chance": None
            if r["errors"] is None or r["errors_chance"] is None
            else r["errors"] - r["errors_chance"],
            "kappa": r["errors_kappa"],
        }
        for r in rows2
        if r["errors"] is not None
    ]
    sections += [
        "<h2>Error agreement against chance</h2>",
        "<p>The Jaccard two independent models with the same error rates would reach,"
        " and Cohen's kappa of the error indicators.</p>",
        table_html(chance, "Chance-corrected error agreement"),
    ]
    sections.append("<h2>Figure 1: agreement against K</h2><div class='grid'>")
    charts: dict[str, dict[str, list]] = {}  # a chart per characteristic, dataset (bank, stage)
    for r in rows_sweep:
        where = f", bank {r['bank']} ({r['stage']})" if r["bank"] is not None else ""
        title = f"{LABELS.get(r['characteristic'], r['characteristic'])}, {r['dataset']}{where}"
        series = charts.setdefault(title, {})
        series.setdefault(f"{r['model_i']} vs {r['model_j']}", []).append((r["k"], r["jaccard"]))
    for title, series in charts.items():
        sections.append(line_chart(title, series))
    sections.append("</div>")
    sections += ["<h2>Table 3: accuracy under adversarial attack</h2>", table_html(rows3, "Table 3")]
    if rows3:
        sections.append(bar_chart("Accuracy before and under attack", rows3))
    sections += ["<h2>Provenance</h2>", provenance_html(session.runs())]
    return page("\n".join(sections), session.store.root)


def _panels(field: str, rows: list[dict]) -> dict[str, list[dict]]:
    """Table 2 rows by what ``field`` measures: one panel, or for distribution one per OOD
    test set, bank and stage (a pair has a row for each)."""
    if field != "distribution":
        return {"": rows}
    panels: dict[str, list[dict]] = {}
    for r in rows:
        where = f": {r['ood_dataset']} against bank {r['ood_bank']} ({r['ood_stage']})"
        panels.setdefault(where, []).append(r)
    return panels


def provenance_html(records: list[dict]) -> str:
    rows = []
    notes = set()
    for rec in records:
        recipe = rec.get("recipe") or {}
        if recipe.get("sentence_encoder") and "Universal" not in recipe["sentence_encoder"]:
            notes.add(
                "Attacks used a local sentence-transformers model for the similarity"
                " constraint instead of the Universal Sentence Encoder (offline)."
            )
        if rec.get("command") == "ingest-errors":
            notes.add("Some predictions are ingested error lists (no model was run here).")
        rows.append(
            {
                "run": rec["run_id"],
                "command": rec.get("command"),
                "status": rec.get("status"),
                "model": rec.get("model"),
                "dataset": rec.get("dataset"),
                "ended": rec.get("ended"),
                "details": json.dumps(
                    {
                        k: v
                        for k, v in rec.items()
                        if k
                        not in (
                            "run_id",
                            "command",
                            "status",
                            "model",
                            "dataset",
                            "ended",
                            "parts",
                            "argv",
                            "versions",
                            "host",
                            "pid",
                        )
                    },
                    default=str,
                )[:600],
            }
        )
    approximations = "".join(f"<li>{esc(n)}</li>" for n in sorted(notes))
    return (f"<h3>Approximations</h3><ul>{approximations}</ul>" if notes else "") + table_html(
        rows, "Every run in the store"
    )


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f2f2f2}caption{text-align:left;font-weight:bold;padding:4px 0}
td:nth-child(-n+3){text-align:left}
svg text{font-size:11px}svg .title{font-size:13px;font-weight:bold}
.grid{display:flex;flex-wrap:wrap;gap:18px}.empty{color:#777}
"""

CHECK = """
window.addEventListener('load', function () {
  var figures = document.querySelectorAll('svg.figure');
  var drawn = 0;
  figures.forEach(function (f) {
    var box = f.getBBox();
    if (box.width > 0 && box.height > 0 && f.querySelectorAll('rect,polyline').length) drawn++;
  });
  document.body.setAttribute('data-figures', figures.length);
  document.body.setAttribute('data-drawn', drawn);
});
"""


def page(body: str, root) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>ce report</title><style>{STYLE}</style></head><body>"
        f"<h1>Are the compressed models miniatures of the large one?</h1>"
        f"<p>Store <code>{esc(root)}</code>, written {stamp} by ce.</p>{body}"
        f"<script>{CHECK}</script></body></html>"
    )


def write_report(session: Session, path: str, k: int = 10, tpr: float = 0.95) -> None:
    from pathlib import Path

    from ce.store import atomic
    from ce.store.errors import CeError

    target = Path(path)
    if not target.parent.exists():
        raise CeError(f"cannot write {path}: folder {target.parent} does not exist")
    atomic.write_bytes(target, render(session, k, tpr).encode())
