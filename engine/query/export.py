"""Predictions out of the store, for other tools: one flat table, or lm-evaluation-harness logs.

:func:`export_predictions` reads the ``predictions`` view joined with ``examples`` (the gold
label or answers) over a connection made by :func:`ce.query.sql.connect`, one (model,
dataset) at a time in example order, streaming record batches, and writes every file
atomically (a temporary name, then a rename):

- ``parquet``, ``csv``: one table, a row per (model, dataset, example), with the columns of
  :data:`COLUMNS`: ``gold`` is the example's gold label, ``answers`` its gold answers (QA);
  in CSV the lists (``answers``, ``probs``, ``loglikelihoods``) are JSON text;
- ``lm-eval``: per model a folder ``OUT/<model>/`` holding ``samples_<dataset>_<date>.jsonl``
  per dataset, lines shaped as lm-evaluation-harness ``--log_samples`` writes them:
  ``doc_id``, ``doc``, ``target``, ``arguments``, ``resps``, ``filtered_resps``, ``filter``
  (``none``), ``metrics``, the metric field (the stored ``metric``, else ``acc`` or
  ``exact_match``: 1 if correct, 0 if not) and the ``doc_hash``, ``prompt_hash`` and
  ``target_hash`` where stored. ``ce ingest lm-eval OUT/<model> --model <model>`` reads them
  back as the same predictions.

An lm-eval file is multiple choice when every prediction of its (model, dataset) holds an
answer distribution: ``filtered_resps`` holds a ``[log-likelihood, null]`` pair per choice
(the stored ``loglikelihoods``, else the log of ``probs``, so that their softmax is
``probs`` again; a probability of 0 becomes the log of the smallest double), ``target`` the
gold label, and ``arguments`` a request per choice whose continuation ``arg_1`` is the
document's ``choices`` where it lists one per answer, else the choice's number, the
predicted one its stored ``prediction`` (the prompt, ``arg_0``, is not stored: null).
Otherwise it is a generation log: ``filtered_resps`` holds the prediction, ``target`` the
first gold answer (else the gold label). ``doc`` is the example's document as an
lm-evaluation-harness log gave it (an example whose text is a JSON object), else its fields
and ``example_id``; ``doc_id`` is the example id where every id of the dataset is a whole
number, else the example's position (``idx``), so ids that are not numbers come back as
positions.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ce.store import atomic
from ce.store.errors import CeError, NotFound, did_you_mean

from .sql import execute

FORMATS = ("parquet", "csv", "lm-eval")
BATCH = 16_384
# The flat table: (column, SQL over p = predictions and e = examples, type if p lacks it).
COLUMNS = (
    ("model", "p.model", None),
    ("dataset", "p.dataset", None),
    ("example_id", "p.example_id", None),
    ("idx", "e.idx", None),
    ("prediction", "p.prediction", "varchar"),
    ("pred_label", "p.pred_label", "bigint"),
    ("correct", "p.correct", "boolean"),
    ("gold", "e.label", None),
    ("answers", "e.answers", None),
    ("is_impossible", "e.is_impossible", None),
    ("score", "p.score", "double"),
    ("exact", "p.exact", "double"),
    ("f1", "p.f1", "double"),
    ("probs", "p.probs", "double[]"),
    ("loglikelihoods", "p.loglikelihoods", "double[]"),
    ("null_score", "p.null_score", "double"),
    ("span_score", "p.span_score", "double"),
    ("metric", "p.metric", "varchar"),
    ("doc_hash", "p.doc_hash", "varchar"),
    ("prompt_hash", "p.prompt_hash", "varchar"),
    ("target_hash", "p.target_hash", "varchar"),
    ("run_id", "p.run_id", None),
)
JSON_COLUMNS = ("answers", "probs", "loglikelihoods")  # lists: JSON text in CSV
DOC_COLUMNS = ("title", "context", "question", "text")  # the example's texts, for an lm-eval doc
WHOLE_NUMBER = re.compile(r"0|[1-9][0-9]{0,17}")  # fits a BIGINT doc_id
SMALLEST = 5e-324  # the smallest positive double: log(0) would not be a number


def export_predictions(
    con: duckdb.DuckDBPyConnection,
    out: str | Path,
    fmt: str = "parquet",
    models: tuple[str, ...] | list[str] = (),
    datasets: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """Write the predictions of ``models`` on ``datasets`` (all where empty) to ``out`` in
    ``fmt`` (see the module's help): a file for parquet and csv, a folder for lm-eval.
    Returns what was written: rows, models, datasets, and the files."""
    if fmt not in FORMATS:
        raise CeError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    target = Path(out)
    if not target.parent.exists():
        raise CeError(f"cannot write {out}: folder {target.parent} does not exist")
    if fmt == "lm-eval" and target.exists() and not target.is_dir():
        raise CeError(f"cannot write lm-eval logs to {out}: it is a file; give a folder")
    if fmt != "lm-eval" and target.is_dir():
        raise CeError(f"cannot write {out}: it is a folder; give a file name (e.g. predictions.{fmt})")
    pairs = _pairs(con, tuple(models), tuple(datasets))
    if fmt == "lm-eval":
        files, rows = _write_lmeval(con, _select(con, texts=True), pairs, target)
    else:
        rows = _write_table(con, _select(con), pairs, target, fmt)
        files = [str(target)]
    return {
        "rows": rows,
        "models": sorted({m for m, _ in pairs}),
        "datasets": sorted({d for _, d in pairs}),
        "files": files,
        "format": fmt,
    }


def _pairs(con, models: tuple[str, ...], datasets: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (model, dataset) pairs to export, every name given checked against the store."""
    held = execute(con, "select distinct model, dataset from predictions order by all").fetchall()
    for key, wanted, have in (
        ("model", models, sorted({m for m, _ in held})),
        ("dataset", datasets, sorted({d for _, d in held})),
    ):
        for name in wanted:
            if name not in have:
                raise NotFound(
                    f"the store holds no predictions of {key} {name!r}{did_you_mean(name, have)};"
                    f" its {key}s: {', '.join(have[:10]) or 'none'}"
                )
    pairs = [(m, d) for m, d in held if (not models or m in models) and (not datasets or d in datasets)]
    if not pairs:
        raise NotFound(
            "the store holds no predictions"
            + (" of these models on these datasets; check --model and --dataset" if held else "")
        )
    return pairs


def _columns(con) -> set[str]:
    return {row[0] for row in execute(con, "select column_name from (describe predictions)").fetchall()}


def _select(con, texts: bool = False) -> str:
    """The flat table's query for one (model, dataset) ($model, $dataset), in example order
    (``texts``: and the example's texts, as _title, ...); a column that the store's
    predictions lack (parts of an earlier release) is null."""
    have = _columns(con)
    columns = ", ".join(
        f"{sql} as {name}" if cast is None or name in have else f"null::{cast} as {name}"
        for name, sql, cast in COLUMNS
    )
    if texts:
        columns += "".join(f", e.{c} as _{c}" for c in DOC_COLUMNS)
    return (
        f"select {columns} from predictions p left join examples e"
        " on e.dataset = p.dataset and e.example_id = p.example_id"
        " where p.model = $model and p.dataset = $dataset"
        " order by e.idx nulls last, p.example_id"
    )


def _batches(con, select: str, model: str, dataset: str):
    relation = execute(con, select, {"model": model, "dataset": dataset})
    yield from relation.to_arrow_reader(batch_size=BATCH)


# -- parquet and csv ---------------------------------------------------------------------
def _write_table(con, select: str, pairs, target: Path, fmt: str) -> int:
    rows = 0
    with atomic.atomic_path(target) as tmp:
        writer = None
        try:
            for model, dataset in pairs:
                for batch in _batches(con, select, model, dataset):
                    if fmt == "csv":
                        batch = _as_csv(batch)
                    if writer is None:
                        writer = (
                            pacsv.CSVWriter(tmp, batch.schema)
                            if fmt == "csv"
                            else pq.ParquetWriter(tmp, batch.schema, compression="zstd")
                        )
                    writer.write_batch(batch)
                    rows += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
    return rows


def _as_csv(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with its list columns as JSON text (a CSV cell holds no list)."""
    for name in JSON_COLUMNS:
        values = batch[name].to_pylist()
        text = pa.array([None if v is None else json.dumps(v) for v in values], pa.string())
        batch = batch.set_column(batch.schema.get_field_index(name), name, text)
    return batch


# -- lm-eval -----------------------------------------------------------------------------
def _write_lmeval(con, select: str, pairs, target: Path) -> tuple[list[str], int]:
    date = datetime.now().strftime("%Y-%m-%dT%H-%M-%S.%f")  # as lm-evaluation-harness names them
    files, rows = [], 0
    for model, dataset in pairs:
        shape = _shape(con, model, dataset)
        path = target / model / f"samples_{dataset}_{date}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            number = 0
            for batch in _batches(con, select, model, dataset):
                for row in batch.to_pylist():
                    _write_line(f, row, number, shape)
                    number += 1
        rows += number
        files.append(str(path))
    return files, rows


def _shape(con, model: str, dataset: str) -> dict[str, bool]:
    """Whether every prediction of (model, dataset) holds an answer distribution (a
    multiple-choice log), and whether every example id is a whole number (the doc_id)."""
    have = _columns(con)
    dist = " or ".join(f"{c} is not null" for c in ("probs", "loglikelihoods") if c in have) or "false"
    [(choice, numbered)] = execute(
        con,
        f"select coalesce(bool_and({dist}), false), coalesce(bool_and(regexp_full_match(example_id,"
        f" $pattern)), false) from predictions where model = $model and dataset = $dataset",
        {"model": model, "dataset": dataset, "pattern": WHOLE_NUMBER.pattern},
    ).fetchall()
    return {"choice": bool(choice), "numbered": bool(numbered)}


# The 0/1 metric fields of lm-evaluation-harness logs that ce knows, in the order ce ingest
# lm-eval prefers them; another stored name (a table's correctness column) is exported as
# acc or exact_match, so it can never overwrite target or doc.
LM_EVAL_METRICS = ("acc", "exact_match", "acc_norm", "em", "exact")


def _write_line(f: IO[str], row: dict, number: int, shape: dict[str, bool]) -> None:
    doc, raw = _doc(row)
    if shape["numbered"]:
        doc_id = int(row["example_id"])
    else:
        doc_id = row["idx"] if row["idx"] is not None else number
    line: dict[str, Any] = {"doc_id": doc_id, "doc": None}
    if shape["choice"]:
        metric = row["metric"] if row["metric"] in LM_EVAL_METRICS else "acc"
        line |= _choices(row, doc, metric)
    else:
        answers = row["answers"] or []
        gold = answers[0] if answers else row["gold"]
        line |= {
            "target": "" if gold is None else str(gold),
            "arguments": {"gen_args_0": {"arg_0": None, "arg_1": {}}},
            "resps": [[row["prediction"]]],
            "filtered_resps": [row["prediction"]],
        }
        metric = row["metric"] if row["metric"] in LM_EVAL_METRICS else "exact_match"
    line |= {"filter": "none", "metrics": [metric]}
    line |= {k: row[k] for k in ("doc_hash", "prompt_hash", "target_hash") if row[k] is not None}
    line[metric] = None if row["correct"] is None else int(row["correct"])
    doc_text = raw if raw is not None else json.dumps(doc, ensure_ascii=False)
    f.write(json.dumps(line, ensure_ascii=False).replace('"doc": null', f'"doc": {doc_text}', 1) + "\n")


def _doc(row: dict) -> tuple[dict, str | None]:
    """(the example's document, its JSON text where the example holds an
    lm-evaluation-harness log's document verbatim (its text, a JSON object), else None)."""
    text = row["_text"]
    if isinstance(text, str) and text.startswith("{") and "\n" not in text and "\r" not in text:
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            return doc, text
    fields = {
        **{c: row[f"_{c}"] for c in DOC_COLUMNS},
        "label": row["gold"],
        "answers": row["answers"],
        "is_impossible": row["is_impossible"],
    }
    return {"example_id": row["example_id"], **{k: v for k, v in fields.items() if v is not None}}, None


def _choices(row: dict, doc: dict, metric: str) -> dict[str, Any]:
    """target, arguments, resps and filtered_resps of a multiple-choice line. Without the
    document's choices, acc_norm (which divides by the choice's length) gets the log of the
    stored distribution over one-character choices, so the harness's ranking, and ce's
    re-ingest, give that distribution back."""
    listed = doc.get("choices")
    size = len(row["loglikelihoods"] if row["loglikelihoods"] is not None else row["probs"])
    known = isinstance(listed, list) and len(listed) == size and all(isinstance(c, str) for c in listed)
    if row["loglikelihoods"] is not None and (known or metric != "acc_norm" or row["probs"] is None):
        scores = [float(v) for v in row["loglikelihoods"]]
    else:
        scores = [math.log(max(p, SMALLEST)) if p is not None else math.log(SMALLEST) for p in row["probs"]]
    if known:
        choices = [f" {c}" for c in listed]
    else:
        choices = [f" {i}" for i in range(len(scores))]
        if metric != "acc_norm" and (
            row["prediction"] is not None
            and row["pred_label"] is not None
            and 0 <= row["pred_label"] < len(scores)
        ):
            choices[row["pred_label"]] = f" {row['prediction']}"
    pairs = [[repr(s), None] for s in scores]
    return {
        "target": str(row["gold"]) if row["gold"] is not None else "",  # the harness writes str(target)
        "arguments": {f"gen_args_{i}": {"arg_0": None, "arg_1": c} for i, c in enumerate(choices)},
        "resps": [[p] for p in pairs],
        "filtered_resps": pairs,
    }
