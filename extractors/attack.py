"""``ce attack``: adversarial attacks through TextAttack, offline, resumable, in the store.

BERT-Attack (Li et al. 2020) is assembled from TextAttack's own components as its recipe
does, with the attacker masked LM and the sentence encoder loaded from local folders or
aliases instead of fixed Hub names. Results are committed every few examples as parts of one
series, so a killed attack resumes from the last committed example without duplicates.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ce.store.errors import CeError, NotFound, did_you_mean
from ce.store.store import Store, parse_shard

from .attack_env import import_textattack, quiet_textattack
from .datasets import Dataset, check_examples, check_sample, load_dataset, settled_sample, subset
from .extract import resolve_device
from .identity import (
    LEFT_OUT,
    continues_series,
    differences,
    identity,
    live_identities,
    not_identity,
    series_key,
    series_settings,
)
from .loading import LoadedModel, ModelFiles, load, load_model, model_files
from .registry import MODELS, resolve_model

RECIPES = ("bert-attack", "deepwordbug")


@dataclass(frozen=True)
class AttackOptions:
    attack: str = "bert-attack"
    attacker: str = "bert-base"  # masked LM for BERT-Attack candidates
    max_candidates: int = 48  # the paper's K; TextAttack's recipe now uses 8
    max_percent_words: float = 0.4
    sentence_encoder: str = "minilm"
    similarity_threshold: float = 0.2
    query_budget: int | None = None
    limit: int | None = continues_series(None)  # a longer attack continues a shorter one
    sample: str = "stratified"  # how --limit chooses: stratified by label, or first (nested samples)
    seed: int = 0  # seeds the attack of each example and the sample
    batch_size: int = not_identity(32)
    max_length: int = 512  # tokens of each text the target sees
    device: str = not_identity("cpu")
    checkpoint_every: int = not_identity(10)  # examples per committed part
    restart: bool = not_identity(False)
    shard: str | None = None  # "I/N": only the I-th of N slices of the examples
    revision: str | None = not_identity(None)  # Hub branch, tag or commit of the target
    attacker_revision: str | None = not_identity(None)  # and of the attacker masked LM
    allow_pickle: bool = not_identity(False)  # trust pickled weights fully (they can run code)
    verbalizer: str | None = None  # a decoder without a head: its label words (default: the dataset's)
    prompt: str | None = None  # and the prompt they follow (default: the dataset's)


@dataclass(frozen=True)
class AttackResult:
    model: str
    dataset: str
    attack: str
    examples: int  # examples of the attack (its limit and shard)
    resumed_from: int  # of those, done before this call
    why: list[str]  # why it ran: nothing stored, examples done before, or what differs
    succeeded: int  # of those attacked now
    failed: int
    skipped: int
    seconds: float


def check_options(o: AttackOptions) -> None:
    if o.attack not in RECIPES:
        raise NotFound(
            f"unknown attack recipe {o.attack!r}{did_you_mean(o.attack, RECIPES)};"
            f" available offline: {', '.join(RECIPES)}"
        )
    if o.max_candidates < 1:
        raise CeError("--max-candidates must be at least 1")
    if not 0 < o.max_percent_words <= 1:
        raise CeError("--max-percent-words must lie in (0, 1]")
    if o.limit is not None and o.limit < 1:
        raise CeError("--limit must be at least 1")
    check_sample(o.sample)
    if o.checkpoint_every < 1:
        raise CeError("--checkpoint-every must be at least 1")
    if o.shard is not None:
        parse_shard(o.shard)


def _labelled(data: Dataset) -> None:
    if data.task != "classification":
        raise CeError(
            f"dataset {data.name} is a {data.task} dataset; attacks need a"
            " classification dataset with gold labels (e.g. imdb-1k)"
        )
    if data.table["label"].null_count:
        raise CeError(
            f"dataset {data.name} has examples without a label; attacks need gold labels for every example"
        )


def helper_files(options: AttackOptions) -> dict[str, ModelFiles]:
    """The checked files of the models an attack loads besides its target, by role: the
    attacker masked LM (BERT-Attack) and a sentence-transformers encoder. Checked before
    anything is built, so a refused model stops the attack at once."""
    if options.attack != "bert-attack":
        return {}
    attacker = resolve_model(options.attacker, None, "pretrained")
    files = {"attacker": model_files(attacker, options.attacker_revision, options.allow_pickle)}
    name = options.sentence_encoder
    if name != "use":
        if name not in MODELS and not Path(name).is_dir():
            raise NotFound(
                f"unknown sentence encoder {name!r}; use minilm (offline), use (Universal Sentence"
                " Encoder, needs tensorflow_hub) or a sentence-transformers folder"
            )
        encoder = resolve_model(name, None, "pretrained")
        files["sentence_encoder"] = model_files(encoder, None, options.allow_pickle)
    return files


def load_masked_lm(files: ModelFiles, device: str) -> LoadedModel:
    """The attacker's masked LM and its tokenizer, loaded as every model is."""
    import transformers as tf

    loaded = load(files, tf.AutoModelForMaskedLM, role="attacker")
    missing = loaded.missing_head()
    if missing:
        raise CeError(
            f"attacker {files.source} is not a masked LM (no trained MLM head:"
            f" missing {missing}); pass a masked LM such as bert-base"
        )
    loaded.model.to(device)
    return loaded


