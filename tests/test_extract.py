"""ce extract on tiny models built in-process and on the real MiniLM weights."""

from __future__ import annotations

import numpy as np
import pytest

from ce.extractors import extract as extract_module
from ce.extractors.datasets import load_dataset, subset
from ce.extractors.extract import ExtractOptions, extract
from ce.extractors.features import tokenize
from ce.extractors.heads import QaDecoder, QaSettings
from ce.extractors.loading import load_model
from ce.extractors.registry import MINILM_SHA256, ResolvedModel
from ce.extractors.squad_metric import score
from ce.query.sql import connect
from ce.store import Store
from ce.store.errors import CeError

pytestmark = pytest.mark.usefixtures("data_dir")


def rows(store, sql):
    return connect(store).sql(sql).to_arrow_table().to_pylist()


@pytest.fixture
def counted_forward(monkeypatch):
    """Counts every input a model sees during extract."""
    seen = {"inputs": 0, "calls": 0}
    real = extract_module.load_model

    def load_and_count(*args, **kwargs):
        loaded = real(*args, **kwargs)

        def hook(module, args, kwargs):
            seen["calls"] += 1
            seen["inputs"] += kwargs["input_ids"].shape[0]

        loaded.model.register_forward_pre_hook(hook, with_kwargs=True)
        return loaded

    monkeypatch.setattr(extract_module, "load_model", load_and_count)
    return seen


def test_qa_extract_writes_predictions_embeddings_and_examples(tiny_models, store_dir, counted_forward):
    store = Store(store_dir)
    opts = ExtractOptions(limit=40, batch_size=8, max_length=96, doc_stride=32)
    result = extract(store, str(tiny_models["qa"]), "squad2-dev", opts, name="tiny")
    assert (result.examples, result.predictions, result.embeddings) == (40, 40, 40)
    data = subset(load_dataset("squad2-dev"), 40)
    loaded = load_model(ResolvedModel("t", str(tiny_models["qa"]), True), "qa", "finetuned")
    features = tokenize(data, loaded.tokenizer, max_length=96, doc_stride=32, all_windows=True)
    assert len(features) > 40  # long contexts give several windows
    assert counted_forward["inputs"] == len(features)  # every window once, none twice
    answers = dict(zip(data.table["example_id"].to_pylist(), data.table["answers"].to_pylist(), strict=True))
    for r in rows(store, "select * from predictions"):
        assert (r["exact"], r["f1"]) == score(answers[r["example_id"]], r["prediction"])
        assert r["correct"] == (r["exact"] == 1.0)
        # the no-answer score and the best span's; the answer is "" when the first wins
        assert r["null_score"] is not None
        if r["prediction"]:
            assert r["score"] == r["span_score"] >= r["null_score"]
        else:
            assert r["score"] == r["null_score"]
    [emb] = rows(store, "select count(*) as n, min(len(vector)) as d, max(len(vector)) as e from embeddings")
    assert (emb["n"], emb["d"], emb["e"]) == (40, 32, 32)
    assert rows(store, "select count(*) as n from examples")[0]["n"] == 11873


def test_rerun_replaces_and_examples_are_written_once(tiny_models, store_dir):
    store = Store(store_dir)
    opts = ExtractOptions(limit=10)
    for _ in range(2):
        extract(store, str(tiny_models["classification"]), "sst2-dev", opts, name="tiny")
    counts = rows(
        store,
        "select (select count(*) from predictions) as p,"
        " (select count(*) from embeddings) as e,"
        " (select count(*) from examples) as x",
    )[0]
    assert counts == {"p": 10, "e": 10, "x": 872}
    assert sum(p["kind"] == "examples" for r in store.runs() for p in r["parts"]) == 1


def test_classification_predictions(tiny_models, store_dir):
    store = Store(store_dir)
    extract(store, str(tiny_models["classification"]), "sst2-dev", ExtractOptions(limit=50), name="tiny")
    got = rows(store, "select p.*, x.label from predictions p join examples x using (dataset, example_id)")
    assert len(got) == 50
    for r in got:
        assert r["correct"] == (r["pred_label"] == r["label"])
        assert 0.5 <= r["score"] <= 1.0 and r["prediction"] == str(r["pred_label"])
        # the answer distribution: the softmax over the labels, its top the prediction
        assert len(r["probs"]) == 2 and sum(r["probs"]) == pytest.approx(1.0)
        assert max(r["probs"]) == r["score"] and r["probs"].index(r["score"]) == r["pred_label"]


