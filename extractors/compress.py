"""``ce compress``: compressed variants derived locally, saved in the store's model folder.

Methods, for BERT-like and DistilBERT-like encoders and GPT-2-like and Llama-like (Llama,
Qwen2, Mistral) decoders:

- ``int8``: torch's dynamic int8 quantisation of the linear layers (GPT-2's Conv1D layers
  turned into the nn.Linear they are, transposed, first).
- ``int8-weight``, ``int4-weight``: weight-only quantisation by torchao of the linear layers
  but the LM head (int8 per output row; int4 in groups of 32 inputs, a layer whose inputs do
  not split into such groups staying float). Activations stay float.
- ``prune:S``: global magnitude pruning of the transformer blocks' linear (and Conv1D)
  weights to sparsity S; embeddings and heads are kept.
- ``layers:N``: keep N evenly spaced transformer blocks.
- ``distill:N``: a student of N evenly spaced teacher blocks trained on the teacher's
  softened outputs over a dataset's texts: its class distribution for a classifier, its
  next-token distribution at every (unpadded) position for a causal language model.

The three quantisations are applied when the model is loaded (loading._apply_card, from the
card's ``load``), since quantised weights have no safetensors form: the variant's weights
are saved as float. The variant keeps its parent's task head and tokenizer and records its
parent and parameters.

Why torchao (0.18, matched to torch >= 2.11) for the weight-only methods: it is PyTorch's
own quantisation library and its weight-only paths run in plain PyTorch on the CPU (no build
step). Measured against the float model on 50 SST-2 dev sentences (small GPT-2 and Llama
LMs trained briefly on SST-2, 1428 positions): int8 weight-only keeps 99.8-99.9% of top-1
next tokens (max |logit change| 0.03-0.05), int4 in groups of 32 98.0-99.0% (0.38-0.76).
optimum-quanto 0.2.7 was as close (qint8 99.7-99.9%, qint4 98.5-99.2%) but its int4 compiles
a C++ extension into its own package folder on first use (81 s here, and it needs a
compiler). torchao's packed Int4WeightOnlyConfig does not run on a float32 CPU model (it
needs mslk, a CUDA device or bfloat16), hence IntxWeightOnlyConfig(int4): int4 values, kept
one per byte.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ce.store.errors import CeError, NotFound, did_you_mean
from ce.store.schema import check_name
from ce.store.store import Store

METHODS = ("int8", "prune:S", "layers:N", "distill:N", "int8-weight", "int4-weight")
CARD = "ce-model.json"
QUANTIZE = {  # method -> what the card's load.quantize asks loading._apply_card to do
    "int8": "dynamic-int8-linear",
    "int8-weight": "torchao-int8-weight",
    "int4-weight": "torchao-int4-weight-group32",
}
INT4_GROUP = 32
BLOCKS = ("encoder.layer", "transformer.layer", "layers", "h")  # BERT, DistilBERT, Llama/Qwen2/Mistral, GPT-2


@dataclass(frozen=True)
class ModelResult:
    """A model a job made in the store's model folder (ce compress, ce finetune)."""

    name: str
    parent: str
    method: str  # int8, int8-weight, int4-weight, prune:S, layers:N, distill:N, finetune:TASK
    run_id: str
    card: dict  # as saved in its ce-model.json, but for the run id
    details: dict = field(default_factory=dict)  # compress: kept_layers, sparsity_reached, distill_*


@dataclass(frozen=True)
class Method:
    name: str  # int8, int8-weight, int4-weight, prune, layers, distill
    value: float | int | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


def parse_method(text: str) -> Method:
    name, _, value = text.partition(":")
    if name in QUANTIZE and not value:
        return Method(name)
    if name == "prune":
        try:
            sparsity = float(value)
        except ValueError:
            raise CeError(f"prune needs a sparsity, e.g. prune:0.5 (got {text!r})") from None
        if not 0 <= sparsity < 1:
            raise CeError(f"sparsity {sparsity} must lie in [0, 1), e.g. prune:0.5")
        return Method("prune", sparsity)
    if name in ("layers", "distill"):
        if not re.fullmatch(r"\d+", value) or int(value) < 1:
            raise CeError(f"{name} needs a positive number of layers, e.g. {name}:3 (got {text!r})")
        return Method(name, int(value))
    raise NotFound(
        f"unknown compression method {text!r}"
        f"{did_you_mean(name, [m.partition(':')[0] for m in METHODS])}; use {', '.join(METHODS)}"
    )


