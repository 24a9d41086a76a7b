"""ce extract: predictions and CLS embeddings of one model on one dataset."""

from __future__ import annotations

import click

from ce.store.errors import CeError

from .common import (
    allow_pickle_option,
    engine_options,
    open_store,
    revision_option,
    shard_option,
    store_option,
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
@click.option(
    "--stage",
    type=click.Choice(["finetuned", "pretrained"]),
    default="finetuned",
    show_default=True,
    help="finetuned: task predictions and embeddings; pretrained: embeddings of the base encoder.",
)
@click.option("--name", help="Name of the model in the store (default: the alias or folder name).")
@click.option("--dataset-name", help="Name of a data file's dataset in the store (default: its stem).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--limit", type=int, help="Only the first N examples.")
@click.option("--max-length", type=int, help="Tokens per input [default: 384 QA, 512 classification].")
@click.option(
    "--doc-stride", default=128, show_default=True, type=int, help="Overlap of QA context windows, in tokens."
)
@click.option("--k-max", default=100, show_default=True, help="Neighbours kept per example (cosine, FAISS).")
@click.option("--no-neighbors", is_flag=True, help="Do not compute neighbour lists.")
@click.option(
    "--index",
    type=click.Choice(["exact", "hnsw"]),
    default="exact",
    show_default=True,
    help="Neighbour search; hnsw is approximate (recall recorded).",
)
@click.option(
    "--embedding-dtype",
    type=click.Choice(["float32", "float16"]),
    default="float32",
    show_default=True,
    help="Stored CLS vectors; float16 halves them (neighbours are searched on what is stored).",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
    default="auto",
    show_default=True,
    help="Forward pass under autocast; auto: fp16 on CUDA, fp32 on CPU.",
)
@shard_option
@engine_options
@revision_option
@allow_pickle_option
@click.option("--trust-remote-code", is_flag=True, help="Run model code shipped with a Hub model.")
@store_option
def extract(
    model,
    dataset,
    stage,
    name,
    dataset_name,
    device,
    batch_size,
    limit,
    max_length,
    doc_stride,
    k_max,
    no_neighbors,
    index,
    embedding_dtype,
    precision,
    shard,
    engine,
    shards,
    ray_address,
    revision,
    allow_pickle,
    trust_remote_code,
    store_path,
):
    """Run MODEL once over DATASET; store predictions, CLS embeddings and neighbour lists.

    The task follows the dataset: extractive QA (SQuAD 2.0 post-processing, exact match and
    F1 per question) or sequence classification (label, score, correct). With --stage
    pretrained only the encoder's CLS embeddings are stored.

    \b
    Examples:
      ce extract --model bert-base --dataset squad2-dev
      ce extract --model minilm --dataset sst2-dev --stage pretrained
      ce extract --model ./my-model --dataset reviews.csv --limit 100
      ce extract --model bert-base --dataset squad2-dev --shard 0/4   # job 0 of 4
      ce extract --model bert-base --dataset squad2-dev --engine ray --shards 8
    """
    from ce.extractors.extract import ExtractOptions
    from ce.extractors.extract import extract as run_extract

    options = ExtractOptions(
        stage=stage,
        batch_size=batch_size,
        max_length=max_length,
        doc_stride=doc_stride,
        limit=limit,
        device=device,
        k_max=None if no_neighbors else k_max,
        index=index,
        vector_dtype=embedding_dtype,
        precision=precision,
        shard=shard,
        revision=revision,
        allow_pickle=allow_pickle,
        trust_remote_code=trust_remote_code,
    )
    settings = {"name": name, "dataset_name": dataset_name}
    if engine == "ray":
        from ce.extractors.distributed import extract_on_ray

        results = extract_on_ray(
            open_store(store_path), model, dataset, options, shards=shards, address=ray_address, **settings
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
    result = run_extract(open_store(store_path), model, dataset, options, **settings)
    where = f" (shard {shard})" if shard else ""
    click.echo(
        f"{result.model} on {result.dataset}{where}: {result.examples} examples,"
        f" {result.predictions} predictions, {result.embeddings} embeddings"
        f" ({stage}) in {result.seconds:.1f}s; run {result.run_id}",
        err=True,
    )
