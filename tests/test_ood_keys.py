"""OOD runs are keyed by model, stage, bank and test set: a pretrained and a fine-tuned run
of one model, and runs against two banks, are distinct rows everywhere; a store of the
layout before stage was a key (ood_scores/model=/bank=/dataset=) still reads, exports and
imports, as the run's stage."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import ce
from ce.cli import cli
from ce.cli.report_page import render
from ce.extractors.ood import OodOptions, run_ood
from ce.query.sql import connect
from ce.store import Store
from ce.store.bundle import export_bundle, import_bundle
from ce.store.errors import StoreError

from .conftest import snapshot
from .test_knn_ood import numpy_ood, put_embeddings, write_dataset

SIZES = {"bank1": 60, "bank2": 50, "val": 20, "test": 25}
RUNS = [("bank1", "finetuned"), ("bank1", "pretrained"), ("bank2", "finetuned")]  # in this order
K, TPR = 5, 0.9


@pytest.fixture
def ood_store(tmp_path, store_dir):
    """Models a and b, each with OOD scores of test against bank1 (fine-tuned and pretrained
    features) and bank2 (fine-tuned), id-val from val; and the vectors they came from."""
    rng = np.random.default_rng(11)
    paths = {name: write_dataset(tmp_path, name, n) for name, n in SIZES.items()}
    store = Store(store_dir)
    vectors = {}
    for model in ("a", "b"):
        for stage in ("finetuned", "pretrained"):
            for name, path in paths.items():
                x = rng.normal(size=(SIZES[name], 6)).astype(np.float32) + (1.0 if name == "test" else 0.0)
                vectors[model, stage, name] = x
                put_embeddings(store, model, path, x, stage=stage)
    for model in ("a", "b"):
        for bank, stage in RUNS:
            options = OodOptions(stage=stage, k_max=10)
            run_ood(store, model, paths[bank], paths["val"], paths["test"], options, progress=False)
    return store, vectors, paths


def expected_jaccard(vectors, bank: str, stage: str) -> float:
    sets = [
        numpy_ood(vectors[m, stage, bank], vectors[m, stage, "val"], vectors[m, stage, "test"], K, TPR)
        for m in ("a", "b")
    ]
    return len(sets[0] & sets[1]) / len(sets[0] | sets[1])


def agreement(store: Store) -> dict[tuple[str, str], float]:
    rows = connect(store).sql(f"select * from ood_agreement({K}, tpr := {TPR})").to_arrow_table().to_pylist()
    assert all(
        (r["model_i"], r["model_j"], r["dataset"], r["id_val"]) == ("a", "b", "test", "val") for r in rows
    )
    return {(r["bank"], r["stage"]): r["jaccard"] for r in rows}


def cli_rows(store: Store, *args: str) -> list[dict]:
    result = CliRunner().invoke(cli, [*args, "--format", "csv", "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_pretrained_and_finetuned_runs_of_one_model_coexist(ood_store):
    store, vectors, _ = ood_store
    found = agreement(store)
    assert set(found) == set(RUNS)
    for (bank, stage), jaccard in found.items():
        assert jaccard == pytest.approx(expected_jaccard(vectors, bank, stage), abs=1e-9)
    parts = {tuple(p.partition.values()) for p in store.live_parts()["ood_scores"]}
    assert parts == {(m, stage, bank, "test") for m in ("a", "b") for bank, stage in RUNS}
    limits = connect(store).sql("select model, stage, bank, k_max from list_limits where kind = 'ood_scores'")
    assert sorted(limits.fetchall()) == sorted((m, s, b, 10) for m in ("a", "b") for b, s in RUNS)


def test_compare_shows_the_bank_and_stage_of_every_ood_row(ood_store):
    store, vectors, _ = ood_store
    rows = cli_rows(store, "compare", "--table", "2", "--k", str(K), "--tpr", str(TPR))
    ood = [r for r in rows if r["ood_dataset"]]
    assert [(r["dataset"], r["model_i"], r["model_j"]) for r in ood] == [
        ("val", "a", "b")
    ] * 3  # reference first
    assert [(r["ood_bank"], r["ood_stage"]) for r in ood] == sorted(RUNS)  # two banks, two stages: 3 rows
    for r in ood:
        assert float(r["distribution"]) == pytest.approx(
            expected_jaccard(vectors, r["ood_bank"], r["ood_stage"])
        )
    with_ci = ce.open(store).table2(k=K, tpr=TPR, ci=0.9, replicates=50).rows()
    for r in (r for r in with_ci if r["ood_dataset"]):  # an interval per bank and stage, around its value
        assert r["distribution_lo"] <= r["distribution"] <= r["distribution_hi"]


def test_sweep_shows_the_bank_and_stage_of_every_ood_row(ood_store):
    store, vectors, _ = ood_store
    rows = cli_rows(store, "sweep", "--k", f"1,{K}", "--tpr", str(TPR))
    ood = [r for r in rows if r["characteristic"] == "distribution"]
    keys = [(r["bank"], r["stage"], int(r["k"])) for r in ood]
    assert keys == [(b, s, k) for b, s in sorted(RUNS) for k in (1, K)]
    assert {(r["model_i"], r["model_j"]) for r in ood} == {("a", "b")}
    for r in ood:
        if int(r["k"]) == K:
            assert float(r["jaccard"]) == pytest.approx(expected_jaccard(vectors, r["bank"], r["stage"]))
    representation = [r for r in rows if r["characteristic"].startswith("representation")]
    assert all(r["bank"] == "" for r in representation)
    by_python = ce.open(store).sweep([1, K], TPR).rows()
    assert [(r["bank"], r["stage"]) for r in by_python if r["characteristic"] == "distribution"] == [
        (b, s) for b, s in sorted(RUNS) for _ in (1, K)
    ]


def test_slices_keep_the_bank_and_stage_of_every_ood_row(ood_store):
    store, vectors, _ = ood_store
    rows = cli_rows(store, "compare", "--by", "label", "--k", str(K), "--tpr", str(TPR))
    ood = [r for r in rows if r["characteristic"] == "distribution"]
    assert [(r["bank"], r["stage"], r["slice"]) for r in ood] == [(b, s, "label 0") for b, s in sorted(RUNS)]
    for r in ood:  # every test example has label 0: the slice is the whole set
        assert float(r["jaccard"]) == pytest.approx(expected_jaccard(vectors, r["bank"], r["stage"]))


def test_report_draws_a_panel_per_bank_and_stage(ood_store):
    store, _, _ = ood_store
    page = render(ce.open(store), k=K, tpr=TPR, ks=(1, K))
    for bank, stage in RUNS:
        assert f"distribution, val: test test, bank {bank} ({stage})" in page  # heatmap
        assert f"distribution, test, bank {bank} ({stage})" in page  # K curve
        assert f"distribution: test against bank {bank} ({stage})" in page  # the summary


def to_old_layout(store: Store) -> None:
    """Rewrite ``store`` as ce wrote it before stage was an ood_scores key: parts under
    ood_scores/model=/bank=/dataset=/, records naming them so (the run's stage stays in the
    record), and the part of a run that a later run of the same model, bank and test set
    superseded removed, as that ce's garbage collection did."""
    newest = {}
    for path in sorted((store.root / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        for part in record["parts"]:
            if part["kind"] != "ood_scores":
                continue
            old = {k: part["partition"][k] for k in ("model", "bank", "dataset")}
            old_path = f"ood_scores/model={old['model']}/bank={old['bank']}/dataset={old['dataset']}"
            old_path += f"/part-{record['run_id']}.parquet"
            (store.root / old_path).parent.mkdir(parents=True, exist_ok=True)
            (store.root / part["path"]).rename(store.root / old_path)
            part["partition"], part["path"] = old, old_path
            key = tuple(old.values())
            if key in newest:  # the older of the two was superseded: gone
                older = min(newest[key], (record["committed"], old_path))
                (store.root / older[1]).unlink()
            newest[key] = max(newest.get(key, ("", "")), (record["committed"], old_path))
        path.write_text(json.dumps(record, indent=2))
    for folder in (store.root / "ood_scores").glob("model=*/stage=*"):
        shutil.rmtree(folder)  # empty now


def test_a_store_of_the_old_layout_still_reads(ood_store, tmp_path):
    store, vectors, paths = ood_store
    before = agreement(store)
    to_old_layout(store)
    old = Store(store.root)
    assert agreement(old) == {run: before[run] for run in (("bank1", "pretrained"), ("bank2", "finetuned"))}
    assert all("stage=" not in p.path for p in old.live_parts()["ood_scores"])
    rows = cli_rows(old, "compare", "--table", "2", "--k", str(K), "--tpr", str(TPR))
    assert sorted((r["ood_bank"], r["ood_stage"]) for r in rows if r["ood_dataset"]) == [
        ("bank1", "pretrained"),
        ("bank2", "finetuned"),
    ]
    # a run of the new layout adds its stage and replaces the old part of its own stage only
    for model in ("a", "b"):
        for stage in ("finetuned", "pretrained"):
            options = OodOptions(stage=stage, k_max=10)
            run_ood(old, model, paths["bank1"], paths["val"], paths["test"], options, progress=False)
    assert agreement(old) == pytest.approx(before)
    live = sorted(p.path.split("/")[1:4] for p in old.live_parts()["ood_scores"])
    assert live == sorted(
        [[f"model={m}", f"stage={s}", "bank=bank1"] for m in ("a", "b") for s in ("finetuned", "pretrained")]
        + [[f"model={m}", "bank=bank2", "dataset=test"] for m in ("a", "b")]  # still the old parts
    )


def test_a_store_of_the_old_layout_exports_and_imports(ood_store, tmp_path):
    store, _, _ = ood_store
    to_old_layout(store)
    expected = agreement(store)
    bundle = tmp_path / "old.cebundle"
    export_bundle(store, bundle)
    target = Store(tmp_path / "target")
    import_bundle(target, bundle)
    assert agreement(target) == expected
    assert all("/stage=" in p.path for p in target.live_parts()["ood_scores"])  # imported in the new layout
    compare = ("compare", "--table", "2", "--k", str(K), "--tpr", str(TPR))
    assert cli_rows(target, *compare) == cli_rows(store, *compare)
    unchanged = snapshot(store.root)
    result = import_bundle(store, bundle)  # back into the store it came from: nothing new
    assert result["imported"] == 0 and result["parts"] == 0
    assert snapshot(store.root) == unchanged


def test_an_old_layout_part_needs_its_runs_stage(ood_store):
    store, _, _ = ood_store
    to_old_layout(store)
    record_path = next(p for p in (store.root / "runs").glob("*.json") if '"ood_scores"' in p.read_text())
    record = json.loads(record_path.read_text())
    del record["stage"]
    record_path.write_text(json.dumps(record))
    with pytest.raises(StoreError, match="a ood_scores part without a stage= folder needs its run's stage"):
        Store(store.root).runs()
