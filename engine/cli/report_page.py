"""``ce report``: one self-contained HTML file (inline SVG and CSS, nothing fetched at view
time) that answers its title: an opening summary (the reference against each model, per
dataset and characteristic, with intervals, chance and a verdict in words), the models and
their accuracy, Table 2 per characteristic, heatmaps with their colour scale, the linear
CKA of the models' embeddings as heatmaps, the K curves of Figure 1, where the store holds
the models' answers their changed answers (flips, KL, JS, top-1, calibration; flips against
the reference's margin), Table 3 with its bars, the definitions of every column, and the
provenance of every run (collapsed)."""

from __future__ import annotations

from datetime import UTC, datetime

from ce.query.compare import k_limits
from ce.query.floor import has_groups
from ce.query.measures import MEASURES, MIN_SUPPORT
from ce.session import Session

from .report_html import (
    DASH,
    Table,
    arrow_table,
    count,
    glossary,
    interval,
    missing,
    models_table,
    num,
    p_value,
    provenance,
)
from .report_summary import AGREEMENT, answer_pairs, has_answers, references, summary, verdict, verdict_html
from .report_svg import bar_chart, esc, figure, heatmap, line_chart, margin_chart
from .tables import FEW_NOTE, characteristic_tables, floor_view, group_view, pie_count, pie_view, table3_view

LABELS = {m.name: m.label for m in MEASURES}
REPLICATES = 500  # bootstrap replicates of the intervals: Table 2 of SQuAD + SST-2 in ~7 s on 2 cores
SWEEP = (1, 5, 10, 20, 50, 100)
CKA_ASKED = (
    "<p class='note'>Not drawn: linear CKA reads both models' embeddings for every pair (it grows"
    " with pairs x examples x dimension squared); <code>ce report --with cka</code> draws it.</p>"
)


def render(
    session: Session,
    k: int = 10,
    tpr: float = 0.95,
    ks=SWEEP,
    replicates: int = REPLICATES,
    reference: str | None = None,
    cka: bool = False,
) -> str:
    """The report's HTML; ``cka`` adds linear CKA heatmaps (a pass over both models'
    embeddings per pair and stage: O(pairs x examples x dim^2), minutes on large stores)."""
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
    sweep_ = (
        session.sweep(usable, tpr, reference=reference, floors=False) if usable else None
    )  # K curves only
    rows_sweep = sweep_.rows() if sweep_ else []
    models = {m["model"]: m for m in session.sql.models().rows()}
    accuracy = session.sql.accuracy().rows()
    model_html, methods = models_table(list(models.values()), accuracy, ranks, refs)
    answers = any(has_answers(r) for r in rows2)
    kept = [n for n in result2.notes if not answer_note(n)]  # those go with their pairs
    notes = "".join(f"<p class='note'>{esc(n)}</p>" for n in kept + result3.notes)
    sections = [
        (
            "summary",
            "Summary: is each model a miniature of the reference?",
            summary(rows2, rows3, ranks, models, reference, k, replicates, stored=session.reference()),
        ),
        ("models", "Models and accuracy", model_html),
        (
            "table2",
            "Table 2: agreement between models",
            table2_html(table2, rows2, k) + notes,
        ),
        ("heatmaps", "Agreement per characteristic", heatmaps_html(rows2, ranks)),
        (
            "cka",
            "Representation similarity: linear CKA",
            cka_html(session.cka(reference=reference).rows(), ranks) if cka else CKA_ASKED,
        ),
        ("figure1", "Figure 1: agreement against K", sweep_html(rows_sweep, ranks, usable)),
    ]
    if answers:
        title = "Changed answers: flips, divergences and calibration"
        sections.append(("answers", title, answers_html(session, rows2, ranks)))
    if has_groups(session.con):
        title = "Noise floor: compression against retraining"
        sections.append(("noise", title, noise_html(session, k, tpr, replicates, reference)))
    sections += [
        ("table3", "Table 3: accuracy under adversarial attack", table3_html(result3, rows3, ranks)),
        ("glossary", "Column definitions", glossary(methods, answers=answers)),
        ("provenance", "Provenance", provenance(session.runs())),
    ]
    settings = (
        f"k = {k} neighbours; the OOD threshold keeps {tpr:.0%} of in-distribution points;"
        f" agreement intervals: 95% percentile bootstrap over examples, {replicates} replicates"
        " (seed 0); Table 3 intervals: 95% Wilson."
    )
    return page(sections, session.store.root, settings)


