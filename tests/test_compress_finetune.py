"""ce compress and ce finetune on tiny models: derived models land in the store's registry."""

from __future__ import annotations

import json

import pytest
import torch

from ce.extractors.compress import compress
from ce.extractors.extract import ExtractOptions, extract
from ce.extractors.finetune import FinetuneOptions, finetune
from ce.query.sql import connect
from ce.store import Store
from ce.store.errors import CeError, NotFound

from .conftest import snapshot

pytestmark = pytest.mark.usefixtures("data_dir")


def card(store: Store, name: str) -> dict:
    return json.loads((store.model_dir(name) / "ce-model.json").read_text())


def test_layers_keeps_evenly_spaced_layers(tiny_models, store_dir):
    from transformers import AutoModelForSequenceClassification

    store = Store(store_dir)
    info = compress(store, str(tiny_models["classification"]), "layers:1", "one-layer")
    assert info.details["kept_layers"] == [0]
    model = AutoModelForSequenceClassification.from_pretrained(store.model_dir("one-layer"))
    parent = AutoModelForSequenceClassification.from_pretrained(tiny_models["classification"])
    assert model.config.num_hidden_layers == 1
    assert torch.equal(
        model.bert.encoder.layer[0].output.dense.weight, parent.bert.encoder.layer[0].output.dense.weight
    )
    assert torch.equal(model.classifier.weight, parent.classifier.weight)  # head kept
    assert card(store, "one-layer")["parent"] == "tiny-classification"
    [run] = store.runs()
    assert run["command"] == "compress" and run["parent"] == "tiny-classification"


def test_prune_reaches_the_sparsity_and_int8_quantises_at_load(tiny_models, store_dir):
    store = Store(store_dir)
    info = compress(store, str(tiny_models["classification"]), "prune:0.5", "half")
    assert info.details["sparsity_reached"] == pytest.approx(0.5, abs=0.01)
    compress(store, str(tiny_models["classification"]), "int8", "int8")
    for name in ("half", "int8"):
        extract(store, name, "sst2-dev", ExtractOptions(limit=8), progress=False)
    runs = {r["model"]: r for r in store.runs() if r["command"] == "extract"}
    assert runs["int8"]["derived_from"]["method"] == "int8"
    got = (
        connect(store).sql("select model, count(*) from predictions group by model order by model").fetchall()
    )
    assert got == [("half", 8), ("int8", 8)]


@pytest.mark.parametrize(
    ("method", "error", "message"),
    [
        ("fp4", NotFound, "unknown compression method 'fp4'"),
        ("prune:1.0", CeError, r"must lie in \[0, 1\)"),
        ("prune:-0.1", CeError, r"must lie in \[0, 1\)"),
        ("layers:3", CeError, "more layers than the model has \\(2\\)"),
        ("layers:x", CeError, "layers needs a positive number"),
        ("distil:2", NotFound, r"did you mean distill\?\); use int8, prune:S, layers:N, distill:N"),
    ],
)
def test_bad_methods_write_nothing(tiny_models, store_dir, method, error, message):
    with pytest.raises(error, match=message):
        compress(Store(store_dir), str(tiny_models["base"]), method, "out")
    assert snapshot(store_dir) == {}


def test_finetune_classification_learns_and_registers(tiny_models, store_dir):
    store = Store(store_dir)
    options = FinetuneOptions(
        task="classification", epochs=15, learning_rate=5e-3, batch_size=16, limit=64, max_length=32
    )
    info = finetune(store, str(tiny_models["base"]), "sst2-dev", "tuned", options, progress=False)
    assert info.steps == 60 and info.parent == "tiny-base"
    extract(store, "tuned", "sst2-dev", ExtractOptions(limit=64, seed=42), progress=False)  # the same sample
    [(accuracy,)] = connect(store).sql("select avg(correct::int) from predictions").fetchall()
    assert accuracy > 0.6  # the training set itself: the head did learn
    assert not list((store_dir / "models").glob(".train-*"))  # checkpoints cleaned up


def test_finetune_records_its_start_before_training(tiny_models, store_dir, monkeypatch):
    """The run record starts with the job, not once the training is over."""
    import transformers

    from ce.store.store import now

    seen = {}
    train = transformers.Trainer.train

    def timed(self, *args, **kwargs):
        seen["training"] = now()
        return train(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "train", timed)
    store = Store(store_dir)
    options = FinetuneOptions(task="classification", epochs=1, batch_size=16, limit=16, max_length=32)
    finetune(store, str(tiny_models["base"]), "sst2-dev", "tuned", options, progress=False)
    [record] = store.runs()
    assert record["started"] <= seen["training"] < record["ended"]


