"""The neighbour-agreement kernel (ce.query.knn) against the SQL definition, hand-checked
cases and an independent recount (Python sets, scipy's Spearman), and the rank measure."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import spearmanr

from ce.query import knn
from ce.query.compare import table2
from ce.query.sql import connect
from ce.store import Store
from ce.store.errors import CeError, QueryError


def write_lists(store: Store, lists: dict, dataset="toy", stage="finetuned") -> None:
    """``lists``: {model: {idx: neighbour list}}."""
    with store.run("test", {}) as run:
        for model, by_idx in lists.items():
            idx = sorted(by_idx)
            table = pa.table(
                {
                    "example_id": [f"x{i}" for i in idx],
                    "idx": pa.array(idx, pa.int64()),
                    "neighbors": pa.array([by_idx[i] for i in idx], pa.list_(pa.int32())),
                }
            )
            run.write("neighbors", {"model": model, "stage": stage, "dataset": dataset}, table)


def union_spearman(a: list[int], b: list[int]) -> float:
    """Spearman's rho over the union by scipy: an id a list lacks ranks past its end (tied)."""
    union = sorted(set(a) | set(b))
    rank_a = [a.index(x) + 1 if x in a else len(a) + 1 for x in union]
    rank_b = [b.index(x) + 1 if x in b else len(b) + 1 for x in union]
    return float(spearmanr(rank_a, rank_b).statistic)


def test_rank_agreement_hand_checked(store_dir):
    store = Store(store_dir)
    write_lists(
        store,
        {
            "a": {0: [1, 2, 3], 1: [1, 2, 3], 2: [1, 2, 3], 3: [1, 2, 3], 4: [1, 1, 2]},
            "b": {0: [1, 3, 5], 1: [3, 2, 1], 2: [1, 2, 3], 3: [4, 5, 6], 4: [1, 2, 7]},
        },
    )
    con = connect(store)
    got = con.sql("select idx, shared, size_i, jaccard, rank_rho from knn_agreement_examples(3) order by idx")
    by_idx = {r["idx"]: r for r in got.to_arrow_table().to_pylist()}
    # x0: union (1, 2, 3, 5): ranks in a (1, 2, 3, 4: 5 past a's end), in b (1, 4, 2, 3):
    # deviations (-1.5, -.5, .5, 1.5) and (-1.5, 1.5, -.5, .5): 2 / 5
    assert by_idx[0]["rank_rho"] == pytest.approx(0.4)
    assert by_idx[0]["jaccard"] == pytest.approx(2 / 4)
    assert by_idx[1]["rank_rho"] == pytest.approx(-1.0)  # the same ids, reversed
    assert by_idx[2]["rank_rho"] == pytest.approx(1.0)
    # disjoint: each ranks its own 1..3 and ties the other's three at mid-rank 5: over
    # (1, 2, 3, 4, 5, 6), deviations (-2.5, -1.5, -.5, 1.5, 1.5, 1.5) and their mirror:
    # -13.5 / 15.5
    assert by_idx[3]["rank_rho"] == pytest.approx(union_spearman([1, 2, 3], [4, 5, 6]))
    assert by_idx[3]["rank_rho"] == pytest.approx(-27 / 31)
    # a repeated id: the list is the set {1, 2}, and has no ranks to compare
    assert (by_idx[4]["size_i"], by_idx[4]["shared"], by_idx[4]["rank_rho"]) == (2, 2, None)
    assert by_idx[4]["jaccard"] == pytest.approx(2 / 3)
    [summary] = con.sql("select * from knn_agreement(3)").to_arrow_table().to_pylist()
    assert summary["rank_n"] == 4 and summary["n"] == 5
    assert summary["mean_rank_rho"] == pytest.approx((0.4 - 1 + 1 - 27 / 31) / 4)
    [kernel] = knn.agreement(con, [3], ranks=True).to_pylist()
    for column in (
        "n",
        "mean_jaccard",
        "var_jaccard",
        "mutual_knn",
        "rank_n",
        "mean_rank_rho",
        "var_rank_rho",
    ):
        assert kernel[column] == pytest.approx(summary[column], abs=1e-12), column


