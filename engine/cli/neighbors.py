"""ce neighbors and ce ood: neighbour lists and Deep-kNN OOD scores from CLS embeddings."""

from __future__ import annotations

import click

from .common import (
    answer_options,
    limit_options,
    model_job_options,
    open_session,
    open_store,
    representation_options,
    stage_option,
    store_option,
)


@click.command()
@click.option("--model", "-m", required=True, help="Model name in the store.")
@click.option("--dataset", "-d", required=True, help="Dataset name in the store.")
@stage_option("Whose embeddings: the fine-tuned model's or its base encoder's.")
@click.option("--k-max", default=100, show_default=True, help="Neighbours kept per example.")
@click.option(
    "--index",
    type=click.Choice(["exact", "hnsw"]),
    default="exact",
    show_default=True,
    help="hnsw: approximate, for large datasets (recall recorded).",
)
@store_option
def neighbors(model, dataset, stage, k_max, index, store_path):
    """Recompute neighbour lists from the CLS embeddings already in the store.

    Cosine similarity of L2-normalised vectors, exact FAISS search in blocks, self
    excluded, ties broken by example order. ce extract already does this whenever it
    writes embeddings; use this command for another K_max or index.

    \b
    Example:
      ce neighbors --model bert-base --dataset squad2-dev --stage pretrained --k-max 200
    """
    from ce.extractors.neighbors import recompute_neighbors

    info = recompute_neighbors(open_store(store_path), model, dataset, stage, k_max, index)
    click.echo(
        f"{model} {stage} on {dataset}: neighbours of {info['examples']} examples to"
        f" K_max {info['k_max']} ({info['index']}); run {info['run_id']}",
        err=True,
    )


@click.command()
@click.option("--model", "-m", required=True, help="Alias, model folder or Hub id (as for ce extract).")
@click.option("--bank", required=True, help="In-distribution training data (dataset or file).")
@click.option("--id-val", help="Held-out in-distribution data [default: a split of --bank].")
@click.option("--dataset", "-d", "test", required=True, help="Test set to score (e.g. newsqa).")
@click.option("--name", help="Name of the model in the store.")
@stage_option("Which embeddings give the features.")
@click.option("--k-max", default=100, show_default=True, help="k-th distances kept, k = 1..K_max.")
@click.option(
    "--val-fraction",
    default=0.2,
    show_default=True,
    help="Share of --bank's groups (articles for QA) held out as id-val when"
    " --id-val is not given or is the same dataset.",
)
@limit_options(
    help="A seeded sample of N examples of each dataset, stratified by label (by article for"
    " QA); --sample first takes the first N."
)
@click.option("--device", default="cpu", show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@representation_options
@answer_options
@model_job_options
def ood(model, bank, id_val, test, name, store_path, **settings):
    """Deep-kNN OOD scores (Sun et al. 2022) of a test set against an in-distribution bank.

    Features are the model's L2-normalised embeddings (its family's pooling, or --pooling and
    --layer as for ce extract), reused from the store when they
    come from the same weights and settings, else extracted once. For every id-val and test
    example the distance to its k-th nearest bank example is kept for k = 1..K_max, so any k
    and TPR threshold is a query
    (ood_agreement(k, tpr)). Scores are kept per model, stage, bank and test set: a
    pretrained and a fine-tuned run of one model, or runs against two banks, sit side by side.
    MODEL may name a replica group (ce finetune --seeds): each replica is scored, stored as
    NAME-sS (NAME: --name, else the group's).

    \b
    Example:
      ce ood --model bert-base --bank squad2-train --id-val squad2-dev --dataset newsqa
      ce ood --model minilm --stage pretrained --bank squad2-dev --dataset covidqa
      ce ood --model bert-base --bank squad2-train --dataset newsqa --shard 0/4
    """
    results = open_session(store_path).ood(model, bank, test, id_val=id_val, name=name, **settings)
    for result in results if isinstance(results, list) else [results]:
        click.echo(
            f"{result.model} ({settings['stage']}): {result.id_val} id-val and {result.test} test examples"
            f" scored against a bank of {result.bank}; run {result.run_id}",
            err=True,
        )