PIES_SHOWN = 12  # PIEs listed per pair of groups


def noise_html(session: Session, k: int, tpr: float, replicates: int, reference: str | None) -> str:
    """The floor of every replica group, the groups compared (between against within, with
    the permutation test), and the first PIEs of each pair of groups with their text."""
    floors = session.noise_floor(k, tpr, replicates=replicates)
    groups = session.group_agreement(k, tpr, replicates=replicates, reference=reference)
    pies = session.pie_examples(reference)
    pie_rows = pies.relation.to_arrow_table()
    parts = [
        "<p>A replica group is one recipe trained with several seeds. Its <b>floor</b> is the"
        " agreement between its replicas (mean over replica pairs, 95% bootstrap interval, min"
        " and max): how far apart retraining alone puts two models. Below, each group against"
        " the reference's: the mean agreement between their replicas, the gap to the reference's"
        " floor, and a permutation test over the replica labels (could the two groups be one"
        " group?). With three replicas a side the test cannot give p below 0.1.</p>",
        "<h3>Floor per group</h3>",
        arrow_table(floor_view(floors.relation.to_arrow_table()), "").html(),
        "<h3>Groups compared</h3>",
        arrow_table(group_view(groups.relation.to_arrow_table()), "").html(),
    ]
    parts += [f"<p class='note'>{esc(n)}</p>" for n in groups.notes]
    parts.append(
        f"<h3>PIEs: {pie_count(pie_rows)} examples a group answers differently</h3><p>Pruning-identified"
        " exemplars (Hooker et al. 2019): the modal answer of another group's replicas differs from the"
        f" modal answer of the reference's; the first {PIES_SHOWN} of each pair of groups, with the votes"
        " (replicas giving the modal answer / replicas that answered).</p>"
    )
    if pie_rows.num_rows:
        parts.append(arrow_table(pie_view(pie_rows, PIES_SHOWN), "").html())
    else:
        parts.append("<p class='empty'>None: every group's modal answers agree with the reference's.</p>")
    return "".join(parts)


def table2_html(table2, rows2: list[dict], k: int) -> str:
    """One table per characteristic (the terminal's narrow views), each pair with its
    verdict; rows resting on too few items are marked."""
    parts = [
        "<p>Every pair of models per dataset, the reference (else the larger model) first:"
        " each agreement beside the examples it compared (n) and the sizes of the two sets,"
        f" with its 95% interval. {esc(FEW_NOTE)}.</p>"
    ]
    for title, table in characteristic_tables(table2, k):
        m = next((m for m in AGREEMENT if title.startswith(f"Table 2, {m.label}:")), None)
        if m is None:
            continue  # changed answers: their own section
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
        for m in AGREEMENT:
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


STAGES = {"pretrained": 0, "finetuned": 1}  # the order of the CKA heatmaps of a dataset
CKA_SCALE = "colour scale: linear CKA, 0 (unrelated) to 1 (identical up to rotation and scale)"