def sentence_encoder_constraint(options: AttackOptions, files: ModelFiles | None):
    """The similarity constraint: USE where asked for, else the checked sentence-transformers
    ``files`` (the packaged all-MiniLM-L6-v2 by default), and its description."""
    from textattack.constraints.semantics.sentence_encoders import SBERT

    common = {
        "threshold": options.similarity_threshold,
        "metric": "cosine",
        "compare_against_original": True,
        "window_size": None,
    }
    if options.sentence_encoder == "use":
        try:
            import tensorflow_hub  # noqa: F401
        except ImportError:
            raise CeError(
                "--sentence-encoder use needs tensorflow and tensorflow_hub (and Hub"
                " access); install them, or use the offline default minilm"
            ) from None
        from textattack.constraints.semantics.sentence_encoders import UniversalSentenceEncoder

        return UniversalSentenceEncoder(**common), "Universal Sentence Encoder (TF Hub)"
    encoder = SBERT(model_name=str(files.folder), **common)
    return encoder, f"sentence-transformers {files.source} (mean pooling)"


def build_attack(options: AttackOptions, wrapper, device: str, files: dict[str, ModelFiles] | None = None):
    """The TextAttack Attack object and its recipe; ``files`` are helper_files(options)."""
    ta = import_textattack()
    from textattack.constraints.overlap import MaxWordsPerturbed
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import WordSwapMaskedLM

    goal = UntargetedClassification(
        wrapper, model_batch_size=options.batch_size, query_budget=options.query_budget or float("inf")
    )
    if options.attack == "deepwordbug":
        from textattack.attack_recipes import DeepWordBugGao2018

        recipe = DeepWordBugGao2018.build(wrapper)
        attack = ta.Attack(
            goal,
            recipe.pre_transformation_constraints + recipe.constraints,
            recipe.transformation,
            recipe.search_method,
        )
        return attack, {"recipe": "DeepWordBugGao2018 (TextAttack)"}
    files = helper_files(options) if files is None else files
    mlm = load_masked_lm(files["attacker"], device)
    transformation = WordSwapMaskedLM(
        method="bert-attack",
        masked_language_model=mlm.model,
        tokenizer=mlm.tokenizer,
        max_candidates=options.max_candidates,
    )
    encoder, encoder_name = sentence_encoder_constraint(options, files.get("sentence_encoder"))
    constraints = [
        RepeatModification(),
        StopwordModification(),
        MaxWordsPerturbed(max_percent=options.max_percent_words),
        encoder,
    ]
    attack = ta.Attack(goal, constraints, transformation, GreedyWordSwapWIR(wir_method="unk"))
    recipe = {
        "recipe": "BERT-Attack (Li et al. 2020) from TextAttack components",
        "transformation": f"WordSwapMaskedLM(method=bert-attack, max_candidates={options.max_candidates})",
        "constraints": f"RepeatModification, StopwordModification (NLTK English),"
        f" MaxWordsPerturbed({options.max_percent_words}), {encoder_name}"
        f" cosine >= {options.similarity_threshold} vs original",
        "sentence_encoder": encoder_name,
        "search": "GreedyWordSwapWIR(wir_method=unk)",
        "goal": "UntargetedClassification",
    }
    return attack, recipe


