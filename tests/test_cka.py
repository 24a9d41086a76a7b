"""Linear CKA from the store against the n x n kernel formulas computed independently."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

import ce
from ce.cli import cli
from ce.query import cka
from ce.store import Store
from ce.store.errors import NotFound


def kernel_cka(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Both estimators the textbook way, on n x n Gram matrices."""
    n = len(x)
    k, l_ = x @ x.T, y @ y.T
    h = np.eye(n) - 1 / n
    biased = np.trace(k @ h @ l_ @ h) / np.sqrt(np.trace(k @ h @ k @ h) * np.trace(l_ @ h @ l_ @ h))

    def hsic(a, b):
        a, b = a.copy(), b.copy()
        np.fill_diagonal(a, 0)
        np.fill_diagonal(b, 0)
        one = np.ones(n)
        return (
            np.trace(a @ b)
            + (one @ a @ one) * (one @ b @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (one @ a @ b @ one)
        ) / (n * (n - 3))

    return float(biased), float(hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_)))


def write(root, vectors: dict[str, np.ndarray], ids=None) -> Store:
    store = Store(root)
    with store.run("test", {}) as run:
        for model, v in vectors.items():
            keep = ids or [f"x{i}" for i in range(len(v))]
            vector = pa.FixedSizeListArray.from_arrays(pa.array(v.astype(np.float32).reshape(-1)), v.shape[1])
            part = pa.table({"example_id": keep, "vector": vector.cast(pa.list_(pa.float32()))})
            run.write("embeddings", {"model": model, "stage": "finetuned", "dataset": "toy"}, part)
    return store


@pytest.fixture
def vectors():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    return {
        "a": x,
        "b": (x @ rng.normal(size=(6, 4)) + 0.7 * rng.normal(size=(40, 4)) + 2).astype(np.float32),
        "c": rng.normal(size=(40, 5)).astype(np.float32),
    }


def test_both_estimators_equal_the_kernel_formulas(store_dir, vectors):
    write(store_dir, vectors)
    got = {(r["model_i"], r["model_j"]): r for r in ce.open(store_dir).cka().rows()}
    assert sorted(got) == [("a", "b"), ("a", "c"), ("b", "c")]
    for (i, j), r in got.items():
        biased, unbiased = kernel_cka(vectors[i].astype(np.float64), vectors[j].astype(np.float64))
        assert r["n"] == 40 and r["stage"] == "finetuned" and r["dataset"] == "toy"
        assert r["cka"] == pytest.approx(biased, rel=1e-9)
        assert r["cka_unbiased"] == pytest.approx(unbiased, rel=1e-9)


def test_blocks_of_any_size_give_the_same_sums(store_dir, vectors):
    write(store_dir, vectors)
    con = ce.open(store_dir).con
    whole = cka.pair_sums(con, "finetuned", "toy", "a", "b")
    small = cka.pair_sums(con, "finetuned", "toy", "a", "b", block=7)
    assert small.n == whole.n == 40
    assert cka.biased(small) == pytest.approx(cka.biased(whole), rel=1e-12)
    assert cka.unbiased(small) == pytest.approx(cka.unbiased(whole), rel=1e-12)


def test_the_unbiased_estimator_is_near_zero_for_independent_inputs(store_dir):
    rng = np.random.default_rng(0)
    write(store_dir, {"p": rng.normal(size=(3000, 8)), "q": rng.normal(size=(3000, 12))})
    [r] = ce.open(store_dir).cka().rows()
    assert abs(r["cka_unbiased"]) < 0.002  # the biased one stays above 0 by about sqrt(d1 d2) / n
    assert r["cka"] > 2 * abs(r["cka_unbiased"])


def test_only_the_examples_both_embedded_count(store_dir, vectors):
    store = write(store_dir, {"a": vectors["a"]})
    with store.run("test", {}) as run:  # b embeds 30 of the 40 examples
        v = vectors["b"][:30]
        vector = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), 4).cast(pa.list_(pa.float32()))
        part = pa.table({"example_id": [f"x{i}" for i in range(30)], "vector": vector})
        run.write("embeddings", {"model": "b", "stage": "finetuned", "dataset": "toy"}, part)
    [r] = ce.open(store_dir).cka().rows()
    biased, unbiased = kernel_cka(vectors["a"][:30].astype(np.float64), vectors["b"][:30].astype(np.float64))
    assert r["n"] == 30 and r["cka"] == pytest.approx(biased, rel=1e-9)


def test_constant_and_tiny_inputs_are_empty_not_zero(store_dir):
    write(store_dir, {"a": np.ones((3, 2)), "b": np.arange(6.0).reshape(3, 2)})
    [r] = ce.open(store_dir).cka().rows()
    assert r["n"] == 3 and r["cka"] is None and r["cka_unbiased"] is None


def test_the_cli_table_and_an_unknown_dataset(store_dir, vectors):
    write(store_dir, vectors)
    out = CliRunner().invoke(cli, ["compare", "--table", "cka", "--store", str(store_dir), "--format", "csv"])
    assert out.exit_code == 0 and out.stdout.splitlines()[0].startswith('"stage","dataset","model_i"')
    with pytest.raises(NotFound, match="dataset 'toyy'"):
        ce.open(store_dir).cka(dataset="toyy")


def test_table2_with_cka_holds_the_cka_tables_values(store_dir, vectors):
    write(store_dir, vectors)
    s = ce.open(store_dir)
    assert "cka_after" not in s.table2().relation.columns  # an optional measure: asked for
    expected = {tuple(sorted((r["model_i"], r["model_j"]))): r for r in s.cka().rows()}
    rows = s.table2(with_=("cka",)).rows()
    assert len(rows) == 3
    for row in rows:
        e = expected[tuple(sorted((row["model_i"], row["model_j"])))]
        assert row["cka_after"] == pytest.approx(e["cka"])
        assert row["cka_after_unbiased"] == pytest.approx(e["cka_unbiased"])
        assert (row["cka_after_n"], row["cka_after_few"]) == (40, False)
        assert row["cka_before"] is None  # no pretrained embeddings: empty, not 0
    out = CliRunner().invoke(
        cli, ["compare", "--table", "2", "--with", "cka", "--store", str(store_dir), "--format", "csv"]
    )
    assert out.exit_code == 0 and '"cka_after"' in out.stdout.splitlines()[0]
    shown = CliRunner().invoke(cli, ["compare", "--table", "2", "--with", "cka", "--store", str(store_dir)])
    assert shown.exit_code == 0 and "linear CKA after fine-tuning" in shown.stdout
    wrong = CliRunner().invoke(cli, ["compare", "--with", "ckaa", "--store", str(store_dir)])
    assert wrong.exit_code == 2 and "'ckaa' is not one of 'cka', 'ranks'" in wrong.output
