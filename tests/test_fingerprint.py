"""The column-wise examples fingerprint is the per-row one it replaced, byte for byte: a
stored fingerprint (and a bundle's claim) stays valid."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest

from ce.extractors.datasets import load_dataset
from ce.store.schema import KINDS, examples_fingerprint

from .conftest import needs_data


def per_row(batches) -> str:
    """The definition: json.dumps of every row (sorted keys, UTF-8 as is) and a newline."""
    h = hashlib.sha256()
    for batch in batches:
        if "run_id" in batch.schema.names:
            batch = batch.drop_columns(["run_id"])
        for row in batch.to_pylist():
            h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
            h.update(b"\n")
    return h.hexdigest()


ODD = [
    "",
    "plain",
    'quote " and \\ back',
    "tab\tnew\nline\r",
    "\x00\x01\x1f\x7f",
    "é 中 😀",
    "\u2028\u2029\ufeff",
]


def edge_table() -> pa.Table:
    n = len(ODD) * 3
    texts = [ODD[i % len(ODD)] if i % 5 else None for i in range(n)]
    return pa.table(
        {
            "run_id": pa.array(["r"] * n),
            "example_id": pa.array([f"id{i}" for i in range(n)]),
            "idx": pa.array([i if i % 4 else None for i in range(n)], pa.int64()),
            "text": pa.array(texts, pa.string()),
            "label": pa.array([i % 3 - 1 for i in range(n)], pa.int64()),
            "answers": pa.array(
                [None if i % 6 == 0 else ODD[: i % 4] + [None] * (i % 2) for i in range(n)],
                pa.list_(pa.string()),
            ),
            "is_impossible": pa.array([None if i % 3 == 0 else bool(i % 2) for i in range(n)]),
            "title": pa.nulls(n, pa.string()),
        }
    )


@pytest.mark.parametrize("chunk", [1, 5, 97, 10_000])
def test_edge_cases_hash_as_the_per_row_definition(chunk):
    table = edge_table()
    assert examples_fingerprint(table.to_batches(max_chunksize=chunk)) == per_row(
        table.to_batches(max_chunksize=chunk)
    )
    sliced = table.slice(3, 11)
    assert examples_fingerprint(sliced.to_batches()) == per_row(sliced.to_batches())
    large = table.cast(
        pa.schema(
            [pa.field(f.name, pa.large_string() if f.type == pa.string() else f.type) for f in table.schema]
        )
    )
    assert examples_fingerprint(large.to_batches()) == per_row(table.to_batches())
    floats = table.append_column("score", pa.array([0.5] * table.num_rows))  # a type hashed row by row
    assert examples_fingerprint(floats.to_batches()) == per_row(floats.to_batches())
    empty = KINDS["examples"].schema.empty_table()
    assert examples_fingerprint(empty.to_batches()) == per_row(empty.to_batches())


@needs_data("sst2/sst2_dev.tsv", "squad2/dev-v2.0.json")
@pytest.mark.parametrize("name", ["sst2-dev", "squad2-dev", "squad2-questions"])
def test_real_datasets_keep_their_fingerprint(name):
    table = load_dataset(name).table
    assert examples_fingerprint(table.to_batches(max_chunksize=4096)) == per_row(
        table.to_batches(max_chunksize=4096)
    )
