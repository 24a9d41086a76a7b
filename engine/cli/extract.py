"""ce extract: predictions and CLS embeddings of one model on one dataset."""

from __future__ import annotations

import click

from ce.store.errors import CeError

from .common import (
    choice_option,
    engine_options,
    limit_options,
    model_job_options,
    open_session,
    open_store,
    representation_options,
    stage_option,
)


@click.command()
@click.option(
    "--model", "-m", required=True, help="Alias from 'ce models', a model folder, or a Hub id (org/name)."
)
@click.option(
    "--dataset",
    "-d",
    required=True,
    help="Name from 'ce datasets', or a data file (.json, .jsonl, .csv, .tsv, .parquet).",
)
@stage_option("finetuned: task predictions and embeddings; pretrained: embeddings of the base encoder.")
@click.option("--name", help="Name of the model in the store (default: the alias or folder name).")
@click.option("--dataset-name", help="Name of a data file's dataset in the store (default: its stem).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--batch-size", default=32, show_default=True, type=int)
@limit_options()
@click.option("--max-length", type=int, help="Tokens per input [default: 384 QA, 512 classification].")
@click.option(
    "--doc-stride", default=128, show_default=True, type=int, help="Overlap of QA context windows, in tokens."
)
@click.option("--k-max", default=100, show_default=True, help="Neighbours kept per example (cosine, FAISS).")
@click.option("--no-neighbors", is_flag=True, help="Do not compute neighbour lists.")
@choice_option("--index", ["exact", "hnsw"], "Neighbour search; hnsw is approximate (recall recorded).")
@choice_option(
    "--embedding-dtype",
    ["float32", "float16"],
    "Stored CLS vectors; float16 halves them (neighbours are searched on what is stored).",
    name="vector_dtype",
)
@choice_option(
    "--precision",
    ["auto", "fp32", "fp16", "bf16"],
    "Forward pass under autocast; auto: fp16 on CUDA, fp32 on CPU.",
)
@click.option("--trust-remote-code", is_flag=True, help="Run model code shipped with a Hub model.")
@representation_options
@click.option(
    "--verbalizer",
    help="Decoders without a classification head: the label words, in label order, comma-separated"
    " (default per dataset, e.g. negative,positive).",
)
@click.option(
    "--prompt",
    help="Decoders and T5: the prompt template, with {text}, or {question} and {context} (default per task).",
)
@choice_option(
    "--choice-score",
    ["sum", "per-token"],
    "Multiple choice: pick by each choice's summed log-likelihood, or per token (length-normalised).",
)
@click.option(
    "--max-new-tokens",
    default=32,
    show_default=True,
    type=int,
    help="Generated answers (QA on decoders and T5): the most tokens generated.",
)
@engine_options
@model_job_options
def extract(
    model, dataset, name, dataset_name, no_neighbors, engine, shards, ray_address, store_path, **settings
):
    """Run MODEL once over DATASET; store predictions, CLS embeddings and neighbour lists.

    The task follows the dataset: extractive QA (SQuAD 2.0 post-processing, exact match and
    F1 per question; decoders and T5 answer by greedy generation), sequence classification
    (label, score, correct; decoders without a head by the log-likelihood of label words) or
    multiple choice (each choice's log-likelihood kept). With --stage pretrained only the
    base model's embeddings are stored. Each input is represented by its family's vector
    (encoders: first token; decoders: last non-padding token; T5: mean), or --pooling/--layer.
    MODEL may name a replica group (ce finetune --seeds): each replica runs, stored as
    NAME-sS (NAME: --name, else the group's).

    \b
    Examples:
      ce extract --model bert-base --dataset squad2-dev
      ce extract --model minilm --dataset sst2-dev --stage pretrained
      ce extract --model ./tiny-llama --dataset sst2-dev --pooling mean --layer 0.5
      ce extract --model ./my-model --dataset reviews.csv --limit 100
      ce extract --model bert-base --dataset squad2-dev --shard 0/4   # job 0 of 4
      ce extract --model bert-base --dataset squad2-dev --engine ray --shards 8
    """
    from ce.extractors.extract import ExtractOptions

    if no_neighbors:
        settings["k_max"] = None
    names = {"name": name, "dataset_name": dataset_name}
    if engine == "ray":
        one_model_on_ray(store_path, model)
        from ce.extractors.distributed import extract_on_ray

        options = ExtractOptions(**settings)  # every other option is a field of ExtractOptions
        results = extract_on_ray(
            open_store(store_path), model, dataset, options, shards=shards, address=ray_address, **names
        )
        first = results[0]
        click.echo(
            f"{first.model} on {first.dataset}: {sum(r.examples for r in results)} examples in"
            f" {len(results)} shards on Ray, {max(r.seconds for r in results):.1f}s for the slowest",
            err=True,
        )
        return
    if shards is not None or ray_address is not None:
        raise CeError("--shards and --ray-address go with --engine ray")
    results = open_session(store_path).extract(model, dataset, **names, **settings)
    where = f" (shard {settings['shard']})" if settings["shard"] else ""
    for result in results if isinstance(results, list) else [results]:
        click.echo(
            f"{result.model} on {result.dataset}{where}: {result.examples} examples,"
            f" {result.predictions} predictions, {result.embeddings} embeddings"
            f" ({settings['stage']}) in {result.seconds:.1f}s; run {result.run_id}",
            err=True,
        )


def one_model_on_ray(store_path: str, model: str) -> None:
    """--engine ray runs one model: a replica group's members are run one by one."""
    from ce.extractors.replicas import expand, is_group

    store = open_store(store_path)
    if is_group(store, model):
        members = ", ".join(member for member, _, _ in expand(store, model))
        raise CeError(
            f"{model} is a replica group and --engine ray runs one model; run each of its"
            f" replicas ({members}) on Ray, or leave out --engine ray"
        )