def transformer_blocks(model):
    """(owner, attribute) of the ModuleList of transformer blocks: BERT-like ``encoder.layer``,
    DistilBERT-like ``transformer.layer``, Llama/Qwen2/Mistral ``layers``, GPT-2 ``h``."""
    import torch

    for path in BLOCKS:
        *parents, attr = path.split(".")
        owner = model.base_model
        for parent in parents:
            owner = getattr(owner, parent, None)
        if isinstance(getattr(owner, attr, None), torch.nn.ModuleList):
            return owner, attr
    raise CeError(
        f"{type(model).__name__} has no transformer block list ce knows; layers, prune and distill"
        " support BERT-like, DistilBERT-like, GPT-2-like and Llama-like (Llama, Qwen2, Mistral) models"
    )


def keep_layers(model, n: int) -> list[int]:
    """Keep ``n`` evenly spaced blocks; renumber them (a decoder's KV cache is indexed by
    ``layer_idx``) and fit the config's layer count and per-layer ``layer_types``."""
    import torch

    owner, attr = transformer_blocks(model)
    layers = getattr(owner, attr)
    total = len(layers)
    if n > total:
        raise CeError(f"layers:{n} asks for more layers than the model has ({total})")
    keep = sorted({int(round(i)) for i in np.linspace(0, total - 1, n)})
    setattr(owner, attr, torch.nn.ModuleList([layers[i] for i in keep]))
    for position, i in enumerate(keep):
        for module in layers[i].modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = position
    config = model.config
    for key in ("num_hidden_layers", "n_layers", "n_layer"):
        if isinstance(getattr(config, key, None), int):
            setattr(config, key, len(keep))
    if getattr(config, "layer_types", None):
        config.layer_types = [config.layer_types[i] for i in keep]
    return keep


def prune(model, sparsity: float) -> float:
    """Global magnitude pruning of the blocks' Linear and GPT-2 Conv1D weights (not the
    embeddings, not the heads); returns the sparsity reached."""
    import torch
    from torch.nn.utils import prune as torch_prune
    from transformers.pytorch_utils import Conv1D

    owner, attr = transformer_blocks(model)
    targets = [
        (m, "weight") for m in getattr(owner, attr).modules() if isinstance(m, torch.nn.Linear | Conv1D)
    ]
    torch_prune.global_unstructured(targets, pruning_method=torch_prune.L1Unstructured, amount=sparsity)
    for module, name in targets:
        torch_prune.remove(module, name)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in targets)
    return zeros / sum(m.weight.numel() for m, _ in targets)


def conv1d_to_linear(model) -> int:
    """Replace GPT-2's Conv1D layers (a linear layer with its weight transposed) by the
    equivalent nn.Linear, so that quantisers that take nn.Linear see them; returns how many."""
    import torch
    from transformers.pytorch_utils import Conv1D

    count = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, Conv1D):
                linear = torch.nn.Linear(child.nx, child.nf, device="meta")  # its weights are set next
                linear.weight = torch.nn.Parameter(child.weight.detach().t().contiguous())
                linear.bias = child.bias
                setattr(module, name, linear)
                count += 1
    return count


def quantize(model, scheme: str):
    """Apply a card's ``load.quantize`` scheme (see QUANTIZE) to a loaded float model; returns
    the model (dynamic int8 makes a new one)."""
    import torch

    conv1d_to_linear(model)
    if scheme == QUANTIZE["int8"]:
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    from torchao.quantization import Int8WeightOnlyConfig, IntxWeightOnlyConfig, PerGroup, quantize_

    configs = {
        QUANTIZE["int8-weight"]: (Int8WeightOnlyConfig(set_inductor_config=False), 1),
        QUANTIZE["int4-weight"]: (IntxWeightOnlyConfig(torch.int4, PerGroup(INT4_GROUP)), INT4_GROUP),
    }
    if scheme not in configs:
        raise CeError(f"the model's card asks for an unknown quantisation {scheme!r}; update ce")
    config, group = configs[scheme]
    head = model.get_output_embeddings()

    def chosen(module, _name) -> bool:
        return isinstance(module, torch.nn.Linear) and module is not head and module.in_features % group == 0

    quantize_(model, config, filter_fn=chosen)
    return model


