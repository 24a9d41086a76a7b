"""Replica groups on the job side: ce finetune --seeds, and ce compress, extract and ce run
of a group, ingest --replica-of; cards and records are untrusted data."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file

import ce
from ce.cli import cli
from ce.extractors import finetune as finetune_module
from ce.extractors.finetune import FinetuneOptions, finetune_identity
from ce.extractors.identity import identity
from ce.extractors.replicas import expand, member_name, store_groups
from ce.store import Store
from ce.store.errors import NotFound

from .conftest import snapshot

pytestmark = pytest.mark.usefixtures("data_dir")

TRAIN = ["--task", "classification", "--dataset", "sst2-dev", "--limit", "16", "--epochs", "1"]
TRAIN += ["--batch-size", "8", "--max-length", "32"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, contains: str) -> None:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert contains in lines[0], lines[0]


def card(store_dir, name: str) -> dict:
    return json.loads((store_dir / "models" / name / "ce-model.json").read_text())


def records(store_dir, command: str) -> dict[str, dict]:
    return {r["model"]: r for r in Store(store_dir).runs() if r["command"] == command}


def replicas(store_dir) -> list[tuple]:
    with ce.open(store_dir) as s:
        return s.query("select model, replica_group, seed, replicas from replicas order by all").fetchall()


@pytest.fixture(scope="module")
def group_store(tiny_models, tmp_path_factory):
    """A store with the replica group 'tuned' (seeds 0 and 3) fine-tuned through the CLI,
    and the examples each replica trained on."""
    store_dir = tmp_path_factory.mktemp("replicas") / "store"
    seen = []
    subset = finetune_module.subset

    def spy(data, *args, **kwargs):
        out = subset(data, *args, **kwargs)
        seen.append(out.table["example_id"].to_pylist())
        return out

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(finetune_module, "subset", spy)
        made = invoke(
            "finetune",
            "-m",
            tiny_models["base"],
            *TRAIN,
            "--seeds",
            "0,3",
            "-o",
            "tuned",
            "--store",
            store_dir,
        )
    assert made.exit_code == 0, made.output
    return store_dir, seen, made.stderr


def test_finetune_seeds_makes_a_group_trained_on_one_sample(group_store):
    store_dir, seen, stderr = group_store
    assert sorted(p.name for p in (store_dir / "models").iterdir()) == ["tuned-s0", "tuned-s3"]
    assert re.findall(r"^(tuned-s\d): classification fine-tuned", stderr, re.MULTILINE) == [
        "tuned-s0",
        "tuned-s3",
    ]
    runs = records(store_dir, "finetune")
    for seed in (0, 3):
        name = member_name("tuned", seed)
        c = card(store_dir, name)
        assert c["replica"] == {"group": "tuned", "seed": seed} == runs[name]["replica"]
        assert c["data_order"] == "shuffled by the replica's seed (Trainer)"
        assert (c["options"]["seed"], c["options"]["sample_seed"]) == (seed, 42)  # the sample: --seed
        assert c["identity"]["sample_seed"] == 42 and c["identity"]["seed"] == seed
    assert len(seen) == 2 and len(seen[0]) == 16 and seen[0] == seen[1]  # the same examples
    a, b = (load_file(store_dir / "models" / f"tuned-s{s}" / "model.safetensors") for s in (0, 3))
    assert not a["classifier.weight"].equal(b["classifier.weight"])  # another initialisation
    assert replicas(store_dir) == [("tuned-s0", "tuned", 0, 2), ("tuned-s3", "tuned", 3, 2)]
    assert store_groups(Store(store_dir)) == {"tuned": [("tuned-s0", 0), ("tuned-s3", 3)]}
    assert expand(Store(store_dir), "tuned", "x") == [
        ("tuned-s0", "x-s0", {"group": "x", "seed": 0}),
        ("tuned-s3", "x-s3", {"group": "x", "seed": 3}),
    ]
    assert expand(Store(store_dir), "tuned-s0") == [("tuned-s0", None, None)]  # a member is one model


def test_identities_without_replicas_stay_as_they_were():
    """sample_seed enters an identity only where it differs from the seed and draws a sample."""

    class Files:
        def record(self):
            return {"sha256": {"model.safetensors": "ab"}}

    class Data:
        fingerprint = "fp"

        def __len__(self):
            return 100

    files, data = Files(), Data()
    plain = FinetuneOptions(limit=16)
    old = identity(plain, {"parent": files.record()}, {"dataset": "fp"}, sample="stratified")
    old.pop("sample_seed")  # what identity() gave before the field existed
    assert finetune_identity(plain, files, data) == old and "sample_seed" not in old
    assert finetune_identity(FinetuneOptions(limit=16, sample_seed=42), files, data) == old  # = seed
    assert "sample_seed" not in finetune_identity(FinetuneOptions(seed=1, sample_seed=42), files, data)
    assert (
        finetune_identity(FinetuneOptions(limit=16, seed=1, sample_seed=42), files, data)["sample_seed"] == 42
    )


def test_compress_and_extract_of_a_group_run_per_member(group_store, tmp_path):
    store_dir = tmp_path / "store"
    shutil.copytree(group_store[0], store_dir)
    made = invoke("compress", "-m", "tuned", "--method", "prune:0.3", "-o", "pruned", "--store", store_dir)
    assert made.exit_code == 0, made.output
    assert re.findall(r"^made (\S+) in", made.stderr, re.MULTILINE) == ["pruned-s0", "pruned-s3"]
    runs = records(store_dir, "compress")
    for seed in (0, 3):
        c = card(store_dir, f"pruned-s{seed}")
        assert c["replica"] == {"group": "pruned", "seed": seed} == runs[f"pruned-s{seed}"]["replica"]
        assert c["parent"] == f"tuned-s{seed}"
    before = snapshot(store_dir)
    for out, why in [("tuned-s0", "names a model of the store"), ("minilm", "names a model alias")]:
        one_line_error(
            invoke("compress", "-m", "tuned", "--method", "int8", "-o", out, "--store", store_dir), why
        )
    one_line_error(
        invoke("compress", "-m", "tuned", "--method", "int8", "-o", "tuned", "--store", store_dir),
        "another name",
    )
    assert snapshot(store_dir) == before
    got = invoke(
        "extract",
        "-m",
        "pruned",
        "-d",
        "sst2-dev",
        "--limit",
        "6",
        "--k-max",
        "3",
        "--name",
        "p",
        "--store",
        store_dir,
    )
    assert got.exit_code == 0, got.output
    assert re.findall(r"^(\S+) on sst2-dev: 6 examples", got.stderr, re.MULTILINE) == ["p-s0", "p-s3"]
    runs = records(store_dir, "extract")
    assert {m: r["replica"] for m, r in runs.items()} == {
        "p-s0": {"group": "p", "seed": 0},
        "p-s3": {"group": "p", "seed": 3},
    }
    assert runs["p-s3"]["params"]["model_arg"] == "pruned-s3"
    groups = {(model, group, seed) for model, group, seed, _ in replicas(store_dir)}
    assert {("p-s0", "p", 0), ("pruned-s3", "pruned", 3), ("tuned-s0", "tuned", 0)} <= groups
    one_line_error(
        invoke("extract", "-m", "tuned", "-d", "sst2-dev", "--engine", "ray", "--store", store_dir),
        "replica group",
    )
    with ce.open(store_dir) as s:  # the Python API: a list, one result per member
        scored = s.ood("tuned", "sst2-dev", "imdb-1k", limit=10, k_max=3, val_fraction=0.3)
        attacked = s.attack("tuned", "sst2-dev", name="t", attack="deepwordbug", limit=2)
        one = s.extract("tuned-s0", "sst2-dev", limit=6, k_max=None)
    assert [r.model for r in scored] == ["tuned-s0", "tuned-s3"] and not isinstance(one, list)
    assert [r.model for r in attacked] == ["t-s0", "t-s3"]
    seeds = {
        (r["command"], r["model"], (r.get("replica") or {}).get("seed"))
        for r in Store(store_dir).runs()
        if r["command"] in ("ood", "attack", "extract")
    }
    assert {("ood", "tuned-s3", 3), ("extract", "tuned-s3", 3), ("attack", "t-s3", 3)} <= seeds
    assert {("extract", "tuned-s0", 0), ("extract", "tuned-s0", None)} <= seeds  # OOD's, and the member's own


EXPERIMENT = """
[[finetune]]
model = "{base}"
task = "classification"
dataset = "sst2-dev"
output = "rep"
seeds = [1, 2]
limit = 16
epochs = 1
batch_size = 8
max_length = 32

