"""``ce extract``: one forward pass per (model, dataset, example) feeds predictions and CLS
embeddings, written to the store in one run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ce.store.errors import CeError
from ce.store.schema import vector_type
from ce.store.store import Store, parse_shard

from .datasets import Dataset, check_examples, check_sample, limited, load_dataset, settled_sample, subset
from .features import batches, tokenize
from .heads import QaDecoder, QaSettings, classify
from .identity import identity, not_identity, sharding, stale_because
from .loading import LoadedModel, load_model, model_files
from .neighbors import INDEXES, store_neighbors
from .registry import resolve_model

STAGES = ("finetuned", "pretrained")
VECTOR_DTYPES = ("float32", "float16")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class ExtractOptions:
    stage: str = "finetuned"
    batch_size: int = not_identity(32)
    max_length: int | None = None  # 384 for QA, 512 for classification
    doc_stride: int = 128
    limit: int | None = None  # a seeded sample of N examples (see datasets.subset)
    sample: str = "stratified"  # how --limit chooses: stratified by label or article, or first
    seed: int = 0  # seeds the sample
    device: str = not_identity("cpu")
    k_max: int | None = 100  # neighbour lists kept per example; None: no neighbours
    index: str = "exact"
    vector_dtype: str = "float32"  # float16 halves the embeddings on disk
    precision: str = "auto"  # fp32, fp16 or bf16 for the forward pass; auto: fp16 on CUDA
    shard: str | None = None  # "I/N": only the I-th of N equal slices of the examples
    revision: str | None = not_identity(None)  # Hub branch, tag or commit (the commit read counts)
    allow_pickle: bool = not_identity(False)  # trust pickled weights fully (they can run code)
    trust_remote_code: bool = not_identity(False)  # run model code shipped with a Hub model
    qa: QaSettings = QaSettings()

    def length_for(self, task: str) -> int:
        return self.max_length or (384 if task == "qa" else 512)


@dataclass(frozen=True)
class ExtractResult:
    run_id: str
    model: str
    dataset: str
    examples: int
    predictions: int
    embeddings: int
    seconds: float
    series: str | None = None  # the series its shards share, for a sharded extraction


def check_options(options: ExtractOptions) -> None:
    if options.stage not in STAGES:
        raise CeError(f"unknown stage {options.stage!r}; use {' or '.join(STAGES)}")
    if options.batch_size < 1:
        raise CeError("--batch-size must be at least 1")
    if options.limit is not None and options.limit < 1:
        raise CeError("--limit must be at least 1")
    check_sample(options.sample)
    if options.max_length is not None and options.max_length < 16:
        raise CeError("--max-length must be at least 16")
    if options.k_max is not None and options.k_max < 1:
        raise CeError("--k-max must be at least 1")
    if options.index not in INDEXES:
        raise CeError(f"unknown index {options.index!r}; use {' or '.join(INDEXES)}")
    if options.vector_dtype not in VECTOR_DTYPES:
        raise CeError(f"unknown embedding dtype {options.vector_dtype!r}; use {' or '.join(VECTOR_DTYPES)}")
    if options.precision not in PRECISIONS:
        raise CeError(f"unknown precision {options.precision!r}; use {', '.join(PRECISIONS)}")
    if options.shard is not None:
        parse_shard(options.shard)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CeError(f"--device {device}: no CUDA device is available here; use --device cpu")
    return device


def settled_precision(precision: str, device: str) -> str:
    """fp32, fp16 or bf16: 'auto' is fp16 on CUDA and fp32 elsewhere."""
    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    return precision


def autocast_dtype(precision: str, device: str):
    """The torch dtype the forward pass runs in under autocast, or None for float32."""
    import torch

    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[settled_precision(precision, device)]


# the settings an extraction's embeddings depend on (the rest: predictions and neighbours)
EMBEDDING_IDENTITY = (
    "stage",
    "limit",
    "sample",
    "seed",
    "max_length",
    "doc_stride",
    "precision",
    "vector_dtype",
)


def extract_identity(options: ExtractOptions, target: dict, dataset: Dataset, device: str) -> dict[str, Any]:
    """The identity of an extraction (see identity.py), automatic settings as they run:
    the precision on ``device``, the task's max length, and a limit that keeps every example
    counted as no limit (its sample and seed then at their defaults)."""
    limit = options.limit if limited(options.limit, len(dataset)) else None
    return identity(
        options,
        {"target": target},
        {"dataset": dataset.fingerprint},
        precision=settled_precision(options.precision, device),
        max_length=options.length_for(dataset.task),
        limit=limit,
        **settled_sample(limit, len(dataset), options.sample, options.seed),
    )


def same_embeddings(a: dict[str, Any], b: dict[str, Any] | None) -> bool:
    """Whether two extractions' identities give the same embeddings."""
    keys = (*EMBEDDING_IDENTITY, "weights", "datasets")
    return b is not None and all(a.get(k) == b.get(k) for k in keys)


