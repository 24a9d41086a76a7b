"""``ce ood``: Deep Nearest Neighbours OOD scores (Sun et al. 2022).

Features are L2-normalised CLS embeddings. For every id-val and test example the store keeps
the distance to its k-th nearest neighbour in the in-distribution bank for k = 1..K_max, so
the threshold (a TPR quantile of the id-val distances) and k are chosen later, in SQL.
Embeddings are read from the store; a dataset the store lacks is extracted once.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from ce.engine.errors import CeError, NotFound
from ce.engine.read import read_embeddings
from ce.engine.store import Store, parse_shard, series_id

from .datasets import Dataset, load_dataset
from .extract import ExtractOptions, extract
from .neighbors import BLOCK, normalize
from .registry import resolve_model


@dataclass(frozen=True)
class OodOptions:
    stage: str = "finetuned"
    k_max: int = 100
    val_fraction: float = 0.2
    limit: int | None = None
    device: str = "cpu"
    batch_size: int = 32
    shard: str | None = None  # "I/N": score only the I-th of N slices of id-val and test


def split_groups(dataset: Dataset, val_fraction: float) -> np.ndarray:
    """True for examples held out as id-val: whole groups (SQuAD articles, else examples),
    chosen by a hash of the group name, so the split is the same on every machine."""
    titles = dataset.table["title"].to_pylist()
    ids = dataset.table["example_id"].to_pylist()
    groups = [t if t is not None else i for t, i in zip(titles, ids, strict=True)]
    chosen = {
        g for g in set(groups) if int(hashlib.sha256(g.encode()).hexdigest()[:12], 16) / 16**12 < val_fraction
    }
    return np.array([g in chosen for g in groups], dtype=bool)


def kth_distances(queries: np.ndarray, bank: np.ndarray, k_max: int, progress=None) -> np.ndarray:
    """(n, k_max) Euclidean distances of normalised queries to their nearest bank vectors."""
    import faiss

    out = np.empty((len(queries), k_max), np.float32)
    for start in range(0, len(queries), BLOCK):
        sims, _ = faiss.knn(queries[start : start + BLOCK], bank, k_max, metric=faiss.METRIC_INNER_PRODUCT)
        out[start : start + len(sims)] = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * sims))
        if progress:
            progress(len(sims))
    return out


def _check(options: OodOptions) -> None:
    if options.k_max < 1:
        raise CeError("--k-max must be at least 1")
    if not 0 < options.val_fraction < 1:
        raise CeError(f"--val-fraction {options.val_fraction} must lie strictly between 0 and 1")
    if options.shard is not None:
        parse_shard(options.shard)


def shard_rows(n: int, shard: str | None) -> slice:
    """The rows of shard "I/N" among ``n`` (all rows when unsharded)."""
    if shard is None:
        return slice(0, n)
    i, count = parse_shard(shard)
    return slice(i * n // count, (i + 1) * n // count)


def _embeddings(store: Store, model: str, name: str, data: Dataset, options: OodOptions, progress: bool):
    """Stored embeddings of ``data``, extracting them first if the store has none."""
    if not store.has("embeddings", model=name, stage=options.stage, dataset=data.name):
        if options.shard:  # N shards must not each run the model over the same data
            raise NotFound(
                f"ce ood --shard reads stored embeddings and the store has no {options.stage}"
                f" embeddings of {name} on {data.name}; run ce extract --model {model}"
                f" --dataset {data.name} --stage {options.stage} (it can be sharded too) first"
            )
        extract_options = ExtractOptions(
            stage=options.stage, limit=options.limit, device=options.device, batch_size=options.batch_size
        )
        extract(store, model, data, extract_options, name=name, progress=progress)
    return read_embeddings(store, name, options.stage, data.name)


def _sharded(params: dict, name: str, options: OodOptions) -> dict:
    """Series and shard of a sharded OOD run: its N shards share the series."""
    if options.shard is None:
        return {}
    same = {k: v for k, v in params.items() if k not in ("shard", "device", "batch_size")}
    series = series_id("ood", same, name, parse_shard(options.shard)[1])
    return {"series": series, "shard": options.shard}


def run_ood(
    store: Store,
    model: str,
    bank: str,
    id_val: str | None,
    test: str,
    options: OodOptions = OodOptions(),
    name: str | None = None,
    progress: bool = True,
) -> dict:
    from tqdm.auto import tqdm

    _check(options)
    bank_data = load_dataset(bank)
    test_data = load_dataset(test)
    val_data = load_dataset(id_val) if id_val and id_val != bank else None
    if name is None:  # a model the store already has embeddings of needs no resolving
        known = {p.partition["model"] for p in store.live_parts()["embeddings"]}
        name = (
            model if model in known else resolve_model(model, bank_data.task, options.stage, store=store).name
        )
    bank_ids, bank_idx, bank_vec = _embeddings(store, model, name, bank_data, options, progress)
    test_ids, _, test_vec = _embeddings(store, model, name, test_data, options, progress)
    if val_data is None:  # a deterministic split of the bank by group
        held_out = split_groups(bank_data, options.val_fraction)[bank_idx]
        if held_out.all() or not held_out.any():
            raise CeError(
                f"--val-fraction {options.val_fraction} leaves no bank or no id-val"
                f" examples in {bank_data.name}; choose another fraction"
            )
        val_ids, val_vec = bank_ids.filter(pa.array(held_out)), bank_vec[held_out]
        bank_vec = bank_vec[~held_out]
    else:
        val_ids, _, val_vec = _embeddings(store, model, name, val_data, options, progress)
    if not (bank_vec.shape[1] == val_vec.shape[1] == test_vec.shape[1]):
        raise CeError(
            f"embedding dimensions differ (bank {bank_vec.shape[1]}, id-val"
            f" {val_vec.shape[1]}, test {test_vec.shape[1]}); use one model for all"
        )
    k_max = min(options.k_max, len(bank_vec))
    val_rows, test_rows = shard_rows(len(val_vec), options.shard), shard_rows(len(test_vec), options.shard)
    val_ids, val_vec = val_ids[val_rows], val_vec[val_rows]
    test_ids, test_vec = test_ids[test_rows], test_vec[test_rows]
    bank_vec, val_vec, test_vec = normalize(bank_vec), normalize(val_vec), normalize(test_vec)
    params = {
        **asdict(options),
        "model_arg": model,
        "bank": bank_data.name,
        "id_val": (val_data or bank_data).name,
        "test": test_data.name,
        "split": None if val_data else f"held-out groups, fraction {options.val_fraction}",
    }
    with (
        store.run(
            "ood",
            params,
            model=name,
            dataset=test_data.name,
            stage=options.stage,
            bank_size=len(bank_vec),
            k_max=k_max,
        ) as run,
        tqdm(
            total=len(val_vec) + len(test_vec),
            unit="query",
            desc="ood scores",
            dynamic_ncols=True,
            disable=not progress or None,
        ) as bar,
    ):
        rows = []
        for role, ids, vecs, source in (
            ("id_val", val_ids, val_vec, (val_data or bank_data).name),
            ("test", test_ids, test_vec, test_data.name),
        ):
            dist = kth_distances(vecs, bank_vec, k_max, bar.update)
            rows.append(
                pa.table(
                    {
                        "example_id": ids,
                        "role": pa.array([role] * len(ids)),
                        "source": pa.array([source] * len(ids)),
                        "distances": pa.FixedSizeListArray.from_arrays(pa.array(dist.reshape(-1)), k_max),
                    }
                )
            )
        run.write(
            "ood_scores",
            {"model": name, "bank": bank_data.name, "dataset": test_data.name},
            pa.concat_tables(rows),
            **_sharded(params, name, options),
        )
    return {
        "run_id": run.run_id,
        "model": name,
        "bank": len(bank_vec),
        "id_val": len(val_vec),
        "test": len(test_vec),
    }
