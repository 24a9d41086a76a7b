"""Arrow schemas of the store's artifact kinds, and the schema version.

Partition key columns live in the folder names (Hive style), not inside the Parquet parts;
every part carries the ``run_id`` of the run that wrote it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from json.encoder import encode_basestring  # json.dumps(ensure_ascii=False)'s string encoder

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import CeError

SCHEMA_VERSION = 1
HEAD = 10  # the first HEAD entries of a K_max list are also kept narrow: k <= HEAD reads only them

# Partition values become folder names, so they are restricted to a portable alphabet.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")  # use fullmatch


@dataclass(frozen=True)
class Kind:
    """One artifact kind: its folder, partition keys, per-example columns and help.

    ``older_keys`` are the partition keys of layouts that earlier releases wrote: a part
    stored under one lacks a key, and its run record's field of that name supplies it."""

    name: str
    keys: tuple[str, ...]
    schema: pa.Schema
    help: str
    older_keys: tuple[tuple[str, ...], ...] = ()


def vector_type(dim: int, dtype: str = "float32") -> pa.DataType:
    """A stored CLS vector: fixed size, float32 or (by option) float16."""
    return pa.list_({"float32": pa.float32(), "float16": pa.float16()}[dtype], dim)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind(
            "examples",
            ("dataset",),
            pa.schema(
                [
                    ("run_id", pa.string()),
                    ("example_id", pa.string()),
                    ("idx", pa.int64()),  # position in the dataset; neighbour lists use it
                    ("title", pa.string()),
                    ("context", pa.string()),
                    ("question", pa.string()),
                    ("text", pa.string()),
                    ("label", pa.int64()),
                    ("answers", pa.list_(pa.string())),
                    ("is_impossible", pa.bool_()),
                    # multiple choice: the choices, label = the gold one's index (null elsewhere)
                    ("choices", pa.list_(pa.string())),
                ]
            ),
            "One row per example of each dataset: texts, gold label or answers, the choices of"
            " a multiple-choice question.",
        ),
        Kind(
            "predictions",
            ("model", "dataset"),
            pa.schema(
                [
                    ("run_id", pa.string()),
                    ("example_id", pa.string()),
                    ("prediction", pa.string()),
                    ("pred_label", pa.int64()),
                    ("score", pa.float64()),
                    ("exact", pa.float64()),
                    ("f1", pa.float64()),
                    ("correct", pa.bool_()),
                    # The answer distribution: softmax over labels (classification) or over
                    # the choices' log-likelihoods (multiple choice), index = label or choice.
                    ("probs", pa.list_(pa.float64())),
                    ("loglikelihoods", pa.list_(pa.float64())),  # per choice, as a log gave them
                    ("null_score", pa.float64()),  # QA: the no-answer score (start+end logit at CLS)
                    ("span_score", pa.float64()),  # QA: the best span's score
                    ("metric", pa.string()),  # the log's field that ``correct`` came from (acc, ...)
                    ("doc_hash", pa.string()),  # lm-evaluation-harness: hashes of the document,
                    ("prompt_hash", pa.string()),  # the prompt the model saw,
                    ("target_hash", pa.string()),  # and the target
                ]
            ),
            "One row per (model, dataset, example): the prediction, whether it is correct, and"
            " where known the answer distribution (probs) and the log's hashes of the prompt.",
        ),
        Kind(
            "embeddings",
            ("model", "stage", "dataset"),
            pa.schema(
                [
                    ("run_id", pa.string()),
                    ("example_id", pa.string()),
                    ("vector", pa.list_(pa.float32())),  # fixed-size per part; see vector_type
                ]
            ),
            "CLS vector per (model, stage, dataset, example); stage is pretrained or finetuned.",
        ),
        Kind(
            "neighbors",
            ("model", "stage", "dataset"),
            pa.schema(
                [
                    ("run_id", pa.string()),
                    ("example_id", pa.string()),
                    ("idx", pa.int64()),
                    ("neighbors", pa.list_(pa.int32())),  # idx of the neighbours, nearest first
                    ("similarities", pa.list_(pa.float32())),  # cosine, same order
                    ("neighbors_head", pa.list_(pa.int32())),  # neighbors[1:HEAD], for speed
                ]
            ),
            "Nearest neighbours by cosine of each example's CLS vector within its dataset, self"
            " excluded, ranked to K_max (idx of the examples table); neighbors_head holds the first"
            f" {HEAD} of them, a narrow copy that queries with k <= {HEAD} read instead.",
        ),
        Kind(
            "ood_scores",
            ("model", "stage", "bank", "dataset"),
            pa.schema(
                [
                    ("run_id", pa.string()),
                    ("example_id", pa.string()),
                    ("role", pa.string()),  # id_val or test
                    ("source", pa.string()),  # the dataset the example comes from
                    ("distances", pa.list_(pa.float32())),  # to the k-th bank neighbour, k=1..
                    ("distances_head", pa.list_(pa.float32())),  # distances[1:HEAD], for speed
                ]
            ),
            "Deep-kNN OOD scores per (model, stage, bank, dataset): for each id_val and test"
            " example, the distance of its L2-normalised feature (the stage's embedding) to its"
            " k-th nearest bank neighbour, k = 1..K_max; distances_head holds the first"
            f" {HEAD}, read instead for k <= {HEAD}.",
            older_keys=(("model", "bank", "dataset"),),  # before stage was a key: the run's stage
        ),
        Kind(
            "attacks",
            ("model", "attack", "dataset"),
            pa.schema(
                [
                    ("run_id", pa.string()),
                    ("example_id", pa.string()),
                    ("ground_truth", pa.int64()),
                    ("result", pa.string()),  # succeeded, failed or skipped
                    ("original_text", pa.string()),
                    ("perturbed_text", pa.string()),
                    ("original_output", pa.int64()),
                    ("original_score", pa.float64()),  # probability of original_output
                    ("perturbed_output", pa.int64()),
                    ("perturbed_score", pa.float64()),
                    ("queries", pa.int64()),
                    ("words_perturbed", pa.int64()),
                    ("words", pa.int64()),
                ]
            ),
            "Adversarial attack results per (model, attack, dataset, example): result, original"
            " and perturbed text and output, queries, words perturbed.",
        ),
    ]
}


