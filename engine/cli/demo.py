"""ce demo: run data/experiments/demo.toml on the embedded default store, offline, then
print the tables and write the HTML report."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ce.store.errors import CeError, NotFound

from .common import open_session, store_option
from .output import write_results
from .tables import comparison_tables

DEMO_K = 10  # neighbours for the representation and distribution agreements it prints
QUICK_LIMIT = 60  # --quick: every step on at most this many examples


def demo_file() -> Path:
    """The demo's experiment file, in the source checkout ce runs from."""
    path = Path(__file__).resolve().parents[2] / "data" / "experiments" / "demo.toml"
    if not path.is_file():
        raise NotFound(
            f"the demo's experiment file {path} is missing (ce demo runs from a source"
            " checkout); run an experiment file of your own with ce run FILE"
        )
    return path


@click.command()
@click.option(
    "--quick",
    is_flag=True,
    help=f"Every step on at most {QUICK_LIMIT} examples: same code paths, a few minutes.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    help="HTML report to write [default: report.html beside the store folder].",
)
@store_option
def demo(quick, report_path, store_path):
    """Run the whole study on real data and real weights, offline, then compare.

    Runs data/experiments/demo.toml (read it to see every step): the paper's published
    SQuAD 2.0 error lists, and all-MiniLM-L6-v2 with three variants derived from it (int8,
    prune:0.3, layers:3) fine-tuned on SST-2 and compared on prediction errors,
    representations before and after fine-tuning, OOD detection of SQuAD questions, and
    DeepWordBug attacks; the classifiers are fine-tuned with three seeds each, so every
    agreement is read against the large model's retraining noise floor. Data come from
    CE_DATA_DIR; what the store already holds is reused, so a second run is fast. Prints
    accuracy, Table 2 with the floor and the gaps, the floor per replica group, the groups
    compared, the PIEs and Table 3, and writes the HTML report.

    \b
    Example:
      CE_DATA_DIR=../shared/data ce demo
      ce demo --quick --store /tmp/demo-store --report /tmp/demo.html
    """
    from ce.extractors.datasets import data_dir

    from .report_page import write_report

    root = data_dir()
    if root is None or not root.is_dir():
        raise CeError(
            "the demo reads real data from CE_DATA_DIR; set it to the shared data"
            " folder (e.g. CE_DATA_DIR=../shared/data)"
        )
    session = open_session(store_path)
    started = time.perf_counter()
    session.run(
        demo_file(), limit=QUICK_LIMIT if quick else None, say=lambda line: click.echo(line, err=True)
    )
    click.echo("\nAccuracy per model and dataset")
    write_results([(None, session.sql.accuracy())], "table", None)
    floors = session.noise_floor(k=DEMO_K)
    groups = session.group_agreement(k=DEMO_K)
    shown, notes = comparison_tables(
        session.table2(k=DEMO_K), session.table3(), DEMO_K, floors, groups, session.pie_examples()
    )
    click.echo()
    write_results(shown, "table", None)
    for note in notes:
        click.echo(note, err=True)
    report = Path(report_path) if report_path else Path(store_path).resolve().parent / "report.html"
    write_report(session, str(report), cka=True)
    click.echo(f"\ndemo done in {time.perf_counter() - started:.0f}s; report: {report}", err=True)