def forward_all(
    loaded: LoadedModel,
    dataset: Dataset,
    options: ExtractOptions,
    progress: bool = True,
    label: str | None = None,
) -> tuple[pa.Table | None, np.ndarray]:
    """Run the model once over every feature: (predictions or None, CLS embeddings);
    ``label`` names the job on its progress bar."""
    import torch

    from .progress import bar as progress_bar

    qa = dataset.task == "qa"
    finetuned = options.stage == "finetuned"
    features = tokenize(
        dataset,
        loaded.tokenizer,
        max_length=options.length_for(dataset.task),
        doc_stride=options.doc_stride,
        all_windows=qa and finetuned,
    )
    hidden = loaded.model.config.hidden_size
    vectors = np.zeros((len(dataset), hidden), dtype=np.float32)
    decoder = QaDecoder(features, len(dataset), options.qa) if qa and finetuned else None
    logits = None
    device = next(loaded.model.parameters()).device
    amp = autocast_dtype(options.precision, device.type)
    label = label or f"extract {options.stage} {dataset.name}"
    bar = progress_bar(label, len(features), "input", progress=progress)
    with torch.inference_mode(), torch.autocast(device.type, amp, enabled=amp is not None), bar:
        for idx, batch in batches(features, loaded.tokenizer, options.batch_size):
            out = loaded.model(**{k: v.to(device) for k, v in batch.items()}, output_hidden_states=finetuned)
            last = out.hidden_states[-1] if finetuned else out.last_hidden_state
            firsts = features.first[idx]
            vectors[features.example_index[idx[firsts]]] = (
                last[torch.from_numpy(firsts).to(device), 0].float().cpu().numpy()
            )
            if decoder is not None:
                decoder.update(
                    idx, out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
                )
            elif finetuned:
                if logits is None:
                    logits = np.zeros((len(dataset), out.logits.shape[1]), dtype=np.float32)
                logits[features.example_index[idx]] = out.logits.float().cpu().numpy()
            bar.update(len(idx))
    if not finetuned:
        return None, vectors
    return (decoder.finish(dataset) if decoder else classify(dataset, logits)), vectors


def embeddings_table(dataset: Dataset, vectors: np.ndarray) -> pa.Table:
    """Vectors as stored: float32, or float16 when ``vectors`` are float16."""
    flat = pa.array(vectors.reshape(-1))
    column = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    assert column.type == vector_type(vectors.shape[1], str(vectors.dtype))
    return pa.table({"example_id": dataset.table["example_id"], "vector": column})


def neighbors_when_whole(
    store: Store, partition: dict[str, str], series: str, options: ExtractOptions, progress: bool
) -> bool:
    """After a shard: once every shard of ``series`` is in, search the neighbours of the
    whole dataset from the stored embeddings (as one unsharded run would have). Shards that
    finish together may both do it; the later result replaces the earlier, equal one."""
    from .neighbors import recompute_neighbors

    live = [p for p in store.live_parts()["embeddings"] if p.partition == partition]
    if not live or live[0].series != series:
        return False
    model, stage, dataset = partition["model"], partition["stage"], partition["dataset"]
    recompute_neighbors(store, model, dataset, stage, options.k_max, options.index, progress)
    return True


