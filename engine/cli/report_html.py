"""HTML pieces of ``ce report``: value formatting (a missing value is a dash, never 0 or
"None"), tables that scroll inside their own box, the model table, the column glossary
and the collapsed provenance."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal

import pyarrow as pa

from ce.query.measures import MIN_SUPPORT

from .report_svg import esc

DASH = "—"


def missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def num(value: object, digits: int = 3) -> str:
    """A rate or agreement: three decimals; a dash where there is none."""
    if missing(value):
        return DASH
    return f"{float(value):.{digits}f}"


def p_value(value: object) -> str:
    if missing(value):
        return DASH
    return f"{value:.1e}" if 0 < value < 0.0005 else f"{value:.3f}"  # a p of 1e-12 is not 0.000


def pct(value: float) -> str:
    """A share in words: '23%', '0.4%' (a small share keeps a decimal, so it does not read 0%)."""
    if missing(value):
        return DASH
    return f"{value:.1%}" if 0 < value < 0.095 else f"{value:.0%}"


def count(value: object) -> str:
    """A count with thousands separators ('11,873')."""
    if missing(value):
        return DASH
    return f"{int(value):,}"


def interval(lo: object, hi: object) -> str:
    return DASH if missing(lo) or missing(hi) else f"{lo:.3f}–{hi:.3f}"


def human(value: object, unit: str = "", base: float = 1000.0) -> str:
    """22.7M, 340M, 87 MB: three significant digits and a unit; a dash for none or 0 (an
    unknown count is not zero)."""
    if missing(value) or not value:
        return DASH
    v = float(value)
    prefixes = ("", "k", "M", "B") if not unit else ("", "k", "M", "G", "T")
    i = 0
    while abs(v) >= base and i < len(prefixes) - 1:
        v, i = v / base, i + 1
    text = f"{v:.3g}" if i else f"{v:.0f}"
    return f"{text} {prefixes[i]}{unit}".strip() if unit else f"{text}{prefixes[i]}"


def cell_text(name: str, value: object) -> str:
    """A value of a Table 2 or Table 3 column, formatted by its kind."""
    if name == "few":
        return esc(value or "")
    if name.endswith("_p"):
        return p_value(value)
    if name in ("queries", "words") and not missing(value):
        return f"{value:.1f}"  # means of counts
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | Decimal):
        return count(value)
    if isinstance(value, float):
        return num(value)
    return DASH if missing(value) or value == "" else esc(value)


WRAP = {"characteristic", "verdict", "recipe"}  # columns whose text may wrap
NAMES = {"model", "model_i", "model_j"}  # columns of model names: they break at hyphens if need be


class Table:
    """An HTML table with a caption, in a box that scrolls sideways if the page is narrow.
    Cells are HTML; ``numeric`` columns are right-aligned, the WRAP columns may wrap, the
    others stay on one line; a row may carry a class."""

    def __init__(self, columns: Sequence[str], numeric: Iterable[str] = (), caption: str = ""):
        self.columns = list(columns)
        self.numeric = set(numeric)
        self.caption = caption
        self.rows: list[tuple[list[str], str]] = []

    def add(self, cells: Sequence[str], css: str = "") -> None:
        self.rows.append((list(cells), css))

    def html(self) -> str:
        if not self.rows:
            return f"<p class='empty'>{esc(self.caption or 'This table')}: nothing in the store yet.</p>"
        align = [
            "num" if c in self.numeric else "wrap" if c in WRAP else "name" if c in NAMES else ""
            for c in self.columns
        ]
        head = "".join(f"<th class='{a}'>{esc(c)}</th>" for c, a in zip(self.columns, align, strict=True))
        body = "".join(
            f"<tr class='{css}'>"
            + "".join(f"<td class='{a}'>{c}</td>" for c, a in zip(cells, align, strict=True))
            + "</tr>"
            for cells, css in self.rows
        )
        caption = f"<caption>{esc(self.caption)}</caption>" if self.caption else ""
        table = f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        return f"<div class='scroll'>{table}</div>"


def arrow_table(table: pa.Table, caption: str, extra: dict[str, list[str]] | None = None) -> Table:
    """A pyarrow table (one of ce.cli.tables' terminal views) as a Table, with ``extra``
    HTML columns after it; rows marked few ('*') get the class 'few'."""
    extra = extra or {}
    names = table.column_names
    numeric = [
        n
        for n, t in zip(names, table.schema.types, strict=True)
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or n.endswith("ci")
    ]
    out = Table([*names, *extra], numeric, caption)
    for i, row in enumerate(table.to_pylist()):
        cells = [cell_text(n, row[n]) for n in names] + [v[i] for v in extra.values()]
        out.add(cells, "few" if row.get("few") else "")
    return out


METHODS = {  # how each recipe step is said in the glossary
    "int8": "dynamic int8 quantisation of the linear layers",
    "prune": "prune:S, global magnitude pruning of the encoder's linear weights to sparsity S",
    "layers": "layers:N, N evenly spaced encoder layers kept",
    "distill": "distill:N, a student of N layers trained on the teacher's softened outputs",
    "finetune": "finetune (or finetune:TASK), fine-tuned on a dataset for the task",
    "ingested error list": "the published list of examples a model got wrong (no model was run here)",
    "ingested lm-eval results": "per-example results of an lm-evaluation-harness log (no model was run here)",
    "ingested lighteval results": "per-example results of lighteval's details (no model was run here)",
    "ingested textattack results": "TextAttack's CSV log of an attack (no model was run here)",
    "ingested predictions results": "a table of per-example answers (no model was run here)",
}


def recipe(model: str, by_name: dict[str, dict], depth: int = 0) -> str:
    """How ``model`` was made, in words: 'int8 of demo-large-sst2, itself finetune of minilm'."""
    facts = by_name.get(model) or {}
    method, parent = facts.get("method"), facts.get("parent")
    if not method:
        return ""
    text = f"{method} of {parent}" if parent else method
    if parent and parent != model and depth < 3 and (by_name.get(parent) or {}).get("method"):
        text += f", itself {recipe(parent, by_name, depth + 1)}"
    return text


def models_table(
    models: list[dict], accuracy: list[dict], ranks: dict[str, int], references: dict[str, str]
) -> tuple[str, list[str]]:
    """The compared models in rank order (the reference first): what each is, its size, and
    its accuracy per dataset; then the models that are only steps of their recipes.
    Returns (HTML, methods named)."""
    by_name = {m["model"]: m for m in models}
    datasets = list(dict.fromkeys(a["dataset"] for a in accuracy))  # accuracy.sql's order
    acc = {(a["dataset"], a["model"]): a for a in accuracy}
    compared = sorted(
        (m for m in by_name if by_name[m].get("kinds") or any(k[1] == m for k in acc)),
        key=lambda m: (ranks.get(m, 1e9), m),
    )
    leads: dict[str, list[str]] = {}
    for dataset, model in references.items():
        leads.setdefault(model, []).append(dataset)
    table = Table(
        [
            "model",
            "recipe",
            "architecture",
            "parameters",
            "size on disk",
            "accuracy (95% interval, n)",
        ],
        ["parameters", "size on disk"],
    )
    for m in compared:
        facts = by_name[m]
        role = f"<span class='role'>reference for {esc(', '.join(leads[m]))}</span>" if m in leads else ""
        source = facts.get("source")
        loaded = f"<span class='role'>loaded from {esc(source)}</span>" if source and source != m else ""
        lines = []
        for d in datasets:
            a = acc.get((d, m))
            if a is None:
                continue
            f1 = f" · F1 {num(a['f1'])}" if not missing(a.get("f1")) else ""
            lines.append(
                f"<span class='acc'>{esc(d)} <b>{num(a['accuracy'])}</b> <span class='sub'>"
                f"{interval(a['accuracy_lo'], a['accuracy_hi'])} · n {count(a['n'])}{f1}</span></span>"
            )
        cells = [
            f"<b>{esc(m)}</b>{role}" if m in leads else esc(m),
            (esc(recipe(m, by_name)) + loaded) or DASH,
            esc(facts.get("architecture") or DASH),
            human(facts.get("parameters")),
            human(facts.get("bytes"), "B"),
            "<br>".join(lines) or DASH,
        ]
        table.add(cells, "lead" if m in leads else "")
    steps = [m for m in sorted(by_name, key=lambda m: (ranks.get(m, 1e9), m)) if m not in compared]
    named = {(by_name[m].get("method") or "").split(":")[0] for m in by_name}
    after = ""
    if steps:
        listed = "; ".join(f"{esc(m)} ({esc(recipe(m, by_name))})" for m in steps)
        after = (
            "<p class='note'>Also in the store, as steps of these recipes (no results of their"
            f" own): {listed}.</p>"
        )
    return table.html() + after, sorted(n for n in named if n)


GLOSSARY = {
    "Summary": {
        "characteristic": "what two models are compared on: the examples each gets wrong"
        " (prediction errors), the k nearest neighbours of each example's embedding before or"
        " after fine-tuning (representation), or the test examples each flags as"
        " out-of-distribution (distribution)",
        "Jaccard": "agreement of the reference and the model: examples in both sets over examples"
        " in either (for representations, the mean over examples of that ratio for their"
        " neighbour sets); 1 = identical",
        "95% interval": "of a Jaccard: percentile bootstrap interval over examples (Poisson"
        " bootstrap); of an attack's rate: Wilson interval",
        "chance": "the Jaccard two independent models with the same set sizes would reach",
        "n": "examples compared (both models answered them)",
        "sets (reference / model)": "how many examples are in each model's set (wrong, or flagged"
        " OOD); for representations each example has k neighbours per model",
        "verdict": "the rule stated above the tables",
        "accuracy under attack": "share of the examples still right after the attack",
        "success rate": "share of the attacked examples (right before the attack) that the attack broke",
        "vs reference": "whether the model's interval lies above, below, or overlaps the reference's",
    },
    "Models": {
        "model": "its name in the store; a dataset's reference is in bold and leads every pair",
        "recipe": "how the model was made: method of parent, and how the parent was made; below"
        " it, the model folder, alias or Hub id it was loaded from",
        "architecture": "the model class as loaded",
        "parameters": "non-zero weights where measured (pruning zeroes weights), else the count"
        " published for an ingested alias; a dash: not recorded",
        "size on disk": "bytes of the weight files it was loaded from",
        "accuracy": "per dataset: share of its examples predicted right, the 95% Wilson interval,"
        " the examples predicted (n), and for extractive QA the mean F1",
    },
    "Table 2": {
        "dataset / id_val": "the dataset the pair was compared on (for distribution: the"
        " in-distribution held-out split that sets the threshold)",
        "test": "distribution: the challenge set whose examples are flagged OOD",
        "bank": "distribution: the training bank the k-th neighbour distance is measured to",
        "stage": "distribution: embeddings before (pretrained) or after (finetuned) fine-tuning",
        "model_i, model_j": "the pair, the reference (else the larger model) first",
        "jaccard": "the agreement of the pair (see Jaccard above)",
        "ci": "its 95% bootstrap interval",
        "chance": "the Jaccard of independent models with the same set sizes",
        "kappa": "Cohen's kappa of the two models' error indicators (0 = chance, 1 = identical)",
        "mcnemar_p": "McNemar's test that both models err equally often (chi-squared, 1 df);"
        " small: one errs more",
        "var": "variance over examples of the per-example neighbour-set Jaccard",
        "n": "examples compared",
        "errors_i, errors_j": "examples each model got wrong (model_i's, model_j's)",
        "ood_i, ood_j": "test examples each model's detector flagged OOD",
        "few": f"* = the value rests on fewer than {MIN_SUPPORT} items (either set, or examples"
        " compared): a hint, not a measurement",
        "verdict": "the rule stated in the summary, said of any pair",
    },
    "Representation similarity": {
        "linear CKA": "how alike two models' embeddings of the same examples are as a whole,"
        " up to rotation and scale (Kornblith et al. 2019), from 0 to 1; in a cell's tooltip the"
        " unbiased estimate (Song et al. 2012, near 0 for unrelated embeddings) and n, the"
        " examples both models embedded",
    },
    "Table 3": {
        "attack": "the attack recipe (TextAttack)",
        "n": "examples in the attack set",
        "before": "accuracy before the attack (share not skipped because already wrong)",
        "attacked": "accuracy under attack (share whose attack failed)",
        "attacked_ci, success_ci": "95% Wilson intervals",
        "success": "attack success rate over the examples attacked",
        "queries": "mean model queries per attacked example",
        "words": "mean number of words changed in a successful attack",
        "share": "mean share of the text's words changed in a successful attack",
    },
}


ANSWER_GLOSSARY = {
    "Changed answers": {
        "flips": "share of the examples (both models' correctness known) that one model gets"
        " right and the other wrong, either way (Dutta et al., NeurIPS 2024, Accuracy is not all"
        " you need): two models can have the same accuracy and still flip many answers; below it,"
        " its 95% bootstrap interval over examples",
        "C→W: negative flips": "share of the examples model_i (the reference) gets right and"
        " model_j gets wrong",
        "W→C: positive flips": "share of the examples model_i gets wrong and model_j gets right",
        "McNemar p": "McNemar's exact test that C→W and W→C are equally likely (two-sided"
        " binomial on the flipped examples); small: the flips lean one way",
        "changed": "share of the examples both answered whose answers differ (a wrong answer"
        " changed to another wrong one counts; it is no flip)",
        "KL(i‖j)": "Kullback-Leibler divergence of model_j's answer distribution from model_i's,"
        " KL(reference ‖ other), in nats, the mean over examples where both stored a distribution"
        " over the same answers; 0 = the same distributions",
        "JS": "Jensen-Shannon divergence of the two answer distributions (symmetric, in nats,"
        " at most ln 2 ≈ 0.693), mean over examples",
        "top-1": "share of the examples whose two distributions put their largest probability on"
        " the same answer",
        "ΔBrier": "Brier score of model_j minus model_i's (positive: the other model is"
        " worse). The Brier score: the squared distance of the answer distribution to the"
        " one-hot gold answer, mean over the examples both scored; 0 is perfect",
        "ΔECE": "expected calibration error of model_j minus model_i's (positive: the"
        " other model is worse calibrated); hover the cell for both models' ECE and MCE",
        "ECE": "expected calibration error: confidences (the largest probability) in 15 equal"
        " bins, the mean over bins of |accuracy − mean confidence| weighted by the bin's share",
        "MCE": "maximum calibration error: the largest of those gaps over non-empty bins",
        "n": "examples both models answered (below it, when fewer: those with both"
        " correctnesses known, scored, and those with both distributions)",
        "prompts differ": "said under model_j when the two logs hashed different prompts for the"
        " same documents: the changed answers there may come from the prompt, not the model",
        "margin": "of the reference on an example: its top probability minus the second; the"
        " figures cut its examples into ten deciles of margin and plot each decile's flip rate",
    },
}


def glossary(methods: Iterable[str], answers: bool = False) -> str:
    """The definitions of every column shown; ``answers``: of the changed-answer section too."""
    parts = []
    for section, terms in (GLOSSARY | (ANSWER_GLOSSARY if answers else {})).items():
        items = "".join(f"<dt>{esc(t)}</dt><dd>{esc(d)}</dd>" for t, d in terms.items())
        parts.append(f"<h3>{esc(section)}</h3><dl>{items}</dl>")
    steps = [METHODS[m] for m in methods if m in METHODS]
    if steps:
        parts.append("<h3>Recipe steps</h3><ul>" + "".join(f"<li>{esc(s)}</li>" for s in steps) + "</ul>")
    return "".join(parts)


def _known(value):
    """``value`` without the fields that hold nothing (null)."""
    if isinstance(value, dict):
        return {k: _known(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_known(v) for v in value]
    return value


SHOWN = ("run_id", "command", "status", "model", "dataset", "ended")


def provenance(records: list[dict]) -> str:
    """Every run, collapsed: a row per run and its whole record, pretty-printed, one click away."""
    notes = set()
    table = Table(["run", "command", "status", "model", "dataset", "ended", "record"])
    for rec in records:
        recipe_ = rec.get("recipe") or {}
        if recipe_.get("sentence_encoder") and "Universal" not in str(recipe_["sentence_encoder"]):
            notes.add(
                "Attacks used a local sentence-transformers model for the similarity"
                " constraint instead of the Universal Sentence Encoder (offline)."
            )
        if rec.get("command") == "ingest-errors":
            notes.add("Some predictions are ingested error lists (no model was run here).")
        elif str(rec.get("command", "")).startswith("ingest-"):
            tool = (rec.get("ingested") or {}).get("tool") or rec["command"].removeprefix("ingest-")
            notes.add(f"Some results were ingested from {tool} logs (no model was run here).")
        rest = {k: v for k, v in rec.items() if k not in SHOWN}
        if isinstance(rest.get("parts"), list):
            n = len(rest["parts"])
            rest["parts"] = f"{n} part{'' if n == 1 else 's'} (see the store's runs/ records)"
        record = json.dumps(_known(rest), indent=2, default=str, ensure_ascii=False)
        table.add(
            [esc(rec.get(k) or DASH) for k in SHOWN]
            + [f"<details><summary>show</summary><pre>{esc(record)}</pre></details>"]
        )
    listed = "".join(f"<li>{esc(n)}</li>" for n in sorted(notes))
    approximations = f"<h3>Approximations</h3><ul>{listed}</ul>" if notes else ""
    return (
        f"<details class='provenance'><summary>Every run in the store ({len(records)}): command,"
        f" parameters, model and data fingerprints, library versions</summary>{approximations}"
        f"{table.html()}</details>"
    )
