"""ce report: one self-contained HTML file that answers whether the compressed models are
miniatures of the large one: a summary with verdicts, the models and their accuracy, the
tables, figures and provenance."""

from __future__ import annotations

import click

from .common import open_session, store_option


@click.command()
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="HTML file to write.",
)
@click.option("--k", default=10, show_default=True, help="Neighbours for Table 2.")
@click.option("--tpr", default=0.95, show_default=True, help="OOD threshold's TPR for Table 2.")
@click.option(
    "--reference",
    help="Model every other model is compared with [default: the store's (ce reference), else"
    " the one with the most parameters].",
)
@click.option(
    "--replicates",
    default=500,  # report_page.REPLICATES
    show_default=True,
    type=click.IntRange(min=10),
    help="Bootstrap replicates of the 95% intervals (more: finer, slower; 1000 takes about twice as long).",
)
@click.option(
    "--with",
    "with_",
    multiple=True,
    type=click.Choice(["cka"]),
    help="Add linear CKA heatmaps: a pass over both models' embeddings per pair (slow on large stores).",
)
@store_option
def report(output, k, tpr, reference, replicates, with_, store_path):
    """Write the summary (each model against the reference, with verdicts), models and
    accuracy, Table 2 and 3, heatmaps, K curves, attack bars and provenance to one HTML file;
    where the store holds the models' answers, their changed answers too (flips, KL, JS,
    top-1, calibration, and flips against the reference's margin).

    The file needs nothing from the network to be viewed: figures are inline SVG.

    \b
    Example:
      ce report -o report.html
      ce report -o report.html --reference bert-large --replicates 200
      ce report --with cka
    """
    from .report_page import write_report

    session = open_session(store_path, read_only=True)
    write_report(session, output, k, tpr, replicates=replicates, reference=reference, cka="cka" in with_)
    click.echo(f"wrote {output}", err=True)