@dataclass(frozen=True)
class DistillOptions:
    dataset: str | None = None  # texts the student learns the teacher's outputs on
    limit: int | None = 2000  # a seeded sample of N texts
    sample: str = "stratified"  # how limit chooses: stratified by label, or first
    epochs: float = 1.0
    learning_rate: float = 1e-4
    temperature: float = 2.0
    batch_size: int = 32
    max_length: int = 128
    seed: int = 0  # seeds the student's training and the sample


def distill(
    teacher,
    tokenizer,
    texts: list[str],
    layers: int,
    o: DistillOptions,
    progress: bool = True,
    label: str = "distill",
) -> tuple[object, dict]:
    """A student of ``layers`` evenly spaced teacher blocks (the head kept), trained to match
    the teacher's softened outputs (KL divergence at temperature T, scaled by T^2): a
    classifier's class distribution, or a causal LM's next-token distribution at every
    position the attention mask keeps. A tokenizer without a pad token (GPT-2, Llama) pads
    with one of its own tokens (families.ensure_pad_token) while training only: the student's
    config and the tokenizer saved with it are left as they were."""
    import copy

    import torch
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    from .families import ensure_pad_token
    from .progress import bar as progress_bar

    kind = type(teacher).__name__
    causal = kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()
    if not causal and kind not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values():
        raise CeError(
            f"distill needs a classification teacher or a causal language model ({kind} is"
            " neither); fine-tune a classifier first with ce finetune"
        )
    tokenizer = copy.deepcopy(tokenizer)  # its padding and truncation stay out of the saved one
    pad_id = teacher.config.pad_token_id
    ensure_pad_token(tokenizer, teacher)  # a decoder classifier finds each text's last token by it
    torch.manual_seed(o.seed)
    student = copy.deepcopy(teacher)
    kept = keep_layers(student, layers)
    student.train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=o.learning_rate)
    steps = int(np.ceil(len(texts) / o.batch_size) * o.epochs)
    order = np.random.default_rng(o.seed).permutation(len(texts))
    losses = []

    def outputs(model, enc):  # (examples or positions, classes or vocabulary)
        logits = model(**enc).logits / o.temperature
        return logits[enc["attention_mask"].bool()] if causal else logits

    with progress_bar(label, steps, "step", progress=progress) as bar:
        for step in range(steps):
            start = (step * o.batch_size) % len(texts)
            batch = [texts[i] for i in order[start : start + o.batch_size]]
            enc = tokenizer(
                batch, truncation=True, max_length=o.max_length, padding=True, return_tensors="pt"
            )
            with torch.no_grad():
                target = torch.softmax(outputs(teacher, enc), dim=-1)
            log_probs = torch.log_softmax(outputs(student, enc), dim=-1)
            loss = torch.nn.functional.kl_div(log_probs, target, reduction="batchmean")
            loss = loss * o.temperature**2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.update(1)
    teacher.config.pad_token_id = student.config.pad_token_id = pad_id
    student.eval()
    return student, {
        "kept_layers": kept,
        "distill_steps": steps,
        "distill_loss_first": losses[0],
        "distill_loss_last": losses[-1],
    }


def compress_identity(method: Method, files, distill_options: DistillOptions, data) -> dict:
    """What a compressed model depends on (see identity.py): the method, the parent's (or
    teacher's) files, and for distill its options and the texts' fingerprint."""
    distilled = method.name == "distill"
    settings = asdict(distill_options)
    settings.pop("sample")  # the texts' fingerprint says what the sample chose; how it chose does not count
    return {
        "method": str(method),
        "distill": settings if distilled else None,
        "weights": {"teacher" if distilled else "parent": files.sha256},
        "datasets": {"dataset": data.fingerprint} if distilled else {},
    }


def _distill_texts(method: Method, o: DistillOptions):
    """The dataset a distill learns from (a seeded sample of ``limit`` texts); None for other
    methods."""
    if method.name != "distill":
        return None
    if not o.dataset:
        raise CeError("distill needs texts to learn from: add --dataset (e.g. sst2-train)")
    from .datasets import check_sample, load_dataset, subset

    check_sample(o.sample)
    data = subset(load_dataset(o.dataset), o.limit, seed=o.seed, sample=o.sample)
    if data.task != "classification":
        raise CeError(f"distill learns from texts; {data.name} is a {data.task} dataset")
    return data


def _parent(store: Store, model: str, allow_pickle: bool, revision: str | None):
    """The model to compress, resolved, and its checked files."""
    from .loading import model_files
    from .registry import resolve_model

    resolved = resolve_model(model, None, "pretrained", store=store)
    return resolved, model_files(resolved, revision, allow_pickle)


