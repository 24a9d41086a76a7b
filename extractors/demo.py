"""``ce demo``: the whole study on the embedded default, offline, with real data and weights.

1. The paper's six published SQuAD 2.0 error lists (prediction-error agreement, Table 2).
2. A study of our own: the packaged all-MiniLM-L6-v2 as the large model and three variants
   derived from it (int8, prune:0.3, layers:3), fine-tuned on SST-2, compared on all four
   characteristics: errors and representation after fine-tuning on SST-2 dev,
   representation before fine-tuning, OOD detection of IMDB reviews against an SST-2 bank,
   and DeepWordBug attacks on IMDB reviews (BERT-Attack needs a trained masked LM, which is
   not available offline).
Every number comes from real forward passes; what the store already has is not recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ce.store.errors import CeError
from ce.store.store import Store

from .datasets import data_dir
from .ingest import ingest_errors

PAPER_LISTS = {  # file stem in paper/squad2-dev-errors -> model alias in the store
    "bert_large": "bert-large",
    "bert_base": "bert-base",
    "distil_bert": "distilbert",
    "bert_medium": "bert-medium",
    "bert_mini": "bert-mini",
    "tiny_bert": "bert-tiny",
}


@dataclass(frozen=True)
class Sizes:
    train: int  # SST-2 training sentences for fine-tuning and the OOD bank
    dev: int | None  # SST-2 dev sentences (None: all 872)
    ood_test: int  # IMDB test reviews scored for OOD
    attacked: int  # IMDB reviews attacked
    epochs: float


FULL = Sizes(train=2000, dev=None, ood_test=300, attacked=6, epochs=2)
QUICK = Sizes(train=300, dev=200, ood_test=60, attacked=2, epochs=1)

# name in the study -> (how its pretrained encoder is made, how its classifier is made)
VARIANTS = {
    "large": (None, None),
    "int8": ("int8", "int8 of large"),  # post-training quantisation of the fine-tuned large
    "prune30": ("prune:0.3", "finetune"),
    "layers3": ("layers:3", "finetune"),
}


def run_demo(store: Store, quick: bool = False, say: Callable[[str], None] = print) -> None:
    root = data_dir()
    if root is None or not root.is_dir():
        raise CeError(
            "the demo reads real data from CE_DATA_DIR; set it to the shared data"
            " folder (e.g. CE_DATA_DIR=../shared/data)"
        )
    _paper(store, root, say)
    _study(store, QUICK if quick else FULL, say)


def _paper(store: Store, root, say) -> None:
    lists = root / "paper" / "squad2-dev-errors"
    for stem, alias in PAPER_LISTS.items():
        if store.has("predictions", model=alias, dataset="squad2-dev"):
            continue
        info = ingest_errors(store, lists / f"{stem}.json", alias, "squad2-dev")
        say(f"- {alias}: ingested {info['errors']} published errors of {info['examples']}")


def _study(store: Store, sizes: Sizes, say) -> None:
    from .attack import AttackOptions, run_attack
    from .compress import compress
    from .extract import ExtractOptions, extract
    from .finetune import FinetuneOptions, finetune
    from .ood import OodOptions, run_ood

    def have_model(name: str) -> bool:
        return store.model_dir(name).is_dir()

    # pretrained encoders and their classifiers, in the store's model folder
    for name, (method, _) in VARIANTS.items():
        if method and method != "int8" and not have_model(f"minilm-{name}"):
            compress(store, "minilm", method, f"minilm-{name}")
            say(f"- minilm-{name}: {method} of the pretrained all-MiniLM-L6-v2")
    if not have_model("minilm-int8"):
        compress(store, "minilm", "int8", "minilm-int8")
        say("- minilm-int8: int8 of the pretrained all-MiniLM-L6-v2")
    tune = FinetuneOptions(
        task="classification",
        epochs=sizes.epochs,
        learning_rate=1e-4,
        batch_size=32,
        max_length=64,
        limit=sizes.train,
    )
    for name, (_, recipe) in VARIANTS.items():
        tuned = f"demo-{name}-sst2"
        if have_model(tuned) or recipe == "int8 of large":
            continue
        parent = "minilm" if name == "large" else f"minilm-{name}"
        card = finetune(store, parent, "sst2-train", tuned, tune)
        say(
            f"- {tuned}: fine-tuned {parent} on {card['examples']} SST-2 sentences"
            f" (train loss {card['train_loss']:.3f})"
        )
    if not have_model("demo-int8-sst2"):
        compress(store, "demo-large-sst2", "int8", "demo-int8-sst2")
        say("- demo-int8-sst2: int8 of the fine-tuned large model")

    short = {"max_length": 128}
    for name in VARIANTS:
        pretrained = "minilm" if name == "large" else f"minilm-{name}"
        jobs = [
            (pretrained, "sst2-dev", "pretrained", sizes.dev),
            (f"demo-{name}-sst2", "sst2-dev", "finetuned", sizes.dev),
        ]
        for model, dataset, stage, limit in jobs:
            if store.has("embeddings", model=name, stage=stage, dataset=dataset):
                continue
            result = extract(
                store, model, dataset, ExtractOptions(stage=stage, limit=limit, **short), name=name
            )
            say(f"- {name}: {stage} {dataset}, {result.examples} examples in {result.seconds:.0f}s")
        if not store.has("ood_scores", model=name, stage="finetuned", bank="sst2-train", dataset="imdb-test"):
            for dataset, limit in (("sst2-train", sizes.train), ("imdb-test", sizes.ood_test)):
                if not store.has("embeddings", model=name, stage="finetuned", dataset=dataset):
                    extract(
                        store,
                        f"demo-{name}-sst2",
                        dataset,
                        ExtractOptions(limit=limit, k_max=None, **short),
                        name=name,
                    )
            info = run_ood(store, name, "sst2-train", "sst2-dev", "imdb-test", OodOptions())
            say(f"- {name}: OOD scores of {info['test']} IMDB reviews against {info['bank']} SST-2 sentences")
        if not store.has("attacks", model=name, attack="deepwordbug", dataset="imdb-1k"):
            info = run_attack(
                store,
                f"demo-{name}-sst2",
                "imdb-1k",
                AttackOptions(attack="deepwordbug", limit=sizes.attacked, max_length=128),
                name=name,
            )
            say(
                f"- {name}: DeepWordBug on {info['examples']} IMDB reviews:"
                f" {info['succeeded']} succeeded, {info['failed']} failed,"
                f" {info['skipped']} skipped"
            )
