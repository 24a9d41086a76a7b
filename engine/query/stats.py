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

import duckdb

from ce.store.errors import CeError

from . import measures
from .measures import Measure
from .sql import execute

# Poisson(1) cumulative probabilities for 0..5; a uniform draw above the last gives 6.
POISSON_CDF = (0.367879, 0.735759, 0.919699, 0.981012, 0.996340, 0.999406)


def poisson_weight(u: str) -> str:
    cases = " ".join(f"when {u} < {p} then {i}" for i, p in enumerate(POISSON_CDF))
    return f"case {cases} else {len(POISSON_CDF)} end"


def interval_sql(
    group: tuple[Measure, ...], k: int, tpr: float, replicates: int, level: float, seed: int
) -> str:
    """The percentile intervals of the measures of ``group`` (one source, read once)."""
    keys = ", ".join(group[0].keys)
    u = f"(hash(x_key, r.b, {seed}) % 1000000) / 1000000.0"
    lo, hi = (1 - level) / 2, (1 + level) / 2
    sums = [f"num_{i}, den_{i}" for i in range(len(group))]
    values = [f"sum(w * num_{i}) / nullif(sum(w * den_{i}), 0) as value_{i}" for i in range(len(group))]
    bounds = [
        f"quantile_cont(value_{i}, {lo}) as lo_{i}, quantile_cont(value_{i}, {hi}) as hi_{i}"
        for i in range(len(group))
    ]
    return f"""
with rows as ({measures.shared_rows(group, k, tpr)}),
draws as (
    select {keys}, r.b, {poisson_weight(u)} as w, {", ".join(sums)}
    from rows, range({replicates}) r(b)
),
replicates as (
    select {keys}, b, {", ".join(values)}
    from draws group by {keys}, b
)
select {keys}, {", ".join(bounds)}
from replicates group by {keys}
"""


def intervals(
    con: duckdb.DuckDBPyConnection,
    k: int,
    tpr: float,
    level: float = 0.95,
    replicates: int = 1000,
    seed: int = 0,
    chosen: tuple[Measure, ...] | None = None,
) -> dict[str, dict[tuple, tuple]]:
    """{measure: {pair key, pair in name order: (lo, hi)}} for every measure of Table 2;
    the measures that read the same per-example rows share one pass and one set of draws."""
    if not 0 < level < 1:
        raise CeError(f"ci {level} must lie strictly between 0 and 1 (e.g. 0.95)")
    if replicates < 10:
        raise CeError("the bootstrap needs at least 10 replicates (1000 is usual)")
    out = {}
    for group in measures.by_source(chosen or measures.selected()):
        rows = execute(con, interval_sql(group, k, tpr, replicates, level, seed)).fetchall()
        width = len(group[0].keys)
        for i, m in enumerate(group):
            out[m.name] = {tuple(r[:width]): (r[width + 2 * i], r[width + 2 * i + 1]) for r in rows}
    return out