def reference_qa(data, tokenizer, model, settings: QaSettings, max_length, stride):
    """The standard SQuAD 2.0 post-processing written as plain loops, one feature at a time."""
    import torch

    out, logits = {}, []
    for i, (q, c) in enumerate(
        zip(data.table["question"].to_pylist(), data.table["context"].to_pylist(), strict=True)
    ):
        enc = tokenizer(
            q.lstrip(),
            c,
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        best, best_text, min_null = -np.inf, "", np.inf
        for f in range(len(enc["input_ids"])):
            inputs = {k: torch.tensor([enc[k][f]]) for k in tokenizer.model_input_names}
            with torch.inference_mode():
                o = model(**inputs)
            s, e = o.start_logits[0].numpy(), o.end_logits[0].numpy()
            logits.append((i, s, e))
            seq = enc.sequence_ids(f)
            offs = [o if seq[t] == 1 else None for t, o in enumerate(enc["offset_mapping"][f])]
            min_null = min(min_null, s[0] + e[0])
            for a in np.argsort(-s, kind="stable")[: settings.n_best]:
                for b in np.argsort(-e, kind="stable")[: settings.n_best]:
                    if offs[a] is None or offs[b] is None or b < a:
                        continue
                    if b - a + 1 > settings.max_answer_length:
                        continue
                    if s[a] + e[b] > best:
                        best, best_text = s[a] + e[b], c[offs[a][0] : offs[b][1]]
        out[i] = best_text if min_null - best <= settings.null_threshold else ""
    return out, logits


def decode(features, n, settings, logits):
    decoder = QaDecoder(features, n, settings)
    width = max(len(s) for _, s, _ in logits)
    starts = np.full((len(logits), width), -1e4, np.float32)
    ends = np.full((len(logits), width), -1e4, np.float32)
    for f, (_, s, e) in enumerate(logits):
        starts[f, : len(s)], ends[f, : len(e)] = s, e
    order = np.random.default_rng(0).permutation(len(logits))  # any batching, any order
    for chunk in np.array_split(order, 4):
        decoder.update(chunk, starts[chunk], ends[chunk])
    return decoder


def test_qa_decoder_matches_the_plain_reference(tiny_models):
    data = subset(load_dataset("squad2-dev"), 25)
    loaded = load_model(ResolvedModel("t", str(tiny_models["qa"]), True), "qa", "finetuned")
    features = tokenize(data, loaded.tokenizer, max_length=96, doc_stride=32, all_windows=True)
    _, logits = reference_qa(data, loaded.tokenizer, loaded.model, QaSettings(), 96, 32)
    assert len(features) == len(logits)
    first = decode(features, len(data), QaSettings(), logits)
    # 0 (the standard) and the median null-score difference, where half the questions abstain
    median = float(np.median(first.min_null - first.best_score))
    for threshold in (0.0, median):
        settings = QaSettings(null_threshold=threshold)
        expected, _ = reference_qa(data, loaded.tokenizer, loaded.model, settings, 96, 32)
        got = decode(features, len(data), settings, logits).finish(data)["prediction"]
        assert got.to_pylist() == [expected[i] for i in range(len(data))]
    assert any(got.to_pylist()) and not all(got.to_pylist())  # answers and abstentions


def test_pretrained_minilm_real_weights(store_dir):
    store = Store(store_dir)
    extract(store, "minilm", "sst2-dev", ExtractOptions(stage="pretrained", limit=12))
    [run] = store.runs()
    target = run["loaded"]["target"]
    assert target["sha256"]["model.safetensors"] == MINILM_SHA256
    assert target["format"] == "safetensors" and target["revision"] is None  # a local folder
    assert run["stage"] == "pretrained" and run["model"] == "minilm"
    got = rows(store, "select example_id, vector from embeddings order by example_id::int")
    assert len(got) == 12 and len(got[0]["vector"]) == 384
    # the stored vector is the final layer's CLS vector of the sentence
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ce.extractors.registry import _minilm_dir

    tok, model = AutoTokenizer.from_pretrained(_minilm_dir()), AutoModel.from_pretrained(_minilm_dir())
    text = load_dataset("sst2-dev").table["text"][int(got[0]["example_id"])].as_py()  # id = row
    with torch.inference_mode():
        cls = model(**tok(text, return_tensors="pt")).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(got[0]["vector"], cls, atol=1e-4)
    assert rows(store, "select count(*) as n from predictions")[0]["n"] == 0


def test_sha256_mismatch_is_refused(tiny_models):
    bad = ResolvedModel("t", str(tiny_models["base"]), True, sha256="0" * 64)
    with pytest.raises(CeError, match="expected 0000"):
        load_model(bad, None, "pretrained")


def test_plain_pickle_weights_load_through_the_weights_only_unpickler(tiny_models, tmp_path, store_dir):
    """A pickle of tensors only is what most Hub checkpoints are: it loads by default, gives
    the same predictions as the safetensors copy, and the record names the format."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path / "pickled"
    AutoModelForSequenceClassification.from_pretrained(tiny_models["classification"]).save_pretrained(
        folder, safe_serialization=False
    )
    AutoTokenizer.from_pretrained(tiny_models["classification"]).save_pretrained(folder)
    assert not list(folder.glob("*.safetensors"))
    store = Store(store_dir)
    extract(store, str(folder), "sst2-dev", ExtractOptions(limit=4), name="pickled")
    extract(store, str(tiny_models["classification"]), "sst2-dev", ExtractOptions(limit=4), name="safe")
    runs = {r["model"]: r for r in store.runs()}
    assert runs["pickled"]["loaded"]["target"]["format"] == "pickle (weights-only)"
    files = set(runs["pickled"]["loaded"]["target"]["sha256"])
    assert "pytorch_model.bin" in files and "config.json" in files and "model.safetensors" not in files
    got = rows(store, "select model, example_id, pred_label from predictions order by 2, 1")
    assert [r["pred_label"] for r in got[0::2]] == [r["pred_label"] for r in got[1::2]]


def test_identities_and_series_keys_are_derived_from_the_option_dataclasses():
    """Each option dataclass marks the fields that change no result; the identity takes the
    rest, and the series keys stay those of the stores already written."""
    from dataclasses import fields

    from ce.extractors.attack import AttackOptions
    from ce.extractors.datasets import settled_sample
    from ce.extractors.extract import settled_model_options
    from ce.extractors.families import Representation
    from ce.extractors.finetune import FinetuneOptions
    from ce.extractors.identity import LEFT_OUT, identity, series_key, settings
    from ce.extractors.ood import OodOptions

    left_out = {
        cls.__name__: sorted({f.name for f in fields(cls)} - set(settings(cls())))
        for cls in (ExtractOptions, OodOptions, AttackOptions, FinetuneOptions)
    }
    assert left_out == {
        "ExtractOptions": ["allow_pickle", "batch_size", "device", "revision", "trust_remote_code"],
        "OodOptions": ["allow_pickle", "batch_size", "device", "revision"],
        "AttackOptions": [
            "allow_pickle",
            "attacker_revision",
            "batch_size",
            "checkpoint_every",
            "device",
            "restart",
            "revision",
        ],
        "FinetuneOptions": ["allow_pickle", "device", "revision"],
    }
    loaded, data = {"target": {"sha256": {"model.safetensors": "ab"}}}, {"dataset": "cd"}
    whole = AttackOptions(shard="1/4", device="cuda")  # no limit: the sample is left out
    unset = {"verbalizer": LEFT_OUT, "prompt": LEFT_OUT}  # as attack._settled leaves them out
    unsampled = identity(whole, loaded, data, **settled_sample(None, 1000, whole.sample), **unset)
    assert series_key("attack", whole, unsampled) == "attack-33f381d85f01c057"  # as before samples
    attack = AttackOptions(limit=50, shard="1/4", device="cuda")  # a seeded sample (not the first 50)
    assert series_key("attack", attack, identity(attack, loaded, data, **unset)) == "attack-079c42b8cc67d8f1"
    longer = AttackOptions(limit=80, shard="1/4")  # a longer attack continues the series
    assert series_key("attack", longer, identity(longer, loaded, data, **unset)) == "attack-079c42b8cc67d8f1"
    shard = ExtractOptions(limit=50, shard="1/4", device="cuda")
    encoder = settled_model_options("classify", Representation("cls", 2, 2, 32), shard, None)  # as before
    run_identity = identity(shard, loaded, data, precision="fp32", max_length=512, **encoder)
    assert series_key("extract", shard, run_identity) == "extract-9d2b95566f3c9b86"
