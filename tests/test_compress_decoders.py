"""ce compress on tiny decoders (GPT-2, Llama, Qwen2 from tests/families.py): every method
runs on them, and what it makes reloads through ce.extractors.loading and runs."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from ce.extractors.compress import (
    QUANTIZE,
    DistillOptions,
    compress,
    conv1d_to_linear,
    keep_layers,
    parse_method,
)
from ce.extractors.loading import load_model, parameter_counts
from ce.extractors.registry import resolve_model
from ce.store import Store
from ce.store.errors import CeError, NotFound

from .conftest import DATA_DIR
from .families import build_family, corpus

pytestmark = pytest.mark.usefixtures("data_dir")

DECODERS = ("gpt2", "llama", "qwen2")
BLOCK_LINEARS = {"gpt2": 4, "llama": 7, "qwen2": 7}  # GPT-2's are Conv1D


@pytest.fixture(scope="session")
def decoders(data_dir, tmp_path_factory) -> dict[str, dict[str, object]]:
    """{family: {'lm': folder, 'classification': folder}}: 3 blocks, width 32."""
    root = tmp_path_factory.mktemp("decoders")
    texts = corpus()[:800]
    return {
        family: build_family(family, root, texts, heads=("lm", "classification"), hidden=32, layers=3)
        for family in DECODERS
    }


@pytest.fixture(scope="session")
def sentences(data_dir) -> list[str]:
    lines = (DATA_DIR / "sst2" / "sst2_dev.tsv").read_text().splitlines()[1:51]
    return [line.split("\t")[0] for line in lines]


def reload(store: Store, name: str):
    """A model as ce loads it (its card applied): a causal LM for a decoder answering QA."""
    return load_model(resolve_model(name, "qa", "finetuned", store=store), "qa", "finetuned")


def blocks(model):
    base = model.base_model
    return base.h if hasattr(base, "h") else base.layers


def greedy(model, tokenizer, use_cache: bool = True) -> torch.Tensor:
    enc = tokenizer(["a fine , moving film", "dull"], return_tensors="pt", padding=True)
    return model.generate(
        **enc, max_new_tokens=6, do_sample=False, use_cache=use_cache, pad_token_id=tokenizer.pad_token_id
    )


@pytest.mark.parametrize("family", DECODERS)
def test_layers_keeps_the_chosen_blocks_and_the_model_generates(decoders, store_dir, family):
    from transformers import AutoModelForCausalLM

    store = Store(store_dir)
    info = compress(store, str(decoders[family]["lm"]), "layers:2", "small")
    assert info.details["kept_layers"] == [0, 2]
    loaded = reload(store, "small")
    parent = AutoModelForCausalLM.from_pretrained(decoders[family]["lm"])
    assert loaded.model.config.num_hidden_layers == 2 and len(blocks(loaded.model)) == 2
    for new, old in zip(blocks(loaded.model), [blocks(parent)[0], blocks(parent)[2]], strict=True):
        mine, theirs = new.state_dict(), old.state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert torch.equal(loaded.model.get_output_embeddings().weight, parent.get_output_embeddings().weight)
    assert loaded.provenance["derived_from"]["method"] == "layers:2"
    model, tokenizer = loaded.model, loaded.tokenizer
    assert torch.equal(greedy(model, tokenizer), greedy(model, tokenizer, use_cache=False))


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_keep_layers_renumbers_the_blocks_for_the_kv_cache(decoders, family):
    """In memory (a distill student generates before it is saved), not only once reloaded."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(decoders[family]["lm"]).eval()
    assert keep_layers(model, 2) == [0, 2]
    assert [layer.self_attn.layer_idx for layer in blocks(model)] == [0, 1]
    assert model.config.num_hidden_layers == 2
    assert len(getattr(model.config, "layer_types", None) or [0, 1]) == 2  # qwen2 has them
    tokenizer = AutoTokenizer.from_pretrained(decoders[family]["lm"])
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    assert torch.equal(greedy(model, tokenizer), greedy(model, tokenizer, use_cache=False))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_prune_reaches_the_sparsity_over_conv1d_and_linear_blocks_only(decoders, store_dir, family):
    from transformers import AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    store = Store(store_dir)
    info = compress(store, str(decoders[family]["lm"]), "prune:0.5", "half")
    assert info.details["sparsity_reached"] == pytest.approx(0.5, abs=0.01)
    pruned = AutoModelForCausalLM.from_pretrained(store.model_dir("half"))
    parent = AutoModelForCausalLM.from_pretrained(decoders[family]["lm"])
    modules = [m for m in blocks(pruned).modules() if isinstance(m, torch.nn.Linear | Conv1D)]
    weights = [m.weight for m in modules]
    assert len(weights) == 3 * BLOCK_LINEARS[family]
    assert any(isinstance(m, Conv1D) for m in modules) == (family == "gpt2")
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.5, abs=0.01)
    assert all(bool((w == 0).any()) for w in weights)  # global: every layer lost some
    for get in ("get_input_embeddings", "get_output_embeddings"):
        assert torch.equal(getattr(pruned, get)().weight, getattr(parent, get)().weight)
    loaded = reload(store, "half")
    total, nonzero = loaded.provenance["model_parameters"], loaded.provenance["model_nonzero_parameters"]
    assert nonzero < total
    greedy(loaded.model, loaded.tokenizer)


