"""ce ingest: bring results computed elsewhere into the store."""

from __future__ import annotations

import click

from .common import open_session, store_option


def replica_of_option(f):
    """--replica-of MODEL of every ingest: the ingested model joins MODEL's replica group."""
    return click.option(
        "--replica-of",
        "replica_of",
        metavar="MODEL",
        help="Mark the ingested model as a replica of MODEL, a model of the store (the same"
        " recipe, another seed): it joins MODEL's replica group (MODEL without one starts a"
        " group named after it).",
    )(f)


def _ingest(store_path: str, model: str, replica_of: str | None, ingest, lines) -> None:
    """``ingest(session)``, its ``lines(result)`` said; with --replica-of, MODEL is checked
    before anything is written (an unknown model, or the model itself, is refused) and
    Session.mark_replica records the replica after the ingest."""
    session = open_session(store_path)
    if replica_of is not None:
        session.replica_group_for(model, replica_of)
    for line in lines(ingest(session)):
        click.echo(line, err=True)
    if replica_of is not None:
        group = session.mark_replica(model, replica_of)
        click.echo(f"{model}: a replica of {replica_of}, in replica group {group}", err=True)


@click.group()
def ingest():
    """Bring per-example results computed elsewhere into the store: lm-evaluation-harness
    and lighteval logs, TextAttack CSV logs, any table of answers, or a list of errors.
    --replica-of MODEL (every subcommand) marks the ingested model as a replica of MODEL.

    \b
    Example:
      ce ingest lm-eval out/gpt2 --model gpt2
      ce ingest errors bert_base.json --model bert-base --dataset squad2-dev
    """


@ingest.command("errors")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--model", "-m", required=True, help="Name of the model in the store.")
@click.option("--dataset", "-d", required=True, help="Dataset the ids belong to.")
@click.option("--dataset-name", help="Name of a data file's dataset in the store.")
@replica_of_option
@store_option
def errors(file, model, dataset, dataset_name, replica_of, store_path):
    """Record FILE, a JSON list of the example ids MODEL got wrong, as its predictions.

    Every listed id counts as an error (exact match 0), every other example of the dataset
    as correct. An id that is not in the dataset is an error.

    \b
    Example:
      ce ingest errors bert_base.json --model bert-base --dataset squad2-dev
      ce ingest errors seed2.json --model bert-base-s2 --dataset squad2-dev --replica-of bert-base
    """
    _ingest(
        store_path,
        model,
        replica_of,
        lambda s: s.ingest(file, model, dataset, dataset_name),
        lambda info: [
            f"{info['model']} on {info['dataset']}: {info['errors']} errors of"
            f" {info['examples']} examples; run {info['run_id']}"
        ],
    )


@ingest.command("lm-eval")
@click.argument("path", type=click.Path())
@click.option("--model", "-m", required=True, help="Name of the model in the store.")
@click.option(
    "--metric",
    help="The 0/1 metric field that says whether an answer is correct (default: the first of"
    " acc, exact_match, acc_norm, em, exact that the log has).",
)
@replica_of_option
@store_option
def lm_eval(path, model, metric, replica_of, store_path):
    """Record lm-evaluation-harness per-example logs (--log_samples) as MODEL's predictions.

    PATH is a samples_<task>_<date>.jsonl file or an output folder (every task in it).
    Each task (and filter other than none) becomes a dataset named after it; for multiple
    choice the answer distribution is the softmax of the per-choice log-likelihoods. The
    prompt hash of every document is kept: ce compare names the documents two models saw
    with different prompts.

    \b
    Example:
      lm_eval --model hf --model_args pretrained=gpt2 --tasks hellaswag \\
          --output_path out --log_samples
      ce ingest lm-eval out/gpt2 --model gpt2
    """
    _ingest(store_path, model, replica_of, lambda s: s.ingest_lmeval(path, model, metric), _lm_eval_lines)