def classifier_wrapper(target, tokenizer=None, max_length: int = 512, options=None):
    """A TextAttack model wrapper: one inference pass per batch of texts. ``target`` is a
    LoadedModel from load_model, or a sequence-classification model with its ``tokenizer``.

    - ``classify`` (a classification head, encoder or decoder): the texts padded on the right
      to the longest, with an attention mask and the tokenizer's pad token (a decoder's head
      reads the last token that is not padding), truncated to ``max_length``;
    - ``verbalize`` (a causal LM without a head): the label words' probabilities after the
      prompt, through choices.label_probs; ``options`` (ExtractOptions) name the label words
      and prompt (choices.with_dataset_defaults) and the batch size.
    """
    import torch

    from .families import ensure_pad_token

    import_textattack()  # offline, before any textattack module
    from textattack.models.wrappers import ModelWrapper

    loaded = target if isinstance(target, LoadedModel) else LoadedModel(target, tokenizer, how="classify")
    how = loaded.how or "classify"
    if how not in ("classify", "verbalize"):
        raise CeError(f"ce attack needs a classifier; this model answers by {how!r}")
    if how == "verbalize" and not (options is not None and options.verbalizer):
        raise CeError(
            "this decoder has no classification head, and the dataset names no label words to score"
            " instead; attack a model with a classification head, or a dataset with label words (sst2, imdb)"
        )
    if loaded.tokenizer.pad_token is None:
        ensure_pad_token(loaded.tokenizer, loaded.model)

    class ClassifierWrapper(ModelWrapper):
        def __init__(self):
            self.model, self.tokenizer = loaded.model, loaded.tokenizer

        def __call__(self, texts: list[str]) -> np.ndarray:
            if how == "verbalize":
                from .choices import label_probs

                return label_probs(loaded, list(texts), options).astype(np.float32)
            device = next(self.model.parameters()).device
            enc = self.tokenizer(
                list(texts),
                truncation=True,
                max_length=max_length,
                padding=True,
                padding_side="right",
                return_tensors="pt",
            )
            with torch.inference_mode():
                logits = self.model(**{k: v.to(device) for k, v in enc.items()}).logits
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()

        def _tokenize(self, inputs):
            return [self.tokenizer.convert_ids_to_tokens(self.tokenizer(x)["input_ids"]) for x in inputs]

    return ClassifierWrapper()


def result_row(example_id: str, label: int, result) -> dict[str, Any]:
    from textattack.attack_results import SkippedAttackResult, SuccessfulAttackResult

    if isinstance(result, SuccessfulAttackResult):
        kind = "succeeded"
    elif isinstance(result, SkippedAttackResult):
        kind = "skipped"
    else:
        kind = "failed"
    before, after = result.original_result, result.perturbed_result
    original, perturbed = before.attacked_text, after.attacked_text
    return {
        "example_id": example_id,
        "ground_truth": label,
        "result": kind,
        "original_text": original.text,
        "perturbed_text": perturbed.text,
        "original_output": int(before.output),
        "original_score": float(np.asarray(before.raw_output)[int(before.output)]),
        "perturbed_output": int(after.output),
        "perturbed_score": float(np.asarray(after.raw_output)[int(after.output)]),
        "queries": int(after.num_queries),
        "words_perturbed": len(original.all_words_diff(perturbed)) if kind == "succeeded" else 0,
        "words": len(original.words),
    }


def done_ids(store: Store, model: str, attack: str, dataset: str, series: str) -> set[str]:
    import pyarrow.parquet as pq

    partition = {"model": model, "attack": attack, "dataset": dataset}
    parts = store.series_parts("attacks", partition, series)

    return {
        i
        for p in parts
        for i in pq.read_table(store.root / p.path, columns=["example_id"])["example_id"].to_pylist()
    }