def test_chance_rank_rho_is_the_mean_over_every_pair_of_lists(store_dir):
    # every ordered 2-list of 5 items against every other: the exact mean rho
    lists = [list(p) for p in itertools.permutations(range(5), 2)]
    expected = np.mean([union_spearman(a, b) for a in lists for b in lists])
    con = connect(Store(store_dir))
    [(value, too_many)] = con.sql("select chance_knn_rank_rho(2, 5), chance_knn_rank_rho(3, 2)").fetchall()
    assert value == pytest.approx(expected) and too_many is None
    # k = 1: rho is -1 for two different neighbours, undefined for the same one
    assert con.sql("select chance_knn_rank_rho(1, 7)").fetchall() == [(pytest.approx(-1.0),)]


def random_store(store_dir, seed: int) -> tuple[Store, dict]:
    """Four models, two datasets, two stages; lists of 12 ids (model c: 5), some examples
    missing for some models, one list with a repeated id."""
    rng = np.random.default_rng(seed)
    store, written = Store(store_dir), {}
    for dataset, n in (("toy", 40), ("other", 25)):
        for stage in ("pretrained", "finetuned"):
            base = {i: rng.permutation(n)[:12] for i in range(n)}
            lists = {}
            for model in ("a", "b", "c", "d"):
                length = 5 if model == "c" else 12
                keep = rng.random(n) > (0.2 if model == "d" else 0.0)
                lists[model] = {}
                for i in np.flatnonzero(keep):
                    own = base[i].copy()
                    swap = rng.random(12) < 0.4
                    own[swap] = rng.integers(0, n, swap.sum())  # may repeat an id: sets
                    lists[model][int(i)] = [int(x) for x in own[:length]]
            write_lists(store, lists, dataset, stage)
            written[dataset, stage] = lists
    return store, written


def recount(lists: dict, k: int) -> dict:
    """An independent recount per pair: the mean Jaccard and the mean rho (Python sets)."""
    out = {}
    for a, b in itertools.combinations(sorted(lists), 2):
        common = [i for i in lists[a] if i in lists[b] and len(lists[a][i]) >= k and len(lists[b][i]) >= k]
        if not common:
            continue
        jac, rho = [], []
        for i in common:
            la, lb = lists[a][i][:k], lists[b][i][:k]
            sa, sb = set(la), set(lb)
            jac.append(len(sa & sb) / len(sa | sb))
            if len(sa) == k and len(sb) == k and len(sa | sb) > 1:
                rho.append(union_spearman(la, lb))
        out[a, b] = (len(common), np.mean(jac), np.mean(rho) if rho else None, len(rho))
    return out


@pytest.mark.parametrize("cells", [knn.CELLS_AT_ONCE, 64])  # 64: blocks of a few examples
def test_kernel_equals_the_sql_and_a_recount(store_dir, monkeypatch, cells):
    monkeypatch.setattr(knn, "CELLS_AT_ONCE", cells)
    monkeypatch.setattr(knn, "IDS_AT_ONCE", cells)
    store, written = random_store(store_dir, seed=3)
    con = connect(store)
    ks = [1, 3, 5, 10, 12]
    kernel = {
        (r["dataset"], r["stage"], r["model_i"], r["model_j"], r["k"]): r
        for r in knn.agreement(con, ks, ranks=True).to_pylist()
    }
    compared = 0
    for k in ks:
        sql = con.sql(f"select * from knn_agreement({k})").to_arrow_table().to_pylist()
        assert {(r["dataset"], r["stage"], r["model_i"], r["model_j"]) for r in sql} == {
            key[:4] for key in kernel if key[4] == k
        }
        for r in sql:
            mine = kernel[r["dataset"], r["stage"], r["model_i"], r["model_j"], k]
            for column in ("n", "mean_jaccard", "var_jaccard", "mutual_knn", "rank_n", "mean_rank_rho"):
                assert mine[column] == pytest.approx(r[column], abs=1e-12), (column, k)
            n, jac, rho, rank_n = recount(written[r["dataset"], r["stage"]], k)[r["model_i"], r["model_j"]]
            assert (mine["n"], mine["rank_n"]) == (n, rank_n)
            assert mine["mean_jaccard"] == pytest.approx(jac)
            assert mine["mean_rank_rho"] == pytest.approx(rho)
            compared += 1
    assert compared > 50  # model c (5 ids) drops out past k = 5