# The list column of a kind whose length is the K_max the store can answer for, and the
# narrow copy of its first HEAD entries that the writer adds.
LIST_COLUMNS = {"neighbors": "neighbors", "ood_scores": "distances"}
HEAD_COLUMNS = {kind: f"{column}_head" for kind, column in LIST_COLUMNS.items()}

# Nullable columns that a release after the first added to a kind: a part written before
# lacks them and reads as if they were null (the views add them; bundles accept such parts).
ADDED_LATER: dict[str, tuple[str, ...]] = {
    "examples": ("choices",),
    "predictions": (
        "probs",
        "loglikelihoods",
        "null_score",
        "span_score",
        "metric",
        "doc_hash",
        "prompt_hash",
        "target_hash",
    ),
}


_ESCAPED = '[\\x00-\\x1f"\\\\]'  # the characters json.dumps(ensure_ascii=False) escapes


def _json_strings(values: pa.Array) -> pa.Array:
    """Each string as json.dumps(value, ensure_ascii=False) writes it (null: null): quoted by
    Arrow, or, where it needs escaping (or is null), by json's own encoder."""
    values = values.cast(pa.string())
    python = pc.match_substring_regex(values, _ESCAPED).fill_null(True)
    count = pc.sum(python).as_py() or 0
    if count == len(values):
        return pa.array(
            [encode_basestring(v) if v is not None else "null" for v in values.to_pylist()], pa.string()
        )
    out = pc.binary_join_element_wise('"', values, '"', "")
    if count:
        encoded = [
            encode_basestring(v) if v is not None else "null" for v in values.filter(python).to_pylist()
        ]
        out = pc.replace_with_mask(out, python, pa.array(encoded, pa.string()))
    return out


