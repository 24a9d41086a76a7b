"""``ce ingest errors``: another lab's per-example error list becomes a model's predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from ce.store.errors import CeError, NotFound
from ce.store.schema import check_name
from ce.store.store import Store

from .datasets import Dataset, check_examples, load_dataset
from .loading import sha256_of
from .registry import MODELS


def read_error_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise NotFound(f"no such error list: {path}")
    try:
        ids = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CeError(f"{path} is not valid JSON ({e}); expected a JSON list of example ids") from None
    if not isinstance(ids, list) or not all(isinstance(i, str | int) for i in ids):
        raise CeError(f"{path} must hold a JSON list of example ids (strings)")
    return [str(i) for i in ids]


def ingest_errors(
    store: Store, path: str | Path, model: str, dataset: str, dataset_name: str | None = None
) -> dict:
    """Write ``model``'s predictions on ``dataset``: wrong for the listed ids, right otherwise."""
    path = Path(path)
    check_name("model", model)
    errors = set(read_error_ids(path))
    data = load_dataset(dataset, dataset_name)
    ids = data.table["example_id"].to_pylist()
    unknown = sorted(errors - set(ids))
    if unknown:
        raise CeError(
            f"{path}: {len(unknown)} id(s) are not in dataset {data.name}, e.g."
            f" {unknown[0]!r}; is this the error list of another dataset?"
        )
    wrong = [i in errors for i in ids]
    table = pa.table(
        {
            "example_id": ids,
            "correct": [not w for w in wrong],
            "exact": [0.0 if w else 1.0 for w in wrong] if data.task == "qa" else [None] * len(ids),
        }
    )
    params = {"file": str(path.resolve()), "model": model, "dataset_arg": dataset}
    run = write_ingested(store, "ingest-errors", params, path, model, data, table)
    return {
        "run_id": run,
        "model": model,
        "dataset": data.name,
        "examples": len(ids),
        "errors": len(errors),
    }


def write_ingested(
    store: Store,
    command: str,
    params: dict,
    source: Path,
    model: str,
    data: Dataset,
    predictions: pa.Table | None,
    ingested: dict | None = None,
    attacks: tuple[str, pa.Table] | None = None,
) -> str:
    """One run that records another tool's per-example results of ``model`` on ``data``:
    the dataset's examples (unless the store holds them; other examples under its name are
    refused), the predictions, and the attack results (``(attack name, table)``), with
    where they came from (``source`` and its sha256, ``ingested``: the tool, format and
    what the log lacked). Returns the run id."""
    check_name("model", model)
    have_examples = check_examples(store, data)
    with store.run(
        command,
        params,
        model=model,
        dataset=data.name,
        task=data.task,
        dataset_source=data.source,
        dataset_fingerprint=data.fingerprint,
        source_sha256=sha256_of(source) if source.is_file() else None,
        examples=len(data),
        published_parameters=MODELS[model].parameters if model in MODELS else None,
        ingested=ingested,
    ) as run:
        if not have_examples:
            run.write("examples", {"dataset": data.name}, data.table)
        if predictions is not None:
            run.write("predictions", {"model": model, "dataset": data.name}, predictions)
        if attacks is not None:
            name, table = attacks
            run.write(
                "attacks", {"model": model, "attack": check_name("attack", name), "dataset": data.name}, table
            )
    return run.run_id