def test_table2_takes_the_rank_measure_when_asked(store_dir):
    store, _ = random_store(store_dir, seed=5)
    con = connect(store)
    plain = table2(con, k=5).rows()
    assert "ranks_after" not in plain[0]
    ranked = table2(con, k=5, with_=("ranks",)).rows()
    sql = {
        (r["dataset"], r["stage"], r["model_i"], r["model_j"]): r
        for r in con.sql("select * from knn_agreement(5)").to_arrow_table().to_pylist()
    }
    for row in ranked:
        pair = tuple(sorted((row["model_i"], row["model_j"])))
        expected = sql[(row["dataset"], "finetuned", *pair)]
        assert row["ranks_after"] == pytest.approx(expected["mean_rank_rho"])
        assert row["ranks_after_n"] == expected["rank_n"]
        assert row["ranks_after_chance"] == pytest.approx(expected["chance_rank_rho"])
        assert row["repr_after"] == pytest.approx(expected["mean_jaccard"])
    with pytest.raises(Exception, match="no optional measure named rank; --with takes: cka, ranks"):
        table2(con, k=5, with_=("rank",))


def test_two_lists_of_one_example_and_model_are_refused(store_dir):
    # a part (from a bundle, say) listing example idx 0 twice for model a
    store = Store(store_dir)
    write_lists(store, {"b": {0: [2, 1]}})
    with store.run("test", {}) as run:
        table = pa.table(
            {"example_id": ["x0", "x0"], "idx": pa.array([0, 0], pa.int64()), "neighbors": [[1, 2], [2, 1]]}
        )
        run.write("neighbors", {"model": "a", "stage": "finetuned", "dataset": "toy"}, table)
    with pytest.raises(QueryError, match="two neighbour lists of example idx 0 for model 'a'"):
        knn.agreement(connect(store), [1])


def test_a_null_id_in_a_list_is_refused_not_counted(store_dir):
    # SQL reads a list as a set without its nulls; the kernel must not count a null as an id
    store = Store(store_dir)
    write_lists(store, {"a": {0: [1, 2], 1: [0, 2]}, "b": {0: [1, None], 1: [2, 0]}})
    with pytest.raises(QueryError, match=r"example idx 0 for model 'b' \(toy, finetuned\) holds a null id"):
        knn.agreement(connect(store), [2])


def test_sparse_and_huge_idx_values_cost_no_memory(store_dir):
    # idx values far apart (a hostile part): the kernel works on the examples present
    store = Store(store_dir)
    far = 2**62
    write_lists(store, {"a": {0: [9, 5], far: [0, 5]}, "b": {0: [5, 9], far: [0, 7]}})
    con = connect(store)
    [row] = knn.agreement(con, [2]).to_pylist()
    [expected] = con.sql("select n, mean_jaccard from knn_agreement(2)").fetchall()
    assert (row["n"], row["mean_jaccard"]) == pytest.approx(expected)
    assert expected == pytest.approx((2, (1 + 1 / 3) / 2))


