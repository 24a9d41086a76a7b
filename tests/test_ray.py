"""--engine ray on a local Ray cluster started here: the store equals one local run."""

from __future__ import annotations

import numpy as np
import pytest

from ce.extractors.distributed import attack_on_ray, extract_on_ray, start_ray
from ce.extractors.extract import ExtractOptions, extract
from ce.query.sql import connect
from ce.store import Store
from ce.store.errors import CeError

from .test_attack import options as attack_options
from .test_shards import contents

pytestmark = pytest.mark.usefixtures("data_dir")


@pytest.fixture(scope="module")
def ray_cluster():
    ray = start_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def test_extract_on_ray_equals_one_local_run(ray_cluster, tiny_models, tmp_path):
    opts = ExtractOptions(limit=23, batch_size=1, k_max=5)  # batch 1: identical floats
    local, on_ray = Store(tmp_path / "local"), Store(tmp_path / "ray")
    extract(local, str(tiny_models["classification"]), "sst2-dev", opts, name="tiny", progress=False)
    results = extract_on_ray(
        on_ray, str(tiny_models["classification"]), "sst2-dev", opts, shards=3, name="tiny", progress=False
    )
    assert [r.examples for r in results] == [7, 8, 8]
    assert len({r.series for r in results}) == 1
    got, expected = contents(on_ray), contents(local)
    # Ray runs each task with one torch thread, so float sums may round differently
    assert got["predictions"] == expected["predictions"]
    vectors = [np.array([r["vector"] for r in c["embeddings"]]) for c in (got, expected)]
    np.testing.assert_allclose(*vectors, rtol=1e-5, atol=1e-6)
    assert [r["neighbors"] for r in got["neighbors"]] == [r["neighbors"] for r in expected["neighbors"]]
    assert sorted(p.shard for p in on_ray.live_parts()["predictions"]) == ["0/3", "1/3", "2/3"]
    assert [r["command"] for r in on_ray.runs()].count("neighbors") == 1  # searched once, by the driver


def test_attack_on_ray_equals_one_local_run(ray_cluster, sharp_classifier, tiny_models, tmp_path):
    local, on_ray = Store(tmp_path / "local"), Store(tmp_path / "ray")
    opts = attack_options(tiny_models, limit=6, attack="deepwordbug")
    from ce.extractors.attack import run_attack

    run_attack(local, str(sharp_classifier), "sst2-dev", opts, progress=False)
    infos = attack_on_ray(on_ray, str(sharp_classifier), "sst2-dev", opts, shards=2, progress=False)
    assert [i.examples for i in infos] == [3, 3]
    sql = "select * exclude (run_id) from attacks order by example_id"
    assert connect(on_ray).sql(sql).fetchall() == connect(local).sql(sql).fetchall()


def test_an_error_in_a_task_is_the_error_itself(ray_cluster, store_dir, tmp_path):
    with pytest.raises(CeError, match="no-such-model"):
        extract_on_ray(
            Store(store_dir), str(tmp_path / "no-such-model"), "sst2-dev", ExtractOptions(), shards=2
        )
    assert not any(r["status"] == "complete" for r in Store(store_dir).runs())
    with pytest.raises(CeError, match="drop --shard"):
        extract_on_ray(Store(store_dir), "minilm", "sst2-dev", ExtractOptions(shard="0/2"))
