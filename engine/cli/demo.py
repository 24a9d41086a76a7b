"""ce demo: run the study on the embedded default store, offline."""

from __future__ import annotations

import time

import click

from ce.query.compare import table2, table3
from ce.query.sql import connect, execute, library

from .common import open_store, store_option
from .output import write_result


@click.command()
@click.option("--quick", is_flag=True, help="Smaller subsets, same code paths (about 3 minutes).")
@store_option
def demo(quick, store_path):
    """Run the whole study on real data and real weights, offline, then compare.

    The paper's published SQuAD 2.0 error lists, and all-MiniLM-L6-v2 with three variants
    derived from it (int8, prune:0.3, layers:3) fine-tuned on SST-2 and compared on
    prediction errors, representations before and after fine-tuning, OOD detection of IMDB
    reviews, and DeepWordBug attacks. Data come from CE_DATA_DIR; what the store already
    holds is reused, so a second run is fast. Write the report with ce report.

    \b
    Example:
      CE_DATA_DIR=../shared/data ce demo
      ce report -o report.html
    """
    from ce.extractors.demo import run_demo

    store = open_store(store_path)
    started = time.perf_counter()
    run_demo(store, quick=quick, say=lambda line: click.echo(line, err=True))
    click.echo("\nAccuracy per model and dataset")
    con = connect(store)
    write_result(execute(con, library()["accuracy"].text).to_arrow_reader(), "table", None)
    click.echo("\nTable 2: agreement between models (Jaccard)")
    write_result(table2(store), "table", None, max_rows=1000)
    click.echo("\nTable 3: accuracy under adversarial attack")
    write_result(table3(store), "table", None, max_rows=1000)
    click.echo(f"\ndemo done in {time.perf_counter() - started:.0f}s", err=True)