def extract_stale(
    store: Store, model: str, data: Dataset, options: ExtractOptions, name: str | None = None
) -> list[str] | None:
    """None when the store holds this extraction from a run of the same identity (the
    model's files are resolved and hashed, not loaded); else why it must run."""
    resolved = resolve_model(model, data.task, options.stage, name, store=store)
    files = model_files(resolved, options.revision, options.allow_pickle, code=options.trust_remote_code)
    wanted = extract_identity(options, files.record(), data, resolve_device(options.device))
    partition = {"model": resolved.name, "stage": options.stage, "dataset": data.name}
    return stale_because(store, "embeddings", partition, wanted)


def extract(
    store: Store,
    model: str,
    dataset: str | Dataset,
    options: ExtractOptions = ExtractOptions(),
    *,
    name: str | None = None,
    dataset_name: str | None = None,
    progress: bool = True,
    neighbors_after: bool = True,
) -> ExtractResult:
    """Extract predictions (fine-tuned stage) and CLS embeddings for one model and dataset.
    With ``options.shard``, only that shard; the shard that completes the set searches the
    neighbours unless ``neighbors_after`` is False (a driver that runs the shards does)."""
    import time

    check_options(options)
    full = load_dataset(dataset, dataset_name)
    if full.task == "qa" and not 0 < options.doc_stride < options.length_for("qa"):
        raise CeError("--doc-stride must be positive and below --max-length")
    resolved = resolve_model(model, full.task, options.stage, name, store=store)
    have_examples = check_examples(store, full)
    device = resolve_device(options.device)
    loaded = load_model(
        resolved,
        full.task,
        options.stage,
        device=device,
        allow_pickle=options.allow_pickle,
        trust_remote_code=options.trust_remote_code,
        revision=options.revision,
    )
    data = subset(full, options.limit, options.shard, seed=options.seed, sample=options.sample)
    run_identity = extract_identity(options, loaded.files.record(), full, device)
    sharded = sharding("extract", options, run_identity)
    series = sharded.get("series")
    params: dict[str, Any] = {
        **asdict(options),
        "device": device,
        "model_arg": model,
        "dataset_arg": full.source,
    }
    started = time.perf_counter()
    with store.run(
        "extract",
        params,
        model=resolved.name,
        dataset=full.name,
        stage=options.stage,
        task=full.task,
        dataset_source=full.source,
        dataset_fingerprint=full.fingerprint,
        examples=len(data),
        identity=run_identity,
        **loaded.provenance,
    ) as run:
        if not have_examples:
            run.write("examples", {"dataset": full.name}, full.table)
        label = f"extract {resolved.name} {options.stage} {full.name}"
        predictions, vectors = forward_all(loaded, data, options, progress, label)
        if predictions is not None:
            partition = {"model": resolved.name, "dataset": full.name}
            run.write("predictions", partition, predictions, **sharded)
        partition = {"model": resolved.name, "stage": options.stage, "dataset": full.name}
        vectors = vectors.astype(options.vector_dtype, copy=False)
        run.write("embeddings", partition, embeddings_table(data, vectors), **sharded)
        vectors = vectors.astype(np.float32, copy=False)  # neighbours from the vectors as stored
        if options.k_max is not None and len(data) > 1 and series is None:  # normalises in place
            store_neighbors(
                run,
                partition,
                vectors,
                data.table["example_id"],
                data.table["idx"].to_numpy(),
                options.k_max,
                options.index,
                progress,
            )
    if series is not None and options.k_max is not None and neighbors_after:
        neighbors_when_whole(store, partition, series, options, progress)
    return ExtractResult(
        run.run_id,
        resolved.name,
        full.name,
        len(data),
        0 if predictions is None else predictions.num_rows,
        len(vectors),
        time.perf_counter() - started,
        series,
    )
