"""Replica groups that travel or collide: bundles keep and rename them, refuse to merge a
bundle's group into one this store made, and ce refuses ambiguous or hostile group names.
Also: the floor's bootstrap gives the same numbers whatever the size of its weight chunks."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

import ce
import ce.query.floor as floor
from ce.extractors.replicas import store_groups
from ce.store import Store
from ce.store.bundle import BundleError, Renames, export_bundle, import_bundle
from ce.store.errors import CeError, NotFound

from .conftest import snapshot

IDS = [f"x{i}" for i in range(12)]
GOLD = [i % 2 for i in range(12)]
ANSWERS = {  # model -> (group, seed, the examples it gets wrong)
    "r-s0": ("r", 0, {0, 1, 2}),
    "r-s1": ("r", 1, {0, 1, 3}),
    "r-s2": ("r", 2, {0, 4, 5}),
    "v-s0": ("v", 0, {0, 6, 7, 8}),
    "v-s1": ("v", 1, {1, 6, 7, 9}),
}


def write(root, models=ANSWERS, extra=()) -> Store:
    store = Store(root)
    with store.run("test", {}) as run:
        run.write(
            "examples",
            {"dataset": "toy"},
            pa.table({"example_id": IDS, "idx": list(range(12)), "label": GOLD}),
        )
    for model, (group, seed, wrong) in models.items():
        answers = [1 - g if i in wrong else g for i, g in enumerate(GOLD)]
        with store.run("test", {}, model=model, replica={"group": group, "seed": seed}) as run:
            part = pa.table(
                {"example_id": IDS, "pred_label": answers, "correct": [i not in wrong for i in range(12)]}
            )
            run.write("predictions", {"model": model, "dataset": "toy"}, part)
    for model in extra:  # results without a group
        with store.run("test", {}, model=model) as run:
            part = pa.table({"example_id": IDS, "pred_label": GOLD, "correct": [True] * 12})
            run.write("predictions", {"model": model, "dataset": "toy"}, part)
    return store


def members(root) -> list[tuple]:
    return ce.open(root).query("select model, replica_group, seed from replicas order by model").fetchall()


def test_a_bundle_keeps_groups_and_replica_marks(tmp_path):
    source = write(tmp_path / "a", extra=["solo"])
    with ce.open(source) as s:
        s.mark_replica("solo", "v-s0")  # a run without parts: exported all the same
    export_bundle(source, tmp_path / "a.cebundle")
    target = Store(tmp_path / "b")
    assert import_bundle(target, tmp_path / "a.cebundle")["imported"] == 8
    assert members(tmp_path / "b") == members(tmp_path / "a")
    assert ("solo", "v", None) in members(tmp_path / "b")
    assert import_bundle(target, tmp_path / "a.cebundle") == {"imported": 0, "already_there": 8, "parts": 0}


def test_a_bundle_never_joins_a_group_this_store_made(tmp_path):
    export_bundle(write(tmp_path / "a"), tmp_path / "a.cebundle")
    here = write(
        tmp_path / "b", models={"r-x": ("r", 7, {0})} | {"keep": ("k", 0, set()), "keep2": ("k", 1, set())}
    )
    before = snapshot(here.root)
    renames = Renames(models={m: f"lab-{m}" for m in ANSWERS})
    with pytest.raises(
        BundleError, match="replica group 'r' is a group this store made .*--rename-model r=NEW"
    ):
        import_bundle(here, tmp_path / "a.cebundle", renames=renames)
    assert snapshot(here.root) == before
    import_bundle(here, tmp_path / "a.cebundle", renames=Renames(models={"r": "lab-r", "r-s0": "lab-r-s0"}))
    got = members(here.root)
    assert ("lab-r-s0", "lab-r", 0) in got and ("r-s1", "lab-r", 1) in got and ("r-x", "r", 7) in got


def test_a_bundle_giving_a_group_two_models_of_one_seed_is_refused(tmp_path):
    twins = {"r-s0": ("r", 0, {0}), "r-again": ("r", 0, {1})}
    export_bundle(write(tmp_path / "a", models=twins), tmp_path / "a.cebundle")
    with pytest.raises(BundleError, match="would both be seed 0 of replica group 'r'"):
        import_bundle(Store(tmp_path / "b"), tmp_path / "a.cebundle")
    assert not (tmp_path / "b").exists()


def test_replica_of_a_name_that_is_both_a_model_and_a_group_is_refused(tmp_path):
    write(
        tmp_path / "a",
        models={"large-s0": ("large", 0, {0}), "large-s1": ("large", 1, {1})},
        extra=["large", "x"],
    )
    with ce.open(tmp_path / "a") as s:
        with pytest.raises(
            CeError, match="large is a model of its own and also the name of the replica group of"
        ):
            s.mark_replica("x", "large")
        assert s.mark_replica("x", "large-s1") == "large"
    assert ("x", "large", None) in members(tmp_path / "a") and ("large",) not in [
        m[:1] for m in members(tmp_path / "a")
    ]


def test_a_card_nested_too_deeply_is_no_group(tmp_path):
    folder = tmp_path / "store" / "models" / "g-s0"
    folder.mkdir(parents=True)
    (folder / "ce-model.json").write_text("[" * 200_000)
    good = tmp_path / "store" / "models" / "g-s1"
    good.mkdir()
    (good / "ce-model.json").write_text(json.dumps({"replica": {"group": "g", "seed": 1}}))
    assert store_groups(Store(tmp_path / "store")) == {"g": [("g-s1", 1)]}


def test_the_bootstrap_is_the_same_in_chunks_of_any_size(tmp_path, monkeypatch):
    write(tmp_path / "a")
    whole = ce.open(tmp_path / "a").noise_floor(replicates=50).rows()
    monkeypatch.setattr(floor, "WEIGHTS_AT_ONCE", 51 * 2)  # two examples' weights at a time
    chunked = ce.open(tmp_path / "a").noise_floor(replicates=50).rows()
    assert chunked == whole and whole


def test_replicates_are_bounded(tmp_path):
    write(tmp_path / "a")
    with pytest.raises(CeError, match="at most 100000"):
        ce.open(tmp_path / "a").noise_floor(replicates=10**9)


def test_the_floor_and_the_groups_of_one_dataset(tmp_path):
    write(tmp_path / "a")
    s = ce.open(tmp_path / "a")
    assert s.noise_floor(dataset="toy").rows() == s.noise_floor().rows()
    assert s.group_agreement(dataset="toy").rows() == s.group_agreement().rows()
    with pytest.raises(NotFound, match="no predictions or neighbours for dataset 'toyy'.*did you mean"):
        s.noise_floor(dataset="toyy")
