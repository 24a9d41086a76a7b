"""ce export: the store's predictions as files other tools read."""

from __future__ import annotations

import click

from .common import open_session, store_option


@click.command()
@click.argument("out", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv", "lm-eval"]),
    default="parquet",
    show_default=True,
    help="parquet or csv: one table (OUT a file); lm-eval: lm-evaluation-harness sample logs"
    " (OUT a folder: OUT/MODEL/samples_DATASET_DATE.jsonl).",
)
@click.option("--model", "-m", "models", multiple=True, help="Only these models (repeat).")
@click.option("--dataset", "-d", "datasets", multiple=True, help="Only these datasets (repeat).")
@store_option
def export(out, fmt, models, datasets, store_path):
    """Write the store's per-example predictions to OUT, with each example's gold label or answers.

    parquet and csv write one table: model, dataset, example_id, idx, prediction,
    pred_label, correct, gold, answers, is_impossible, score, exact, f1, probs,
    loglikelihoods, null_score, span_score, metric, doc_hash, prompt_hash, target_hash,
    run_id (in CSV the lists are JSON text). lm-eval writes per model the samples files of
    lm-evaluation-harness --log_samples, which ce ingest lm-eval reads back.

    \b
    Example:
      ce export predictions.parquet
      ce export predictions.csv --format csv --model bert-base --dataset sst2-dev
      ce export logs --format lm-eval --model gpt2
      ce --store other ingest lm-eval logs/gpt2 --model gpt2
    """
    info = open_session(store_path, read_only=True).export(out, fmt, models, datasets)
    where = out if fmt != "lm-eval" else f"{len(info['files'])} files under {out}"
    click.echo(
        f"wrote {info['rows']:,} predictions of {len(info['models'])} models on"
        f" {len(info['datasets'])} datasets to {where}",
        err=True,
    )