[[compress]]
model = "rep"
method = "layers:1"
output = "rep-l1"

[[extract]]
models = ["rep-l1", {{ name = "r", model = "rep" }}]
datasets = ["sst2-dev"]
limit = 6
k_max = 3
"""


def test_an_experiment_expands_groups_and_runs_once(tiny_models, tmp_path):
    store_dir, path = tmp_path / "store", tmp_path / "grid.toml"
    path.write_text(EXPERIMENT.format(base=tiny_models["base"]))
    check = invoke("run", path, "--check", "--store", store_dir)
    assert check.exit_code == 0, check.output
    assert check.stdout.splitlines() == [
        "plan: 8 steps, 8 to run, 0 already in the store",
        "  1  finetune rep-s1: runs (not in the store)",
        "  2  finetune rep-s2: runs (not in the store)",
        "  3  compress rep-l1-s1: runs (after rep-s1 is made)",
        "  4  compress rep-l1-s2: runs (after rep-s2 is made)",
        "  5  extract rep-l1-s1 finetuned sst2-dev: runs (after rep-l1-s1 is made)",
        "  6  extract rep-l1-s2 finetuned sst2-dev: runs (after rep-l1-s2 is made)",
        "  7  extract r-s1 finetuned sst2-dev: runs (after rep-s1 is made)",
        "  8  extract r-s2 finetuned sst2-dev: runs (after rep-s2 is made)",
    ]
    assert not store_dir.exists()
    first = invoke("run", path, "--store", store_dir)
    assert first.exit_code == 0 and "8 step(s) run" in first.stderr, first.output
    assert card(store_dir, "rep-l1-s2")["replica"] == {"group": "rep-l1", "seed": 2}
    assert card(store_dir, "rep-s1")["options"]["sample_seed"] == 42
    assert records(store_dir, "extract")["r-s2"]["replica"] == {"group": "r", "seed": 2}
    assert {(g, s) for _, g, s, n in replicas(store_dir) if n == 2} == {
        (g, s) for g in ("rep", "rep-l1", "r") for s in (1, 2)
    }
    before = snapshot(store_dir)
    second = invoke("run", path, "--store", store_dir)
    assert second.exit_code == 0 and second.stderr.startswith(
        "plan: 8 steps, 0 to run, 8 already in the store"
    )
    assert snapshot(store_dir) == before


@pytest.mark.parametrize(
    ("seeds", "message"),
    [("[1]", "at least two seeds"), ("[1, 1]", "lists a seed twice"), ('["a", 1]', "list of integers")],
)
def test_experiment_seeds_are_checked(tmp_path, seeds, message):
    path = tmp_path / "bad.toml"
    text = EXPERIMENT.format(base="minilm").replace("seeds = [1, 2]", f"seeds = {seeds}")
    path.write_text(text)
    one_line_error(invoke("run", path, "--check", "--store", tmp_path / "store"), message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "1"], "at least two seeds"),
        (["--seeds", "0,x"], "comma-separated list of whole numbers"),
        (["--seeds", "0,-1"], "comma-separated list of whole numbers"),
        (["--seeds", "0,1", "-o", "minilm"], "names a model alias"),
    ],
)
def test_finetune_seeds_are_checked_before_anything_runs(tiny_models, store_dir, args, message):
    cmd = ["finetune", "-m", tiny_models["base"], *TRAIN, "-o", "x", *args, "--store", store_dir]
    one_line_error(invoke(*cmd), message)
    assert not store_dir.exists()


CSV = "id,text,label,pred\n1,a good film,1,1\n2,a bad film,0,1\n3,fine,1,1\n"


def test_ingest_replica_of(tmp_path, store_dir):
    path = tmp_path / "preds.csv"
    path.write_text(CSV)
    common = [path, "--dataset", "toy", "--id", "id", "--answer", "pred", "--gold", "label", "--text", "text"]
    base = invoke("ingest", "predictions", *common, "--model", "run-a", "--store", store_dir)
    assert base.exit_code == 0, base.output
    before = snapshot(store_dir)
    one_line_error(
        invoke(
            "ingest",
            "predictions",
            *common,
            "--model",
            "run-b",
            "--replica-of",
            "run-x",
            "--store",
            store_dir,
        ),
        "no such model (did you mean run-a?)",
    )
    hostile = "run-a'; drop table runs; --"
    one_line_error(
        invoke(
            "ingest",
            "predictions",
            *common,
            "--model",
            "run-b",
            "--replica-of",
            hostile,
            "--store",
            store_dir,
        ),
        "the store has no such model",
    )
    one_line_error(
        invoke(
            "ingest",
            "predictions",
            *common,
            "--model",
            "run-a",
            "--replica-of",
            "run-a",
            "--store",
            store_dir,
        ),
        "names the model itself",
    )
    assert snapshot(store_dir) == before  # refused before the ingest wrote anything
    got = invoke(
        "ingest", "predictions", *common, "--model", "run-b", "--replica-of", "run-a", "--store", store_dir
    )
    assert got.exit_code == 0, got.output
    assert got.stderr.splitlines()[-1] == "run-b: a replica of run-a, in replica group run-a"
    [mark] = [r for r in Store(store_dir).runs() if r["command"] == "replica"]
    assert (mark["model"], mark["params"], mark["replica"]) == (
        "run-b",
        {"of": "run-a"},
        {"group": "run-a", "seed": None},
    )
    with ce.open(store_dir) as s:  # a replica of a member joins the member's group
        with pytest.raises(NotFound, match="the store has no model 'run-c'"):
            s.mark_replica("run-c", "run-b")  # run-c is not in the store yet
        ingested = s.ingest_table(
            path,
            "run-c",
            "toy",
            id_column="id",
            answer_column="pred",
            gold_column="label",
            text_column="text",
        )
        assert ingested["model"] == "run-c" and s.mark_replica("run-c", "run-b") == "run-a"
        assert sorted(r[0] for r in s.query("select model from models").fetchall()) == [
            "run-a",
            "run-b",
            "run-c",
        ]
    assert replicas(store_dir) == [
        ("run-a", "run-a", None, 3),
        ("run-b", "run-a", None, 3),
        ("run-c", "run-a", None, 3),
    ]
    for sub in ("errors", "lm-eval", "lighteval", "textattack", "predictions"):
        assert "--replica-of" in invoke("ingest", sub, "--help").stdout


def test_hostile_cards_make_no_group(store_dir):
    models = store_dir / "models"
    cards = {
        "evil-s0": {"group": "../x", "seed": 0},
        "a-s1": {"group": "a'; drop table runs; --", "seed": 1},
        "b-s1": {"group": "b", "seed": True},
        "c-s1": {"group": "c", "seed": -1},
        "lie-s0": {"group": "other", "seed": 0},  # not the folder's own name
        ".tmp-ok-s0": {"group": ".tmp-ok", "seed": 0},
        "d-s0": ["not", "a", "table"],
        "ok-s0": {"group": "ok", "seed": 0},
    }
    for folder, replica in cards.items():
        (models / folder).mkdir(parents=True)
        (models / folder / "ce-model.json").write_text(json.dumps({"name": folder, "replica": replica}))
    (models / "broken-s0").mkdir()
    (models / "broken-s0" / "ce-model.json").write_bytes(b"\xff{")
    store = Store(store_dir)
    assert store_groups(store) == {"ok": [("ok-s0", 0)]}
    assert expand(store, "../x") == [("../x", None, None)]
    assert expand(store, "other") == [("other", None, None)]
