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


def characteristic_tables(table2: pa.Table, k: int, lead_only: bool = False) -> list[tuple[str, pa.Table]]:
    """Table 2 (computed at ``k`` neighbours) as one (title, table) per characteristic the
    store holds values of; with ``lead_only``, per dataset only the pairs of the model that
    leads its first pair (the reference)."""
    out = []
    for m in MEASURES:
        if m.group not in ("agreement", "similarity") or m.name not in table2.column_names:
            continue
        rows = table2.filter(pc.is_valid(table2[m.name]))
        rows = _led_by_first(rows) if lead_only else rows
        if rows.num_rows:
            out.append((_title(m, k), _narrow(m, rows)))
    for title, columns, present in ANSWER_TABLES:
        rows = _one_row_per_pair(table2.filter(pc.is_valid(table2[present])))
        rows = _led_by_first(rows) if lead_only else rows
        if rows.num_rows:
            out.append((title, _answers(rows, columns, present)))
    return out


def _led_by_first(rows: pa.Table) -> pa.Table:
    """Per dataset, the rows whose model_i leads the dataset's first row (Table 2 orders the
    reference first)."""
    first: dict[str, str] = {}
    keep = []
    for i, (dataset, model) in enumerate(
        zip(rows["dataset"].to_pylist(), rows["model_i"].to_pylist(), strict=True)
    ):
        if first.setdefault(dataset, model) == model:
            keep.append(i)
    return rows.take(pa.array(keep, pa.int64()))


NOISE_SHORT = {  # a gap's reading on a terminal
    "beyond retraining noise": "beyond",
    "within retraining noise": "within",
    "closer than its replicas": "closer",
    "replica pair (in the floor)": "replicas",
}
NOISE_NOTE = (
    "floor: the agreement of model_i's replicas (retrained with other seeds); gap = value -"
    " floor, with its 95% bootstrap interval (gap_ci); noise: beyond (the whole interval on"
    " the far side of the floor), within (it holds 0), closer (agrees more than replicas do)"
)


def _floor_columns(name: str, rows: pa.Table) -> dict[str, pa.Array]:
    """The floor, gap, its interval and the short reading of a floored measure, where any
    row has a floor (none: no columns)."""
    floor = f"{name}_floor"
    if floor not in rows.column_names or rows[floor].null_count == rows.num_rows:
        return {}
    noise = [NOISE_SHORT.get(v, v) for v in rows[f"{name}_noise"].to_pylist()]
    return {
        "floor": rows[floor],
        "gap": rows[f"{name}_gap"],
        "gap_ci": interval_texts(rows[f"{name}_gap_lo"], rows[f"{name}_gap_hi"], signed=True),
        "noise": pa.array(noise, pa.string()),
    }


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


WITHOUT_ROOM = ("scored", "kl_rev", "mce_diff")  # answer columns left to --wide beside a floor


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
    floored = _floor_columns(next(iter(columns.values())), rows)
    for n, (short, name) in enumerate(columns.items()):
        if short == "prompts" and not any(rows[name].to_pylist()):
            continue  # no log hashed prompts that differ: nothing to say
        if floored and short in WITHOUT_ROOM:
            continue  # the floor's columns take their room on a terminal; --wide has them
        out[short] = rows[name]
        if n == 0 and f"{name}_lo" in rows.column_names:
            out["ci"] = interval_texts(rows[f"{name}_lo"], rows[f"{name}_hi"])
        if n == 0:
            out |= floored
    # the first value's support, else (no correctness: no flips) the one after it that is there
    values = [c for c in columns.values() if f"{c}_few" in rows.column_names]
    few = [
        next((r[f"{c}_few"] for c in values if r[c] is not None), False)
        for r in rows.select([*values, *(f"{c}_few" for c in values)]).to_pylist()
    ]
    out["few"] = pa.array([FEW_MARK if f else "" for f in few], pa.string())
    return pa.table(out)


def _title(m: Measure, k: int) -> str:
    if m.group == "similarity":
        what = f"Spearman's rho of the k = {k} neighbours' ranks" if m.by_k else "biased estimator"
        return f"{m.label}: {what}; reference first"
    if m.sizes:
        what = "Jaccard of the two sets" + (f" (k = {k})" if m.by_k else "")
    else:
        what = f"mean Jaccard of the k = {k} nearest neighbours"
    return f"Table 2, {m.label}: {what}; reference first"


