"""Terminal views of Table 2 and Table 3: one narrow table per characteristic, each Jaccard
beside the examples it compared and its two sets' sizes, intervals as one column, and a
mark on values that rest on too few items. ``--wide`` (and every file format) keeps the
one wide table of the query layer."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ce.query.measures import MEASURES, MIN_SUPPORT, Measure, size_columns

FEW_MARK = "*"
FEW_NOTE = (
    f"{FEW_MARK} rests on fewer than {MIN_SUPPORT} items (examples in either set, or examples"
    " compared): a hint, not a measurement"
)


def characteristic_tables(table2: pa.Table, k: int) -> list[tuple[str, pa.Table]]:
    """Table 2 (computed at ``k`` neighbours) as one (title, table) per characteristic the
    store holds values of."""
    out = []
    for m in MEASURES:
        if m.group != "agreement":
            continue
        rows = table2.filter(pc.is_valid(table2[m.name]))
        if rows.num_rows:
            out.append((_title(m, k), _narrow(m, rows)))
    for title, columns, present in ANSWER_TABLES:
        rows = _one_row_per_pair(table2.filter(pc.is_valid(table2[present])))
        if rows.num_rows:
            out.append((title, _answers(rows, columns, present)))
    return out


# The measures of changed answers on a terminal: (title, {short name: Table 2 column}, the
# column whose presence selects the rows). The first value's interval follows it when
# computed (all of them: --wide).
ANSWER_TABLES = (
    (
        "Changed answers: flips correct <-> wrong (neg: reference right, other wrong; pos: the"
        " reverse); reference first",
        {
            "flips": "flips",
            "neg": "flips_neg",
            "pos": "flips_pos",
            "mcnemar_p": "flips_mcnemar_p",
            "changed": "changes",
            "n": "changes_n",
            "scored": "flips_n",
            "prompts": "prompts_differ",
        },
        "changes",
    ),
    (
        "Answer distributions: top-1 agreement, KL(ref || other), KL(other || ref), JS;"
        " other - ref: Brier, ECE, MCE",
        {
            "top1": "top1",
            "kl": "kl",
            "kl_rev": "kl_rev",
            "js": "js",
            "brier_diff": "brier_diff",
            "ece_diff": "ece_diff",
            "mce_diff": "mce_diff",
            "n": "kl_n",
        },
        "kl",
    ),
)


def _one_row_per_pair(rows: pa.Table) -> pa.Table:
    """Table 2 repeats a pair's other measures on each of its OOD rows: keep the first."""
    seen, keep = set(), []
    for i, key in enumerate(
        zip(*(rows[c].to_pylist() for c in ("dataset", "model_i", "model_j")), strict=True)
    ):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return rows.take(pa.array(keep, pa.int64()))


def _answers(rows: pa.Table, columns: dict[str, str], present: str) -> pa.Table:
    out: dict[str, pa.Array] = {
        "dataset": rows["dataset"],
        "model_i": rows["model_i"],
        "model_j": rows["model_j"],
    }
    for n, (short, name) in enumerate(columns.items()):
        out[short] = rows[name]
        if n == 0 and f"{name}_lo" in rows.column_names:
            out["ci"] = interval_texts(rows[f"{name}_lo"], rows[f"{name}_hi"])
    # the first value's support, else (no correctness: no flips) the one after it that is there
    values = [c for c in columns.values() if f"{c}_few" in rows.column_names]
    few = [
        next((r[f"{c}_few"] for c in values if r[c] is not None), False)
        for r in rows.select([*values, *(f"{c}_few" for c in values)]).to_pylist()
    ]
    out["few"] = pa.array([FEW_MARK if f else "" for f in few], pa.string())
    return pa.table(out)


def _title(m: Measure, k: int) -> str:
    if m.sizes:
        what = "Jaccard of the two sets" + (f" (k = {k})" if m.by_k else "")
    else:
        what = f"mean Jaccard of the k = {k} nearest neighbours"
    return f"Table 2, {m.label}: {what}; reference first"


