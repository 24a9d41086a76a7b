"""``ce finetune``: fine-tune a model for classification or extractive QA with the Hugging
Face Trainer; the result is saved in the store's model folder like any derived model.

Defaults follow the paper's SQuAD setting: 3 epochs, learning rate 3e-5, batch 32, warmup
0.1, 384-token windows with stride 128. Checkpoints are kept under STORE/models/.train-NAME
so that a killed run resumes from the last one.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ce.store.errors import CeError
from ce.store.records import storable
from ce.store.store import Store

from .compress import ModelResult, check_new_model, parent_card, save_model
from .datasets import Dataset, check_sample, load_dataset, settled_sample, subset
from .extract import resolve_device
from .identity import LEFT_OUT, identity, model_stale, not_identity
from .loading import load, model_files, task_class
from .registry import resolve_model

TASKS = ("classification", "qa")
DATA_ORDER = "shuffled by the replica's seed (Trainer)"  # what a replica's card says of its batches


@dataclass(frozen=True)
class FinetuneOptions:
    task: str = "classification"
    epochs: float = 3.0
    learning_rate: float = 3e-5
    batch_size: int = 32
    warmup_ratio: float = 0.1
    max_length: int | None = None  # 384 for QA, 128 for classification
    doc_stride: int = 128
    seed: int = 42  # seeds training and the sample
    limit: int | None = None  # a seeded sample of N examples
    sample_seed: int | None = None  # seeds the sample instead (replicas: one sample, many seeds)
    sample: str = "stratified"  # how --limit chooses: stratified by label or article, or first
    device: str = not_identity("cpu")
    save_steps: int = 200
    revision: str | None = not_identity(None)  # Hub branch, tag or commit of the model to start from
    allow_pickle: bool = not_identity(False)  # trust pickled weights fully (they can run code)

    def length(self) -> int:
        return self.max_length or (384 if self.task == "qa" else 128)

    def data_seed(self) -> int:
        """The seed of the --limit sample: sample_seed where given, else seed."""
        return self.seed if self.sample_seed is None else self.sample_seed


@dataclass(frozen=True)
class FinetuneResult(ModelResult):
    dataset: str = ""
    examples: int = 0  # examples trained on
    features: int = 0  # inputs they gave (QA: context windows)
    train_loss: float = 0.0
    steps: int = 0
    resumed: bool = False  # from the checkpoints of a killed run of the same identity


def check_options(o: FinetuneOptions) -> None:
    if o.task not in TASKS:
        raise CeError(f"unknown task {o.task!r}; use {' or '.join(TASKS)}")
    if o.epochs <= 0 or o.learning_rate <= 0 or o.batch_size < 1:
        raise CeError("--epochs, --lr and --batch-size must be positive")
    if not 0 <= o.warmup_ratio < 1:
        raise CeError("--warmup must lie in [0, 1)")
    if o.limit is not None and o.limit < 1:
        raise CeError("--limit must be at least 1")
    if o.sample_seed is not None and (type(o.sample_seed) is not int or o.sample_seed < 0):
        raise CeError("the sample's seed must be a whole number")
    check_sample(o.sample)


def labels(data: Dataset) -> list[int]:
    """The gold label of every example; a CeError when one has none."""
    gold = data.table["label"].to_pylist()
    if any(label is None for label in gold):
        raise CeError(
            f"dataset {data.name} has examples without a label; fine-tuning needs a label for every example"
        )
    return gold


def classification_features(data: Dataset, tokenizer, max_length: int) -> list[dict]:
    gold = labels(data)
    enc = tokenizer(data.table["text"].to_pylist(), truncation=True, max_length=max_length)
    return [{**{k: enc[k][i] for k in enc}, "labels": gold[i]} for i in range(len(gold))]


def qa_features(data: Dataset, tokenizer, max_length: int, stride: int) -> list[dict]:
    """Training windows with the answer's start and end token (CLS when it is not inside)."""
    questions = [q.lstrip() for q in data.table["question"].to_pylist()]
    contexts = data.table["context"].to_pylist()
    answers = data.table["answers"].to_pylist()
    enc = tokenizer(
        questions,
        contexts,
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    features = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        example = enc["overflow_to_sample_mapping"][i]
        seq = enc.sequence_ids(i)
        start_tok = end_tok = 0
        gold = answers[example]
        if gold:
            start_char = contexts[example].find(gold[0])
            end_char = start_char + len(gold[0])
            ctx = [t for t, s in enumerate(seq) if s == 1]
            if start_char >= 0 and offsets[ctx[0]][0] <= start_char and offsets[ctx[-1]][1] >= end_char:
                start_tok = next(t for t in ctx if offsets[t][1] > start_char)
                end_tok = max(t for t in ctx if offsets[t][0] < end_char)
        features.append(
            {
                **{k: enc[k][i] for k in tokenizer.model_input_names if k in enc},
                "start_positions": start_tok,
                "end_positions": end_tok,
            }
        )
    return features


def finetune_identity(options: FinetuneOptions, files, data: Dataset) -> dict:
    """What a fine-tuned model depends on (see identity.py); the batch size counts here."""
    sampled = settled_sample(options.limit, len(data), options.sample)  # no limit: the sample does not count
    if options.data_seed() == options.seed or sampled["sample"] in (LEFT_OUT, "first"):
        sampled["sample_seed"] = LEFT_OUT  # the seed seeds the sample too, or no seed draws it: as before
    return identity(options, {"parent": files.record()}, {"dataset": data.fingerprint}, **sampled)


def finetune_stale(store: Store, model: str, dataset: str, name: str, options: FinetuneOptions):
    """None when the store's model ``name`` was fine-tuned the same way from the same files
    and data; else why it must be made."""
    resolved = resolve_model(model, options.task, "pretrained", store=store)
    files = model_files(resolved, options.revision, options.allow_pickle)
    return model_stale(store, name, finetune_identity(options, files, load_dataset(dataset)))


def _resumable(work: Path, run_identity: dict) -> bool:
    """Whether ``work`` holds checkpoints of a killed run of this identity to resume from;
    checkpoints of other settings, parent or data are removed, so they are never resumed."""
    stamp = work / "ce-identity.json"
    try:
        same = json.loads(stamp.read_text(encoding="utf-8")) == storable(run_identity)
    except (OSError, ValueError):  # no stamp (an older ce's checkpoints), or a torn one
        same = False
    if work.exists() and not same:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(storable(run_identity)))
    return any(work.glob("checkpoint-*"))


