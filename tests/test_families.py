"""Every family, represented on purpose and padded so that no batch changes a result (issue 16).

Tiny random-init models of nine families (tests/families.py: tokenizers trained on fixture
text, saved and loaded back through ce's loading code) over the first 48 SST-2 dev sentences.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from ce.store.errors import CeError
from ce.store.store import Store

from .conftest import needs_data
from .families import DECODERS, FAMILIES

pytestmark = needs_data("sst2/sst2_dev.tsv")


@pytest.fixture(scope="module")
def sentences():
    from ce.extractors.datasets import load_dataset, subset

    return subset(load_dataset("sst2-dev"), 48, sample="first")


def loaded_model(folder, task, stage="finetuned"):
    from ce.extractors.loading import load_model
    from ce.extractors.registry import ResolvedModel

    return load_model(ResolvedModel(folder.name, str(folder), True), task, stage)


def run(model, data, stage="finetuned", **options):
    from ce.extractors.extract import ExtractOptions, forward_all

    return forward_all(model, data, ExtractOptions(stage=stage, **options), progress=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_embeds_distinct_inputs_apart_whatever_the_batch(family, family_models, sentences):
    model = loaded_model(family_models[family]["base"], None, "pretrained")
    _, one = run(model, sentences, "pretrained", batch_size=1)
    _, many = run(model, sentences, "pretrained", batch_size=32)
    assert len(np.unique(many.round(5), axis=0)) == len(sentences)  # no shared <s> or padding vector
    np.testing.assert_allclose(one, many, atol=1e-4)
    expected = {"t5": "mean"}.get(family, "last" if family in DECODERS else "cls")
    assert model.family.pooling == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_with_a_head_predicts_the_same_whatever_the_batch(family, family_models, sentences):
    model = loaded_model(family_models[family]["classification"], "classification")
    assert model.how == "classify"
    one, one_vectors = run(model, sentences, batch_size=1)
    many, many_vectors = run(model, sentences, batch_size=32)
    assert one["pred_label"].to_pylist() == many["pred_label"].to_pylist()
    np.testing.assert_allclose(
        np.stack(one["probs"].to_pylist()), np.stack(many["probs"].to_pylist()), atol=1e-4
    )
    np.testing.assert_allclose(one_vectors, many_vectors, atol=1e-4)
    assert len(set(many["pred_label"].to_pylist())) == 2  # a live head, not a constant


def test_a_tokenizer_without_a_pad_token_gets_one_from_its_vocabulary(family_models):
    for family in ("gpt2", "llama"):
        model = loaded_model(family_models[family]["classification"], "classification")
        vocabulary = len(model.tokenizer)
        assert model.tokenizer.pad_token in (model.tokenizer.eos_token, model.tokenizer.unk_token)
        assert len(model.tokenizer) == vocabulary  # no new embedding
        assert model.model.config.pad_token_id == model.tokenizer.pad_token_id
        assert model.provenance["pad_token"] == model.tokenizer.pad_token


def test_the_last_token_index_is_right_on_either_padding_side():
    import torch

    from ce.extractors.families import last_token_index

    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert last_token_index(right).tolist() == [2, 4, 0]
    assert last_token_index(left).tolist() == [4, 4, 4]


@pytest.mark.parametrize("family", DECODERS)
def test_a_decoder_padded_on_the_left_gives_the_vectors_extract_gives(family, family_models, sentences):
    """An independent recount: the same sentences padded on the left (positions from the mask,
    as generation does) and pooled at the last position equal what extract stores."""
    import torch

    from ce.extractors.families import pool

    model = loaded_model(family_models[family]["base"], None, "pretrained")
    _, stored = run(model, sentences, "pretrained", batch_size=16)
    tokenizer = model.tokenizer
    tokenizer.padding_side = "left"
    texts = sentences.table["text"].to_pylist()[:16]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    positions = (enc["attention_mask"].cumsum(1) - 1).clamp(min=0)
    with torch.inference_mode():
        out = model.model(**enc, position_ids=positions)
    left = pool(out.last_hidden_state, enc["attention_mask"], "last").numpy()
    np.testing.assert_allclose(left, stored[:16], atol=1e-4)


def test_pooling_and_layer_override_the_family(family_models, sentences):
    """--pooling mean --layer 0.5 on BERT: the masked mean of the middle hidden state, one
    sentence at a time (no padding at all)."""
    import torch

    model = loaded_model(family_models["bert"]["base"], None, "pretrained")
    _, vectors = run(model, sentences, "pretrained", batch_size=32, pooling="mean", layer="0.5")
    with torch.inference_mode():
        for i, text in enumerate(sentences.table["text"].to_pylist()[:5]):
            enc = model.tokenizer(text, return_tensors="pt")
            hidden = model.model(**enc, output_hidden_states=True).hidden_states[1]  # 0.5 of 2 blocks
            np.testing.assert_allclose(vectors[i], hidden[0].mean(0).numpy(), atol=1e-5)
    _, embeddings = run(model, sentences, "pretrained", layer="0")
    _, top = run(model, sentences, "pretrained", layer="-1")
    _, default = run(model, sentences, "pretrained")
    assert not np.allclose(embeddings, top)
    np.testing.assert_array_equal(top, default)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("7", "--layer 7: the model has 2 blocks, so use 0..2 or -3..-1"),
        ("1.5", "--layer 1.5: a fraction of depth lies strictly between 0 and 1"),
        ("middle", "--layer 'middle' is not a layer"),
    ],
)
def test_a_layer_the_model_lacks_is_one_line(family_models, sentences, layer, message):
    model = loaded_model(family_models["gpt2"]["base"], None, "pretrained")
    with pytest.raises(CeError, match=message.replace("(", r"\(").replace(".", r"\.")):
        run(model, sentences, "pretrained", layer=layer)


def test_each_family_answers_its_task_on_purpose(family_models):
    from ce.extractors.families import Family, route

    decoder = Family("decoder", "llama")
    assert route(decoder, "classification", "finetuned", ["LlamaForCausalLM"])[0] == "verbalize"
    assert route(decoder, "classification", "finetuned", ["LlamaForSequenceClassification"])[0] == "classify"
    assert route(decoder, "qa", "finetuned", ["LlamaForCausalLM"]) == ("generate", "AutoModelForCausalLM")
    assert route(Family("seq2seq", "t5"), None, "pretrained", None) == ("encode", "T5EncoderModel")
    with pytest.raises(
        CeError, match="ce cannot run choice on t5 models; it runs choice on decoder, encoder"
    ):
        route(Family("seq2seq", "t5"), "choice", "finetuned", ["T5ForConditionalGeneration"])


def test_an_unsupported_architecture_fails_in_one_line_naming_what_is(family_models, tmp_path, monkeypatch):
    from ce.cli import cli

    folder = tmp_path / "vision"
    shutil.copytree(family_models["bert"]["base"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"model_type": "vit"}))
    store = tmp_path / "store"
    result = CliRunner().invoke(
        cli,
        ["--store", str(store), "extract", "--model", str(folder), "--dataset", "sst2-dev", "--limit", "4"],
    )
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"{folder} is a 'vit' model, which ce does not support; it supports encoders (albert" in line
    assert "T5-style models (t5, mt5, umt5) and decoders (falcon" in line
    assert not store.exists() or not any((store / "runs").glob("*.json"))


def test_the_run_records_the_representation_and_decoder_runs_of_before_are_stale(family_models, tmp_path):
    """Extract records family, pooling and layer; an encoder's CLS identity is as before, a
    decoder's names its pooling (runs made before took position 0: they must run again)."""
    from ce.extractors.datasets import load_dataset
    from ce.extractors.extract import ExtractOptions, extract, extract_stale

    store = Store(tmp_path / "store")
    data = load_dataset("sst2-dev")
    options = ExtractOptions(limit=12, k_max=3)
    extract(store, str(family_models["llama"]["classification"]), data, options, name="llama", progress=False)
    (record,) = [r for r in store.runs() if r.get("command") == "extract"]
    assert record["family"] == "decoder" and record["answered_by"] == "classify"
    assert record["representation"] == {"pooling": "last", "layer": 2, "blocks": 2}
    assert record["identity"]["pooling"] == "last" and record["identity"]["layer"] == 2
    assert extract_stale(store, str(family_models["llama"]["classification"]), data, options, "llama") is None
    wider = ExtractOptions(limit=12, k_max=3, pooling="mean")
    assert extract_stale(store, str(family_models["llama"]["classification"]), data, wider, "llama") == [
        "pooling last -> mean"
    ]
    extract(store, str(family_models["bert"]["classification"]), data, options, name="bert", progress=False)
    bert = [r for r in store.runs() if r.get("model") == "bert"][0]
    assert "pooling" not in bert["identity"] and "layer" not in bert["identity"]
    assert bert["representation"] == {"pooling": "cls", "layer": 2, "blocks": 2}