def _narrow(m: Measure, rows: pa.Table) -> pa.Table:
    """The columns of one measure, named for a reader: keys, pair, value, interval,
    companions, n, set sizes, mark."""
    columns: dict[str, pa.Array] = {}
    if m.ood:
        columns |= {"test": rows["ood_dataset"], "bank": rows["ood_bank"], "id_val": rows["dataset"]}
        columns["stage"] = rows["ood_stage"]
    else:
        columns["dataset"] = rows["dataset"]
    columns |= {"model_i": rows["model_i"], "model_j": rows["model_j"], "jaccard": rows[m.name]}
    if f"{m.name}_lo" in rows.column_names:
        columns["ci"] = interval_texts(rows[f"{m.name}_lo"], rows[f"{m.name}_hi"])
    for name in m.companions:
        short = name.removeprefix(f"{m.name}_")
        if short == "mcnemar_chi2":
            continue  # its p-value follows; the statistic is in --wide
        columns[short] = rows[name]
    if f"{m.name}_mcnemar_p" in rows.column_names:
        columns["mcnemar_p"] = rows[f"{m.name}_mcnemar_p"]
    columns["n"] = rows[f"{m.name}_n"]
    for name, source in zip(size_columns(m), m.sizes or (), strict=False):
        columns[source] = rows[name]
    few = rows[f"{m.name}_few"].to_pylist()
    columns["few"] = pa.array([FEW_MARK if f else "" for f in few], pa.string())
    return pa.table(columns)


def interval_texts(lo: pa.ChunkedArray, hi: pa.ChunkedArray) -> pa.Array:
    """'0.405-0.431' per row (empty where there is no interval)."""
    return pa.array(
        [
            None if a is None or b is None else f"{a:.3f}-{b:.3f}"
            for a, b in zip(lo.to_pylist(), hi.to_pylist(), strict=True)
        ],
        pa.string(),
    )


def with_intervals_merged(table: pa.Table) -> pa.Table:
    """Every pair of columns X_lo, X_hi as one text column X_ci right after X."""
    names = table.column_names
    for name in [n[:-3] for n in names if n.endswith("_lo") and n[:-3] + "_hi" in names]:
        merged = interval_texts(table[f"{name}_lo"], table[f"{name}_hi"])
        table = table.drop_columns([f"{name}_lo", f"{name}_hi"])
        at = table.column_names.index(name) + 1 if name in table.column_names else table.num_columns
        table = table.add_column(at, f"{name}_ci", merged)
    return table


TABLE3_SHORT = {  # Table 3's columns on a terminal, by short name (the drops: --wide)
    "dataset": "dataset",
    "attack": "attack",
    "model": "model",
    "n": "n",
    "accuracy_before": "before",
    "accuracy_under_attack": "attacked",
    "accuracy_under_attack_ci": "attacked_ci",
    "success_rate": "success",
    "success_rate_ci": "success_ci",
    "mean_queries": "queries",
    "mean_words_perturbed": "words",
    "mean_share_perturbed": "share",
}


def table3_view(table3: pa.Table) -> pa.Table:
    """Table 3 for a terminal: accuracy before and under attack, the success rate, their
    intervals as one column each, mean queries and words changed (count and share)."""
    table = with_intervals_merged(table3)
    keep = [n for n in TABLE3_SHORT if n in table.column_names]
    return table.select(keep).rename_columns([TABLE3_SHORT[n] for n in keep])


def comparison_tables(table2=None, table3=None, k: int = 10) -> tuple[list[tuple[str, pa.Table]], list[str]]:
    """(titled narrow tables, notes) for a terminal from Table 2 (at ``k``) and Table 3."""
    out, notes = [], []
    if table2 is not None:
        found = characteristic_tables(table2.relation.to_arrow_table(), k)
        out += found or [
            ("Table 2: no model pairs to compare yet", pa.table({"dataset": pa.array([], pa.string())}))
        ]
        notes += table2.notes
        if any(FEW_MARK in t["few"].to_pylist() for _, t in found):
            notes.append(FEW_NOTE)
    if table3 is not None:
        out.append(
            (
                "Table 3: accuracy under adversarial attack (95% Wilson intervals)",
                table3_view(table3.relation.to_arrow_table()),
            )
        )
        notes += table3.notes
    return out, notes


__all__ = ["FEW_NOTE", "characteristic_tables", "comparison_tables", "table3_view", "with_intervals_merged"]
