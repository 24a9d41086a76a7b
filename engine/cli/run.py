"""ce run: a whole experiment grid from one TOML file."""

from __future__ import annotations

import click

from .common import open_session, store_option


@click.command()
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Only check the file; run nothing.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="At most N examples in every extract, ood and attack step (a smoke test of the grid).",
)
@store_option
def run(experiment, check, limit, store_path):
    """Run the grid in EXPERIMENT (models x datasets x characteristics), skipping each step
    the store holds from a run of the same identity: the same model files, dataset and every
    setting that changes results. Each step that runs says why (nothing stored, or which
    setting differs), so changing a limit or a parameter recomputes exactly those steps.

    Sections: [[finetune]], [[compress]], [[extract]], [[ood]], [[attack]]; the file is
    checked whole before anything runs. data/experiments/paper.toml is the paper's grid.

    \b
    Example:
      ce run data/experiments/paper.toml
      ce run data/experiments/paper.toml --limit 50    # a quick pass over the whole grid
      ce run my-grid.toml --check
    """
    from ce.extractors.experiment import load_experiment

    if check:
        spec = load_experiment(experiment)
        click.echo(f"{experiment}: " + ", ".join(f"{len(v)} [[{k}]]" for k, v in spec.items()))
        return
    session = open_session(store_path)
    ran = session.run(experiment, limit=limit, say=lambda line: click.echo(f"- {line}", err=True))
    click.echo(f"{experiment}: {ran} step(s) run, the rest was in the store", err=True)