def _lm_eval_lines(infos: list[dict]) -> list[str]:
    return [
        f"{info['model']} on {info['dataset']}: {info['correct']} of {info['examples']} correct"
        f" ({info['metric']}); {info['distribution'] or 'no answer distribution in the log'};"
        f" run {info['run_id']}"
        for info in infos
    ]


@ingest.command("lighteval")
@click.argument("path", type=click.Path())
@click.option("--model", "-m", required=True, help="Name of the model in the store.")
@click.option("--metric", help="The 0/1 metric that says whether an answer is correct (default: acc, ...).")
@click.option("--dataset-name", help="Name of the dataset in the store (one task only).")
@replica_of_option
@store_option
def lighteval(path, model, metric, dataset_name, replica_of, store_path):
    """Record lighteval's per-task details (details_<task>_<date>.parquet) as MODEL's predictions.

    PATH is a details Parquet file or a folder of them; each task becomes a dataset.

    \b
    Example:
      ce ingest lighteval results/details/my-model --model my-model
    """
    _ingest(
        store_path,
        model,
        replica_of,
        lambda s: s.ingest_lighteval(path, model, metric=metric, dataset_name=dataset_name),
        lambda infos: [_described(info) for info in infos],
    )


@ingest.command("textattack")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--model", "-m", required=True, help="Name of the attacked model in the store.")
@click.option("--dataset", "-d", required=True, help="Name of the attacked dataset in the store.")
@click.option("--attack", "-a", required=True, help="Name of the attack recipe (e.g. textfooler).")
@replica_of_option
@store_option
def textattack(file, model, dataset, attack, replica_of, store_path):
    """Record TextAttack's CSV log (--log-to-csv) as MODEL's results of ATTACK on DATASET.

    Each row becomes an attack result (succeeded, failed or skipped), its original output
    MODEL's prediction, and its original text and ground truth an example of DATASET.

    \b
    Example:
      textattack attack --recipe textfooler --model my-model --log-to-csv log.csv
      ce ingest textattack log.csv --model my-model --dataset sst2-dev-attacked --attack textfooler
    """
    _ingest(
        store_path,
        model,
        replica_of,
        lambda s: s.ingest_textattack(file, model, dataset, attack),
        lambda info: [_described(info)],
    )


@ingest.command("predictions")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--model", "-m", required=True, help="Name of the model in the store.")
@click.option("--dataset", "-d", required=True, help="A dataset of 'ce datasets', or a new name.")
@click.option("--id", "id_column", required=True, help="Column of the example ids.")
@click.option("--answer", "answer_column", required=True, help="Column of the model's answers.")
@click.option("--correct", "correct_column", help="Column saying whether each answer is correct.")
@click.option("--gold", "gold_column", help="Column of the gold labels (else the dataset's).")
@click.option("--probs", "probs_column", help="A list column of the per-class probabilities.")
@click.option(
    "--prob", "prob_columns", multiple=True, help="One column per class, in class order (repeat the flag)."
)
@click.option("--text", "text_column", help="Column of the example texts (a dataset from the file).")
@click.option("--dataset-name", help="Name of a data file's dataset in the store.")
@replica_of_option
@store_option
def predictions(file, model, dataset, replica_of, store_path, **columns):
    """Record any CSV, TSV, JSONL or Parquet table of per-example answers as MODEL's predictions.

    The columns are named by flags; correctness comes from --correct, else from the answer
    and the gold label; probabilities, when given, must sum to 1 on every row.

    \b
    Example:
      ce ingest predictions preds.csv --model my-int4 --dataset sst2-dev \\
          --id example_id --answer label --prob p_neg --prob p_pos
    """
    columns["prob_columns"] = list(columns["prob_columns"]) or None
    _ingest(
        store_path,
        model,
        replica_of,
        lambda s: s.ingest_table(file, model, dataset, **columns),
        lambda info: [_described(info)],
    )


def _described(info: dict) -> str:
    """One line on what an ingest wrote."""
    shown = ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("run_id", "model", "dataset"))
    return f"{info.get('model')} on {info.get('dataset')}: {shown}; run {info.get('run_id')}"