def progress_callback(label: str, progress: bool):
    """A Trainer callback that shows the optimisation steps on ce's labelled bar."""
    import transformers as tf

    from .progress import bar

    class Progress(tf.TrainerCallback):
        def __init__(self):
            self.bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = bar(label, state.max_steps, "step", progress=progress, initial=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return Progress()


def finetune(
    store: Store,
    model: str,
    dataset: str,
    name: str,
    options: FinetuneOptions = FinetuneOptions(),
    progress: bool = True,
    replica: dict | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` on ``dataset`` into the store's model ``name``; ``replica`` (a
    replica's group and seed, see replicas.py) goes into its card and run record."""
    import transformers as tf

    check_options(options)
    check_new_model(name, "fine-tuned")
    data = load_dataset(dataset)
    if data.task != options.task:
        raise CeError(
            f"dataset {data.name} is a {data.task} dataset, not {options.task};"
            f" use --task {data.task} or another dataset"
        )
    resolved = resolve_model(model, options.task, "pretrained", store=store)
    device = resolve_device(options.device)
    files = model_files(resolved, options.revision, options.allow_pickle)
    train = subset(data, options.limit, seed=options.data_seed(), sample=options.sample)
    run_identity = finetune_identity(options, files, data)
    with store.run(
        "finetune",
        asdict(options) | {"model_arg": model, "dataset_arg": dataset},
        model=name,
        parent=resolved.name,
        dataset=data.name,
        dataset_fingerprint=data.fingerprint,
        loaded={"parent": files.record()},
        identity=run_identity,
        **({"replica": replica} if replica is not None else {}),
    ) as run:  # the record starts with the job, before the weights load and training
        head = {} if options.task == "qa" else {"num_labels": int(max(labels(train))) + 1}
        cls = task_class(options.task, "finetuned")
        loaded = load(files, cls, role="parent", seed=options.seed, **head)
        if options.task == "qa":
            features = qa_features(train, loaded.tokenizer, options.length(), options.doc_stride)
        else:
            features = classification_features(train, loaded.tokenizer, options.length())
        work = store.root / "models" / f".train-{name}"
        args = tf.TrainingArguments(
            output_dir=str(work),
            num_train_epochs=options.epochs,
            learning_rate=options.learning_rate,
            per_device_train_batch_size=options.batch_size,
            warmup_ratio=options.warmup_ratio,
            seed=options.seed,
            save_strategy="steps",
            save_steps=options.save_steps,
            save_total_limit=1,
            logging_strategy="no",
            report_to=[],
            disable_tqdm=True,  # ce's own labelled bar instead (progress_callback)
            use_cpu=device == "cpu",
            dataloader_num_workers=0,
        )
        trainer = tf.Trainer(
            model=loaded.model,
            args=args,
            train_dataset=features,
            data_collator=tf.DataCollatorWithPadding(loaded.tokenizer),
            callbacks=[progress_callback(f"finetune {name}", progress)],
        )
        trainer.remove_callback(tf.PrinterCallback)  # it prints the log dicts to stdout
        resume = _resumable(work, run_identity)
        result = trainer.train(resume_from_checkpoint=True if resume else None)
        run.annotate(train_loss=float(result.training_loss))
        card = {
            **parent_card(name, resolved, files),
            "method": f"finetune:{options.task}",
            "dataset": data.name,
            "examples": len(train),
            "features": len(features),
            "train_loss": float(result.training_loss),
            "options": asdict(options),
            "identity": run_identity,
        }
        if replica is not None:
            card |= {"replica": replica, "data_order": DATA_ORDER}
        save_model(store, run, trainer.model, loaded.tokenizer, card)
    shutil.rmtree(work, ignore_errors=True)
    return FinetuneResult(
        name,
        resolved.name,
        card["method"],
        run.run_id,
        card,
        dataset=data.name,
        examples=len(train),
        features=len(features),
        train_loss=card["train_loss"],
        steps=int(result.global_step),
        resumed=resume,
    )


def finetune_replicas(
    store: Store,
    model: str,
    dataset: str,
    name: str,
    options: FinetuneOptions,
    seeds: list[int],
    progress: bool = True,
) -> list[FinetuneResult]:
    """One model per seed, ``NAME-sSEED``, the same recipe: a replica group named ``name``.
    Every replica trains on the same examples (the --limit sample drawn with
    ``options.seed``) and differs in its seed alone: the head's initialisation, dropout and
    the order of the batches. Everything is checked before the first one trains."""
    from .replicas import check_group_name, check_seeds, member_name, replica_field

    seeds = check_seeds(list(seeds))
    check_options(options)
    check_group_name(store, name, seeds)
    return [
        finetune(
            store,
            model,
            dataset,
            member_name(name, seed),
            replace(options, seed=seed, sample_seed=options.data_seed()),
            progress,
            replica=replica_field(name, seed),
        )
        for seed in seeds
    ]
