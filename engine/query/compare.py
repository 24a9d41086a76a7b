"""Comparison tables assembled from the SQL library (the Python API behind ce compare/sweep)."""

from __future__ import annotations

import math

import duckdb
import pyarrow as pa

from ce.store.errors import CeError, NotFound, did_you_mean
from ce.store.store import Store

from .sql import connect, execute, library


def k_limits(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """(what, K_max) of every stored set of neighbour lists and OOD distances."""
    return execute(
        con,
        "select case kind when 'neighbors' then 'neighbour lists of ' || dataset else 'OOD scores of '"
        " || dataset || ' (bank ' || bank || ', ' || stage || ')' end as what, min(k_min) as k_max"
        " from list_limits group by what order by what",
    ).fetchall()


def check_k_tpr(con: duckdb.DuckDBPyConnection, ks: list[int], tpr: float) -> list[str]:
    """Raise unless tpr is in (0, 1) and every k is at most the largest stored K_max; return
    a note for each dataset whose lists are too short for some k (it is left out there)."""
    if not 0 < tpr < 1:
        raise CeError(f"--tpr {tpr} must lie strictly between 0 and 1 (e.g. 0.95)")
    if any(k < 1 for k in ks):
        raise CeError("--k must be at least 1")
    limits = k_limits(con)
    if limits and max(ks) > max(k_max for _, k_max in limits):
        raise CeError(
            f"--k {max(ks)} is above K_max = {max(k for _, k in limits)}, the largest"
            " in the store; use a smaller k, or recompute with ce neighbors --k-max"
            " or ce ood --k-max"
        )
    return [
        f"note: {what} stop at K_max = {k_max}; left out for k > {k_max}"
        for what, k_max in limits
        if max(ks) > k_max
    ]


def _check_dataset(con, store: Store, dataset: str | None) -> None:
    if dataset is None:
        return
    known = [
        r[0]
        for r in execute(
            con, "select distinct dataset from predictions union select distinct dataset from neighbors"
        ).fetchall()
    ]
    if dataset not in known:
        raise NotFound(
            f"no predictions or neighbours for dataset {dataset!r} in {store.root}"
            f"{did_you_mean(dataset, known)}"
        )


def table2(
    store: Store,
    dataset: str | None = None,
    k: int = 10,
    tpr: float = 0.95,
    notes: list[str] | None = None,
    ci: float | None = None,
    replicates: int = 1000,
    seed: int = 0,
) -> pa.RecordBatchReader:
    """The paper's Table 2 rows for every model pair, optionally for one dataset, with the
    p-value of McNemar's test for the errors and, with ``ci``, bootstrap intervals of every
    agreement. Notes on datasets left out at this k are appended to ``notes``."""
    con = connect(store)
    (notes if notes is not None else []).extend(check_k_tpr(con, [k], tpr))
    _check_dataset(con, store, dataset)
    sql = library()["table2"].text.rstrip().rstrip(";")
    params = {"k": k, "tpr": tpr}
    if dataset is not None:
        sql, params = f"select * from ({sql}) where dataset = $dataset", params | {"dataset": dataset}
    table = execute(con, sql, params).to_arrow_table()  # one row per pair: small
    chi2 = table["errors_mcnemar_chi2"].to_pylist()
    p_values = [None if x is None else math.erfc(math.sqrt(x / 2)) for x in chi2]  # chi2, 1 df
    position = table.column_names.index("errors_mcnemar_chi2") + 1
    table = table.add_column(position, "errors_mcnemar_p", pa.array(p_values, pa.float64()))
    if ci is not None:
        table = _with_intervals(con, table, k, tpr, ci, replicates, seed)
    return table.to_reader()


def _with_intervals(
    con, table: pa.Table, k: int, tpr: float, level: float, replicates: int, seed: int
) -> pa.Table:
    from .stats import intervals, metrics

    bounds = intervals(con, k, tpr, level, replicates, seed)
    key_columns = {m.column: m.keys for m in metrics(k, tpr)}
    rows = table.to_pylist()
    for column, found in bounds.items():
        keys = key_columns[column]
        position = table.column_names.index(column) + 1
        for side, offset in (("lo", 0), ("hi", 1)):
            values = [found.get(tuple(r[c] for c in keys), (None, None))[offset] for r in rows]
            table = table.add_column(position, f"{column}_{side}", pa.array(values, pa.float64()))
            position += 1
    return table


def sweep(
    store: Store, ks: list[int], tpr: float = 0.95, notes: list[str] | None = None
) -> pa.RecordBatchReader:
    """The data of the paper's Figure 1: agreement against k for every pair, long format;
    distribution rows name their bank and all rows the stage of their embeddings."""
    con = connect(store)
    (notes if notes is not None else []).extend(check_k_tpr(con, ks, tpr))
    parts = []
    for k in sorted(set(ks)):
        parts.append(
            f"select 'representation ' || case stage when 'pretrained' then 'before' else"
            f" 'after' end as characteristic, dataset, null::varchar as bank, stage, model_i,"
            f" model_j, {k} as k, mean_jaccard as jaccard, var_jaccard as variance"
            f" from knn_agreement({k})"
        )
        parts.append(
            f"select 'distribution' as characteristic, dataset, bank, stage, model_i, model_j,"
            f" {k} as k, jaccard, null::double as variance from ood_agreement({k}, tpr := $tpr)"
        )
    order = "characteristic, dataset, bank, stage, model_i, model_j, k"
    sql = " union all ".join(parts) + f" order by {order}"
    return execute(con, sql, {"tpr": tpr}).to_arrow_reader(batch_size=65536)


def table3(store: Store) -> pa.RecordBatchReader:
    """The paper's Table 3: accuracy before and under each attack, per model."""
    return execute(connect(store), library()["table3"].text).to_arrow_reader(batch_size=65536)


SLICES = {
    "answerable": "case when x.is_impossible then 'unanswerable' when x.is_impossible is null"
    " then 'n/a' else 'answerable' end",
    "label": "coalesce('label ' || x.label::varchar, 'no label')",
    "length": "case when w < 20 then '0-19 words' when w < 50 then '20-49 words' when w < 100"
    " then '50-99 words' when w < 200 then '100-199 words' else '200+ words' end",
}


def sliced(
    store: Store, by: str, k: int = 10, tpr: float = 0.95, notes: list[str] | None = None
) -> pa.RecordBatchReader:
    """Every agreement of Table 2 per slice of the examples (long format); distribution rows
    name their bank, representation and distribution rows the stage of their embeddings."""
    if by not in SLICES:
        raise NotFound(f"unknown slice {by!r}{did_you_mean(by, SLICES)}; use {', '.join(SLICES)}")
    con = connect(store)
    (notes if notes is not None else []).extend(check_k_tpr(con, [k], tpr))
    examples = (
        "select *, len(string_split(trim(coalesce(text, question || ' ' || context)),"
        " ' ')) as w from examples"
    )
    no_bank = "null::varchar as bank"
    parts = {
        "errors": (
            "error_agreement_examples()",
            "example_id",
            f"{no_bank}, null::varchar as stage",
            "count(*) filter (where wrong_i and wrong_j)"
            " / nullif(count(*) filter (where wrong_i or wrong_j), 0)",
        ),
        "repr_before": (
            f"knn_agreement_examples({k}) where stage = 'pretrained'",
            "idx",
            f"{no_bank}, e.stage",
            "avg(jaccard)",
        ),
        "repr_after": (
            f"knn_agreement_examples({k}) where stage = 'finetuned'",
            "idx",
            f"{no_bank}, e.stage",
            "avg(jaccard)",
        ),
        "distribution": (
            f"ood_agreement_examples({k}, tpr := {tpr})",
            "example_id",
            "e.bank, e.stage",
            "count(*) filter (where ood_i and ood_j) / nullif(count(*) filter (where ood_i or ood_j), 0)",
        ),
    }
    selects = []
    for name, (source, key, bank_stage, value) in parts.items():
        selects.append(
            f"select '{name}' as characteristic, e.dataset, {bank_stage}, {SLICES[by]} as slice,"
            f" e.model_i, e.model_j, count(*) as n, {value} as jaccard"
            f" from (select * from {source}) e join ({examples}) x"
            f" on x.dataset = e.dataset and x.{key} = e.{key}"
            f" group by all"
        )
    order = "characteristic, dataset, bank, stage, model_i, model_j, slice"
    sql = " union all ".join(selects) + f" order by {order}"
    return execute(con, sql).to_arrow_reader(batch_size=65536)