def test_the_sweep_reads_every_k_at_once_and_takes_ranks(store_dir):
    store, _ = random_store(store_dir, seed=7)
    con = connect(store)
    from ce.query.compare import sweep

    rows = sweep(con, [1, 3, 5], floors=False, with_=("ranks",)).rows()
    got = {
        (r["characteristic"], r["dataset"], tuple(sorted((r["model_i"], r["model_j"]))), r["k"]): r
        for r in rows
    }
    for k in (1, 3, 5):
        for r in (
            con.sql(f"select * from knn_agreement({k}) where stage = 'finetuned'")
            .to_arrow_table()
            .to_pylist()
        ):
            pair = (r["model_i"], r["model_j"])
            assert got["repr_after", r["dataset"], pair, k]["jaccard"] == pytest.approx(r["mean_jaccard"])
            assert got["ranks_after", r["dataset"], pair, k]["jaccard"] == pytest.approx(
                r["mean_rank_rho"], nan_ok=True
            )
    assert not any(r["characteristic"].startswith("ranks") for r in sweep(con, [3], floors=False).rows())
    from click.testing import CliRunner

    from ce.cli import cli

    out = CliRunner().invoke(
        cli, ["sweep", "--k", "3", "--with", "ranks", "--store", str(store_dir), "--format", "csv"]
    )
    assert out.exit_code == 0 and "ranks_after" in out.stdout
    out = CliRunner().invoke(cli, ["sweep", "--k", "3", "--with", "cka", "--store", str(store_dir)])
    assert out.exit_code == 1 and "CKA does not depend on k" in out.output
    out = CliRunner().invoke(cli, ["compare", "--table", "3", "--with", "ranks", "--store", str(store_dir)])
    assert out.exit_code == 1 and "--with adds measures to Table 2" in out.output
    import ce

    session = ce.open(store_dir)  # the API takes one name as well as several, and refuses alike
    assert {r["characteristic"] for r in session.sweep([3], with_="ranks").rows()} >= {"ranks_after"}
    with pytest.raises(CeError, match="CKA does not depend on k"):
        session.sweep([3], with_=("cka",))


def test_a_thread_count_that_is_not_a_number_is_one_clear_error():
    import os
    import subprocess
    import sys

    env = os.environ | {"CE_THREADS": "two"}
    code = "from ce.query import knn_compiled"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "CE_THREADS is 'two', not a number of threads" in out.stderr


def test_a_sweep_larger_than_the_free_disk_stops_before_it_starts(store_dir, monkeypatch):
    import shutil

    from click.testing import CliRunner

    from ce.cli import cli
    from ce.query import sql

    store, _ = random_store(store_dir, seed=1)
    with (
        store.run("test", {}) as run,
        run.part_writer(
            "ood_scores", {"model": "a", "stage": "finetuned", "bank": "toy", "dataset": "other"}
        ) as w,
    ):
        n = 25
        w.write(
            pa.table(
                {
                    "example_id": [str(i) for i in range(n)],
                    "role": ["test"] * n,
                    "source": ["other"] * n,
                    "distances": [[0.1 * i, 0.2 * i, 0.3 * i] for i in range(n)],
                }
            )
        )
    before = sorted(p.relative_to(store_dir) for p in store_dir.rglob("*"))
    rows = 25  # the sweep's joins carry the OOD rows; Table 2 with --ci the lists per pair
    room = shutil._ntuple_diskusage(
        10**9, 10**9 - rows * sql.SPILL_ROW_BYTES + 1, rows * sql.SPILL_ROW_BYTES - 1
    )
    monkeypatch.setattr(sql.shutil, "disk_usage", lambda folder: room)
    for args in (["sweep", "--k", "3"], ["compare", "--table", "2", "--k", "3", "--ci", "0.9"]):
        out = CliRunner().invoke(cli, [*args, "--store", str(store_dir)])
        assert out.exit_code == 1, out.output
        assert out.output.count("\n") == 1 and "may spill up to" in out.output
        assert "CE_TEMP_DIR" in out.output
        assert "Traceback" not in out.output
    assert sorted(p.relative_to(store_dir) for p in store_dir.rglob("*")) == before
    # one byte more and the sweep runs: the lists it streams in blocks are not counted
    room = shutil._ntuple_diskusage(10**9, 10**9 - rows * sql.SPILL_ROW_BYTES, rows * sql.SPILL_ROW_BYTES)
    out = CliRunner().invoke(cli, ["sweep", "--k", "3", "--store", str(store_dir), "--format", "csv"])
    assert out.exit_code == 0, out.output
