"""``ce ood``: Deep Nearest Neighbours OOD scores (Sun et al. 2022).

Features are L2-normalised CLS embeddings. For every id-val and test example the store keeps
the distance to its k-th nearest neighbour in the in-distribution bank for k = 1..K_max, so
the threshold (a TPR quantile of the id-val distances) and k are chosen later, in SQL.
Embeddings are read from the store; a dataset the store lacks is extracted once.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

from ce.query.read import read_embeddings
from ce.store.errors import CeError, NotFound
from ce.store.store import Store, parse_shard

from .datasets import (
    Dataset,
    check_sample,
    limited,
    load_dataset,
    sample_rows,
    say_sample_note,
    settled_sample,
    shard_rows,
)
from .extract import (
    ExtractOptions,
    extract,
    extract_identity,
    model_plan,
    resolve_device,
    same_embeddings,
    settled_model_options,
)
from .families import check_pooling, parse_layer
from .identity import LEFT_OUT, identity, live_identities, not_identity, sharding, stale_because
from .loading import model_files
from .neighbors import BLOCK, normalize
from .registry import resolve_model


@dataclass(frozen=True)
class OodOptions:
    stage: str = "finetuned"
    k_max: int = 100
    val_fraction: float = 0.2
    limit: int | None = None  # a seeded sample of N examples of each dataset
    sample: str = "stratified"  # how --limit chooses: stratified by label or article, or first
    seed: int = 0  # seeds the sample
    device: str = not_identity("cpu")
    batch_size: int = not_identity(32)
    shard: str | None = None  # "I/N": score only the I-th of N slices of id-val and test
    revision: str | None = not_identity(None)  # Hub branch, tag or commit of the model
    allow_pickle: bool = not_identity(False)  # trust pickled weights fully (they can run code)
    pooling: str | None = None  # the representation scored: see ExtractOptions and families.py
    layer: str | int | float | None = None
    verbalizer: str | None = None  # a decoder without a head answers the bank as ce extract does
    prompt: str | None = None


@dataclass(frozen=True)
class OodResult:
    model: str
    ran: bool = True  # False: the store held a run of the same identity, kept as it is (reuse)
    run_id: str | None = None
    bank: int = 0  # bank examples scored against
    id_val: int = 0  # id-val examples scored
    test: int = 0  # test examples scored
    why: list[str] = field(default_factory=list)  # why it ran: nothing stored, or what differs


def groups(dataset: Dataset) -> list[str]:
    """The group of each example that the id-val split keeps whole: its article (SQuAD
    title), else the example itself."""
    titles = dataset.table["title"].to_pylist()
    ids = dataset.table["example_id"].to_pylist()
    return [t if t is not None else i for t, i in zip(titles, ids, strict=True)]


def split_groups(dataset: Dataset, val_fraction: float) -> np.ndarray:
    """True for examples held out as id-val: whole groups (SQuAD articles, else examples),
    chosen by a hash of the group name, so the split is the same on every machine."""
    names = groups(dataset)
    chosen = {
        g for g in set(names) if int(hashlib.sha256(g.encode()).hexdigest()[:12], 16) / 16**12 < val_fraction
    }
    return np.array([g in chosen for g in names], dtype=bool)


def split_bank(dataset: Dataset, idx: np.ndarray, options: OodOptions) -> np.ndarray:
    """The id-val mask over the bank examples at positions ``idx`` (those embedded), or a
    CeError naming why the split leaves no id-val or no bank: the examples that --limit (or
    the stored embeddings) kept, else the fraction."""
    held_out = split_groups(dataset, options.val_fraction)[idx]
    if held_out.any() and not held_out.all():
        return held_out
    chosen = "none" if not held_out.any() else "all"
    unit = "questions" if dataset.task == "qa" else "examples"
    titled = dataset.table["title"].null_count < len(dataset)
    group = "articles" if titled else unit
    kept = list(dict.fromkeys(groups(dataset)[i] for i in idx))  # in order of first example
    if len(idx) == len(dataset):
        raise CeError(
            f"--val-fraction {options.val_fraction} holds out {chosen} of the {len(kept)} {group}"
            f" of {dataset.name}, leaving no {'id-val' if chosen == 'none' else 'bank'} examples;"
            " choose another --val-fraction, or pass --id-val DATASET"
        )
    if options.limit is not None:
        kept_by = "the first" if options.sample == "first" else f"a sample (seed {options.seed}) of"
        cause = f"--limit {options.limit} keeps {kept_by} {len(idx)} {unit} of {dataset.name}"
        fix = "raise --limit"
    else:
        cause = (
            f"the store holds {options.stage} embeddings of only {len(idx)} of the"
            f" {len(dataset)} {unit} of {dataset.name}"
        )
        fix = f"embed more of them (ce extract --dataset {dataset.name} --stage {options.stage})"
    if titled:
        named = ", ".join(kept[:3]) + (", ..." if len(kept) > 3 else "")
        cause += f", from {len(kept)} article{'s' if len(kept) > 1 else ''} ({named})"
    raise CeError(
        f"{cause}; the held-out fraction {options.val_fraction} of {group} chooses {chosen} of"
        f" them: {fix}, pass --id-val DATASET, or change --val-fraction"
    )


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
    check_sample(options.sample)
    if options.shard is not None:
        parse_shard(options.shard)
    check_pooling(options.pooling)
    parse_layer(options.layer)


def _target(store: Store, model: str, name: str | None, bank: Dataset, options: OodOptions):
    """(store name, checked files or None): None for a name the store has embeddings of
    that resolves to no model (its stored embeddings are used as they are)."""
    try:
        resolved = resolve_model(model, bank.task, options.stage, name, store=store)
    except NotFound:
        if name is None and any(p.partition["model"] == model for p in store.live_parts()["embeddings"]):
            return model, None
        raise
    return resolved.name, model_files(resolved, options.revision, options.allow_pickle)


# the options an OOD run passes on to the extraction whose embeddings it reads
EXTRACTED_WITH = (
    "stage",
    "limit",
    "sample",
    "seed",
    "device",
    "batch_size",
    "revision",
    "allow_pickle",
    "pooling",
    "layer",
    "verbalizer",
    "prompt",
)


def _extract_options(options: OodOptions) -> ExtractOptions:
    """The extraction whose embeddings the OOD run reads (ExtractOptions' defaults else)."""
    return ExtractOptions(**{key: getattr(options, key) for key in EXTRACTED_WITH})


def _stored_fit(store: Store, partition: dict, wanted: dict) -> bool:
    """Whether the stored embeddings of ``partition`` are those ``wanted`` (same weights,
    settings and dataset) or cover them: a run without a limit, or a larger sample of the
    same kind and seed (samples are nested)."""
    stored = live_identities(store, "embeddings", partition)
    if not stored:
        return False
    for s in stored:
        sampled = ("limit", "sample", "seed") if s is not None and s.get("limit") is None else ("limit",)
        if s is None or not same_embeddings({**wanted, **{k: s.get(k) for k in sampled}}, s):
            return False
        if s.get("limit") is not None and (wanted["limit"] is None or s["limit"] < wanted["limit"]):
            return False
    return True


def _embeddings(
    store: Store,
    model: str,
    name: str,
    files,
    data: Dataset,
    options: OodOptions,
    progress: bool,
    replica: dict | None = None,
):
    """The embeddings of ``data`` (the sample of ``limit`` examples): stored ones when they come
    from the same weights and settings, else extracted now (once)."""
    partition = {"model": name, "stage": options.stage, "dataset": data.name}
    extract_options = _extract_options(options)
    fits = files is None and store.has("embeddings", **partition)
    if files is not None:
        wanted = extract_identity(extract_options, files, data, resolve_device(options.device))
        fits = _stored_fit(store, partition, wanted)
    if not fits:
        if options.shard:  # N shards must not each run the model over the same data
            raise NotFound(
                f"ce ood --shard reads stored embeddings and the store has no {options.stage}"
                f" embeddings of {name} on {data.name} from these weights and settings; run ce"
                f" extract --model {model} --dataset {data.name} --stage {options.stage} (it can be"
                " sharded too) first"
            )
        if files is None:
            raise NotFound(
                f"the store has no {options.stage} embeddings of {name} on {data.name}, and {name} names"
                f" no model to extract them with; pass --model MODEL (alias, folder or Hub id) --name {name}"
            )
        extract(store, model, data, extract_options, name=name, progress=progress, replica=replica)
    ids, idx, vectors = read_embeddings(store, name, options.stage, data.name)
    if limited(options.limit, len(data)):
        rows = sample_rows(data, options.limit, options.seed, options.sample)
        if fits:  # an extraction run now has said it already
            say_sample_note(data, rows, options.sample)
        keep = np.isin(idx, rows)
        ids, idx, vectors = ids.filter(pa.array(keep)), idx[keep], vectors[keep]
    return ids, idx, vectors


def ood_identity(options: OodOptions, files, datasets: dict[str, Dataset], store: Store, name: str) -> dict:
    """The identity of an OOD run (see identity.py): its settings, the model's weights (or,
    for a stored name with no model, those its stored embeddings came from) and the
    fingerprints of bank, id-val and test."""
    if files is not None:
        loaded = {"target": files.record()}
    else:
        stored = live_identities(
            store, "embeddings", {"model": name, "stage": options.stage, "dataset": datasets["bank"].name}
        )
        weights = (stored[0] or {}).get("weights", {}).get("target") if stored else None
        loaded = {"target": {"sha256": weights}}
    largest = max(len(d) for d in datasets.values())  # no limit applies: sample and seed do not count
    sampled = settled_sample(options.limit, largest, options.sample, options.seed)
    fingerprints = {role: d.fingerprint for role, d in datasets.items()}
    return identity(
        options, loaded, fingerprints, **sampled, **_settled_representation(options, files, datasets)
    )


REPRESENTED_BY = ("pooling", "layer", "verbalizer", "prompt")  # OodOptions passed to the extraction


def _settled_representation(options: OodOptions, files, datasets: dict[str, Dataset]) -> dict:
    """The identity's pooling, layer, label words and prompt as the bank's extraction settles
    them (the family's default and an explicit equal value alike; left out for an encoder's
    last-block CLS vector, as before they could be chosen); for a stored name with no model
    to read, as given (left out when not)."""
    if files is None:
        return {k: LEFT_OUT for k in REPRESENTED_BY if getattr(options, k) is None}
    extraction = _extract_options(options)
    how, rep = model_plan(files, datasets["bank"].task, extraction)
    settled = settled_model_options(how, rep, extraction, datasets["bank"])
    return {k: settled.get(k, getattr(options, k)) for k in REPRESENTED_BY}


def _settled(store: Store, model: str, bank, id_val, test, options: OodOptions, name: str | None):
    """(bank, id-val or None, test, store name, files, identity, why it runs or None)."""
    bank_data = load_dataset(bank)
    test_data = load_dataset(test)
    val_data = load_dataset(id_val) if id_val else None
    if val_data is not None and val_data.name == bank_data.name:
        val_data = None  # id-val is a split of the bank
    name, files = _target(store, model, name, bank_data, options)
    roles = {"bank": bank_data, "id_val": val_data or bank_data, "test": test_data}
    run_identity = ood_identity(options, files, roles, store, name)
    partition = {"model": name, "stage": options.stage, "bank": bank_data.name, "dataset": test_data.name}
    why = stale_because(store, "ood_scores", partition, run_identity)
    return bank_data, val_data, test_data, name, files, run_identity, why


def ood_stale(
    store: Store,
    model: str,
    bank: str | Dataset,
    id_val: str | Dataset | None,
    test: str | Dataset,
    options: OodOptions = OodOptions(),
    name: str | None = None,
) -> list[str] | None:
    """None when the store holds these OOD scores from a run of the same identity (the
    model's files are hashed, not loaded); else why they must be computed."""
    _check(options)
    return _settled(store, model, bank, id_val, test, options, name)[-1]


def run_ood(
    store: Store,
    model: str,
    bank: str | Dataset,
    id_val: str | Dataset | None,
    test: str | Dataset,
    options: OodOptions = OodOptions(),
    name: str | None = None,
    progress: bool = True,
    reuse: bool = False,
    replica: dict | None = None,
) -> OodResult:
    """Score ``test`` (and id-val) against ``bank``. With ``reuse`` (ce run), a stored run
    of the same identity is kept: the result then says ``ran=False``. ``replica`` (a
    replica's group and seed, see replicas.py) goes into the run record, and into that of
    an extraction of embeddings it makes."""
    from .progress import bar as progress_bar

    _check(options)
    bank_data, val_data, test_data, name, files, run_identity, why = _settled(
        store, model, bank, id_val, test, options, name
    )
    sharded = sharding("ood", options, run_identity)
    partition = {"model": name, "stage": options.stage, "bank": bank_data.name, "dataset": test_data.name}
    if reuse and why is None:
        return OodResult(name, ran=False)
    if val_data is None and files is not None:  # a split that cannot work fails before extracting
        split_bank(bank_data, sample_rows(bank_data, options.limit, options.seed, options.sample), options)
    bank_ids, bank_idx, bank_vec = _embeddings(
        store, model, name, files, bank_data, options, progress, replica
    )
    test_ids, _, test_vec = _embeddings(store, model, name, files, test_data, options, progress, replica)
    if val_data is None:  # a deterministic split of the bank by group
        held_out = split_bank(bank_data, bank_idx, options)
        val_ids, val_vec = bank_ids.filter(pa.array(held_out)), bank_vec[held_out]
        bank_vec = bank_vec[~held_out]
    else:
        val_ids, _, val_vec = _embeddings(store, model, name, files, val_data, options, progress, replica)
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
            identity=run_identity,
            loaded={"target": files.record()} if files is not None else None,
            **({"replica": replica} if replica is not None else {}),
        ) as run,
        progress_bar(
            f"ood {name} {test_data.name}", len(val_vec) + len(test_vec), "query", progress=progress
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
            partition,
            pa.concat_tables(rows),
            **sharded,
        )
    return OodResult(
        name,
        run_id=run.run_id,
        bank=len(bank_vec),
        id_val=len(val_vec),
        test=len(test_vec),
        why=why or ["the same run again"],
    )
