"""ce bundle: share results between labs as one verified file."""

from __future__ import annotations

import click
import pyarrow as pa

from .common import open_store, store_option
from .output import render_table


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
    from ce.store.bundle import Selection, export_bundle

    info = export_bundle(open_store(store_path), out, Selection(tuple(models), tuple(datasets)))
    click.echo(
        f"wrote {info['path']}: {info['parts']} parts of {info['runs']} runs, {info['bytes']:,} bytes",
        err=True,
    )


def max_size_option(f):
    return click.option(
        "--max-size",
        default="64GiB",
        show_default=True,
        callback=lambda ctx, param, value: parse_size(value),
        help="Refuse a bundle that expands to more than this (a guard against ZIP bombs).",
    )(f)


def parse_size(text: str) -> int:
    """'64GB', '500MiB', '1e9' -> bytes."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    units |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    number = text.strip().upper().rstrip("BKMGTI")
    unit = text.strip().upper()[len(number) :]
    try:
        size = float(number) * units[unit]
    except (ValueError, KeyError):
        raise click.BadParameter(f"{text!r} is not a size; write e.g. 64GB or 500MiB") from None
    if size <= 0:
        raise click.BadParameter(f"{text!r}: the size must be positive")
    return int(size)


EXAMPLES = {"dataset": "squad2-dev=lab-b-squad2-dev", "model": "bert-base=lab-b-bert-base"}


def parse_renames(values: tuple[str, ...], what: str) -> dict[str, str]:
    renames = {}
    for value in values:
        old, sep, new = value.partition("=")
        if not sep or not old or not new:
            raise click.BadParameter(f"{value!r} is not OLD=NEW; write e.g. --rename-{what} {EXAMPLES[what]}")
        renames[old] = new
    return renames


@bundle.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--rename-dataset",
    "rename_datasets",
    multiple=True,
    metavar="OLD=NEW",
    help="Import the bundle's dataset OLD as NEW (when the store's OLD holds other examples).",
)
@click.option(
    "--rename-model",
    "rename_models",
    multiple=True,
    metavar="OLD=NEW",
    help="Import the bundle's model OLD as NEW (when the store already has results of OLD).",
)
@max_size_option
@store_option
def import_(file, rename_datasets, rename_models, max_size, store_path):
    """Verify the bundle FILE completely, then merge it into the store.

    Nothing is written unless every entry, size, checksum, record and part is right and
    the bundle agrees with the store: a dataset of the same name must hold the same
    examples, and results the store already has for a model are not replaced (rename the
    bundle's dataset or model to keep both). Importing the same bundle twice changes
    nothing; bundles exported from one store import in any order.

    \b
    Example:
      ce bundle import lab-b.cebundle
      ce bundle import lab-b.cebundle --rename-model bert-base=lab-b-bert-base
    """
    from ce.store.bundle import Renames, import_bundle

    renames = Renames(parse_renames(rename_datasets, "dataset"), parse_renames(rename_models, "model"))
    info = import_bundle(open_store(store_path), file, max_size, renames)
    click.echo(
        f"imported {info['imported']} runs ({info['parts']} parts);"
        f" {info['already_there']} already in the store",
        err=True,
    )


@bundle.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False))
@max_size_option
def inspect(file, max_size):
    """Verify the bundle FILE and list what it holds, without importing it.

    \b
    Example:
      ce bundle inspect lab-b.cebundle
    """
    from ce.store.bundle import inspect_bundle

    click.echo(render_table(pa.Table.from_pylist(inspect_bundle(file, max_size)), max_rows=10_000), nl=False)
