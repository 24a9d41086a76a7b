"""Neighbour lists and OOD sets against an independent numpy computation, to 1e-9."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

import ce
from ce.cli import cli
from ce.extractors.datasets import load_dataset
from ce.extractors.neighbors import NeighborSearch, recompute_neighbors
from ce.extractors.ood import OodOptions, kth_distances, run_ood, split_groups
from ce.query.sql import connect
from ce.store import Store
from ce.store.errors import CeError, NotFound

from .conftest import needs_data, snapshot

N = 80


def write_dataset(tmp_path, name: str, n: int, titles: bool = False):
    """A CSV dataset (or a SQuAD JSON one with article titles) of n examples."""
    if titles:
        import json

        paras = [
            {
                "title": f"article-{a}",
                "paragraphs": [
                    {
                        "context": "c",
                        "qas": [
                            {"id": f"{name}-{a}-{q}", "question": "q", "answers": [], "is_impossible": True}
                            for q in range(n // 10)
                        ],
                    }
                ],
            }
            for a in range(10)
        ]
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"data": paras}))
    else:
        path = tmp_path / f"{name}.csv"
        path.write_text("id,text,label\n" + "".join(f"{name}-{i},t{i},0\n" for i in range(n)))
    return str(path)


def put_embeddings(
    store: Store, model: str, dataset_path: str, vectors: np.ndarray, stage: str = "finetuned"
) -> None:
    data = load_dataset(dataset_path)
    with store.run("test", {}, dataset_fingerprint=data.fingerprint) as run:
        if not store.has("examples", dataset=data.name):
            run.write("examples", {"dataset": data.name}, data.table)
        column = pa.FixedSizeListArray.from_arrays(
            pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1]
        )
        run.write(
            "embeddings",
            {"model": model, "stage": stage, "dataset": data.name},
            pa.table({"example_id": data.table["example_id"], "vector": column}),
        )


def numpy_neighbors(x: np.ndarray, k: int) -> list[set[int]]:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    order = np.lexsort((np.tile(np.arange(len(x)), (len(x), 1)), -sims), axis=1)
    return [set(row[:k].tolist()) for row in order]


@pytest.fixture
def three_models(tmp_path, store_dir):
    rng = np.random.default_rng(7)
    path = write_dataset(tmp_path, "points", N)
    base = rng.normal(size=(N, 8)).astype(np.float32)
    base[5] = base[4]  # exact duplicates: a tie that must break by index
    vectors = {
        "a": base,
        "b": base + 0.5 * rng.normal(size=base.shape).astype(np.float32),
        "c": rng.normal(size=(N, 5)).astype(np.float32),
    }
    store = Store(store_dir)
    for model, x in vectors.items():
        put_embeddings(store, model, path, x)
        recompute_neighbors(store, model, "points", k_max=30, progress=False)
    return store, vectors


@pytest.mark.parametrize("k", [1, 5, 10, 30])
def test_knn_agreement_equals_numpy(three_models, k):
    store, vectors = three_models
    got = {
        (r["model_i"], r["model_j"]): r
        for r in connect(store).sql(f"select * from knn_agreement({k})").to_arrow_table().to_pylist()
    }
    sets = {m: numpy_neighbors(x, k) for m, x in vectors.items()}
    for a, b in [("a", "b"), ("a", "c"), ("b", "c")]:
        jac = np.array([len(sa & sb) / len(sa | sb) for sa, sb in zip(sets[a], sets[b], strict=True)])
        mutual = np.array([len(sa & sb) / k for sa, sb in zip(sets[a], sets[b], strict=True)])
        r = got[(a, b)]
        assert r["n"] == N
        assert r["mean_jaccard"] == pytest.approx(jac.mean(), abs=1e-9)
        assert r["var_jaccard"] == pytest.approx(jac.var(), abs=1e-9)
        assert r["mutual_knn"] == pytest.approx(mutual.mean(), abs=1e-9)


def test_stored_lists_rank_by_similarity_and_break_ties_by_index(three_models):
    store, vectors = three_models
    rows = (
        connect(store)
        .sql("select idx, neighbors, similarities from neighbors where model = 'a' order by idx")
        .to_arrow_table()
        .to_pylist()
    )
    assert all(r["idx"] not in r["neighbors"] for r in rows)
    assert all(np.all(np.diff(r["similarities"]) <= 1e-6) for r in rows)
    # 4 and 5 are the same point: each is the other's nearest neighbour, similarity 1
    assert rows[4]["neighbors"][0] == 5 and rows[5]["neighbors"][0] == 4
    for r in rows:  # wherever both appear, the smaller index comes first
        if 4 in r["neighbors"] and 5 in r["neighbors"]:
            assert r["neighbors"].index(4) < r["neighbors"].index(5)


def test_hnsw_records_its_recall():
    x = np.random.default_rng(0).normal(size=(500, 16)).astype(np.float32)
    approx = NeighborSearch(x.copy(), 10, "hnsw")
    approx_idx, _ = approx.all()
    assert 0.9 <= approx.provenance["recall_at_10"] <= 1.0
    exact_idx, _ = NeighborSearch(x.copy(), 10, "exact").all()
    assert exact_idx.shape == approx_idx.shape == (500, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx_idx, exact_idx, strict=True)])
    assert overlap == pytest.approx(approx.provenance["recall_at_10"], abs=0.05)


def numpy_ood(bank, val, test, k, tpr):
    def kth(q):
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        bn = bank / np.linalg.norm(bank, axis=1, keepdims=True)
        d = np.sqrt(np.maximum(0, 2 - 2 * (qn.astype(np.float64) @ bn.T.astype(np.float64))))
        return np.sort(d, axis=1)[:, k - 1]

    threshold = np.quantile(kth(val), tpr)
    return set(np.flatnonzero(kth(test) > threshold).tolist())


def test_ood_agreement_equals_numpy(tmp_path, store_dir):
    rng = np.random.default_rng(3)
    paths = {role: write_dataset(tmp_path, role, n) for role, n in [("bank", 120), ("val", 40), ("test", 50)]}
    store = Store(store_dir)
    vecs = {}
    for model, dim in [("a", 6), ("b", 6)]:
        vecs[model] = {
            role: rng.normal(size=(n, dim)).astype(np.float32) + (1.5 if role == "test" else 0)
            for role, n in [("bank", 120), ("val", 40), ("test", 50)]
        }
        for role, path in paths.items():
            put_embeddings(store, model, path, vecs[model][role])
        run_ood(
            store, model, paths["bank"], paths["val"], paths["test"], OodOptions(k_max=20), progress=False
        )
    for k, tpr in [(1, 0.95), (5, 0.9), (20, 0.5)]:
        [r] = (
            connect(store).sql(f"select * from ood_agreement({k}, tpr := {tpr})").to_arrow_table().to_pylist()
        )
        sets = {m: numpy_ood(v["bank"], v["val"], v["test"], k, tpr) for m, v in vecs.items()}
        assert (r["ood_i"], r["ood_j"]) == (len(sets["a"]), len(sets["b"]))
        expected = len(sets["a"] & sets["b"]) / len(sets["a"] | sets["b"])
        assert r["jaccard"] == pytest.approx(expected, abs=1e-9)
        assert r["ood_rate_i"] == pytest.approx(len(sets["a"]) / 50, abs=1e-9)
        assert (r["bank"], r["id_val"], r["dataset"]) == ("bank", "val", "test")


def test_kth_distances_are_sorted_euclidean_on_the_sphere():
    rng = np.random.default_rng(1)
    bank = rng.normal(size=(30, 4)).astype(np.float32)
    q = rng.normal(size=(5, 4)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d = kth_distances(q, bank, 30)
    brute = np.sort(np.linalg.norm(q[:, None] - bank[None], axis=2), axis=1)
    np.testing.assert_allclose(d, brute, atol=1e-5)


def test_split_keeps_whole_articles_and_is_deterministic(tmp_path):
    data = load_dataset(write_dataset(tmp_path, "articles", 100, titles=True))
    held = split_groups(data, 0.3)
    assert np.array_equal(held, split_groups(data, 0.3))
    titles = np.array(data.table["title"].to_pylist())
    for t in set(titles):
        assert len(set(held[titles == t])) == 1  # an article is all bank or all id-val
    assert 0 < held.sum() < len(held)


def test_ood_with_a_split_bank(tmp_path, store_dir):
    rng = np.random.default_rng(5)
    bank = write_dataset(tmp_path, "arts", 100, titles=True)
    test = write_dataset(tmp_path, "other", 30)
    store = Store(store_dir)
    put_embeddings(store, "a", bank, rng.normal(size=(100, 4)).astype(np.float32))
    put_embeddings(store, "a", test, rng.normal(size=(30, 4)).astype(np.float32))
    info = run_ood(store, "a", bank, None, test, OodOptions(k_max=5, val_fraction=0.3), progress=False)
    held = split_groups(load_dataset(bank), 0.3).sum()
    assert (info.bank, info.id_val, info.test) == (100 - held, held, 30)
    roles = dict(connect(store).sql("select role, count(*) from ood_scores group by role").fetchall())
    assert roles == {"id_val": held, "test": 30}


LIMIT_MESSAGE = (
    "--limit 300 keeps the first 300 questions of squad2-dev, from 2 articles (Normans,"
    " Computational_complexity_theory); the held-out fraction 0.2 of articles chooses none of"
    " them: raise --limit, pass --id-val DATASET, or change --val-fraction"
)


@needs_data("squad2/dev-v2.0.json", "ood/mrqa_NewsQA_sample.jsonl")
def test_an_empty_split_names_the_examples_limit_kept(tiny_models, store_dir):
    model = str(tiny_models["qa"])
    with pytest.raises(CeError) as error:
        run_ood(
            Store(store_dir),
            model,
            "squad2-dev",
            None,
            "newsqa-sample",
            OodOptions(limit=300, sample="first"),  # a stratified sample spans every article
            progress=False,
        )
    assert str(error.value) == LIMIT_MESSAGE
    assert not store_dir.exists()  # refused before any forward pass
    args = ["ood", "-m", model, "--bank", "squad2-dev", "-d", "newsqa-sample", "--limit", "300"]
    args += ["--sample", "first"]
    result = CliRunner().invoke(cli, [*args, "--store", str(store_dir)])
    assert (result.exit_code, result.output) == (1, f"Error: {LIMIT_MESSAGE}\n")


@needs_data("squad2/dev-v2.0.json", "ood/mrqa_NewsQA_sample.jsonl")
def test_an_empty_split_names_the_examples_the_store_holds(store_dir):
    """Embeddings extracted earlier with --limit: the split of what is stored names them."""
    rng = np.random.default_rng(2)
    store = Store(store_dir)
    squad, news = load_dataset("squad2-dev"), load_dataset("newsqa-sample")
    with store.run("test", {}) as run:
        for data, n in ((squad, 300), (news, len(news))):
            run.write("examples", {"dataset": data.name}, data.table)
            vectors = pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * 4), pa.float32()), 4)
            ids = data.table["example_id"].slice(0, n)
            run.write(
                "embeddings",
                {"model": "a", "stage": "finetuned", "dataset": data.name},
                pa.table({"example_id": ids, "vector": vectors}),
            )
    with pytest.raises(CeError) as error:
        run_ood(store, "a", "squad2-dev", None, "newsqa-sample", progress=False)
    assert str(error.value) == (
        "the store holds finetuned embeddings of only 300 of the 11873 questions of squad2-dev,"
        " from 2 articles (Normans, Computational_complexity_theory); the held-out fraction 0.2"
        " of articles chooses none of them: embed more of them (ce extract --dataset squad2-dev"
        " --stage finetuned), pass --id-val DATASET, or change --val-fraction"
    )


@pytest.mark.parametrize(
    ("fraction", "message"),
    [
        (1e-9, "--val-fraction 1e-09 holds out none of the 10 articles of arts, leaving no id-val examples"),
        (
            0.999999,
            "--val-fraction 0.999999 holds out all of the 10 articles of arts, leaving no bank examples",
        ),
    ],
)
def test_an_empty_split_of_a_whole_bank_names_the_fraction(tmp_path, store_dir, fraction, message):
    rng = np.random.default_rng(5)
    bank, test = write_dataset(tmp_path, "arts", 100, titles=True), write_dataset(tmp_path, "other", 30)
    store = Store(store_dir)
    put_embeddings(store, "a", bank, rng.normal(size=(100, 4)).astype(np.float32))
    put_embeddings(store, "a", test, rng.normal(size=(30, 4)).astype(np.float32))
    with pytest.raises(CeError) as error:
        run_ood(store, "a", bank, None, test, OodOptions(val_fraction=fraction), progress=False)
    assert str(error.value) == f"{message}; choose another --val-fraction, or pass --id-val DATASET"


def test_mismatched_dimensions_write_nothing(tmp_path, store_dir):
    rng = np.random.default_rng(5)
    bank, test = write_dataset(tmp_path, "bank", 20), write_dataset(tmp_path, "test", 10)
    store = Store(store_dir)
    put_embeddings(store, "a", bank, rng.normal(size=(20, 4)).astype(np.float32))
    put_embeddings(store, "a", test, rng.normal(size=(10, 3)).astype(np.float32))
    before = snapshot(store_dir)
    with pytest.raises(CeError, match="embedding dimensions differ"):
        run_ood(store, "a", bank, None, test, OodOptions(k_max=3, val_fraction=0.5), progress=False)
    assert snapshot(store_dir) == before


def test_missing_embeddings_and_bad_k(three_models):
    store, _ = three_models
    before = snapshot(store.root)
    with pytest.raises(NotFound, match="no pretrained embeddings of a on points"):
        recompute_neighbors(store, "a", "points", stage="pretrained", progress=False)
    with pytest.raises(CeError, match="above K_max = 30"):
        ce.open(store).table2(k=31)
    with pytest.raises(CeError, match="strictly between 0 and 1"):
        ce.open(store).sweep([5], tpr=1.0)
    assert snapshot(store.root) == before


def test_sweep_has_a_row_per_pair_and_k(three_models):
    store, _ = three_models
    rows = ce.open(store).sweep([1, 10, 30]).rows()
    assert len(rows) == 3 * 3  # three pairs, three k, one stage
    assert {r["characteristic"] for r in rows} == {
        "repr_after"
    }  # the measure's name, as in Table 2 and the slices
    # the same numbers as the macro
    [a_b_10] = [r for r in rows if (r["model_i"], r["model_j"], r["k"]) == ("a", "b", 10)]
    [direct] = (
        connect(store)
        .sql("select mean_jaccard from knn_agreement(10) where model_i = 'a' and model_j = 'b'")
        .fetchall()
    )
    assert a_b_10["jaccard"] == pytest.approx(direct[0], abs=1e-12)  # kernel vs SQL: same value


def test_ood_shards_equal_one_run_and_need_stored_embeddings(tmp_path):
    rng = np.random.default_rng(8)
    paths = {role: write_dataset(tmp_path, role, n) for role, n in [("bank", 60), ("val", 21), ("test", 25)]}
    whole, sharded = Store(tmp_path / "whole"), Store(tmp_path / "sharded")
    for path in paths.values():
        vectors = rng.normal(size=(load_dataset(path).table.num_rows, 5)).astype(np.float32)
        for store in (whole, sharded):
            put_embeddings(store, "a", path, vectors)
    run_ood(whole, "a", paths["bank"], paths["val"], paths["test"], OodOptions(k_max=7), progress=False)
    for i in (1, 0, 2):
        assert connect(sharded).sql("select count(*) from ood_scores").fetchall() == [(0,)]
        opts = OodOptions(k_max=7, shard=f"{i}/3")
        run_ood(sharded, "a", paths["bank"], paths["val"], paths["test"], opts, progress=False)
    sql = "select * exclude (run_id) from ood_scores order by role, example_id"
    assert connect(sharded).sql(sql).fetchall() == connect(whole).sql(sql).fetchall()
    missing = write_dataset(tmp_path, "unseen", 10)
    with pytest.raises(CeError, match="ce ood --shard reads stored embeddings"):
        run_ood(sharded, "a", paths["bank"], paths["val"], missing, OodOptions(shard="0/2"), progress=False)