def test_finetune_resumes_only_checkpoints_of_the_same_settings(tiny_models, store_dir):
    """Checkpoints left by a killed run with other settings are dropped, not resumed."""
    store = Store(store_dir)
    options = FinetuneOptions(task="classification", epochs=1, batch_size=16, limit=32, max_length=32)
    work = store_dir / "models" / ".train-tuned"
    (work / "checkpoint-1").mkdir(parents=True)
    (work / "ce-identity.json").write_text('{"epochs": 99}')
    info = finetune(store, str(tiny_models["base"]), "sst2-dev", "tuned", options, progress=False)
    assert info.resumed is False and info.steps == 2
    assert not work.exists()


def test_finetune_qa_on_squad_windows(tiny_models, store_dir):
    store = Store(store_dir)
    options = FinetuneOptions(task="qa", epochs=1, batch_size=8, limit=16, max_length=96, doc_stride=32)
    info = finetune(store, str(tiny_models["base"]), "squad2-dev", "tuned-qa", options, progress=False)
    assert info.features > 16  # long contexts give several windows
    extract(
        store, "tuned-qa", "squad2-dev", ExtractOptions(limit=4, max_length=96, doc_stride=32), progress=False
    )


def test_finetune_refuses_a_task_that_does_not_fit(tiny_models, store_dir):
    with pytest.raises(CeError, match="is a qa dataset, not classification"):
        finetune(
            Store(store_dir),
            str(tiny_models["base"]),
            "squad2-dev",
            "x",
            FinetuneOptions(task="classification"),
            progress=False,
        )
    assert snapshot(store_dir) == {}


def test_distill_trains_a_smaller_student_on_the_teacher(tiny_models, sharp_classifier, store_dir):
    from ce.extractors.compress import DistillOptions

    store = Store(store_dir)
    options = DistillOptions(dataset="sst2-dev", limit=64, epochs=4, learning_rate=1e-3, batch_size=16)
    info = compress(  # a teacher with sharp outputs: the tiny one's are so flat that the loss is noise
        store,
        str(sharp_classifier),
        "distill:1",
        "student",
        distill_options=options,
        progress=False,
    )
    assert info.details["kept_layers"] == [0] and info.details["distill_steps"] == 16
    assert info.details["distill_loss_last"] < info.details["distill_loss_first"]
    extract(store, "student", "sst2-dev", ExtractOptions(limit=8), progress=False)
    with pytest.raises(CeError, match="add --dataset"):
        compress(store, str(tiny_models["classification"]), "distill:1", "other")
    with pytest.raises(CeError, match="needs a classification teacher"):
        compress(
            store, str(tiny_models["base"]), "distill:1", "other", distill_options=options, progress=False
        )


def test_finetune_and_compress_print_readable_lines_not_dicts(tiny_models, store_dir, monkeypatch):
    """No Trainer log dict on stdout, no unlabelled bar; the progress, piped, is labelled
    lines; the record spans the training."""
    from click.testing import CliRunner

    from ce.cli import cli
    from ce.extractors import progress

    monkeypatch.setattr(progress, "INTERVAL", 0.0)  # a progress line at every step
    runner = CliRunner()
    tuned = runner.invoke(
        cli,
        [
            *("finetune", "-m", str(tiny_models["base"]), "--task", "classification", "-d", "sst2-dev"),
            *("--limit", "32", "--epochs", "1", "--batch-size", "16", "--max-length", "32"),
            *("-o", "tuned", "--store", str(store_dir)),
        ],
    )
    assert tuned.exit_code == 0, tuned.output
    assert tuned.stdout == ""  # nothing from the Trainer
    assert "{" not in tuned.output and "\r" not in tuned.output and "it/s" not in tuned.output
    lines = tuned.stderr.splitlines()
    assert lines[0].startswith("finetune tuned: 1/2 steps, ") and "ETA" in lines[0], lines
    assert lines[-2].startswith("finetune tuned: 2/2 steps in ")
    assert lines[-1].startswith("tuned: classification fine-tuned from tiny-base on 32 examples")
    made = runner.invoke(
        cli, ["compress", "-m", "tuned", "--method", "layers:1", "-o", "small", "--store", str(store_dir)]
    )
    assert made.exit_code == 0, made.output
    assert "{" not in made.output
    lines = made.stderr.splitlines()
    assert lines[0].startswith("made small in ")
    assert [line.split()[0] for line in lines[1:]] == ["method", "parent", "parameters", "size"]
    assert "layers:1 (kept layers 0)" in lines[1] and lines[2].split() == ["parent", "tuned"]
    records = {r["command"]: r for r in Store(store_dir).runs()}
    assert records["finetune"]["started"] < records["finetune"]["ended"]
    assert records["compress"]["started"] < records["compress"]["ended"]
