"""``ce compress``: compressed variants derived locally, saved in the store's model folder.

Methods: ``int8`` (dynamic quantisation of the linear layers, applied when the model is
loaded, since quantised weights have no safetensors form), ``prune:S`` (global magnitude
pruning of the encoder's linear weights to sparsity S), ``layers:N`` (keep N evenly spaced
encoder layers), ``distill:N`` (a student of N evenly spaced teacher layers trained on the
teacher's softened outputs over a dataset's texts). The variant keeps its parent's task head
and tokenizer and records its parent and parameters.
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

METHODS = ("int8", "prune:S", "layers:N", "distill:N")
CARD = "ce-model.json"


@dataclass(frozen=True)
class ModelResult:
    """A model a job made in the store's model folder (ce compress, ce finetune)."""

    name: str
    parent: str
    method: str  # int8, prune:S, layers:N, distill:N, finetune:TASK
    run_id: str
    card: dict  # as saved in its ce-model.json, but for the run id
    details: dict = field(default_factory=dict)  # compress: kept_layers, sparsity_reached, distill_*


@dataclass(frozen=True)
class Method:
    name: str  # int8, prune, layers, distill
    value: float | int | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


def parse_method(text: str) -> Method:
    name, _, value = text.partition(":")
    if name == "int8" and not value:
        return Method("int8")
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


def encoder_layers(model):
    """The ModuleList of transformer layers of a BERT-like or DistilBERT-like model."""
    base = model.base_model
    for path in ("encoder.layer", "transformer.layer"):
        obj = base
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
        if obj is not None:
            return obj, path
    raise CeError(
        f"{type(model).__name__} has no encoder.layer or transformer.layer list;"
        " layers:N supports BERT-like and DistilBERT-like models"
    )


def keep_layers(model, n: int) -> list[int]:
    import torch

    layers, path = encoder_layers(model)
    total = len(layers)
    if n > total:
        raise CeError(f"layers:{n} asks for more layers than the model has ({total})")
    keep = sorted({int(round(i)) for i in np.linspace(0, total - 1, n)})
    new = torch.nn.ModuleList([layers[i] for i in keep])
    owner = model.base_model.encoder if path.startswith("encoder") else model.base_model.transformer
    owner.layer = new
    if hasattr(model.config, "num_hidden_layers"):
        model.config.num_hidden_layers = len(keep)
    if hasattr(model.config, "n_layers"):
        model.config.n_layers = len(keep)
    return keep


def prune(model, sparsity: float) -> float:
    """Global magnitude pruning of the encoder's linear weights; returns the sparsity reached."""
    import torch
    from torch.nn.utils import prune as torch_prune

    layers, _ = encoder_layers(model)
    targets = [(m, "weight") for m in layers.modules() if isinstance(m, torch.nn.Linear)]
    torch_prune.global_unstructured(targets, pruning_method=torch_prune.L1Unstructured, amount=sparsity)
    for module, name in targets:
        torch_prune.remove(module, name)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in targets)
    return zeros / sum(m.weight.numel() for m, _ in targets)


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
    """A student of ``layers`` evenly spaced teacher layers (the head kept), trained to match
    the teacher's softened outputs (KL divergence at temperature T, scaled by T^2)."""
    import copy

    import torch

    from .progress import bar as progress_bar

    if getattr(teacher, "num_labels", None) is None or not hasattr(teacher, "classifier"):
        raise CeError(
            "distill needs a classification teacher (a model with a classifier"
            " head); fine-tune one first with ce finetune"
        )
    torch.manual_seed(o.seed)
    student = copy.deepcopy(teacher)
    kept = keep_layers(student, layers)
    student.train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=o.learning_rate)
    steps = int(np.ceil(len(texts) / o.batch_size) * o.epochs)
    order = np.random.default_rng(o.seed).permutation(len(texts))
    losses = []
    with progress_bar(label, steps, "step", progress=progress) as bar:
        for step in range(steps):
            start = (step * o.batch_size) % len(texts)
            batch = [texts[i] for i in order[start : start + o.batch_size]]
            enc = tokenizer(
                batch, truncation=True, max_length=o.max_length, padding=True, return_tensors="pt"
            )
            with torch.no_grad():
                target = torch.softmax(teacher(**enc).logits / o.temperature, dim=-1)
            log_probs = torch.log_softmax(student(**enc).logits / o.temperature, dim=-1)
            loss = torch.nn.functional.kl_div(log_probs, target, reduction="batchmean")
            loss = loss * o.temperature**2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.update(1)
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
) -> ModelResult:
    from .loading import load

    check_new_model(name, "compressed")
    spec = parse_method(method)
    data = _distill_texts(spec, distill_options)
    resolved, files = _parent(store, model, allow_pickle, revision)
    role = "teacher" if spec.name == "distill" else "parent"
    run_identity = compress_identity(spec, files, distill_options, data)
    params = {"model_arg": model, "method": str(spec), "name": name}
    provenance = {"parent": resolved.name, "loaded": {role: files.record()}, "identity": run_identity}
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
            "load": {"quantize": "dynamic-int8-linear"} if spec.name == "int8" else {},
            "identity": run_identity,
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
