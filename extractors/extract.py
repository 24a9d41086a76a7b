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

from .choices import check_choice_score
from .datasets import Dataset, check_examples, check_sample, limited, load_dataset, settled_sample, subset
from .families import Representation, check_pooling, parse_layer
from .features import batches, tokenize
from .heads import QaDecoder, QaSettings, classify
from .identity import LEFT_OUT, identity, not_identity, sharding, stale_because
from .loading import LoadedModel, ModelFiles, load_model, model_family, model_files, read_config
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
    pooling: str | None = None  # cls, last or mean; None: the family's (see families.py)
    layer: str | int | float | None = None  # hidden state: index, negative from the top, or fraction
    verbalizer: str | None = None  # decoders without a head: label words, comma-separated
    prompt: str | None = None  # decoders: the prompt template ({text}, {question}, {context})
    choice_score: str = "sum"  # multiple choice by the choices' summed or per-token log-likelihood
    max_new_tokens: int = 32  # generated answers (QA on decoders and T5)

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
    check_pooling(options.pooling)
    parse_layer(options.layer)
    check_choice_score(options.choice_score)
    if options.max_new_tokens < 1:
        raise CeError("--max-new-tokens must be at least 1")


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
    "pooling",
    "layer",
    "prompt",  # a decoder's vector is its prompt's, cut to fit the label words or the answer
    "verbalizer",
    "max_new_tokens",
)


def model_plan(files: ModelFiles, task: str, options: ExtractOptions) -> tuple[str, Representation]:
    """How the model answers ``task`` (families.route) and how it represents an input, read
    from its checked config without loading the weights."""
    from .families import representation, route

    family = model_family(files)
    config = read_config(files, options.trust_remote_code)
    how, _ = route(family, task, options.stage, config.architectures)
    return how, representation(config, family, options.pooling, options.layer)


# What each way of answering (families.route) reads of the options besides the model and the
# data; the others are left out of its identity (runs made before they existed keep theirs).
READS = {
    "verbalize": ("prompt", "verbalizer", "choice_score"),
    "choose-lm": ("prompt", "choice_score"),
    "choose": ("prompt",),
    "generate": ("prompt", "max_new_tokens"),
}
ANSWER_SETTINGS = ("prompt", "verbalizer", "choice_score", "max_new_tokens")


def settled_model_options(how: str, rep: Representation, options: ExtractOptions, data: Dataset) -> dict:
    """The identity's pooling and layer (left out for an encoder's last-block CLS vector, the
    one representation of runs made before they could be chosen), and the answer settings
    the model's way of answering reads, as they run (a default prompt or label words
    spelled out, so that a changed default makes runs stale and naming it does not)."""
    from .choices import label_words, prompt_used

    plain = rep.pooling == "cls" and rep.position == rep.blocks
    reads = READS.get(how, ())
    settled: dict[str, Any] = {k: LEFT_OUT for k in ANSWER_SETTINGS if k not in reads}
    settled["pooling"] = LEFT_OUT if plain else rep.pooling
    settled["layer"] = LEFT_OUT if plain else rep.position
    if "prompt" in reads:
        settled["prompt"] = prompt_used(options, data, how)
    if "verbalizer" in reads:
        settled["verbalizer"] = ",".join(label_words(options, data))
    return settled


