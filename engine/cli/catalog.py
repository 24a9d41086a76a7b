"""ce models and ce datasets: what can be named on the command line."""

from __future__ import annotations

import click
import pyarrow as pa

from .output import render_table


@click.command()
def models():
    """List the model aliases and the checkpoints they stand for.

    Any model folder or Hub id (org/name) works as --model too.

    \b
    Example:
      ce models
    """
    from ce.extractors.registry import MODELS

    rows = [
        {
            "alias": m.alias,
            "pretrained": m.pretrained,
            "qa (squad2)": m.finetuned.get("qa", ""),
            "classification (imdb)": m.finetuned.get("classification", ""),
            "description": m.description,
        }
        for m in MODELS.values()
    ]
    click.echo(render_table(pa.Table.from_pylist(rows), max_rows=1000), nl=False)


@click.command()
def datasets():
    """List the named datasets, their task and where each would be read from.

    Local copies are read from CE_DATA_DIR; the others from the Hugging Face Hub.

    \b
    Example:
      CE_DATA_DIR=../shared/data ce datasets
    """
    from ce.extractors.datasets import DATASETS, local_path

    rows = []
    for d in DATASETS.values():
        path = local_path(d)
        source = str(path) if path else (f"hub: {d.hub[0]}" if d.hub else "missing")
        rows.append({"name": d.name, "task": d.task, "source": source, "description": d.description})
    click.echo(render_table(pa.Table.from_pylist(rows), max_rows=1000), nl=False)
