"""ce demo: run the study on the embedded default store, offline."""

from __future__ import annotations

import click

from ..compare import table2
from ..output import write_result
from ..sql import execute, library
from .common import open_store, store_option


@click.command()
@click.option("--quick", is_flag=True, help="Smaller subsets, same code paths.")
@store_option
def demo(quick, store_path):
    """Run the study end to end on real data and real weights, offline, then compare.

    Reads the data from CE_DATA_DIR; reuses whatever the store already holds.

    \b
    Example:
      CE_DATA_DIR=../shared/data ce demo
    """
    from ce.extractors.demo import run_demo

    store = open_store(store_path)
    click.echo(f"ce demo into {store.root}", err=True)
    run_demo(store, quick=quick, say=lambda line: click.echo(line, err=True))
    click.echo("\nAccuracy per model and dataset")
    con = store.connect()
    write_result(execute(con, library()["accuracy"].text).to_arrow_reader(), "table", None)
    click.echo("\nTable 2: agreement of prediction errors (Jaccard; chance baseline; kappa)")
    write_result(table2(store), "table", None, max_rows=1000)
    click.echo("\nStored CLS embeddings")
    write_result(
        execute(
            con,
            "select model, stage, dataset, count(*) as n,"
            " any_value(len(vector)) as dim from embeddings group by all"
            " order by all",
        ).to_arrow_reader(),
        "table",
        None,
    )
