"""ce compress: derive a compressed variant of a model, kept in the store's model folder."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import allow_pickle_option, limit_options, open_session, revision_option, store_option


@click.command()
@click.option(
    "--model",
    "-m",
    required=True,
    help="Model to compress: a model the store made, an alias, a folder or a Hub id.",
)
@click.option(
    "--method",
    required=True,
    help="int8 (dynamic quantisation), int8-weight or int4-weight (weight-only quantisation by"
    " torchao), prune:S (sparsity S in [0, 1)), layers:N (N evenly spaced layers) or distill:N (a"
    " student of N layers trained on the teacher's outputs over --dataset).",
)
@click.option("-o", "--output", "name", required=True, help="Name of the new model.")
@click.option("--dataset", "-d", help="distill: the texts to learn the teacher's outputs on.")
@limit_options(
    seeds="the student's training and the --limit sample",
    default=2000,
    help="distill: a seeded sample of N texts, stratified by label; --sample first takes the first N.",
)
@click.option("--epochs", default=1.0, show_default=True, help="distill: passes over the texts.")
@revision_option
@allow_pickle_option
@store_option
def compress(model, method, name, dataset, limit, sample, seed, epochs, revision, allow_pickle, store_path):
    """Derive a compressed variant of MODEL and register it in the store as NAME.

    The variant keeps the parent's task head and tokenizer, is saved as safetensors under
    STORE/models/NAME, and records its parent and parameters; any command takes NAME as
    --model afterwards. MODEL may name a replica group (ce finetune --seeds): each replica
    MODEL-sS is compressed into NAME-sS, a replica group named NAME.

    \b
    Example:
      ce compress --model minilm --method layers:3 -o minilm-l3
      ce compress --model my-classifier --method prune:0.5 -o my-classifier-p50
      ce compress --model my-classifier --method distill:2 --dataset sst2-train -o student
      ce extract --model minilm-l3 --dataset sst2-dev --stage pretrained
      ce compress --model minilm-sst2 --method int8 -o minilm-sst2-int8   # a replica group
    """
    session = open_session(store_path)
    started = time.perf_counter()
    made = session.compress(
        model,
        method,
        name,
        dataset=dataset,
        limit=limit,
        sample=sample,
        seed=seed,
        epochs=epochs,
        revision=revision,
        allow_pickle=allow_pickle,
    )
    if not isinstance(made, list):
        made = [made]
        took = {made[0].run_id: time.perf_counter() - started}
    else:  # a replica group: each member's time as its run record says
        took = {
            r["run_id"]: _run_seconds(r) for r in session.runs() if r["run_id"] in {m.run_id for m in made}
        }
    for one in made:
        for line in summary(one, session.store.model_dir(one.name), took.get(one.run_id, 0.0)):
            click.echo(line, err=True)


def _run_seconds(record: dict) -> float:
    from datetime import datetime

    try:
        return (
            datetime.fromisoformat(record["ended"]) - datetime.fromisoformat(record["started"])
        ).total_seconds()
    except (KeyError, TypeError, ValueError):
        return 0.0


def summary(made, folder: Path, seconds: float) -> list[str]:
    """What ce compress made, as lines: name and time, method and what it did, parent,
    parameters and size on disk."""
    from ce.extractors.progress import duration

    rows = [
        ("method", f"{made.method} ({_did(made.method, made.details)})"),
        ("parent", made.parent),
        ("parameters", _parameters(folder)),
        ("size", f"{_megabytes(folder)} in {folder}"),
    ]
    return [f"made {made.name} in {duration(seconds)}"] + [f"  {key:<10}  {value}" for key, value in rows]


def _did(method: str, details: dict) -> str:
    kept = ", ".join(map(str, details.get("kept_layers") or []))
    if method.startswith("distill"):
        first, last = details.get("distill_loss_first", 0), details.get("distill_loss_last", 0)
        steps = details.get("distill_steps")
        return f"student of teacher layers {kept}, {steps} training steps, KL loss {first:.3f} -> {last:.3f}"
    if method.startswith("prune"):
        return f"sparsity reached {details.get('sparsity_reached', 0):.3f}"
    if method == "int8":
        return "Linear layers quantised to int8 when loaded; weights saved as float"
    if method.endswith("-weight"):
        return f"Linear weights quantised to {method[:4]} by torchao when loaded; weights saved as float"
    return f"kept layers {kept}"


def _parameters(folder: Path) -> str:
    """The weights' count from the safetensors headers (nothing loaded), e.g. '17.4M'."""
    from math import prod

    from safetensors import safe_open

    count = 0
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(file, "np") as weights:
            count += sum(prod(weights.get_slice(key).get_shape()) for key in weights.keys())
    return f"{count / 1e6:.1f}M" if count >= 1e5 else f"{count:,}"


def _megabytes(folder: Path) -> str:
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return f"{size / 1e6:.1f} MB"