def compress_stale(
    store: Store, model, method, name, allow_pickle=False, distill_options=DistillOptions(), revision=None
) -> list[str] | None:
    """None when the store's model ``name`` was compressed the same way from the same files;
    else why it must be made. The arguments are compress's."""
    from .identity import model_stale

    spec = parse_method(method)
    data = _distill_texts(spec, distill_options)
    _, files = _parent(store, model, allow_pickle, revision)
    return model_stale(store, name, compress_identity(spec, files, distill_options, data))


def compress(
    store: Store,
    model: str,
    method: str,
    name: str,
    allow_pickle: bool = False,
    distill_options: DistillOptions = DistillOptions(),
    progress: bool = True,
    revision: str | None = None,
    replica: dict | None = None,
) -> ModelResult:
    """Compress ``model`` by ``method`` into the store's model ``name``; ``replica`` (a
    replica's group and seed, see replicas.py) goes into its card and run record."""
    from .loading import load

    check_new_model(name, "compressed")
    spec = parse_method(method)
    data = _distill_texts(spec, distill_options)
    resolved, files = _parent(store, model, allow_pickle, revision)
    role = "teacher" if spec.name == "distill" else "parent"
    run_identity = compress_identity(spec, files, distill_options, data)
    params = {"model_arg": model, "method": str(spec), "name": name}
    provenance = {"parent": resolved.name, "loaded": {role: files.record()}, "identity": run_identity}
    if replica is not None:
        provenance["replica"] = replica
    with store.run("compress", params, model=name, **provenance) as run:
        loaded = load(files, role=role)
        net, details = loaded.model, {}
        if spec.name == "layers":
            details["kept_layers"] = keep_layers(net, int(spec.value))
        elif spec.name == "prune":
            details["sparsity_reached"] = round(prune(net, float(spec.value)), 6)
        elif spec.name == "distill":
            texts = data.table["text"].to_pylist()
            net, details = distill(
                net, loaded.tokenizer, texts, int(spec.value), distill_options, progress, f"distill {name}"
            )
            details["distill"] = asdict(distill_options)
        run.annotate(**details)
        card = {
            **parent_card(name, resolved, files),
            "method": str(spec),
            **details,
            "load": {"quantize": QUANTIZE[spec.name]} if spec.name in QUANTIZE else {},
            "identity": run_identity,
            **({"replica": replica} if replica is not None else {}),
        }
        save_model(store, run, net, loaded.tokenizer, card)
    return ModelResult(name, resolved.name, str(spec), run.run_id, card, details)


def check_new_model(name: str, made: str) -> None:
    """A name a derived model may take: a store name that is no alias."""
    from .registry import MODELS

    check_name("model", name)
    if name in MODELS:
        raise CeError(f"-o {name} is a model alias; give the {made} model another name")


def parent_card(name: str, resolved, files) -> dict:
    """What the card of a model derived from ``resolved`` says first: its name and parent."""
    return {
        "name": name,
        "parent": resolved.name,
        "parent_source": resolved.source,
        "parent_files": files.record(),
    }


def save_model(store: Store, run, net, tokenizer, card: dict) -> None:
    """Save a derived model into the store's model folder as safetensors, with its tokenizer
    and its card (naming the ``run`` that made it)."""

    def write(folder: Path) -> None:
        net.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        (folder / CARD).write_text(json.dumps(card | {"run_id": run.run_id}, indent=2))

    store.save_model(card["name"], write)


def compress_replicas(
    store: Store,
    group: str,
    method: str,
    name: str,
    allow_pickle: bool = False,
    distill_options: DistillOptions = DistillOptions(),
    progress: bool = True,
    revision: str | None = None,
) -> list[ModelResult]:
    """Compress every replica ``GROUP-sS`` of a replica group into ``NAME-sS``: a replica
    group named ``name``. Its name and method are checked before the first one is made."""
    from .replicas import check_group_name, expand, is_group, store_groups

    if not is_group(store, group):
        raise NotFound(f"{group} is no replica group of the store")
    if name == group:
        raise CeError(f"-o {name} is the group compressed; give the compressed group another name")
    parse_method(method)
    check_group_name(store, name, [seed for _, seed in store_groups(store)[group]])
    return [
        compress(store, member, method, out, allow_pickle, distill_options, progress, revision, replica)
        for member, out, replica in expand(store, group, name)
    ]
