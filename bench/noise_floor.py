"""The noise floor's paired bootstrap: numpy (one matrix product per chunk of examples, what
ce runs) against the same Poisson bootstrap weighted row by row in DuckDB SQL (what
ce.query.stats does for --ci), and the cost of the floor columns in ce compare.

    python bench/noise_floor.py [--examples 20000] [--groups 4] [--replicas 3] [--replicates 1000]

A synthetic store: --groups replica groups of --replicas models each (12 by default, as the
demo), predictions on --examples examples. 1. Error agreement's per-pair replicates for
every pair with a replica (66 pairs by default), numpy vs SQL, with the peak memory of the
numpy side. Goal: numpy at least 5x faster. 2. Table 2 with the floor columns (a bootstrap
of every floored measure) against Table 2 of the same store without replica groups, plain and
with --ci intervals of the same number of replicates (the SQL bootstrap). Goal: the floor
costs no more than the intervals.
Times are the best of --repeats, measured side by side in one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc

import numpy as np
import pyarrow as pa

import ce
from ce.query import floor
from ce.query.measures import BY_NAME, shared_rows
from ce.query.sql import connect
from ce.query.stats import poisson_weight
from ce.store import Store


def write_store(root: str, examples: int, groups: int, replicas: int, grouped: bool) -> None:
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, examples)
    ids = [f"x{i}" for i in range(examples)]
    store = Store(root)
    with store.run("bench", {}) as run:
        run.write(
            "examples",
            {"dataset": "d"},
            pa.table({"example_id": ids, "idx": np.arange(examples), "label": gold}),
        )
    hard = rng.random(examples)  # how hard each example is: models share their errors on hard ones
    for g in range(groups):
        for s in range(replicas):
            model = f"g{g}-s{s}"
            wrong = rng.random(examples) < hard * (0.3 + 0.1 * g)
            replica = {"replica": {"group": f"g{g}", "seed": s}} if grouped else {}
            with store.run("bench", {}, model=model, **replica) as run:
                answers = np.where(wrong, 1 - gold, gold)
                part = pa.table({"example_id": ids, "pred_label": answers, "correct": ~wrong})
                run.write("predictions", {"model": model, "dataset": "d"}, part)


def sql_draws(con, rows_sql: str, replicates: int) -> list:
    """The same per-pair replicates, each (pair, example, replicate) row weighted in SQL."""
    u = "(hash(x_key, r.b, 0) % 1000000) / 1000000.0"
    return con.sql(
        f"with rows as (select * from ({rows_sql}) where model_i in ({floor.GROUPED}) or model_j in"
        f" ({floor.GROUPED})), draws as (select dataset, model_i, model_j, r.b, {poisson_weight(u)} as w,"
        f" num_0, den_0 from rows, range({replicates}) r(b)) select dataset, model_i, model_j, b,"
        " sum(w * num_0) / nullif(sum(w * den_0), 0) from draws group by all"
    ).fetchall()


def best(f, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=20000)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_store(f"{tmp}/g", a.examples, a.groups, a.replicas, grouped=True)
        write_store(f"{tmp}/plain", a.examples, a.groups, a.replicas, grouped=False)
        con = connect(Store(f"{tmp}/g"))
        rows_sql = shared_rows((BY_NAME["errors"],), 10, 0.95)
        pairs = a.groups * a.replicas * (a.groups * a.replicas - 1) // 2

        def numpy_side():
            floor.pair_draws(con, rows_sql, ("dataset",), 1, a.replicates, 0)

        t_np = best(numpy_side, a.repeats)
        t_sql = best(lambda: sql_draws(con, rows_sql, a.replicates), a.repeats)
        tracemalloc.start()
        numpy_side()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"1. paired bootstrap, {pairs} pairs x {a.examples} examples x {a.replicates} replicates:"
            f" numpy {t_np:.2f}s, SQL {t_sql:.2f}s: {t_sql / t_np:.1f}x faster (goal >= 5x);"
            f" numpy peak {peak / 2**20:.0f} MiB"
        )
        grouped, plain = ce.open(f"{tmp}/g"), ce.open(f"{tmp}/plain")
        t_plain = best(lambda: plain.table2().rows(), a.repeats)
        t_ci = best(lambda: plain.table2(ci=0.95, replicates=a.replicates).rows(), a.repeats)
        t_floor = best(lambda: ce.open(f"{tmp}/g").table2().rows(), a.repeats)  # a new session: no memo
        assert grouped.table2().rows()[0]["errors_floor"] is not None
        print(
            f"2. Table 2 with the floor columns {t_floor:.2f}s; without replicas {t_plain:.2f}s"
            f" ({t_floor / t_plain:.1f}x), or {t_ci:.2f}s with --ci {a.replicates} intervals:"
            f" the floor's bootstrap at {t_floor / t_ci:.2f}x the intervals' (goal <= 1x)"
        )


if __name__ == "__main__":
    main()