def run_attack(
    store: Store,
    model: str,
    dataset: str | Dataset,
    options: AttackOptions = AttackOptions(),
    *,
    progress: bool = True,
    name: str | None = None,
    replica: dict | None = None,
) -> AttackResult:
    """Attack ``model`` on ``dataset``, resuming its series; ``replica`` (a replica's group
    and seed, see replicas.py) goes into every checkpoint's run record."""
    from .progress import bar as progress_bar

    check_options(options)
    data = load_dataset(dataset)
    _labelled(data)
    resolved = resolve_model(model, "classification", "finetuned", name, store=store)
    have_examples = check_examples(store, data)
    device = resolve_device(options.device)
    helpers = helper_files(options)  # every model checked before any is loaded
    loaded = load_model(
        resolved,
        "classification",
        "finetuned",
        device=device,
        allow_pickle=options.allow_pickle,
        revision=options.revision,
    )
    import_textattack()
    scoring = None
    if loaded.how == "verbalize":  # a decoder without a head: label words after a prompt
        from .choices import check_choice_options, with_dataset_defaults
        from .extract import ExtractOptions

        base = ExtractOptions(
            max_length=options.max_length,
            batch_size=options.batch_size,
            precision="fp32",
            verbalizer=options.verbalizer,
            prompt=options.prompt,
        )
        scoring = with_dataset_defaults(base, data)
        check_choice_options(scoring, data, "verbalize")  # before anything is written
    wrapper = classifier_wrapper(loaded, max_length=options.max_length, options=scoring)
    with quiet_textattack():
        attack, recipe = build_attack(options, wrapper, device, helpers)
    models = loaded.provenance["loaded"] | {role: files.record() for role, files in helpers.items()}
    run_identity, series, todo, finished, partition = _settled(store, resolved, data, options, models)
    ids, texts = todo.table["example_id"].to_pylist(), todo.table["text"].to_pylist()
    labels = todo.table["label"].to_pylist()
    pending = [i for i, ex in enumerate(ids) if ex not in finished]
    why = _why(store, partition, run_identity, options, len(ids) - len(pending))
    params = {**asdict(options), "device": device, "model_arg": model}
    provenance = {
        "model": resolved.name,
        "dataset": data.name,
        "series": series,
        "dataset_fingerprint": data.fingerprint,
        "recipe": recipe,
        **loaded.provenance,
        "loaded": models,
        "identity": run_identity,
        **({"replica": replica} if replica is not None else {}),
    }
    counts = {"succeeded": 0, "failed": 0, "skipped": 0}
    started = time.perf_counter()
    label = f"attack {resolved.name} {options.attack}"
    bar = progress_bar(label, len(ids), "example", progress=progress, initial=len(ids) - len(pending))
    with bar, quiet_textattack():
        for start in range(0, len(pending), options.checkpoint_every):
            # one checkpoint: its record starts before its first example and ends at its commit
            with store.run("attack", params, **provenance) as run:
                rows = []
                for i in pending[start : start + options.checkpoint_every]:
                    _seed(options.seed, ids[i])  # the same result however the examples are split
                    row = result_row(ids[i], labels[i], attack.attack(texts[i], labels[i]))
                    rows.append(row)
                    counts[row["result"]] += 1
                    bar.set_postfix(counts, refresh=False)
                    bar.update(1)
                if not have_examples:
                    run.write("examples", {"dataset": data.name}, data.table)
                    have_examples = True
                table = pa.Table.from_pylist(rows)
                run.write("attacks", partition, table, series=series, shard=options.shard, resumable=True)
    return AttackResult(
        resolved.name,
        data.name,
        options.attack,
        len(ids),
        len(ids) - len(pending),
        why,
        **counts,
        seconds=time.perf_counter() - started,
    )


def attack_stale(
    store: Store,
    model: str,
    dataset: str | Dataset,
    options: AttackOptions = AttackOptions(),
    *,
    name: str | None = None,
) -> list[str] | None:
    """None when the store holds every example of this attack in its series (the models'
    files are hashed, not loaded); else why run_attack would attack some. The identity,
    series and examples are computed as run_attack computes them."""
    check_options(options)
    data = load_dataset(dataset)
    _labelled(data)
    resolved = resolve_model(model, "classification", "finetuned", name, store=store)
    target = model_files(resolved, options.revision, options.allow_pickle)
    models = {"target": target.record()} | {role: f.record() for role, f in helper_files(options).items()}
    run_identity, _, todo, finished, partition = _settled(store, resolved, data, options, models)
    done = sum(i in finished for i in todo.table["example_id"].to_pylist())
    if done == len(todo):
        return None
    return _why(store, partition, run_identity, options, done)


def _settled(store: Store, resolved, data: Dataset, options: AttackOptions, models: dict[str, dict]):
    """(identity, series, examples to attack, ids the series already holds, partition) of an
    attack with ``options`` on ``data`` by the ``models`` (role -> files record): what
    run_attack does and what attack_stale checks, from one definition."""
    sampled = settled_sample(options.limit, len(data), options.sample)  # no limit: the sample does not count
    default = {k: LEFT_OUT for k in ("verbalizer", "prompt") if getattr(options, k) is None}  # as before
    run_identity = identity(options, models, {"dataset": data.fingerprint}, **sampled, **default)
    series = series_key("attack", options, run_identity)  # a longer attack continues a shorter one
    todo = subset(data, options.limit, options.shard, seed=options.seed, sample=options.sample)
    finished = set() if options.restart else done_ids(store, resolved.name, options.attack, data.name, series)
    partition = {"model": resolved.name, "attack": options.attack, "dataset": data.name}
    return run_identity, series, todo, finished, partition


def _why(store: Store, partition: dict, run_identity: dict, options: AttackOptions, done: int) -> list[str]:
    """Why the attack runs: nothing stored, more examples for the stored series, or the
    settings or models that differ from the stored attack's (a new series)."""
    if options.restart:
        return ["--restart"]
    if done:
        return [f"{done} examples done before"]
    stored = live_identities(store, "attacks", partition)
    if not stored:
        return ["not in the store"]
    old = series_settings(options, stored[-1])
    return differences(series_settings(options, run_identity), old) or ["not in the store"]


def _seed(seed: int, example_id: str) -> None:
    """Seed every generator for one example, from --seed and its id: an example's result
    does not depend on the examples attacked before it (shards, resumed runs)."""
    import torch

    value = int(hashlib.sha256(f"{seed}:{example_id}".encode()).hexdigest()[:8], 16)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