def cka_html(rows: list[dict], ranks: dict[str, int]) -> str:
    """A heatmap of linear CKA per dataset and stage (``rows`` of Session.cka), both axes in
    model_rank order, the reference first; the unbiased estimate and n in each cell's tooltip."""
    figures = []
    for (dataset, stage), panel in _cka_panels(rows).items():
        models = sorted(
            {r["model_i"] for r in panel} | {r["model_j"] for r in panel},
            key=lambda x: (ranks.get(x, 1e9), x),
        )
        cells = {(r["model_i"], r["model_j"]): _cka_cell(r) for r in panel}
        caption = f"Linear CKA, {dataset}, {stage} embeddings"
        drawing = heatmap(caption, models, cells, CKA_SCALE, close=False)
        figures.append(figure(caption, drawing, _cka_note(list(cells.values()))))
    if not figures:
        return "<p class='empty'>No embeddings in the store: there are no representations to compare.</p>"
    return (
        "<p>How alike two models' embeddings of the same examples are as a whole (linear CKA,"
        " Kornblith et al. 2019), per dataset and stage; rows and columns in the same order, the"
        " reference first. Hover a cell for the unbiased estimate and the examples compared.</p>"
        "<div class='grid'>" + "".join(figures) + "</div>"
    )


def _cka_panels(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Session.cka's rows per (dataset, stage): datasets in order, pretrained before finetuned."""
    panels: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(rows, key=lambda r: (r["dataset"], STAGES.get(r["stage"], 2), r["stage"])):
        panels.setdefault((r["dataset"], r["stage"]), []).append(r)
    return panels


def _cka_note(cells: list[dict]) -> str:
    """The note under a CKA heatmap: what a star and a grey cell mean, where there are some."""
    notes = []
    if any(c["few"] for c in cells):
        notes.append(f"* rests on fewer than {MIN_SUPPORT} examples")
    if any(c["value"] is None for c in cells):
        notes.append(
            "grey: no value (fewer than 2 examples both embedded, or an embedding that never varies)"
        )
    return "; ".join(notes)


def _cka_cell(r: dict) -> dict:
    few = (r["n"] or 0) < MIN_SUPPORT
    tip = (
        f"{r['model_i']} vs {r['model_j']}: CKA {num(r['cka'])} (unbiased {num(r['cka_unbiased'])}),"
        f" n {count(r['n'])}{'; fewer than 20 examples' if few else ''}"
    )
    return {"value": r["cka"], "few": few, "tip": tip}


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


def answer_note(note: str) -> bool:
    """Whether a note of Table 2 is about changed answers (said beside its pair, or in the
    changed-answer section, instead of under Table 2)."""
    return "saw different prompts for" in note or "no answer distributions on" in note


STORED = (  # per dataset and model: predictions with an answer distribution, with a known correctness
    "select dataset, model, count(*) filter (where len(probs) > 0) as probs,"
    " count(*) filter (where correct is not null) as scored from predictions group by all"
)
ANSWER_COLUMNS = [
    "model_i",
    "model_j",
    "flips",
    "C→W",
    "W→C",
    "McNemar p",
    "changed",
    "KL(i‖j)",
    "JS",
    "top-1",
    "ΔBrier",
    "ΔECE",
    "n",
]


def answers_html(session: Session, rows2: list[dict], ranks: dict[str, int]) -> str:
    """Per dataset: every pair's changed answers (a table, empty values explained) and the
    flip rate of the reference's pairs against the decile of the reference's margin."""
    rows = answer_pairs(rows2)
    margins = session.query("select * from flips_by_margin()").rows()
    stored = {(r["dataset"], r["model"]): r for r in session.query(STORED).rows()}
    parts = [
        "<p>Two models of equal accuracy can still answer differently (Dutta et al., NeurIPS 2024,"
        " <i>Accuracy is not all you need</i>). Per dataset, every pair whose answers the store"
        " holds, the reference (else the better-ranked model) as model_i: the share of examples"
        " that flip between correct and wrong, either way and each way, McNemar's exact test of"
        " the two ways, the share of answers that change, how far apart the answer distributions"
        " are (KL, Jensen-Shannon, top-1 agreement) and how much worse model_j's calibration is"
        " (ΔBrier, ΔECE: model_j's score minus model_i's, other minus reference). A value that"
        " cannot be computed says why; hover it for the whole reason.</p>"
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        subset = [r for r in rows if r["dataset"] == dataset]
        reference = references(subset, [], ranks)[dataset]
        parts.append(f"<h3>{esc(dataset)}: reference <b>{esc(reference)}</b></h3>")
        parts.append(answers_table(dataset, reference, subset, stored))
        parts.append(margin_figure(dataset, reference, subset, margins, stored))
    return "".join(parts)


def _none(short: str, why: str, said: dict[str, str]) -> str:
    """An empty value: what is missing in a few words, the reason as its tooltip and, once
    per table, in the notes under it."""
    said.setdefault(why, short)
    return f"<span class='none' title='{esc(why)}'>{esc(short)}</span>"


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _empty_reasons(dataset: str, r: dict, stored: dict) -> dict[str, tuple[str, str]]:
    """Why each empty value of a pair's row is empty: {group: (short, reason)} for the
    groups 'flips', 'mcnemar', 'distribution', 'brier', 'ece' and 'changes'."""
    pair = (r["model_i"], r["model_j"])
    facts = {m: stored.get((dataset, m)) or {} for m in pair}
    lacking = [m for m in pair if not facts[m].get("probs")]
    unscored = [m for m in pair if not facts[m].get("scored")]
    out: dict[str, tuple[str, str]] = {}
    if unscored:
        flips = (
            "correctness unknown",
            f"{' and '.join(unscored)} recorded no correctness on {dataset} (the log gives no gold"
            " answer or metric): no flips",
        )
    else:
        flips = (
            "correctness unknown",
            f"{pair[0]} and {pair[1]} never both have a known correctness on one example of"
            f" {dataset}: no flips",
        )
    out["flips"] = flips
    out["mcnemar"] = (
        flips
        if missing(r.get("flips"))
        else ("no flips to test", "no example flips either way: McNemar's test has nothing to test")
    )
    if lacking:
        distribution = (
            "no distribution",
            f"{' and '.join(lacking)} stored no answer distribution on {dataset} (a generation log,"
            " an error list or a table without per-answer probabilities): no KL, JS, top-1 or"
            " calibration for its pairs",
        )
    else:
        distribution = (
            "distributions differ",
            f"{pair[0]} and {pair[1]} stored answer distributions, but on no example of {dataset}"
            " over the same number of answers: they cannot be compared",
        )
    out["distribution"] = distribution
    out["brier"] = (
        distribution
        if missing(r.get("kl"))
        else (
            "no gold label",
            f"the store holds no gold label of {dataset}'s examples within the distributions'"
            " answers: no Brier score",
        )
    )
    out["ece"] = (
        distribution
        if lacking
        else flips
        if unscored
        else ("not computed", "calibration needs both models' distributions and correctness")
    )
    out["changes"] = ("no answers", f"no example of {dataset} was answered by both {pair[0]} and {pair[1]}")
    return out


def answers_table(dataset: str, reference: str, rows: list[dict], stored: dict) -> str:
    """The changed answers of every pair on one dataset, the reference's pairs first (Table
    2's order); each empty value says why, in a few words and in a note under the table."""
    numeric = [c for c in ANSWER_COLUMNS if c not in ("model_i", "model_j")]
    table = Table(ANSWER_COLUMNS, numeric)
    said: dict[str, str] = {}  # reason -> its few words
    few = False
    for r in rows:
        why = _empty_reasons(dataset, r, stored)

        def value(name: str, group: str, text=num, tip: str = "", r=r, why=why) -> str:
            v = r.get(name)
            if missing(v):
                return _none(*why[group], said)
            shown = text(v)
            return f"<span title='{esc(tip)}'>{shown}</span>" if tip else shown

        mark = "*" if r.get("flips_few") and not missing(r.get("flips")) else ""
        few = few or bool(mark)
        b, c = r.get("flips_c_to_w"), r.get("flips_w_to_c")
        lo, hi = r.get("flips_lo"), r.get("flips_hi")
        bounds = "" if missing(lo) or missing(hi) else f"<br><span class='sub'>{interval(lo, hi)}</span>"
        flips_tip = f"{count(b)} correct → wrong and {count(c)} wrong → correct of {count(r.get('flips_n'))}"
        brier_tip = (
            f"Brier {r['model_i']} {num(r.get('brier_ref'))}, {r['model_j']} {num(r.get('brier_other'))},"
            f" over {count(r.get('brier_ref_n'))} examples"
        )
        ece_tip = (
            f"ECE {r['model_i']} {num(r.get('ece_ref'))}, {r['model_j']} {num(r.get('ece_other'))};"
            f" MCE {r['model_i']} {num(r.get('mce_ref'))}, {r['model_j']} {num(r.get('mce_other'))}"
        )
        n, scored, compared = r.get("changes_n"), r.get("flips_n"), r.get("kl_n")
        sub = (
            f"<br><span class='sub'>scored {count(scored)}<br>distributions {count(compared)}</span>"
            if (scored, compared) != (n, n)
            else ""
        )
        prompts = r.get("prompts_differ")
        note = (
            f"<span class='role'>prompts differ on {count(prompts)} document(s): changes there may"
            " come from the prompt, not the model</span>"
            if prompts
            else ""
        )
        table.add(
            [
                f"<b>{esc(r['model_i'])}</b>" if r["model_i"] == reference else esc(r["model_i"]),
                esc(r["model_j"]) + note,
                value("flips", "flips", tip=flips_tip) + mark + bounds,
                value("flips_neg", "flips", tip=f"{count(b)} examples"),
                value("flips_pos", "flips", tip=f"{count(c)} examples"),
                value("flips_mcnemar_p", "mcnemar", p_value),
                value("changes", "changes"),
                value("kl", "distribution"),
                value("js", "distribution"),
                value("top1", "distribution"),
                value("brier_diff", "brier", _signed, brier_tip),
                value("ece_diff", "ece", _signed, ece_tip),
                count(n) + sub if not missing(n) else DASH,
            ],
            "lead" if r["model_i"] == reference else "",
        )
    notes = [f"<b>{esc(short)}</b>: {esc(reason)}." for reason, short in said.items()]
    if few:
        notes.append(esc(FEW_NOTE) + ".")
    return table.html() + "".join(f"<p class='note'>{n}</p>" for n in notes)


def margin_figure(dataset: str, reference: str, rows: list[dict], margins: list[dict], stored: dict) -> str:
    """The flip rate of each of the reference's pairs against the decile of the reference's
    margin (flips_by_margin rows whose model_i is the reference), or why there is none."""
    series = {}
    for r in rows:
        if r["model_i"] != reference:
            continue
        got = [
            m
            for m in margins
            if (m["dataset"], m["model_i"], m["model_j"]) == (dataset, reference, r["model_j"])
        ]
        if got:
            series[r["model_j"]] = {"rows": got, "overall": r.get("flips")}
    if not series:
        if not (stored.get((dataset, reference)) or {}).get("probs"):
            why = f"{reference} stored no answer distribution on {dataset}, so its margin is unknown"
        else:
            why = f"no example of {dataset} has both correctnesses known beside {reference}'s distribution"
        return f"<p class='empty'>No figure of flips against the reference's margin: {esc(why)}.</p>"
    caption = f"Flip rate against {reference}'s margin, {dataset}: one line per model paired with it"
    note = (
        "Each point is a tenth of the reference's examples, from least sure (smallest margin"
        " between its top two answers) to most sure; a line high on the left and low on the right"
        " means the flips gather where the reference was unsure. Hover a point for its margin"
        " range and counts."
    )
    return f"<div class='grid'>{figure(caption, margin_chart(caption, reference, series), esc(note))}</div>"


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
.empty{color:#777}.none{color:#777;font-style:italic;white-space:normal}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 1.2em;font-size:14px}
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
    cka: bool = False,
) -> None:
    from pathlib import Path

    from ce.store import atomic
    from ce.store.errors import CeError

    target = Path(path)
    if not target.parent.exists():
        raise CeError(f"cannot write {path}: folder {target.parent} does not exist")
    page_ = render(session, k, tpr, replicates=replicates, reference=reference, cka=cka)
    atomic.write_bytes(target, page_.encode())
