"""ce compare: the paper's comparison tables for every model in the store."""

from __future__ import annotations

import click

from ..compare import table2
from ..output import write_result
from .common import open_store, output_options, store_option


@click.command()
@click.option("--dataset", help="Only this dataset.")
@output_options
@store_option
def compare(dataset, fmt, output, store_path):
    """Table 2 of the paper for every pair of models in the store.

    Prediction-error agreement (Jaccard), with the chance baseline and Cohen's kappa;
    the representation and distribution columns appear once those artifacts exist.

    \b
    Example:
      ce compare
      ce compare --dataset squad2-dev --format csv -o table2.csv
    """
    reader = table2(open_store(store_path), dataset=dataset)
    write_result(reader, fmt, output, max_rows=1000)
