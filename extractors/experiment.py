"""``ce run EXPERIMENT.toml``: a whole grid (models x datasets x characteristics) from one
file, skipping what the store already has.

Sections, each a list of tables, run in this order::

    [[finetune]]  model, task, dataset, output, and any ce finetune option
    [[compress]]  model, method, output
    [[extract]]   models, datasets, stages (finetuned, pretrained), k_max, limit, batch_size
    [[ood]]       models, bank, id_val, datasets, stage, k_max, limit
    [[attack]]    models, dataset, attack, attacker, max_candidates, sentence_encoder, limit

``models`` is a list of model references (alias, folder, Hub id or a model the store made);
an entry ``{ name = "...", model = "..." }`` stores a model under another name. The whole
file is checked before anything runs: an unknown section or key is an error.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from ce.engine.errors import CeError, NotFound, did_you_mean
from ce.engine.store import Store

from .attack import AttackOptions
from .extract import STAGES, ExtractOptions
from .finetune import FinetuneOptions
from .ood import OodOptions

SECTIONS = {
    "finetune": {"model", "task", "dataset", "output"} | {f.name for f in fields(FinetuneOptions)},
    "compress": {"model", "method", "output"},
    "extract": {"models", "datasets", "stages", "k_max", "limit", "batch_size", "max_length", "device"},
    "ood": {"models", "bank", "id_val", "datasets"} | {f.name for f in fields(OodOptions)},
    "attack": {"models", "dataset"} | {f.name for f in fields(AttackOptions)},
}
REQUIRED = {
    "finetune": {"model", "task", "dataset", "output"},
    "compress": {"model", "method", "output"},
    "extract": {"models", "datasets"},
    "ood": {"models", "bank", "datasets"},
    "attack": {"models"},
}


def load_experiment(path: str | Path) -> dict[str, list[dict]]:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"no such experiment file: {path}")
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CeError(f"{path} is not valid TOML: {e}") from None
    for section, entries in spec.items():
        if section not in SECTIONS:
            raise CeError(
                f"{path}: unknown section [[{section}]]{did_you_mean(section, SECTIONS)};"
                f" known: {', '.join(SECTIONS)}"
            )
        if not isinstance(entries, list):
            raise CeError(f"{path}: {section} must be a list of tables, written [[{section}]]")
        for i, entry in enumerate(entries, 1):
            unknown = sorted(set(entry) - SECTIONS[section])
            if unknown:
                raise CeError(
                    f"{path}: unknown key {unknown[0]!r} in [[{section}]] number {i}"
                    f"{did_you_mean(unknown[0], SECTIONS[section])}"
                )
            missing = sorted(REQUIRED[section] - set(entry))
            if missing:
                raise CeError(f"{path}: [[{section}]] number {i} needs {', '.join(missing)}")
            for stage in entry.get("stages", []):
                if stage not in STAGES:
                    raise CeError(f"{path}: unknown stage {stage!r}; use {' or '.join(STAGES)}")
    return spec


def _models(entry: dict) -> list[tuple[str, str | None]]:
    """(model reference, store name or None) for each entry of ``models``."""
    out = []
    for m in entry["models"]:
        out.append((m["model"], m.get("name")) if isinstance(m, dict) else (m, None))
    return out


def run_experiment(store: Store, path: str | Path, say: Callable[[str], None] = print) -> int:
    """Run every step the store does not have yet; returns how many ran."""
    from .attack import run_attack
    from .compress import compress
    from .extract import extract
    from .finetune import finetune
    from .ood import run_ood
    from .registry import resolve_model

    spec = load_experiment(path)
    ran = 0
    for entry in spec.get("finetune", []):
        if store.model_dir(entry["output"]).is_dir():
            continue
        opts = {k: v for k, v in entry.items() if k not in ("model", "dataset", "output")}
        finetune(store, entry["model"], entry["dataset"], entry["output"], FinetuneOptions(**opts))
        say(f"finetune {entry['output']}")
        ran += 1
    for entry in spec.get("compress", []):
        if not store.model_dir(entry["output"]).is_dir():
            compress(store, entry["model"], entry["method"], entry["output"])
            say(f"compress {entry['output']}")
            ran += 1
    for entry in spec.get("extract", []):
        opts = {k: entry[k] for k in ("k_max", "limit", "batch_size", "max_length", "device") if k in entry}
        for model, name in _models(entry):
            for stage in entry.get("stages", ["finetuned"]):
                for dataset in entry["datasets"]:
                    store_name = name or resolve_model(model, None, "pretrained", store=store).name
                    if store.has("embeddings", model=store_name, stage=stage, dataset=dataset):
                        continue
                    extract(store, model, dataset, ExtractOptions(stage=stage, **opts), name=name)
                    say(f"extract {store_name} {stage} {dataset}")
                    ran += 1
    for entry in spec.get("ood", []):
        opts = {k: v for k, v in entry.items() if k in {f.name for f in fields(OodOptions)}}
        for model, name in _models(entry):
            for dataset in entry["datasets"]:
                store_name = name or resolve_model(model, None, "pretrained", store=store).name
                if store.has("ood_scores", model=store_name, bank=entry["bank"], dataset=dataset):
                    continue
                run_ood(
                    store, model, entry["bank"], entry.get("id_val"), dataset, OodOptions(**opts), name=name
                )
                say(f"ood {store_name} {dataset}")
                ran += 1
    for entry in spec.get("attack", []):
        opts = {k: v for k, v in entry.items() if k in {f.name for f in fields(AttackOptions)}}
        for model, name in _models(entry):
            info = run_attack(store, model, entry.get("dataset", "imdb-1k"), AttackOptions(**opts), name=name)
            if info["resumed_from"] < info["examples"]:
                say(f"attack {info['model']} {info['attack']}")
                ran += 1
    return ran
