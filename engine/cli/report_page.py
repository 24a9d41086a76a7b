"""``ce report``: one self-contained HTML file (inline SVG and CSS, nothing fetched at view
time) that answers its title: an opening summary (the reference against each model, per
dataset and characteristic, with intervals, chance and a verdict in words), the models and
their accuracy, Table 2 per characteristic, heatmaps with their colour scale, the K curves
of Figure 1, Table 3 with its bars, the definitions of every column, and the provenance of
every run (collapsed)."""

from __future__ import annotations

from datetime import UTC, datetime

from ce.query.compare import k_limits
from ce.query.measures import MEASURES, MIN_SUPPORT
from ce.session import Session

from .report_html import arrow_table, glossary, interval, models_table, provenance
from .report_summary import references, summary, verdict, verdict_html
from .report_svg import bar_chart, esc, figure, heatmap, line_chart
from .tables import FEW_NOTE, characteristic_tables, table3_view

LABELS = {m.name: m.label for m in MEASURES}
REPLICATES = 500  # bootstrap replicates of the intervals: Table 2 of SQuAD + SST-2 in ~7 s on 2 cores
SWEEP = (1, 5, 10, 20, 50, 100)


def render(
    session: Session,
    k: int = 10,
    tpr: float = 0.95,
    ks=SWEEP,
    replicates: int = REPLICATES,
    reference: str | None = None,
) -> str:
    result2 = session.table2(k=k, tpr=tpr, ci=0.95, replicates=replicates, reference=reference)
    table2 = result2.relation.to_arrow_table()
    rows2 = table2.to_pylist()
    result3 = session.table3()
    rows3 = result3.rows()
    ranks = {
        r["model"]: r["rank"]
        for r in session.query(
            "select * from model_rank(reference := $reference) order by rank", reference=reference
        ).rows()
    }
    refs = references(rows2, rows3, ranks)
    k_max = max((n for _, n in k_limits(session.con)), default=None)
    usable = [x for x in ks if k_max is None or x <= k_max]
    rows_sweep = session.sweep(usable, tpr, reference=reference).rows() if usable else []
    models = {m["model"]: m for m in session.sql.models().rows()}
    accuracy = session.sql.accuracy().rows()
    model_html, methods = models_table(list(models.values()), accuracy, ranks, refs)
    notes = "".join(f"<p class='note'>{esc(n)}</p>" for n in result2.notes + result3.notes)
    sections = [
        (
            "summary",
            "Summary: is each model a miniature of the reference?",
            summary(rows2, rows3, ranks, models, reference, k, replicates),
        ),
        ("models", "Models and accuracy", model_html),
        (
            "table2",
            "Table 2: agreement between models",
            table2_html(table2, rows2, k) + notes,
        ),
        ("heatmaps", "Agreement per characteristic", heatmaps_html(rows2, ranks)),
        ("figure1", "Figure 1: agreement against K", sweep_html(rows_sweep, ranks, usable)),
        ("table3", "Table 3: accuracy under adversarial attack", table3_html(result3, rows3, ranks)),
        ("glossary", "Column definitions", glossary(methods)),
        ("provenance", "Provenance", provenance(session.runs())),
    ]
    settings = (
        f"k = {k} neighbours; the OOD threshold keeps {tpr:.0%} of in-distribution points;"
        f" agreement intervals: 95% percentile bootstrap over examples, {replicates} replicates"
        " (seed 0); Table 3 intervals: 95% Wilson."
    )
    return page(sections, session.store.root, settings)


def table2_html(table2, rows2: list[dict], k: int) -> str:
    """One table per characteristic (the terminal's narrow views), each pair with its
    verdict; rows resting on too few items are marked."""
    parts = [
        "<p>Every pair of models per dataset, the reference (else the larger model) first:"
        " each agreement beside the examples it compared (n) and the sizes of the two sets,"
        f" with its 95% interval. {esc(FEW_NOTE)}.</p>"
    ]
    shown = [m for m in MEASURES if any(r[m.name] is not None for r in rows2)]  # as characteristic_tables
    for m, (title, table) in zip(shown, characteristic_tables(table2, k), strict=True):
        rows = [r for r in rows2 if r[m.name] is not None]
        verdicts = [verdict_html(verdict(r, m), short=True) for r in rows]
        parts.append(f"<h3>{esc(title)}</h3>" + arrow_table(table, "", {"verdict": verdicts}).html())
    if len(parts) == 1:
        parts.append("<p class='empty'>No model pairs to compare yet.</p>")
    return "".join(parts)


