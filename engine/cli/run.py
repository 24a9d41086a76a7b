"""ce run: a whole experiment grid from one TOML file."""

from __future__ import annotations

import click

from .common import open_store, store_option


@click.command()
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Only check the file; run nothing.")
@store_option
def run(experiment, check, store_path):
    """Run the grid in EXPERIMENT (models x datasets x characteristics), skipping what the
    store already has.

    Sections: [[finetune]], [[compress]], [[extract]], [[ood]], [[attack]]; the file is
    checked whole before anything runs. data/experiments/paper.toml is the paper's grid.

    \b
    Example:
      ce run data/experiments/paper.toml
      ce run my-grid.toml --check
    """
    from ce.extractors.experiment import load_experiment, run_experiment

    if check:
        spec = load_experiment(experiment)
        click.echo(f"{experiment}: " + ", ".join(f"{len(v)} [[{k}]]" for k, v in spec.items()))
        return
    ran = run_experiment(
        open_store(store_path), experiment, say=lambda line: click.echo(f"- {line}", err=True)
    )
    click.echo(f"{experiment}: {ran} step(s) run, the rest was in the store", err=True)
