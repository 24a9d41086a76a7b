"""Bootstrap confidence intervals for every agreement metric, computed inside DuckDB.

Each metric is a ratio of sums over examples (a Jaccard is sum(both) / sum(either); a mean
Jaccard is sum(jaccard) / sum(1)), so a bootstrap replicate is the same ratio with each
example weighted by a Poisson(1) draw: the Poisson bootstrap, which resamples examples
without materialising samples. Draws come from a hash of (example, replicate, seed), so the
intervals are the same on every run with the same seed, and DuckDB streams the
examples x replicates rows instead of loading the store. The interval is the percentile
interval of the replicates. OOD thresholds are held fixed (test examples are resampled).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ce.store.errors import CeError

from .sql import execute

# Poisson(1) cumulative probabilities for 0..5; a uniform draw above the last gives 6.
POISSON_CDF = (0.367879, 0.735759, 0.919699, 0.981012, 0.996340, 0.999406)


@dataclass(frozen=True)
class Metric:
    column: str  # the Table 2 column it bounds
    source: str  # SQL of the per-example rows
    keys: tuple[str, ...]  # the pair's key columns, named as in Table 2
    numerator: str
    denominator: str
    example: str = "example_id"


def metrics(k: int, tpr: float) -> list[Metric]:
    pair = ("model_i", "model_j")
    return [
        Metric(
            "errors",
            "select * from error_agreement_examples()",
            ("dataset", *pair),
            "(wrong_i and wrong_j)::int",
            "(wrong_i or wrong_j)::int",
        ),
        Metric(
            "repr_before",
            f"select * from knn_agreement_examples({k}) where stage = 'pretrained'",
            ("dataset", *pair),
            "jaccard",
            "1",
            "idx",
        ),
        Metric(
            "repr_after",
            f"select * from knn_agreement_examples({k}) where stage = 'finetuned'",
            ("dataset", *pair),
            "jaccard",
            "1",
            "idx",
        ),
        Metric(
            "distribution",
            f"select id_val as dataset, dataset as ood_dataset, bank as ood_bank, stage as ood_stage,"
            f" model_i, model_j, example_id, ood_i, ood_j from ood_agreement_examples({k},"
            f" tpr := {tpr})",
            ("dataset", *pair, "ood_dataset", "ood_bank", "ood_stage"),
            "(ood_i and ood_j)::int",
            "(ood_i or ood_j)::int",
        ),
    ]


def poisson_weight(u: str) -> str:
    cases = " ".join(f"when {u} < {p} then {i}" for i, p in enumerate(POISSON_CDF))
    return f"case {cases} else {len(POISSON_CDF)} end"


def interval_sql(m: Metric, replicates: int, level: float, seed: int) -> str:
    keys = ", ".join(m.keys)
    u = f"(hash({m.example}, r.b, {seed}) % 1000000) / 1000000.0"
    lo, hi = (1 - level) / 2, (1 + level) / 2
    return f"""
with rows as ({m.source}),
draws as (
    select {keys}, r.b, {poisson_weight(u)} as w, {m.numerator} as num, {m.denominator} as den
    from rows, range({replicates}) r(b)
),
replicates as (
    select {keys}, b, sum(w * num) / nullif(sum(w * den), 0) as value
    from draws group by {keys}, b
)
select {keys}, quantile_cont(value, {lo}) as lo, quantile_cont(value, {hi}) as hi
from replicates group by {keys}
"""


def intervals(
    con: duckdb.DuckDBPyConnection,
    k: int,
    tpr: float,
    level: float = 0.95,
    replicates: int = 1000,
    seed: int = 0,
) -> dict[str, dict[tuple, tuple]]:
    """{Table 2 column: {pair key: (lo, hi)}} for every agreement metric."""
    if not 0 < level < 1:
        raise CeError(f"--ci {level} must lie strictly between 0 and 1 (e.g. 0.95)")
    if replicates < 10:
        raise CeError("--bootstrap needs at least 10 replicates (1000 is usual)")
    out = {}
    for m in metrics(k, tpr):
        rows = execute(con, interval_sql(m, replicates, level, seed)).fetchall()
        out[m.column] = {tuple(r[:-2]): (r[-2], r[-1]) for r in rows}
    return out
