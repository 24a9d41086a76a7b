"""Sharded extraction: N shards, run in any order, equal one unsharded run."""

from __future__ import annotations

import numpy as np
import pytest

from ce.extractors.extract import ExtractOptions, extract
from ce.query.sql import connect
from ce.store import Store
from ce.store.errors import CeError

pytestmark = pytest.mark.usefixtures("data_dir")

TABLES = {
    "predictions": "select * exclude (run_id) from predictions order by example_id",
    "embeddings": "select * exclude (run_id) from embeddings order by example_id",
    "neighbors": "select * exclude (run_id) from neighbors order by idx",
}


def contents(store: Store) -> dict[str, list]:
    con = connect(store)
    return {name: con.sql(sql).to_arrow_table().to_pylist() for name, sql in TABLES.items()}


@pytest.mark.parametrize(
    ("task", "dataset", "settings"),
    [
        ("classification", "sst2-dev", {}),
        ("qa", "squad2-dev", {"max_length": 96, "doc_stride": 32}),
    ],
)
def test_shards_together_equal_one_run(tiny_models, tmp_path, task, dataset, settings):
    # batch size 1: every input has the same shape in both runs, so the floats are identical
    opts = ExtractOptions(limit=23, batch_size=1, k_max=5, **settings)
    whole, sharded = Store(tmp_path / "whole"), Store(tmp_path / "sharded")
    extract(whole, str(tiny_models[task]), dataset, opts, name="tiny", progress=False)
    for i in (2, 0, 1):  # any order
        assert connect(sharded).sql("select count(*) from neighbors").fetchall() == [(0,)]
        shard = ExtractOptions(limit=23, batch_size=1, k_max=5, shard=f"{i}/3", **settings)
        extract(sharded, str(tiny_models[task]), dataset, shard, name="tiny", progress=False)
    expected = contents(whole)
    assert len(expected["embeddings"]) == len(expected["neighbors"]) == 23
    assert contents(sharded) == expected
    shards = sorted(p.shard for p in sharded.live_parts()["embeddings"])
    assert shards == ["0/3", "1/3", "2/3"]


def test_a_rerun_shard_replaces_itself(tiny_models, store_dir):
    store = Store(store_dir)
    for i in (0, 1, 1):
        opts = ExtractOptions(limit=10, k_max=3, shard=f"{i}/2")
        extract(store, str(tiny_models["classification"]), "sst2-dev", opts, name="tiny", progress=False)
    con = connect(store)
    assert con.sql("select count(*), count(distinct example_id) from predictions").fetchall() == [(10, 10)]
    assert con.sql("select count(*) from neighbors").fetchall() == [(10,)]


@pytest.mark.parametrize("shard", ["3/3", "x", "1/0"])
def test_bad_shard_is_refused_before_the_model_loads(tiny_models, store_dir, shard):
    with pytest.raises(CeError, match="shard"):
        extract(Store(store_dir), str(tiny_models["classification"]), "sst2-dev", ExtractOptions(shard=shard))
    assert not store_dir.exists()


def test_float16_embeddings_are_stored_half_size_and_neighbours_match_them(tiny_models, tmp_path):
    stores = {}
    for dtype in ("float32", "float16"):
        stores[dtype] = store = Store(tmp_path / dtype)
        opts = ExtractOptions(limit=60, k_max=5, vector_dtype=dtype)
        extract(store, str(tiny_models["classification"]), "sst2-dev", opts, name="tiny", progress=False)
    import pyarrow.parquet as pq

    [part] = stores["float16"].live_parts()["embeddings"]
    assert (
        str(pq.read_schema(stores["float16"].root / part.path).field("vector").type.value_type) == "halffloat"
    )
    v32, v16 = (np.array([r["vector"] for r in contents(s)["embeddings"]]) for s in stores.values())
    assert np.allclose(v32, v16, rtol=1e-3, atol=1e-3) and not np.array_equal(v32, v16)
    # the stored neighbours are those of the stored (float16) vectors: ce neighbors agrees
    from ce.extractors.neighbors import recompute_neighbors

    before = contents(stores["float16"])["neighbors"]
    recompute_neighbors(stores["float16"], "tiny", "sst2-dev", k_max=5, progress=False)
    assert contents(stores["float16"])["neighbors"] == before


def test_bf16_autocast_runs_on_cpu(tiny_models, store_dir):
    opts = ExtractOptions(limit=8, k_max=None, precision="bf16")
    result = extract(Store(store_dir), str(tiny_models["classification"]), "sst2-dev", opts, name="t")
    assert result.predictions == 8
