"""ce compress: derive a compressed variant of a model, kept in the store's model folder."""

from __future__ import annotations

import click

from .common import allow_pickle_option, open_session, revision_option, store_option


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
    help="int8 (dynamic quantisation), prune:S (sparsity S in [0, 1)), layers:N (N evenly spaced"
    " layers) or distill:N (a student of N layers trained on the teacher's outputs over --dataset).",
)
@click.option("-o", "--output", "name", required=True, help="Name of the new model.")
@click.option("--dataset", "-d", help="distill: the texts to learn the teacher's outputs on.")
@click.option("--limit", default=2000, show_default=True, help="distill: texts used.")
@click.option("--epochs", default=1.0, show_default=True, help="distill: passes over the texts.")
@revision_option
@allow_pickle_option
@store_option
def compress(model, method, name, dataset, limit, epochs, revision, allow_pickle, store_path):
    """Derive a compressed variant of MODEL and register it in the store as NAME.

    The variant keeps the parent's task head and tokenizer, is saved as safetensors under
    STORE/models/NAME, and records its parent and parameters; any command takes NAME as
    --model afterwards.

    \b
    Example:
      ce compress --model minilm --method layers:3 -o minilm-l3
      ce compress --model my-classifier --method prune:0.5 -o my-classifier-p50
      ce compress --model my-classifier --method distill:2 --dataset sst2-train -o student
      ce extract --model minilm-l3 --dataset sst2-dev --stage pretrained
    """
    made = open_session(store_path).compress(
        model,
        method,
        name,
        dataset=dataset,
        limit=limit,
        epochs=epochs,
        revision=revision,
        allow_pickle=allow_pickle,
    )
    extra = {k: v for k, v in made.details.items() if k in ("kept_layers", "sparsity_reached")}
    click.echo(f"{name}: {made.method} of {made.parent} {extra or ''}".rstrip(), err=True)
