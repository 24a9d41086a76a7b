"""ce attack on decoders (issue 16): the TextAttack wrapper of a decoder with a classification
head (padded on the right, the pad token set) and of one without (label words scored by
choices.label_probs), on tiny GPT-2, Llama and Qwen2 models over real SST-2 dev sentences,
and BERT-Attack end to end with a tiny masked-LM attacker."""

from __future__ import annotations

import numpy as np
import pytest

from ce.extractors.attack import AttackOptions, classifier_wrapper, run_attack
from ce.extractors.choices import label_probs, with_dataset_defaults
from ce.extractors.datasets import load_dataset, subset
from ce.extractors.extract import ExtractOptions
from ce.extractors.loading import load_model
from ce.extractors.registry import ResolvedModel
from ce.store import Store
from ce.store.errors import CeError

from .conftest import needs_data, stored
from .families import build_family, corpus

pytestmark = [pytest.mark.usefixtures("data_dir"), needs_data("sst2/sst2_dev.tsv", "sst2/sst2_train.tsv")]

DECODERS = ("gpt2", "llama", "qwen2")


@pytest.fixture(scope="module")
def decoders(tmp_path_factory) -> dict[str, dict]:
    """{family: {'classification': folder, 'lm': folder}}: one seeded base, two heads."""
    root = tmp_path_factory.mktemp("attack-decoders")
    texts = corpus()
    return {family: build_family(family, root, texts, heads=("classification", "lm")) for family in DECODERS}


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """16 SST-2 dev sentences, from short to long (so that a batch pads most of them)."""
    texts = subset(load_dataset("sst2-dev"), 16).table["text"].to_pylist()
    assert len({len(t.split()) for t in texts}) > 8
    return texts


def loaded_target(folder):
    return load_model(ResolvedModel(folder.name, str(folder), True), "classification", "finetuned")


@pytest.mark.parametrize("family", DECODERS)
def test_a_padded_batch_scores_as_one_text_at_a_time(decoders, sentences, family):
    loaded = loaded_target(decoders[family]["classification"])
    assert loaded.how == "classify" and loaded.family.decoder
    assert loaded.tokenizer.pad_token is not None and loaded.model.config.pad_token_id is not None
    wrapper = classifier_wrapper(loaded, max_length=128)
    batch = wrapper(sentences)
    alone = np.concatenate([wrapper([t]) for t in sentences])
    assert batch.shape == (len(sentences), 2)
    np.testing.assert_allclose(batch, alone, atol=1e-4)
    np.testing.assert_allclose(batch.sum(axis=1), 1, atol=1e-6)
    assert np.abs(batch[:, 0] - batch[0, 0]).max() > 1e-3  # the texts matter


@pytest.mark.parametrize("family", DECODERS)
def test_a_decoder_without_a_head_is_scored_by_label_words(decoders, sentences, family):
    loaded = loaded_target(decoders[family]["lm"])
    assert loaded.how == "verbalize"
    scoring = with_dataset_defaults(ExtractOptions(max_length=128, batch_size=4), "sst2-dev")
    assert scoring.verbalizer == "negative,positive"
    wrapper = classifier_wrapper(loaded, max_length=128, options=scoring)
    assert wrapper.model is loaded.model  # TextAttack reads the wrapped model's class
    batch = wrapper(sentences)
    alone = np.concatenate([wrapper([t]) for t in sentences])
    assert batch.shape == (len(sentences), 2) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, alone, atol=1e-4)
    np.testing.assert_allclose(batch, label_probs(loaded, sentences, scoring), atol=1e-6)
    with pytest.raises(CeError, match="no classification head.*label words"):
        classifier_wrapper(loaded, options=ExtractOptions())


@pytest.mark.parametrize("family,head", [("llama", "classification"), ("gpt2", "lm")])
def test_bert_attack_runs_on_a_decoder(decoders, tiny_models, store_dir, family, head):
    """BERT-Attack with the tiny BERT masked LM as attacker, five SST-2 dev sentences."""
    store = Store(store_dir)
    opts = AttackOptions(
        attacker=str(tiny_models["mlm"]),
        sentence_encoder=str(tiny_models["base"]),
        max_candidates=4,
        limit=5,
        checkpoint_every=5,
    )
    info = run_attack(store, str(decoders[family][head]), "sst2-dev", opts, progress=False, name="dec")
    assert info.succeeded + info.failed + info.skipped == 5
    assert info.succeeded >= 1  # a random decoder breaks too
    got = stored(store_dir, "attacks", model="dec", attack="bert-attack", dataset="sst2-dev")
    assert len(got) == 5
    loaded = loaded_target(decoders[family][head])
    scoring = with_dataset_defaults(
        ExtractOptions(max_length=512, batch_size=32, precision="fp32"), "sst2-dev"
    )
    wrapper = classifier_wrapper(loaded, options=scoring if head == "lm" else None)
    probs = wrapper([r["original_text"] for r in got])
    for r, p in zip(got, probs, strict=True):
        assert r["original_output"] == int(np.argmax(p))
        assert r["original_score"] == pytest.approx(float(p.max()), abs=1e-4)
        if r["result"] == "succeeded":
            assert r["perturbed_output"] != r["original_output"] and r["words_perturbed"] >= 1
    [run] = [r for r in store.runs() if r["command"] == "attack"]
    assert run["architecture"].startswith({"llama": "Llama", "gpt2": "GPT2"}[family])
