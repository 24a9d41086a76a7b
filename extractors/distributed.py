"""``--engine ray``: the shards of one extraction or attack as Ray tasks, one model copy each.

Every task runs the same code as ``ce extract --shard I/N`` (or ``ce attack --shard``) on
one shard and writes its parts straight into the store, which all workers must see (one
machine, or a shared file system). The driver waits for the N tasks and, for extraction,
then searches the neighbours of the whole dataset once. A task on a machine with a GPU
gets one GPU and runs on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ce.store.errors import CeError
from ce.store.store import Store

ENGINES = ("local", "ray")
# Settings the workers need to see as the driver does (data folder, offline switches).
FORWARDED_ENV = ("CE_DATA_DIR", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME")


def start_ray(address: str | None = None, num_cpus: int | None = None):
    """Connect to the Ray cluster at ``address`` (or RAY_ADDRESS), else start a local one."""
    try:
        import ray
    except ImportError:
        raise CeError("--engine ray needs Ray: pip install 'ce[ray]' (or pip install ray)") from None
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        ray.init(
            address=address or os.environ.get("RAY_ADDRESS"),
            num_cpus=None if address else num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": env},
        )
    return ray


def worker_count(ray, shards: int | None) -> tuple[int, bool]:
    """(number of shards, whether each task takes a GPU): one shard per GPU, else per CPU."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    return shards or gpus or max(1, int(resources.get("CPU", 1))), gpus > 0


def run_shards(
    task: Callable[..., Any],
    store: Store,
    model: str,
    dataset: str,
    options,
    kwargs: dict,
    shards: int | None,
    address: str | None,
    progress: bool,
    what: str,
) -> list[Any]:
    """Run ``task(root, model, dataset, options for shard I/N, kwargs)`` for every shard as
    Ray tasks; their results in shard order. A ce error in a task is raised here as itself."""
    from .progress import bar as progress_bar

    if options.shard is not None:
        raise CeError("--engine ray makes the shards itself; drop --shard (use --shards N)")
    if shards is not None and shards < 1:
        raise CeError(f"--shards {shards}: give at least 1 (or leave it out: one per GPU, else per CPU)")
    ray = start_ray(address)
    count, gpu = worker_count(ray, shards)
    device = "cuda" if gpu and options.device in ("cpu", "auto") else options.device
    remote = ray.remote(num_cpus=1, num_gpus=1 if gpu else 0, max_retries=0)(task)
    futures = [
        remote.remote(
            str(store.root), model, dataset, replace(options, shard=f"{i}/{count}", device=device), kwargs
        )
        for i in range(count)
    ]
    pending = list(futures)
    with progress_bar(what, count, "shard", progress=progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            _raise_cause(ray, done[0])
            bar.update(1)
    return ray.get(futures)


def _raise_cause(ray, ref) -> None:
    try:
        ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, CeError):
            raise type(cause)(str(cause)) from None
        raise CeError(f"a Ray task failed: {cause or e}") from e


def _extract_task(root: str, model: str, dataset: str, options, kwargs: dict):
    from .extract import extract

    return extract(Store(root), model, dataset, options, progress=False, neighbors_after=False, **kwargs)


def _attack_task(root: str, model: str, dataset: str, options, kwargs: dict):
    from .attack import run_attack

    return run_attack(Store(root), model, dataset, options, progress=False, **kwargs)


def on_ray(
    job: str,
    store: Store,
    model: str,
    dataset: str,
    options,
    *,
    shards: int | None = None,
    address: str | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> list:
    """``ce extract|attack --engine ray``: every shard a Ray task (an attack's each
    resumable on its own); after an extraction, the neighbours once. ``kwargs`` go to the
    job; its results in shard order."""
    from .attack import check_options as check_attack
    from .extract import check_options as check_extract
    from .extract import neighbors_when_whole

    task, check = {"extract": (_extract_task, check_extract), "attack": (_attack_task, check_attack)}[job]
    check(options)
    what = f"{job} {kwargs.get('name') or model} {dataset} on ray"
    results = run_shards(task, store, model, dataset, options, kwargs, shards, address, progress, what)
    if job == "extract" and options.k_max is not None:
        first = results[0]
        partition = {"model": first.model, "stage": options.stage, "dataset": first.dataset}
        neighbors_when_whole(store, partition, first.series, options, progress)
    return results


def extract_on_ray(store: Store, model: str, dataset: str, options, **kwargs: Any) -> list:
    """``ce extract --engine ray`` (see on_ray)."""
    return on_ray("extract", store, model, dataset, options, **kwargs)


def attack_on_ray(store: Store, model: str, dataset: str, options, **kwargs: Any) -> list:
    """``ce attack --engine ray`` (see on_ray)."""
    return on_ray("attack", store, model, dataset, options, **kwargs)
