"""ce finetune: fine-tune a model with the Hugging Face Trainer into the store's model folder."""

from __future__ import annotations

import click

from .common import allow_pickle_option, limit_options, open_session, revision_option, store_option


def _seeds(ctx, param, value: str | None) -> list[int] | None:
    """--seeds 0,1,2 as [0, 1, 2], checked before anything runs."""
    from ce.extractors.replicas import parse_seeds
    from ce.store.errors import CeError

    if value is None:
        return None
    try:
        return parse_seeds(value)
    except CeError as e:
        raise click.BadParameter(str(e)) from None


@click.command()
@click.option(
    "--model",
    "-m",
    required=True,
    help="Model to fine-tune: a model the store made, an alias, a folder or a Hub id.",
)
@click.option("--task", type=click.Choice(["classification", "qa"]), required=True)
@click.option("--dataset", "-d", required=True, help="Training data: a dataset name or file.")
@click.option("-o", "--output", "name", required=True, help="Name of the fine-tuned model.")
@click.option("--epochs", default=3.0, show_default=True)
@click.option("--lr", "learning_rate", default=3e-5, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--warmup", "warmup_ratio", default=0.1, show_default=True)
@click.option("--max-length", type=int, help="Tokens per input [default: 384 QA, 128 classification].")
@click.option("--doc-stride", default=128, show_default=True)
@limit_options(
    seed=42,
    seeds="training and the --limit sample",
    help="Train on a seeded sample of N examples, stratified by label (by article for QA);"
    " --sample first takes the first N.",
)
@click.option(
    "--seeds",
    callback=_seeds,
    help="Replicas: one model per seed, NAME-s0, NAME-s1, ... (e.g. 0,1,2), each trained on the"
    " same examples (the --limit sample drawn with --seed); a replica group named NAME.",
)
@click.option("--device", default="cpu", show_default=True)
@revision_option
@allow_pickle_option
@store_option
def finetune(model, dataset, name, seeds, store_path, **settings):
    """Fine-tune MODEL on DATASET and register the result in the store as NAME.

    Defaults are the paper's SQuAD setting (3 epochs, lr 3e-5, batch 32, warmup 0.1,
    384-token windows, stride 128). Checkpoints are kept while training, so running the
    same command after a kill resumes from the last one.

    \b
    Example:
      ce finetune --model minilm --task classification --dataset sst2-train -o minilm-sst2
      ce finetune --model bert-base --task qa --dataset squad2-train -o bert-base-squad2
      ce finetune --model minilm --task classification --dataset sst2-train --limit 2000 \\
          --seeds 0,1,2 -o minilm-sst2   # replicas minilm-sst2-s0, -s1, -s2
    """
    made = open_session(store_path).finetune(model, dataset, name, seeds=seeds, **settings)
    for one in made if isinstance(made, list) else [made]:
        click.echo(
            f"{one.name}: {settings['task']} fine-tuned from {one.parent} on {one.examples}"
            f" examples of {one.dataset}, {one.steps} steps, train loss"
            f" {one.train_loss:.3f}",
            err=True,
        )
