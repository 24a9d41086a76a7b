"""Bootstrap intervals and McNemar's test on Table 2."""

from __future__ import annotations

import math

import pytest

import ce
from ce.store.errors import CeError

from .test_sql import write_neighbors, write_store


def rows(store, **kw) -> list[dict]:
    return ce.open(store).table2(k=1, tpr=0.5, **kw).rows()


def test_mcnemar_p_value_hand_checked(store_dir):
    store = write_store(store_dir, {"a": {"x1", "x2"}, "b": {"x2", "x3"}})
    [r] = rows(store)
    assert r["errors_mcnemar_chi2"] == pytest.approx(0.5)
    assert r["errors_mcnemar_p"] == pytest.approx(math.erfc(0.5))  # chi2 1 df: erfc(sqrt(x/2))


def test_intervals_hold_the_estimate_are_seeded_and_degenerate_when_certain(store_dir):
    store = write_store(store_dir, {"a": {"x1", "x2"}, "b": {"x2", "x3"}, "c": {"x1", "x2"}})
    write_neighbors(
        store, {"a": [[1, 2], [0, 2], [0, 1]], "b": [[2, 1], [0, 2], [1, 0]], "c": [[1, 2], [0, 2], [0, 1]]}
    )
    first = {(r["model_i"], r["model_j"]): r for r in rows(store, ci=0.9, replicates=200)}
    again = {(r["model_i"], r["model_j"]): r for r in rows(store, ci=0.9, replicates=200)}
    assert first == again
    for r in first.values():
        for column in ("errors", "repr_after"):
            assert r[f"{column}_lo"] <= r[column] + 1e-12 <= r[f"{column}_hi"] + 2e-12
    same = first[("a", "c")]  # identical errors and neighbour lists: no uncertainty
    assert (same["errors_lo"], same["errors_hi"]) == (1.0, 1.0)
    assert (same["repr_after_lo"], same["repr_after_hi"]) == (1.0, 1.0)


def test_bad_levels(store_dir):
    store = write_store(store_dir, {"a": {"x1"}, "b": {"x2"}})
    with pytest.raises(CeError, match="ci 1.5 must lie strictly between 0 and 1"):
        rows(store, ci=1.5)
    with pytest.raises(CeError, match="at least 10 replicates"):
        rows(store, ci=0.95, replicates=3)


def test_the_seed_changes_the_resamples(store_dir):
    import random

    import pyarrow as pa

    from ce.store import Store

    rng = random.Random(0)
    ids = [f"e{i}" for i in range(60)]
    store = Store(store_dir)
    with store.run("test", {}) as run:
        for model in ("a", "b"):
            run.write(
                "predictions",
                {"model": model, "dataset": "toy"},
                pa.table({"example_id": ids, "correct": [rng.random() < 0.5 for _ in ids]}),
            )
    bounds = {seed: rows(store, ci=0.9, replicates=100, seed=seed)[0] for seed in (0, 1)}
    assert (bounds[0]["errors_lo"], bounds[0]["errors_hi"]) != (
        bounds[1]["errors_lo"],
        bounds[1]["errors_hi"],
    )
    assert bounds[0]["errors_hi"] - bounds[0]["errors_lo"] > 0.05


def test_slices_by_label_hand_checked(store_dir):

    store = write_store(store_dir, {"a": {"x1", "x2"}, "b": {"x2", "x3"}})
    write_neighbors(store, {"a": [[1, 2], [0, 2], [0, 1]], "b": [[2, 1], [0, 2], [1, 0]]})
    got = {
        (r["characteristic"], r["slice"]): (r["n"], r["jaccard"])
        for r in ce.open(store).sliced("label", k=1).rows()
    }
    # labels: x1 -> 0, x2 and x3 -> 1. errors: x1 only a wrong -> 0; x2 both, x3 only b -> 1/2
    assert got[("errors", "label 0")] == (1, 0.0)
    assert got[("errors", "label 1")] == (2, 0.5)
    # k = 1 neighbour Jaccards: x1 0, x2 1, x3 0
    assert got[("repr_after", "label 0")] == (1, 0.0)
    assert got[("repr_after", "label 1")] == (2, 0.5)
    with pytest.raises(CeError, match="unknown slice 'lable' \\(did you mean label"):
        ce.open(store).sliced("lable")