def extract_identity(
    options: ExtractOptions, files: ModelFiles, dataset: Dataset, device: str
) -> dict[str, Any]:
    """The identity of an extraction (see identity.py), automatic settings as they run:
    the precision on ``device``, the task's max length, the model family's pooling, and a
    limit that keeps every example counted as no limit (its sample and seed then at their
    defaults)."""
    limit = options.limit if limited(options.limit, len(dataset)) else None
    how, rep = model_plan(files, dataset.task, options)
    return identity(
        options,
        {"target": files.record()},
        {"dataset": dataset.fingerprint},
        precision=settled_precision(options.precision, device),
        max_length=options.length_for(dataset.task),
        limit=limit,
        **settled_sample(limit, len(dataset), options.sample, options.seed),
        **settled_model_options(how, rep, options, dataset),
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
    """Run the model once over every input: (predictions or None, one vector per example,
    pooled as ``options`` and the model's family say: see families.py); ``label`` names the
    job on its progress bar. Decoders without a task head and generated answers run in
    their own modules (choices.py, generate.py), from the same single pass."""
    import torch

    from .progress import bar as progress_bar

    rep = model_representation(loaded, options)
    label = label or f"extract {options.stage} {dataset.name}"
    how = loaded.how
    if how in ("choose", "choose-lm"):
        from .choices import score_choices

        return score_choices(loaded, dataset, options, rep, progress, label)
    if how == "verbalize":
        from .choices import score_labels

        return score_labels(loaded, dataset, options, rep, progress, label)
    if how == "generate":
        from .generate import generate_answers

        return generate_answers(loaded, dataset, options, rep, progress, label)
    span = how == "span"
    features = tokenize(
        dataset,
        loaded.tokenizer,
        max_length=options.length_for(dataset.task),
        doc_stride=options.doc_stride,
        all_windows=span,
    )
    vectors = None
    decoder = QaDecoder(features, len(dataset), options.qa) if span else None
    logits = None
    device = next(loaded.model.parameters()).device
    amp = autocast_dtype(options.precision, device.type)
    no_cache = {"use_cache": False} if loaded.family.decoder else {}  # one pass: no KV cache to keep
    bar = progress_bar(label, len(features), "input", progress=progress)
    with torch.inference_mode(), torch.autocast(device.type, amp, enabled=amp is not None), bar:
        for idx, batch in batches(features, loaded.tokenizer, options.batch_size):
            batch = {k: v.to(device) for k, v in batch.items()}
            out = loaded.model(**batch, output_hidden_states=True, **no_cache)
            hidden = getattr(out, "encoder_hidden_states", None) or out.hidden_states
            firsts = features.first[idx]
            pooled = rep.vectors(hidden, batch["attention_mask"])
            if vectors is None:
                vectors = np.zeros((len(dataset), pooled.shape[1]), dtype=np.float32)
            vectors[features.example_index[idx[firsts]]] = pooled[firsts]
            if decoder is not None:
                decoder.update(
                    idx, out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
                )
            elif how == "classify":
                if logits is None:
                    logits = np.zeros((len(dataset), out.logits.shape[1]), dtype=np.float32)
                logits[features.example_index[idx]] = out.logits.float().cpu().numpy()
            bar.update(len(idx))
    if vectors is None:  # no examples
        vectors = np.zeros((0, rep.width), dtype=np.float32)
    if how == "encode":
        return None, vectors
    return (decoder.finish(dataset) if decoder else classify(dataset, logits)), vectors


def model_representation(loaded: LoadedModel, options: ExtractOptions):
    """The representation ``options`` ask of this model (its family's pooling by default)."""
    from .families import representation

    return representation(loaded.model.config, loaded.family, options.pooling, options.layer)


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


def check_answering(how: str | None, data: Dataset, options: ExtractOptions) -> None:
    """The errors answering ``data`` the model's way would raise, raised before any write:
    QA windows' stride, a prompt template, label words, the choice score."""
    from .choices import check_choice_options

    if how == "span" and not 0 < options.doc_stride < options.length_for("qa"):
        raise CeError("--doc-stride must be positive and below --max-length")
    if how == "generate" and options.prompt is not None:
        from .generate import check_prompt

        check_prompt(options.prompt)
    check_choice_options(options, data, how)


def extract_stale(
    store: Store, model: str, data: Dataset, options: ExtractOptions, name: str | None = None
) -> list[str] | None:
    """None when the store holds this extraction from a run of the same identity (the
    model's files are resolved and hashed, not loaded); else why it must run."""
    resolved = resolve_model(model, data.task, options.stage, name, store=store)
    files = model_files(resolved, options.revision, options.allow_pickle, code=options.trust_remote_code)
    wanted = extract_identity(options, files, data, resolve_device(options.device))
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
    replica: dict | None = None,
) -> ExtractResult:
    """Extract predictions (fine-tuned stage) and CLS embeddings for one model and dataset.
    With ``options.shard``, only that shard; the shard that completes the set searches the
    neighbours unless ``neighbors_after`` is False (a driver that runs the shards does).
    ``replica`` (a replica's group and seed, see replicas.py) goes into the run record."""
    import time

    check_options(options)
    full = load_dataset(dataset, dataset_name)
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
    check_answering(loaded.how, full, options)
    data = subset(full, options.limit, options.shard, seed=options.seed, sample=options.sample)
    run_identity = extract_identity(options, loaded.files, full, device)
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
        representation=model_representation(loaded, options).record(),
        answered_by=loaded.how,
        family=loaded.family.kind if loaded.family else None,
        **loaded.provenance,
        **({"replica": replica} if replica is not None else {}),
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
