"""ce bundle: share results between labs as one verified file."""

from __future__ import annotations

import click
import pyarrow as pa

from ..output import render_table
from .common import open_store, store_option


@click.group()
def bundle():
    """Export, import and inspect bundles: Parquet parts, run records and a manifest.

    \b
    Example:
      ce bundle export lab-a.cebundle --model bert-base
      ce bundle inspect lab-a.cebundle
      ce bundle import lab-a.cebundle
    """


@bundle.command("export")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--model", "models", multiple=True, help="Only these models (repeat).")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeat).")
@store_option
def export(out, models, datasets, store_path):
    """Write the store's results (or the selected ones) to the bundle OUT.

    \b
    Example:
      ce bundle export lab-a.cebundle --dataset squad2-dev
    """
    from ..bundle import Selection, export_bundle

    info = export_bundle(open_store(store_path), out, Selection(tuple(models), tuple(datasets)))
    click.echo(
        f"wrote {info['path']}: {info['parts']} parts of {info['runs']} runs, {info['bytes']:,} bytes",
        err=True,
    )


@bundle.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@store_option
def import_(file, store_path):
    """Verify the bundle FILE completely, then merge it into the store.

    Nothing is written unless every entry, size and checksum is right; importing the same
    bundle twice changes nothing.

    \b
    Example:
      ce bundle import lab-b.cebundle
    """
    from ..bundle import import_bundle

    info = import_bundle(open_store(store_path), file)
    click.echo(
        f"imported {info['imported']} runs ({info['parts']} parts);"
        f" {info['already_there']} already in the store",
        err=True,
    )


@bundle.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False))
def inspect(file):
    """Verify the bundle FILE and list what it holds, without importing it.

    \b
    Example:
      ce bundle inspect lab-b.cebundle
    """
    from ..bundle import inspect_bundle

    click.echo(render_table(pa.Table.from_pylist(inspect_bundle(file)), max_rows=10_000), nl=False)
