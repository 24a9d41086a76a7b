"""ce attack: adversarial attacks on a classifier, resumable, into the store."""

from __future__ import annotations

from dataclasses import replace

import click

from ce.store.errors import CeError

from .common import (
    answer_options,
    engine_options,
    limit_options,
    model_job_options,
    open_session,
    open_store,
)


@click.command()
@click.option("--model", "-m", required=True, help="Target classifier: alias, model folder or Hub id.")
@click.option(
    "--dataset", "-d", default="imdb-1k", show_default=True, help="Labelled classification dataset or file."
)
@click.option(
    "--attack", default="bert-attack", show_default=True, help="Recipe: bert-attack or deepwordbug."
)
@click.option(
    "--attacker",
    default="bert-base",
    show_default=True,
    help="Masked LM proposing BERT-Attack's substitutes: alias, folder or Hub id.",
)
@click.option(
    "--max-candidates",
    default=48,
    show_default=True,
    help="Substitutes per word (the paper's K = 48; TextAttack's recipe now uses 8).",
)
@click.option(
    "--sentence-encoder",
    default="minilm",
    show_default=True,
    help="Similarity constraint: minilm (offline), use (TF Hub), or a sentence-transformers folder.",
)
@click.option("--name", help="Name of the target model in the store.")
@limit_options(
    seeds="the attack of each example (with its id) and the --limit sample; a longer --limit"
    " continues a shorter attack of the same seed"
)
@click.option("--query-budget", type=int, help="Model queries allowed per example.")
@click.option(
    "--checkpoint-every",
    default=10,
    show_default=True,
    help="Examples per commit: a killed attack resumes from the last commit.",
)
@click.option("--restart", is_flag=True, help="Start over instead of resuming.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--batch-size", default=32, show_default=True, help="Texts per model query batch.")
@click.option("--attacker-revision", help="Hub branch, tag or commit of the attacker masked LM.")
@answer_options
@engine_options
@model_job_options
def attack(model, dataset, name, engine, shards, ray_address, store_path, **settings):
    """Attack MODEL on DATASET and store one result per example.

    BERT-Attack (Li et al. 2020) from TextAttack's components: masked-LM word swaps,
    no repeated or stopword changes, at most 40 % of words perturbed, a sentence-encoder
    similarity constraint, untargeted goal, greedy search by word importance. Every recipe
    parameter is recorded in the run. Running the same command again resumes. MODEL may
    name a replica group (ce finetune --seeds): each replica is attacked, stored as NAME-sS.

    \b
    Example:
      ce attack --model bert-base --dataset imdb-1k --attack bert-attack --attacker bert-base
      ce attack --model ./imdb-classifier --attack deepwordbug --limit 100
      ce attack --model bert-base --attack deepwordbug --shard 3/8   # job 3 of 8
      ce attack --model bert-base --attack deepwordbug --engine ray
    """
    if engine == "ray":
        from ce.extractors.attack import AttackOptions
        from ce.extractors.distributed import attack_on_ray

        from .extract import one_model_on_ray

        one_model_on_ray(store_path, model)
        options = AttackOptions(**settings)  # every other option is a field of AttackOptions
        infos = attack_on_ray(
            open_store(store_path),
            model,
            dataset,
            options,
            shards=shards,
            address=ray_address,
            name=name,
        )
        totals = {
            k: sum(getattr(i, k) for i in infos) for k in ("succeeded", "failed", "skipped", "resumed_from")
        }
        info = replace(infos[0], **totals, seconds=max(i.seconds for i in infos))
    elif shards is not None or ray_address is not None:
        raise CeError("--shards and --ray-address go with --engine ray")
    else:
        info = open_session(store_path).attack(model, dataset, name=name, **settings)
    for one in info if isinstance(info, list) else [info]:
        click.echo(
            f"{one.model} under {one.attack} on {one.dataset}:"
            f" {one.succeeded} succeeded, {one.failed} failed, {one.skipped}"
            f" skipped ({one.resumed_from} done before) in {one.seconds:.0f}s",
            err=True,
        )
