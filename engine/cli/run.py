"""ce run: a whole experiment grid from one TOML file."""

from __future__ import annotations

import click

from .common import SAMPLES, open_session, open_store, seed_option, store_option


@click.command()
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option(
    "--check",
    is_flag=True,
    help="Check the file and list its steps, each to run or already in the store; run nothing.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="At most N examples in every finetune, extract, ood and attack step (a smoke test of"
    " the grid): a seeded sample, stratified by label (by article for QA), unless the step"
    ' says sample = "first".',
)
@click.option(
    "--sample",
    type=click.Choice(SAMPLES),
    help="With --limit: how every step it caps chooses its examples [default: the step's own"
    " sample key, else stratified].",
)
@seed_option(
    None,
    "the sample of every step --limit caps (and the training or attacks of its finetune and"
    " attack steps) [default: the step's own seed key]",
)
@store_option
def run(experiment, check, limit, sample, seed, store_path):
    """Run the grid in EXPERIMENT (models x datasets x characteristics), skipping each step
    the store holds from a run of the same identity: the same model files, dataset and every
    setting that changes results. Each step that runs says why (nothing stored, or which
    setting differs), so changing a limit or a parameter recomputes exactly those steps.
    It first says how many steps there are and how many the store holds, then announces
    each step as it starts ([7/24] ...), its time and an ETA as it ends, and at the end the
    time of every step.

    Sections: [[finetune]], [[compress]], [[extract]], [[ood]], [[attack]]; the file is
    checked whole before anything runs. data/experiments/paper.toml is the paper's grid.

    \b
    Example:
      ce run data/experiments/paper.toml
      ce run data/experiments/paper.toml --limit 50    # a quick pass over the whole grid
      ce run data/experiments/paper.toml --limit 50 --seed 1   # over another sample
      ce run my-grid.toml --check
    """
    from ce.extractors.experiment import run_experiment

    if limit is None and (sample is not None or seed is not None):
        raise click.UsageError("--sample and --seed go with --limit")
    if check:  # the plan on stdout: each step, and whether the store holds it
        run_experiment(
            open_store(store_path), experiment, click.echo, limit=limit, sample=sample, seed=seed, check=True
        )
        return
    session = open_session(store_path)
    say = lambda line: click.echo(line, err=True)  # noqa: E731
    ran = session.run(experiment, limit=limit, say=say, sample=sample, seed=seed)
    click.echo(f"{experiment}: {ran} step(s) run, the rest was in the store", err=True)