def test_representations_hand_checked(family_models, tmp_path):
    """The representations view, hand-checked: one row per (model, stage, dataset) from the
    latest extraction; ce compare notes a pair whose pooling or relative depth differ."""
    from ce.extractors.datasets import load_dataset
    from ce.extractors.extract import ExtractOptions, extract
    from ce.session import Session

    store = Store(tmp_path / "store")
    data = load_dataset("sst2-dev")
    for family, options in [
        ("bert", ExtractOptions(limit=20, k_max=5)),
        ("llama", ExtractOptions(limit=20, k_max=5, layer="1")),
        ("llama", ExtractOptions(limit=20, k_max=5)),  # the later run is the one that counts
        ("gpt2", ExtractOptions(limit=20, k_max=5, stage="pretrained", pooling="mean", layer="0.5")),
    ]:
        folder = family_models[family]["classification" if options.stage == "finetuned" else "base"]
        extract(store, str(folder), data, options, name=family, progress=False)
    session = Session(store.root)
    rows = session.query("select * from representations order by model, stage").rows()
    assert rows == [
        {"model": "bert", "stage": "finetuned", "dataset": "sst2-dev", "family": "encoder",
         "pooling": "cls", "layer": 2, "blocks": 2},
        {"model": "gpt2", "stage": "pretrained", "dataset": "sst2-dev", "family": "decoder",
         "pooling": "mean", "layer": 1, "blocks": 2},
        {"model": "llama", "stage": "finetuned", "dataset": "sst2-dev", "family": "decoder",
         "pooling": "last", "layer": 2, "blocks": 2},
    ]  # fmt: skip
    notes = session.table2(k=5).notes
    assert (
        "note: bert and llama represent sst2-dev (finetuned) differently (bert: first token of block 2"
        " of 2; llama: last token of block 2 of 2), so their neighbour agreement compares those"
        " representations" in notes
    )
    session.close()
    # a run made before ce recorded representations took the first token of the last block
    (record,) = [r for r in store.runs() if r.get("model") == "llama" and r["identity"].get("layer") == 2]
    path = store.root / "runs" / f"{record['run_id']}.json"
    older = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("representation", "family")}
    path.write_text(json.dumps(older))
    session = Session(store.root)
    llama = session.query("select * from representations where model = 'llama'").rows()
    assert llama == [
        {"model": "llama", "stage": "finetuned", "dataset": "sst2-dev", "family": None,
         "pooling": "cls", "layer": None, "blocks": None}
    ]  # fmt: skip
    notes = session.table2(k=5).notes
    assert not any("bert and llama represent" in n for n in notes)  # both: first token, last block
    assert session.table2(k=5).rows()