def quantised(model) -> dict[str, torch.nn.Module]:
    """The modules whose weights are quantised (torch's dynamic int8 or torchao's)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torchao.utils import TorchAOBaseTensor

    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, DynamicLinear) or isinstance(getattr(m, "weight", None), TorchAOBaseTensor)
    }


def logits(model, tokenizer, sentences) -> torch.Tensor:
    enc = tokenizer(sentences, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**enc).logits[enc["attention_mask"].bool()]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("method", ["int8", "int8-weight", "int4-weight"])
def test_quantised_models_reload_quantised_and_close_to_the_float_model(
    decoders, store_dir, sentences, family, method
):
    store = Store(store_dir)
    folder = decoders[family]["lm"]
    info = compress(store, str(folder), method, "q")
    assert info.card["load"] == {"quantize": QUANTIZE[method]}
    loaded = reload(store, "q")
    base = reload(store, str(folder))
    done = quantised(loaded.model)
    in_blocks = [name for name in done if name != "lm_head"]
    assert len(in_blocks) == 3 * BLOCK_LINEARS[family]  # GPT-2's Conv1D included
    assert ("lm_head" in done) == (method == "int8")  # weight-only keeps the LM head float
    assert isinstance(loaded.provenance["model_parameters"], int)
    got, want = (
        logits(loaded.model, loaded.tokenizer, sentences),
        logits(base.model, base.tokenizer, sentences),
    )
    relative = float((got - want).norm() / (want - want.mean(-1, keepdim=True)).norm())
    top1 = float((got.argmax(-1) == want.argmax(-1)).float().mean())
    if method == "int8":  # activations are quantised too
        assert relative < 0.25
        return
    reference = copy.deepcopy(base.model)  # the float model with the quantised weights, dequantised
    conv1d_to_linear(reference)
    for name, module in done.items():
        exact = reference.get_submodule(name).weight.detach()
        weight = module.weight.dequantize()
        bound = exact.abs().max() / (254 if method == "int8-weight" else 14)  # half a step, per row or group
        assert float((weight - exact).abs().max()) <= float(bound)
        reference.get_submodule(name).weight = torch.nn.Parameter(weight)
    assert torch.allclose(got, logits(reference, base.tokenizer, sentences), atol=1e-3)
    if method == "int8-weight":
        assert relative < 0.05 and top1 > 0.9
    else:
        assert relative < 0.6


def test_parameter_counts_dequantise_torchao_weights():
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    model = torch.nn.Sequential(torch.nn.Linear(32, 8, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(0.5)[:, :16] = 0
    quantize_(model, Int8WeightOnlyConfig())
    assert parameter_counts(model) == (256, 128)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("head", ["lm", "classification"])
def test_distill_trains_a_decoder_student_and_keeps_the_tokenizer(
    decoders, store_dir, sentences, family, head
):
    from transformers import AutoConfig, AutoTokenizer

    store = Store(store_dir)
    folder = decoders[family][head]
    options = DistillOptions(
        dataset="sst2-dev", limit=64, epochs=3, learning_rate=3e-3, batch_size=16, max_length=32
    )
    info = compress(store, str(folder), "distill:1", "student", distill_options=options, progress=False)
    assert info.details["kept_layers"] == [0] and info.details["distill_steps"] == 12
    assert info.details["distill_loss_last"] < info.details["distill_loss_first"]
    saved = store.model_dir("student")
    assert AutoConfig.from_pretrained(saved).num_hidden_layers == 1
    assert AutoConfig.from_pretrained(saved).pad_token_id == AutoConfig.from_pretrained(folder).pad_token_id
    mine, theirs = AutoTokenizer.from_pretrained(saved), AutoTokenizer.from_pretrained(folder)
    assert mine.pad_token is None and theirs.pad_token is None  # padding was for training only
    tokenizer_json = json.loads((saved / "tokenizer.json").read_text())
    assert tokenizer_json["padding"] is None and tokenizer_json["truncation"] is None
    assert [mine(s)["input_ids"] for s in sentences] == [theirs(s)["input_ids"] for s in sentences]
    if head == "lm":
        student = reload(store, "student")
        greedy(student.model, student.tokenizer)


def test_layers_refuses_t5_in_one_line(data_dir, tmp_path, store_dir):
    t5 = build_family("t5", tmp_path, corpus()[:400], heads=("lm",))["lm"]
    with pytest.raises(CeError, match="supports? BERT-like, DistilBERT-like, GPT-2-like and Llama-like") as e:
        compress(Store(store_dir), str(t5), "layers:1", "t5-small")
    assert "\n" not in str(e.value)


def test_methods_name_the_weight_only_quantisations():
    assert str(parse_method("int4-weight")) == "int4-weight"
    with pytest.raises(NotFound, match=r"use int8, prune:S, layers:N, distill:N, int8-weight, int4-weight"):
        parse_method("int3-weight")
