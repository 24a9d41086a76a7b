"""ce models and ce datasets: what can be named on the command line."""

from __future__ import annotations

import click
import pyarrow as pa

from .common import open_session, store_option
from .output import WIDTH, render_table


@click.command()
@click.option("--wide", is_flag=True, help="Also the fine-tuned checkpoints per task.")
@store_option
def models(wide, store_path):
    """List the model aliases, their published size and the checkpoints they stand for;
    then the models the store holds, with their replica group and seed.

    Any model folder or Hub id (org/name) works as --model too.

    \b
    Example:
      ce models
      ce models --wide --store data/store
    """
    from ce.extractors.registry import MODELS

    rows = []
    for m in MODELS.values():
        row = {
            "alias": m.alias,
            "parameters": f"{m.parameters / 1e6:.1f}M" if m.parameters else "",
            "pretrained": m.pretrained,
        }
        if wide:
            row |= {
                "qa (squad2)": m.finetuned.get("qa", ""),
                "classification (imdb)": m.finetuned.get("classification", ""),
            }
        rows.append(row | {"description": m.description})
    width = None if wide else WIDTH
    click.echo(render_table(pa.Table.from_pylist(rows), max_rows=1000, width=width), nl=False)
    stored = _stored_models(store_path)
    if stored is not None and stored.num_rows:
        click.echo(f"\nIn the store {store_path}:")
        click.echo(render_table(stored, max_rows=1000, width=width), nl=False)


STORED_MODELS = """
select m.model, r.replica_group, r.seed, m.parameters, m.method, m.parent
from models m left join replicas r using (model)
order by coalesce(r.replica_group, m.model), r.seed nulls first, m.model
"""


def _stored_models(path: str):
    """The store's models with their replica group and seed (None: no store there)."""
    from pathlib import Path

    from ce.store.remote import is_remote

    if not is_remote(path) and not (Path(path) / "runs").is_dir():
        return None
    return open_session(path, read_only=True).query(STORED_MODELS).relation.to_arrow_table()


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
        if d.questions_of:
            source = f"the questions of {d.questions_of}"
        rows.append({"name": d.name, "task": d.task, "source": source, "description": d.description})
    click.echo(render_table(pa.Table.from_pylist(rows), max_rows=1000), nl=False)


@click.command()
@click.argument("model", required=False)
@click.option("--clear", is_flag=True, help="Name no reference: the largest model leads each pair.")
@store_option
def reference(model, clear, store_path):
    """Name MODEL the store's reference: every pair shows it first, as the paper's tables do.

    Flips are counted from the reference's side (correct -> wrong is a negative flip of the
    other model). Without MODEL, print the reference; a comparison's --reference still
    overrides it.

    \b
    Example:
      ce reference bert-large
      ce reference --clear
    """
    if model and clear:
        raise click.UsageError("give MODEL or --clear, not both")
    session = open_session(store_path)
    if model is None and not clear:
        click.echo(session.reference() or "none (the largest model leads each pair)")
        return
    before = session.set_reference(None if clear else model)
    click.echo(f"reference: {model or 'none'} (was {before or 'none'})", err=True)