def test_a_config_pad_id_is_the_pad_token_the_batches_use(family_models, sentences, tmp_path):
    """A Llama-derived classifier whose config names pad id 0 but whose tokenizer has no pad
    token: batches pad with id 0 (what the head looks for), so batch 16 equals batch 1."""
    folder = tmp_path / "llama-pad0"
    shutil.copytree(family_models["llama"]["classification"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"pad_token_id": 0}))
    model = loaded_model(folder, "classification")
    assert model.tokenizer.pad_token_id == 0 == model.model.config.pad_token_id
    one, _ = run(model, sentences, batch_size=1)
    many, _ = run(model, sentences, batch_size=16)
    np.testing.assert_allclose(
        np.stack(one["probs"].to_pylist()), np.stack(many["probs"].to_pylist()), atol=1e-4
    )


def test_a_checkpoint_without_the_head_a_task_needs_is_refused(family_models):
    """A decoder classifier asked to answer questions would generate with a random LM head."""
    with pytest.raises(CeError, match="has no trained language-model head \\(missing lm_head.weight\\)"):
        loaded_model(family_models["llama"]["classification"], "qa")


def test_the_identity_names_what_each_way_of_answering_reads(family_models):
    from ce.extractors.datasets import load_dataset
    from ce.extractors.extract import ExtractOptions, extract_identity
    from ce.extractors.loading import model_files
    from ce.extractors.registry import ResolvedModel

    data = load_dataset("sst2-dev")
    lm = model_files(ResolvedModel("lm", str(family_models["gpt2"]["lm"]), True))
    head = model_files(ResolvedModel("head", str(family_models["gpt2"]["classification"]), True))

    def ident(files, **options):
        return extract_identity(ExtractOptions(**options), files, data, "cpu")

    words = ident(lm)  # label words after a prompt: the defaults spelled out
    assert words["verbalizer"] == "negative,positive" and words["prompt"] == "{text}\nSentiment:"
    assert ident(lm, verbalizer="negative,positive", prompt="{text}\nSentiment:") == words
    assert ident(lm, choice_score="per-token") != words
    assert "max_new_tokens" not in words
    with_head = ident(head, verbalizer="bad,good", prompt="{text}", choice_score="per-token")
    assert with_head == ident(head)  # a head reads none of them
    assert not {"verbalizer", "prompt", "choice_score", "max_new_tokens"} & set(with_head)


def test_an_ood_identity_settles_the_representation_as_the_extraction_does(family_models):
    """Naming the family's own pooling or the last block is the default; another is not."""
    from ce.extractors.datasets import load_dataset
    from ce.extractors.loading import model_files
    from ce.extractors.ood import OodOptions, ood_identity
    from ce.extractors.registry import ResolvedModel

    data = load_dataset("sst2-dev")
    roles = {"bank": data, "id_val": data, "test": data}

    def ood(family, **options):
        files = model_files(ResolvedModel(family, str(family_models[family]["classification"]), True))
        return ood_identity(OodOptions(**options), files, roles, None, family)

    assert ood("llama", pooling="last", layer=-1) == ood("llama") != ood("llama", pooling="mean")
    assert ood("llama")["pooling"] == "last" and ood("llama")["layer"] == 2
    assert ood("bert", pooling="cls", layer="-1") == ood("bert")
    assert not {"pooling", "layer", "verbalizer", "prompt"} & set(ood("bert"))  # as before
