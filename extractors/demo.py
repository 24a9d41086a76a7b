"""``ce demo``: the study on the embedded default, offline, with real data and real weights.

For now: the six published SQuAD 2.0 error lists of the paper (prediction-error agreement),
and CLS embeddings of the packaged all-MiniLM-L6-v2 on real datasets. It grows with the
representation, distribution and attack characteristics. What the store already holds is
not computed again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ce.engine.errors import CeError
from ce.engine.store import Store

from .datasets import data_dir
from .extract import ExtractOptions, extract
from .ingest import ingest_errors

# File stem in paper/squad2-dev-errors -> model alias in the store.
PAPER_LISTS = {
    "bert_large": "bert-large",
    "bert_base": "bert-base",
    "distil_bert": "distilbert",
    "bert_medium": "bert-medium",
    "bert_mini": "bert-mini",
    "tiny_bert": "bert-tiny",
}


def run_demo(store: Store, quick: bool = False, say: Callable[[str], None] = print) -> None:
    root = data_dir()
    if root is None or not root.is_dir():
        raise CeError(
            "the demo reads real data from CE_DATA_DIR; set it to the shared data"
            " folder (e.g. CE_DATA_DIR=../shared/data)"
        )
    lists = root / "paper" / "squad2-dev-errors"
    for stem, alias in PAPER_LISTS.items():
        if store.has("predictions", model=alias, dataset="squad2-dev"):
            say(f"- {alias}: published squad2-dev errors already in the store")
            continue
        path = Path(lists / f"{stem}.json")
        info = ingest_errors(store, path, alias, "squad2-dev")
        say(f"- {alias}: ingested {info['errors']} published errors of {info['examples']}")
    limits = {"sst2-dev": 200 if quick else None, "squad2-dev": 100 if quick else 500}
    for dataset, limit in limits.items():
        if store.has("embeddings", model="minilm", stage="pretrained", dataset=dataset):
            say(f"- minilm: pretrained embeddings of {dataset} already in the store")
            continue
        result = extract(store, "minilm", dataset, ExtractOptions(stage="pretrained", limit=limit))
        say(f"- minilm: {result.embeddings} pretrained CLS embeddings of {dataset} in {result.seconds:.1f}s")
