"""Options shared by the commands."""

from __future__ import annotations

import click
from click.core import ParameterSource

from ce.store.store import Store

from .output import FORMATS

DEFAULT_STORE = "data/store"


def _store_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """The command's own --store, else the group's (``ce --store S COMMAND``), else CE_STORE
    or the default: a store given on the command line beats the environment."""
    root = ctx.find_root()
    given = root.params.get("store_path") if root is not ctx else None
    if given is not None and ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
        value = given
    if not (value or "").strip():
        raise click.BadParameter(
            "the store path is empty; give a folder, e.g. --store data/store", ctx, param
        )
    return value


def store_option(f):
    return click.option(
        "--store",
        "store_path",
        envvar="CE_STORE",
        default=DEFAULT_STORE,
        show_default=True,
        callback=_store_path,
        help="Store folder (or set CE_STORE, or give --store before the command); ce query,"
        " compare, sweep and report also read a store at an https://, s3:// or hf:// URL.",
    )(f)


def output_options(f):
    f = click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False),
        help="Write the result to this file instead of stdout.",
    )(f)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format.",
    )(f)


def open_session(path: str, read_only: bool = False):
    """A session on the store at ``path`` (see :func:`open_store`)."""
    from ce.session import Session

    return Session(open_store(path, read_only))


def open_store(path: str, read_only: bool = False) -> Store:
    """The store at ``path``; commands that only read (``read_only``) also take a URL."""
    from ce.store.errors import StoreError
    from ce.store.remote import RemoteStore, is_remote

    if not is_remote(path):
        return Store(path)
    if not read_only:
        raise StoreError(
            f"--store {path}: this command writes to or copies from a local store folder;"
            " a URL works with ce query, compare, sweep and report"
        )
    return RemoteStore(path)


# Options that several commands share, each declared once (a click option decorator can be
# applied to any number of commands).
tpr_option = click.option(
    "--tpr",
    default=0.95,
    show_default=True,
    help="Share of in-distribution points kept by the OOD threshold.",
)
shard_option = click.option(
    "--shard",
    metavar="I/N",
    help="Only the I-th of N equal slices of the examples (0 <= I < N), as one of N jobs"
    " (Slurm array, Kubernetes); the N shards together equal one unsharded run.",
)


SAMPLES = ["stratified", "first"]  # extractors.datasets.SAMPLES (not imported here: start-up time)
LIMIT_HELP = (
    "A seeded sample of N examples, stratified by label (by article for QA); --sample first"
    " takes the first N."
)
sample_option = click.option(
    "--sample",
    type=click.Choice(SAMPLES),
    default=SAMPLES[0],
    show_default=True,
    help="How --limit chooses: stratified (a seeded sample in proportion to each label or"
    " article; a larger N keeps every example of a smaller one) or the first N rows.",
)


def seed_option(default: int | None = 0, seeds: str = "the --limit sample"):
    return click.option(
        "--seed", type=int, default=default, show_default=default is not None, help=f"Seeds {seeds}."
    )


def limit_options(
    seed: int = 0,
    seeds: str = "the --limit sample",
    default: int | None = None,
    help: str = LIMIT_HELP,  # noqa: A002
):
    """--limit, --sample and --seed of the commands that can work on a sample of a dataset;
    ``seeds`` says what else --seed seeds where it does more than the sample."""

    def apply(f):
        f = seed_option(seed, seeds)(f)
        f = sample_option(f)
        shown = default is not None
        return click.option("--limit", type=int, default=default, show_default=shown, help=help)(f)

    return apply


def engine_options(f):
    """--engine, --shards and --ray-address of the commands that can run on Ray."""
    f = click.option(
        "--ray-address",
        envvar="RAY_ADDRESS",
        help="Ray cluster to use with --engine ray (or set RAY_ADDRESS) [default: start one here].",
    )(f)
    f = click.option(
        "--shards", type=int, help="Shards for --engine ray [default: one per GPU, else per CPU]."
    )(f)
    return click.option(
        "--engine",
        type=click.Choice(["local", "ray"]),
        default="local",
        show_default=True,
        help="local: this process; ray: shards as Ray tasks, one model copy each, GPUs where present.",
    )(f)


revision_option = click.option(
    "--revision",
    help="Hub branch, tag or commit of the model [default: main]; the run records the commit read.",
)


allow_pickle_option = click.option(
    "--allow-pickle",
    is_flag=True,
    help="Trust pickled (.bin) weights fully. Without it they load through torch's weights-only"
    " unpickler, which refuses a pickle that could run code.",
)


def model_job_options(f):
    """The options of every command that loads a model: --shard, --revision, --allow-pickle
    and --store."""
    for option in (store_option, allow_pickle_option, revision_option, shard_option):
        f = option(f)
    return f


def choice_option(flag: str, choices: list[str], help: str, name: str | None = None):  # noqa: A002
    """An option taking one of ``choices``, the first being the default."""
    names = [flag, name] if name else [flag]
    return click.option(*names, type=click.Choice(choices), default=choices[0], show_default=True, help=help)


def stage_option(help: str):  # noqa: A002 - click's own name
    """--stage: which embeddings (those of the fine-tuned model, or of its base encoder)."""
    return click.option(
        "--stage",
        type=click.Choice(["finetuned", "pretrained"]),
        default="finetuned",
        show_default=True,
        help=help,
    )


def representation_options(f):
    """--pooling and --layer: which hidden state represents an input, pooled how."""
    f = click.option(
        "--layer",
        help="Hidden state to represent inputs by: an index (0 = embeddings, -1 = last block, the"
        " default) or a fraction of depth (0.5 = the middle block), to compare models of"
        " different depths at the same relative depth.",
    )(f)
    return click.option(
        "--pooling",
        type=click.Choice(["cls", "last", "mean"]),
        help="How tokens become one vector [default: the family's: cls for encoders, last"
        " non-padding token for decoders, mean for T5-style encoders].",
    )(f)


def answer_options(f):
    """--verbalizer and --prompt: how a decoder without a classification head is asked."""
    f = click.option(
        "--prompt",
        help="Decoders (and T5 for QA): the prompt template, with {text}, or {question} and {context}"
        " [default: the dataset's, else per task].",
    )(f)
    return click.option(
        "--verbalizer",
        help="A decoder without a classification head: its label words, in label order,"
        " comma-separated [default: the dataset's, e.g. negative,positive for sst2 and imdb].",
    )(f)