def _json_column(column: pa.Array) -> pa.Array | str | None:
    """Each value of ``column`` as json.dumps writes it: a string array, one string when every
    value is null, or None for a type not handled here."""
    t = column.type
    if column.null_count == len(column):
        return "null"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _json_strings(column)
    if pa.types.is_integer(t):
        return pc.coalesce(column.cast(pa.string()), "null")
    if pa.types.is_boolean(t):
        return pc.coalesce(pc.if_else(column, "true", "false"), "null")
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and (
        pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)
    ):
        column = pa.concat_arrays([column.cast(pa.list_(pa.string()))])  # offsets from 0
        items = pa.ListArray.from_arrays(column.offsets, _json_strings(column.values))
        joined = pc.binary_join_element_wise("[", pc.binary_join(items, ", "), "]", "")
        return pc.if_else(column.is_null(), "null", joined)
    return None


def _without_null_added(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, bool]:
    """``batch`` without the added columns that are null in every row, and whether one is
    null in some rows only (then the batch is hashed a row at a time)."""
    drop, mixed = [], False
    for name in ADDED_LATER["examples"]:
        if name in batch.schema.names:
            nulls = batch.column(name).null_count
            if nulls == batch.num_rows:
                drop.append(name)
            elif nulls:
                mixed = True
    return (batch.drop_columns(drop) if drop else batch), mixed


def examples_fingerprint(batches: Iterable[pa.RecordBatch]) -> str:
    """sha256 of examples' content (every column but run_id, row by row in order): the
    identity of a dataset, the same whether read from a file, the Hub or a stored part.

    Each row counts as ``json.dumps(row, sort_keys=True, ensure_ascii=False) + "\\n"``, where
    a column that a later release added (``ADDED_LATER["examples"]``: ``choices``) is left out
    of a row that has it null, as from the rows written before it existed: the fingerprint of
    every dataset without choices is what it was. The rows are built a column at a time in
    Arrow (strings that need escaping by json's own encoder), the bytes that json.dumps would
    give, without a Python object per value; a batch with a column type not handled here, or
    an added column null in some rows only, is hashed a row at a time."""
    h = hashlib.sha256()
    for batch in batches:
        if "run_id" in batch.schema.names:
            batch = batch.drop_columns(["run_id"])
        batch, mixed = _without_null_added(batch)
        names = sorted(batch.schema.names)
        values = [_json_column(batch.column(name)) for name in names]
        if mixed or batch.num_rows == 0 or not names or any(v is None for v in values):
            for row in batch.to_pylist():
                row = {k: v for k, v in row.items() if v is not None or k not in ADDED_LATER["examples"]}
                h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
                h.update(b"\n")
            continue
        pieces: list = []
        for i, (name, value) in enumerate(zip(names, values, strict=True)):
            pieces += [("{" if i == 0 else ", ") + encode_basestring(name) + ": ", value]
        pieces.append("}\n")
        if all(isinstance(p, str) for p in pieces):  # every column null: one row, repeated
            h.update("".join(pieces).encode() * batch.num_rows)
            continue
        rows = pc.binary_join_element_wise(*pieces, "")
        width = np.int64 if pa.types.is_large_string(rows.type) else np.int32
        offsets = np.frombuffer(rows.buffers()[1], width)[rows.offset : rows.offset + len(rows) + 1]
        h.update(memoryview(rows.buffers()[2])[offsets[0] : offsets[-1]])  # the rows, in order
    return h.hexdigest()


def kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise CeError(f"unknown artifact kind {name!r}; known: {', '.join(KINDS)}") from None


def check_name(what: str, value: str) -> str:
    """Raise unless ``value`` is usable as a partition value (and so a folder name)."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise CeError(
            f"{what} name {value!r} is not usable in the store: use letters, digits and . _ + -"
            f" (at most 128, starting with a letter or digit), e.g. --name my-model"
        )
    return value