def heatmaps_html(rows2: list[dict], ranks: dict[str, int]) -> str:
    """A heatmap per dataset and characteristic (and per OOD test set, bank and stage),
    both axes in model_rank order, the reference first."""
    figures = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows2):
        subset = [r for r in rows2 if r["dataset"] == dataset]
        for m in MEASURES:
            panels: dict[tuple, list[dict]] = {}
            for r in subset:
                if r[m.name] is not None:
                    panels.setdefault(tuple(r[c] for c in m.keys[3:]), []).append(r)
            for keys, rows in panels.items():
                models = sorted(
                    {r["model_i"] for r in rows} | {r["model_j"] for r in rows},
                    key=lambda x: (ranks.get(x, 1e9), x),
                )
                cells = {(r["model_i"], r["model_j"]): _cell(r, m.name) for r in rows}
                where = f": test {keys[0]}, bank {keys[1]} ({keys[2]})" if keys else ""
                caption = f"{m.label}, {dataset}{where}"
                few = any(c["few"] for c in cells.values())
                note = f"* rests on fewer than {MIN_SUPPORT} items" if few else ""
                figures.append(figure(caption, heatmap(caption, models, cells), note))
    if not figures:
        return "<p class='empty'>No agreements to draw yet.</p>"
    return (
        "<p>Rows and columns in the same order, the reference first; hover a cell for its"
        " interval, n and set sizes.</p><div class='grid'>" + "".join(figures) + "</div>"
    )


def _cell(r: dict, name: str) -> dict:
    few = bool(r.get(f"{name}_few"))
    sizes = f", sets {r[f'{name}_i']} / {r[f'{name}_j']}" if f"{name}_i" in r else ""
    tip = (
        f"{r['model_i']} vs {r['model_j']}: {r[name]:.3f}"
        f" (95% {interval(r.get(f'{name}_lo'), r.get(f'{name}_hi'))}),"
        f" n {r.get(f'{name}_n')}{sizes}{'; fewer than 20 items' if few else ''}"
    )
    return {"value": r[name], "few": few, "tip": tip}


def sweep_html(rows: list[dict], ranks: dict[str, int], ks: list[int]) -> str:
    """Figure 1: each k-dependent agreement against K, a curve per pair; the reference's
    pairs solid, the others dashed."""
    charts: dict[str, dict[tuple[str, str], dict]] = {}
    for r in rows:
        where = f", bank {r['bank']} ({r['stage']})" if r["bank"] is not None else ""
        title = f"{LABELS.get(r['characteristic'], r['characteristic'])}, {r['dataset']}{where}"
        series = charts.setdefault(title, {})
        pair = series.setdefault((r["model_i"], r["model_j"]), {"points": []})
        pair["points"].append((r["k"], r["jaccard"]))
    figures = []
    for title, series in charts.items():
        lead = min((first for first, _ in series), key=lambda x: (ranks.get(x, 1e9), x))
        for (first, _), s in series.items():
            s["lead"] = first == lead
        figures.append(figure(title, line_chart(title, series, ks)))
    if not figures:
        return "<p class='empty'>No neighbour lists or OOD scores to sweep yet.</p>"
    return (
        "<p>Agreement as the number of neighbours K grows: the reference's pairs solid, the"
        " other pairs dashed.</p><div class='grid'>" + "".join(figures) + "</div>"
    )


