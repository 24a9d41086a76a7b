"""ce report: one self-contained HTML file with the tables, figures and provenance."""

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
@store_option
def report(output, k, tpr, store_path):
    """Write Table 2 and 3, heatmaps, K curves, attack bars and provenance to one HTML file.

    The file needs nothing from the network to be viewed: figures are inline SVG.

    \b
    Example:
      ce report -o report.html
    """
    from .report_page import write_report

    write_report(open_session(store_path, read_only=True), output, k, tpr)
    click.echo(f"wrote {output}", err=True)
