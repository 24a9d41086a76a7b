"""ce compare and ce sweep: the paper's Table 2 and Figure 1 for every model in the store."""

from __future__ import annotations

import click

from ce.query.compare import Result
from ce.query.floor import has_groups
from ce.query.measures import OPTIONAL
from ce.store.errors import CeError

from .common import open_session, output_options, store_option, tpr_option
from .output import WIDTH, write_results
from .tables import comparison_tables, floor_view, group_view, pie_view

with_option = click.option(
    "--with",
    "with_",
    multiple=True,
    type=click.Choice(sorted(OPTIONAL)),
    help="Add an optional measure (repeatable): "
    + "; ".join(f"{name}: {what}" for name, what in sorted(OPTIONAL.items())),
)


@click.command()
@click.option("--dataset", help="Only this dataset (Table 2, the floor, the groups, the PIEs).")
@click.option(
    "--table",
    type=click.Choice(["2", "3", "floor", "groups", "pie", "cka", "all"]),
    default="all",
    show_default=True,
    help="Which table: the paper's 2 or 3, the noise floor of each replica group, the replica"
    " groups compared, the PIEs, or linear CKA of every pair's embeddings; csv, json and"
    " parquet take one.",
)
@click.option("--k", default=10, show_default=True, help="Neighbours for representation and OOD.")
@tpr_option
@click.option("--ci", type=float, help="Add bootstrap confidence intervals at this level (e.g. 0.95).")
@click.option(
    "--bootstrap",
    "replicates",
    default=1000,
    show_default=True,
    help="Bootstrap replicates for --ci and the noise floor's intervals (examples resampled, seeded).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap.")
@click.option(
    "--by",
    type=click.Choice(["answerable", "label", "length"]),
    help="Every agreement per slice of the examples instead of Table 2.",
)
@click.option(
    "--reference",
    help="The model every pair names first [default: the store's (ce reference), else the one"
    " with the most parameters].",
)
@click.option("--wide", is_flag=True, help="Table 2 as one wide table (as csv/json/parquet write it).")
@with_option
@output_options
@store_option
def compare(
    dataset, table, k, tpr, ci, replicates, seed, by, reference, wide, with_, fmt, output, store_path
):
    """Table 2 and Table 3 of the paper for every model pair in the store.

    Table 2, per dataset and model pair (the reference first): agreement of prediction
    errors (Jaccard, with the chance baseline, Cohen's kappa and McNemar's test), of
    representations before and after fine-tuning (mean and variance of the per-example
    k-NN Jaccard), and of OOD sets (Jaccard at k, tpr; a row per test set, bank and stage).
    Each Jaccard comes with n (examples compared) and the two sets' sizes; a * marks one
    resting on fewer than 20 items. On a terminal, one table per characteristic (--wide:
    one table). Table 3, per model and attack: accuracy before and under attack, the drop,
    the success rate, with 95% intervals. Empty where the store has no such artifact yet.
    --with ranks adds the agreement of the neighbours' ranks (Spearman's rho over the union
    of the two k-lists, with its chance level), --with cka linear CKA of the embeddings.

    Where models have replicas (ce finetune --seeds, ce ingest --replica-of), every pair is
    also read against the noise floor of its first model's group: the floor (agreement
    between the replicas), the gap to it with its bootstrap interval, and whether the gap
    is within retraining noise; then the floor per group, the groups compared (with a
    permutation test over replica labels), and the PIEs: examples whose modal answer
    differs between the reference's replicas and another group's.

    \b
    Example:
      ce compare
      ce compare --table 2 --dataset squad2-dev --k 20 --format csv -o table2.csv
      ce compare --table 2 --ci 0.95 --bootstrap 1000
      ce compare --table 2 --with ranks --with cka
      ce compare --by answerable --reference bert-large
      ce compare --table floor --format csv -o floor.csv
      ce compare --table cka --dataset sst2-dev
    """
    if with_ and (by is not None or table not in ("2", "all")):
        instead = "--table 2 without --by" if by else "--table 2"
        raise CeError(f"--with adds measures to Table 2; drop it, or use {instead}")
    session = open_session(store_path, read_only=True)
    boot = {"replicates": replicates, "seed": seed}
    level = {} if ci is None else {"ci": ci}
    if by is not None:
        write_results([(None, session.sliced(by, k, tpr, reference=reference, **level, **boot))], fmt, output)
        return
    if table == "all" and (fmt != "table" or output):
        raise CeError(f"--format {fmt} and -o write one table: add --table 2, 3, floor, groups or pie")
    one = {
        "floor": lambda: session.noise_floor(k, tpr, **level, **boot, dataset=dataset),
        "groups": lambda: session.group_agreement(
            k, tpr, **level, **boot, reference=reference, dataset=dataset
        ),
        "pie": lambda: session.pie_examples(reference, dataset),
        "cka": lambda: session.cka(dataset, reference),
    }
    if table in one:
        result = one[table]()
        if fmt == "table" and not output and not wide:  # the narrow view of a terminal
            shown = {"floor": floor_view, "groups": group_view, "pie": pie_view}.get(table)
            if shown is not None:
                result = Result(session.con.from_arrow(shown(result.relation.to_arrow_table())), result.notes)
        write_results([(None, result)], fmt, output, width=None if wide else WIDTH)
        return
    table2 = table3 = None
    if table in ("2", "all"):
        table2 = session.table2(
            dataset, k, tpr, ci=ci, replicates=replicates, seed=seed, reference=reference, with_=with_
        )
    if table in ("3", "all"):
        table3 = session.table3()
    if fmt == "table" and not output and not wide:
        grouped = {}
        if table == "all" and has_groups(session.con):
            grouped = {name: one[name]() for name in ("floor", "groups", "pie")}
        shown, notes = comparison_tables(
            table2, table3, k, grouped.get("floor"), grouped.get("groups"), grouped.get("pie")
        )
        write_results(shown, fmt, None)
        for note in notes:
            click.echo(note, err=True)
        return
    results = [(t, r) for t, r in (("Table 2", table2), ("Table 3", table3)) if r is not None]
    width = None if wide else WIDTH
    write_results(results if table == "all" else [(None, r) for _, r in results], fmt, output, width=width)


def _ks(ctx, param, value: str) -> list[int]:
    try:
        ks = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not ks:
        raise click.BadParameter("give at least one k, e.g. 5,10,20")
    return ks


@click.command()
@click.option(
    "--k",
    "ks",
    default="1,5,10,20,50,100",
    show_default=True,
    callback=_ks,
    help="Comma-separated values of k.",
)
@tpr_option
@with_option
@output_options
@store_option
def sweep(ks, tpr, with_, fmt, output, store_path):
    """Agreement against k for every model pair: the data of the paper's Figure 1.

    One row per characteristic (representation before and after fine-tuning,
    distribution; with --with ranks the neighbours' rank agreement), dataset, bank and
    stage (of the OOD scores), model pair and k. The agreements read the neighbour lists
    once for every k.

    \b
    Example:
      ce sweep --k 5,10,20,50,100
      ce sweep --format csv -o figure1.csv
      ce sweep --k 5,10,20 --with ranks
    """
    session = open_session(store_path, read_only=True)
    write_results([(None, session.sweep(ks, tpr, with_=with_))], fmt, output)