def table3_html(result3, rows3: list[dict], ranks: dict[str, int]) -> str:
    if not rows3:
        return "<p class='empty'>No attacks in the store yet.</p>"
    table = arrow_table(table3_view(result3.relation.to_arrow_table()), "").html()
    charts = []
    for key in dict.fromkeys((r["dataset"], r["attack"]) for r in rows3):
        rows = sorted(
            (r for r in rows3 if (r["dataset"], r["attack"]) == key),
            key=lambda r: (ranks.get(r["model"], 1e9), r["model"]),
        )
        caption = f"Accuracy before and under the {key[1]} attack, {key[0]}"
        charts.append(figure(caption, bar_chart(caption, rows)))
    grid = f"<div class='grid'>{''.join(charts)}</div>" if charts else ""
    return table + grid


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;padding:0 1.5em;max-width:1200px;color:#222}
body{line-height:1.4}
h2{margin-top:2em;border-bottom:1px solid #ddd}h3{margin:1.4em 0 .4em;font-size:1.05em}
nav a{margin-right:1em}.settings,.note{color:#555;font-size:13px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top;white-space:nowrap}
td.wrap{white-space:normal;min-width:12em}td.name{white-space:normal;min-width:10em}
.role{display:block;white-space:normal;max-width:16em;color:#666;font-size:11px;font-weight:normal}.acc{white-space:nowrap}.why{font-weight:normal;color:#666;font-size:13px}
th{background:#f2f2f2}td.num,th.num{text-align:right;white-space:nowrap}caption{text-align:left;font-weight:bold}
tr.lead td{background:#f6f9ff}tr.few td{color:#777;font-style:italic}
.sub{color:#666;font-size:11px}
.verdict{font-weight:600}.v-close{color:#1a7f37}.v-differs{color:#b35900}.v-chance{color:#c62828}
.v-few,.v-spans{color:#666}
.overall{background:#f7f7f2;border-left:4px solid #bbb;padding:.5em .8em}
.floor{background:#fff8e6;border-left:4px solid #e0b000;padding:.5em .8em}
svg text{font-size:11px;font-family:system-ui,sans-serif}
.grid{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
figure.chart{margin:0;max-width:100%}figcaption{font-weight:bold;font-size:13px;max-width:520px;margin-bottom:4px}
.empty{color:#777}dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 1.2em;font-size:14px}
dt{font-weight:bold}dd{margin:0}
details.provenance>summary{cursor:pointer;font-weight:bold}
pre{white-space:pre-wrap;overflow-wrap:anywhere;max-width:640px;font-size:12px;margin:.3em 0}
"""

CHECK = """
window.addEventListener('load', function () {
  var figures = document.querySelectorAll('svg.figure');
  var drawn = 0, clipped = [];
  figures.forEach(function (f) {
    var box = f.getBBox();
    if (box.width > 0 && box.height > 0 && f.querySelectorAll('rect,polyline').length) drawn++;
    var outer = f.getBoundingClientRect();
    f.querySelectorAll('text').forEach(function (t) {
      var r = t.getBoundingClientRect();
      if (r.left < outer.left - 0.5 || r.right > outer.right + 0.5 ||
          r.top < outer.top - 0.5 || r.bottom > outer.bottom + 0.5) clipped.push(t.textContent);
    });
  });
  var wide = 0;
  document.querySelectorAll('table, svg.figure').forEach(function (t) {
    var scrolls = false;
    for (var el = t.parentElement; el && el !== document.body; el = el.parentElement) {
      var o = getComputedStyle(el).overflowX;
      if (o === 'auto' || o === 'scroll') { scrolls = true; break; }
    }
    if (!scrolls && t.getBoundingClientRect().width > t.parentElement.clientWidth + 0.5) wide++;
  });
  var body = document.body;
  body.setAttribute('data-figures', figures.length);
  body.setAttribute('data-drawn', drawn);
  body.setAttribute('data-clipped-labels', clipped.length);
  body.setAttribute('data-clipped-list', clipped.slice(0, 20).join(' | '));
  body.setAttribute('data-wide-tables', wide);
  body.setAttribute('data-page-overflow', document.documentElement.scrollWidth > window.innerWidth ? 1 : 0);
});
"""


def page(sections: list[tuple[str, str, str]], root, settings: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f"<a href='#{anchor}'>{esc(title.split(':')[0])}</a>" for anchor, title, _ in sections)
    body = "".join(f"<section id='{a}'><h2>{esc(t)}</h2>{html}</section>" for a, t, html in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>ce report</title><style>{STYLE}</style></head><body>"
        "<h1>Are the compressed models miniatures of the large one?</h1>"
        f"<p class='settings'>Store <code>{esc(root)}</code>, written {stamp} by ce. {esc(settings)}</p>"
        f"<nav>{nav}</nav>{body}"
        f"<script>{CHECK}</script></body></html>"
    )


def write_report(
    session: Session,
    path: str,
    k: int = 10,
    tpr: float = 0.95,
    replicates: int = REPLICATES,
    reference: str | None = None,
) -> None:
    from pathlib import Path

    from ce.store import atomic
    from ce.store.errors import CeError

    target = Path(path)
    if not target.parent.exists():
        raise CeError(f"cannot write {path}: folder {target.parent} does not exist")
    page_ = render(session, k, tpr, replicates=replicates, reference=reference)
    atomic.write_bytes(target, page_.encode())
