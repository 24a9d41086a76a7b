"""ce query: run a named query, view or macro, or any SQL, over the store."""

from __future__ import annotations

import shutil
import sys
import textwrap

import click

from ce.query.sql import catalogue

from .common import open_session, output_options, store_option
from .output import write_result


@click.command()
@click.argument("sql_or_name", required=False)
@click.option(
    "-p",
    "--param",
    "params",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="A named parameter ($NAME in the SQL); repeat for several.",
)
@click.option("--list", "list_", is_flag=True, help="List the named views, macros and queries.")
@click.option(
    "--max-rows",
    default=50,
    show_default=True,
    callback=lambda ctx, param, value: _not_negative(value),
    help="Rows shown by --format table (0: every row).",
)
@output_options
@store_option
def query(sql_or_name, params, list_, max_rows, fmt, output, store_path):
    """Run SQL_OR_NAME over the store: a name from --list, or any DuckDB SQL.

    SQL reads the views (examples, predictions, embeddings, runs, errors) and table
    macros such as error_agreement(); it never names a Parquet path.

    \b
    Examples:
      ce query --list
      ce query accuracy
      ce query "select * from error_agreement() order by jaccard" --format csv
      ce query 'select * from predictions where model = $m' -p m bert-base
    """
    if list_:
        _print_list(catalogue())
        return
    if not sql_or_name:
        raise click.UsageError("give a query name or SQL, or --list")
    result = open_session(store_path, read_only=True).query(sql_or_name, **dict(params))
    write_result(result.reader(), fmt, output, max_rows=max_rows)


def _not_negative(value: int) -> int:
    if value < 0:
        raise click.BadParameter(f"{value} is negative; give how many rows to show, or 0 for every row")
    return min(value, sys.maxsize)  # Arrow slices take a C long


def _print_list(files) -> None:
    """One entry per name: its call and kind on the first line, its help wrapped below it
    to the terminal's width."""
    kinds = {"base": "view", "views": "view", "macros": "macro", "queries": "query"}
    width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    for f in files:
        params = f"  -p {' -p '.join(f.params)}" if f.category == "queries" and f.params else ""
        click.echo(f"{f.signature}  ({kinds[f.category]}){params}")
        for line in textwrap.wrap(f.help, width - 4) or [""]:
            click.echo(f"    {line}")