def _narrow(m: Measure, rows: pa.Table) -> pa.Table:
    """The columns of one measure, named for a reader: keys, pair, value, interval,
    companions, n, set sizes, mark."""
    columns: dict[str, pa.Array] = {}
    floored = _floor_columns(m.name, rows)
    if m.ood:
        columns |= {"test": rows["ood_dataset"], "bank": rows["ood_bank"]}
        if not floored:  # with a floor, to fit a terminal: --wide has it
            columns["id_val"] = rows["dataset"]
        if not floored or len(set(rows["ood_stage"].to_pylist())) > 1:  # one stage: the same
            columns["stage"] = rows["ood_stage"]
    else:
        columns["dataset"] = rows["dataset"]
    value = {"ranks": "rho", "cka": "cka"}.get(m.optional or "", "jaccard")
    columns |= {"model_i": rows["model_i"], "model_j": rows["model_j"], value: rows[m.name]}
    if f"{m.name}_lo" in rows.column_names:
        columns["ci"] = interval_texts(rows[f"{m.name}_lo"], rows[f"{m.name}_hi"])
    for name in m.companions:
        short = name.removeprefix(f"{m.name}_")
        if short == "mcnemar_chi2" or (floored and short in ("kappa", "var")):
            continue  # its p-value follows; the statistic (and with a floor, kappa, var) in --wide
        columns[short] = rows[name]
    if f"{m.name}_mcnemar_p" in rows.column_names and not floored:  # with a floor: in --wide
        columns["mcnemar_p"] = rows[f"{m.name}_mcnemar_p"]
    columns |= floored
    columns["n"] = rows[f"{m.name}_n"]
    if floored and m.sizes:  # both sizes in one column, to leave the floor room
        i, j = (rows[c].to_pylist() for c in size_columns(m))
        columns["sets"] = pa.array([None if a is None else f"{a}/{b}" for a, b in zip(i, j, strict=True)])
    else:
        for name, source in zip(size_columns(m), m.sizes or (), strict=False):
            columns[source] = rows[name]
    few = rows[f"{m.name}_few"].to_pylist()
    columns["few"] = pa.array([FEW_MARK if f else "" for f in few], pa.string())
    return pa.table(columns)


