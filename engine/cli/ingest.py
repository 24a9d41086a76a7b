"""ce ingest: bring results computed elsewhere into the store."""

from __future__ import annotations

import click

from .common import open_session, store_option


@click.group()
def ingest():
    """Bring per-example results computed elsewhere into the store.

    \b
    Example:
      ce ingest errors bert_base.json --model bert-base --dataset squad2-dev
    """


@ingest.command("errors")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--model", "-m", required=True, help="Name of the model in the store.")
@click.option("--dataset", "-d", required=True, help="Dataset the ids belong to.")
@click.option("--dataset-name", help="Name of a data file's dataset in the store.")
@store_option
def errors(file, model, dataset, dataset_name, store_path):
    """Record FILE, a JSON list of the example ids MODEL got wrong, as its predictions.

    Every listed id counts as an error (exact match 0), every other example of the dataset
    as correct. An id that is not in the dataset is an error.

    \b
    Example:
      ce ingest errors bert_base.json --model bert-base --dataset squad2-dev
    """
    info = open_session(store_path).ingest(file, model, dataset, dataset_name)
    click.echo(
        f"{info['model']} on {info['dataset']}: {info['errors']} errors of"
        f" {info['examples']} examples; run {info['run_id']}",
        err=True,
    )