def interval_texts(lo: pa.ChunkedArray, hi: pa.ChunkedArray, signed: bool = False) -> pa.Array:
    """'0.405-0.431' per row (empty where there is no interval); ``signed`` (gaps, which
    may be negative): '-0.10..+0.48'."""
    return pa.array(
        [
            None if a is None or b is None else f"{a:+.2f}..{b:+.2f}" if signed else f"{a:.3f}-{b:.3f}"
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


CHARACTERISTIC_NAMES = {
    "errors": "errors",
    "repr_after": "repr after",
    "distribution": "OOD sets",
    "attacks": "attack sets",
    "top1": "top-1",
    "flips": "flips",
    "changes": "changed",
    "js": "JS",
}


def _dataset(r: dict) -> str:
    """The examples a floor or group row compares: an OOD row's test set, else its dataset."""
    return r.get("ood_dataset") or r["dataset"]


def _detail(r: dict) -> str:
    """What a floor or group row compares besides its examples: OOD bank (and stage when
    not fine-tuned), attack."""
    if r.get("ood_bank"):
        stage = "" if r["ood_stage"] == "finetuned" else f" ({r['ood_stage']})"
        return f"bank {r['ood_bank']}{stage}"
    return r.get("attack") or ""


def floor_view(floors: pa.Table) -> pa.Table:
    """noise_floor() for a terminal: per characteristic, dataset and group, the floor with
    its interval and the range over replica pairs."""
    rows = floors.to_pylist()
    return pa.table(
        {
            "characteristic": [
                CHARACTERISTIC_NAMES.get(r["characteristic"], r["characteristic"]) for r in rows
            ],
            "dataset": [_dataset(r) for r in rows],
            "of": [_detail(r) for r in rows],
            "group": [r["replica_group"] for r in rows],
            "replicas": pa.array([r["replicas"] for r in rows], pa.int64()),
            "floor": pa.array([r["floor"] for r in rows], pa.float64()),
            "ci": interval_texts(floors["floor_lo"], floors["floor_hi"]),
            "min": pa.array([r["floor_min"] for r in rows], pa.float64()),
            "max": pa.array([r["floor_max"] for r in rows], pa.float64()),
        }
    )


def group_view(groups: pa.Table, lead_only: bool = True) -> pa.Table:
    """group_agreement() for a terminal: between-group agreement against the first group's
    floor, the gap with its interval and reading, the permutation p-value; with
    ``lead_only``, per characteristic and dataset only the first group's pairs."""
    rows = groups.to_pylist()
    if lead_only:
        first: dict[tuple, str] = {}
        rows = [
            r
            for r in rows
            if first.setdefault((r["characteristic"], r["dataset"], _detail(r)), r["group_i"]) == r["group_i"]
        ]
    table = pa.Table.from_pylist(rows, groups.schema)
    return pa.table(
        {
            "characteristic": [
                CHARACTERISTIC_NAMES.get(r["characteristic"], r["characteristic"]) for r in rows
            ],
            "dataset": [_dataset(r) for r in rows],
            "of": [_detail(r) for r in rows],
            "group_i": [r["group_i"] for r in rows],
            "group_j": [r["group_j"] for r in rows],
            "between": pa.array([r["between"] for r in rows], pa.float64()),
            "floor_i": pa.array([r["floor_i"] for r in rows], pa.float64()),
            "gap": pa.array([r["gap"] for r in rows], pa.float64()),
            "gap_ci": interval_texts(table["gap_lo"], table["gap_hi"], signed=True),
            "perm_p": pa.array([r["p_value"] for r in rows], pa.float64()),
            "noise": [NOISE_SHORT.get(r["reading"], r["reading"]) for r in rows],
        }
    )


def pie_view(pies: pa.Table, per_pair: int = 8) -> pa.Table:
    """The first ``per_pair`` PIEs of each pair of groups: both modal answers with their
    votes (of the replicas that answered), the gold answer and the text; only those of
    datasets with a gold answer where some have one."""
    shown: dict[tuple, int] = {}
    keep = []
    rows = pies.to_pylist()
    if any(r["gold"] not in (None, "") for r in rows):
        scored = {r["dataset"] for r in rows if r["gold"] not in (None, "")}
        rows = [r for r in rows if r["dataset"] in scored]
    for r in rows:
        key = (r["dataset"], r["other_group"])
        shown[key] = shown.get(key, 0) + 1
        if shown[key] <= per_pair:
            keep.append(r)
    return pa.table(
        {
            "dataset": [r["dataset"] for r in keep],
            "reference": [r["reference_group"] for r in keep],
            "other": [r["other_group"] for r in keep],
            "example": [r["example_id"] for r in keep],
            "ref_answer": [
                f"{r['reference_answer']} ({r['reference_votes']}/{r['reference_answered']})" for r in keep
            ],
            "other_answer": [f"{r['other_answer']} ({r['other_votes']}/{r['other_answered']})" for r in keep],
            "gold": [r["gold"] for r in keep],
            "text": [r["text"] for r in keep],
        }
    )


def pie_count(pies: pa.Table) -> int:
    """How many distinct examples (of any dataset) are PIEs of some group."""
    return len(set(zip(pies["dataset"].to_pylist(), pies["example_id"].to_pylist(), strict=True)))


def comparison_tables(
    table2=None, table3=None, k: int = 10, floors=None, groups=None, pies=None
) -> tuple[list[tuple[str, pa.Table]], list[str]]:
    """(titled narrow tables, notes) for a terminal from Table 2 (at ``k``) and Table 3, and
    where the store has replica groups, the noise floor, the groups compared, and the PIEs
    (with groups, Table 2 shows the reference's pairs only: --wide shows all)."""
    out, notes = [], []
    if table2 is not None:
        grouped = floors is not None and floors.relation.to_arrow_table().num_rows > 0
        found = characteristic_tables(table2.relation.to_arrow_table(), k, lead_only=grouped)
        out += found or [
            ("Table 2: no model pairs to compare yet", pa.table({"dataset": pa.array([], pa.string())}))
        ]
        notes += table2.notes
        if any(FEW_MARK in t["few"].to_pylist() for _, t in found):
            notes.append(FEW_NOTE)
        if any("floor" in t.column_names for _, t in found):
            notes.append(NOISE_NOTE)
        if grouped:
            notes.append(
                "note: with replica groups, Table 2 shows the reference's pairs; --wide shows every pair"
            )
    if floors is not None and floors.relation.to_arrow_table().num_rows:
        out.append(
            (
                "Noise floor: agreement between the replicas of each group (95% interval, min, max)",
                floor_view(floors.relation.to_arrow_table()),
            )
        )
    if groups is not None and groups.relation.to_arrow_table().num_rows:
        out.append(
            (
                "Groups compared: mean agreement across their replicas against group_i's floor;"
                " perm_p: permutation test",
                group_view(groups.relation.to_arrow_table()),
            )
        )
        notes += groups.notes
    if pies is not None and pies.relation.to_arrow_table().num_rows:
        table = pies.relation.to_arrow_table()
        out.append(
            (
                f"PIEs: {pie_count(table)} examples where a group's modal answer differs from the"
                " reference group's (votes/replicas); the first ones",
                pie_view(table, 4),
            )
        )
        notes += pies.notes
    if table3 is not None:
        out.append(
            (
                "Table 3: accuracy under adversarial attack (95% Wilson intervals)",
                table3_view(table3.relation.to_arrow_table()),
            )
        )
        notes += table3.notes
    return out, notes


__all__ = [
    "FEW_NOTE",
    "characteristic_tables",
    "comparison_tables",
    "floor_view",
    "group_view",
    "pie_count",
    "pie_view",
    "table3_view",
    "with_intervals_merged",
]
