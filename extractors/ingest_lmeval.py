"""``ce ingest lm-eval``: lm-evaluation-harness per-example sample logs become predictions.

lm-evaluation-harness (``--log_samples``) writes one ``samples_<task>_<date>.jsonl`` per task:
a line per document and filter with ``doc_id``, ``doc``, ``target``, ``arguments`` (the
requests: ``gen_args_<i>`` with the prompt ``arg_0`` and, for multiple choice, the choice's
continuation ``arg_1``), ``filtered_resps`` (multiple choice: ``[log-likelihood, is_greedy]``
per choice, as strings; generation: the answer text), ``filter``, the metric fields
(``acc``, ``acc_norm``, ``exact_match``, ...) and the sha256 ``doc_hash``, ``prompt_hash``
and ``target_hash``.

Each (task, filter) becomes a dataset (``task``, or ``task.filter`` for a filter other than
``none``): its examples are the documents (example id = doc_id, text = the document as
JSON, label = the gold choice), so two models' logs of the same documents share one dataset
even when their prompts differ; the prompt hash of every prediction is kept, and the
comparison names the documents whose prompts differ. Correctness comes from one 0/1 metric
field (``--metric``, else the first present of :data:`METRICS`), recorded per row and in the
run. For multiple choice the answer distribution is the softmax of the per-choice
log-likelihoods (divided by the choice's length in characters for ``acc_norm``, as
lm-evaluation-harness ranks them); a generation log has none, and the run says so.

The file is read by DuckDB's JSON reader with the columns named as data (a bound
parameter): nothing in the log becomes SQL text, and every task is checked before the first
write.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ce.query.export import LM_EVAL_METRICS
from ce.store.errors import CeError, NotFound
from ce.store.schema import NAME_PATTERN, check_name
from ce.store.store import Store

from .datasets import Dataset, check_examples, from_table
from .ingest import write_ingested
from .loading import sha256_of

METRICS = LM_EVAL_METRICS  # 0/1 per document, in this preference
NO_DISTRIBUTION = "answer distribution: generated answers come without per-answer likelihoods"
SAMPLES = re.compile(r"samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.jsonl")
COLUMNS = {
    "doc_id": "BIGINT",
    "doc": "JSON",
    "target": "VARCHAR",
    "arguments": "JSON",
    "filtered_resps": "JSON",
    "filter": "VARCHAR",
    "doc_hash": "VARCHAR",
    "prompt_hash": "VARCHAR",
    "target_hash": "VARCHAR",
}

# One row per line: the fields ce keeps, the log-likelihoods as numbers, the choices, the
# gold choice, and the metric fields (every column read but the raw JSON ones).
READ = """
with raw as (
    select *, json_type(filtered_resps -> 0) = 'ARRAY' as choice
    from read_json($path, format = 'newline_delimited', columns = $columns)
),
parsed as (
    select
        * exclude (doc, arguments, filtered_resps),
        doc::varchar as doc_text,
        case when choice then list_transform(json_extract_string(filtered_resps, '$[*][0]'),
            lambda x: try_cast(x as double)) end as ll,
        case when choice then json_extract_string(arguments, '$.*.arg_1') end as choices,
        case when not choice then json_extract_string(filtered_resps, '$[0]') end as answer_text
    from raw
)
select *,
    case when choice then coalesce(
        case when try_cast(target as bigint) between 0 and len(choices) - 1
            then try_cast(target as bigint) end,
        list_position(list_transform(choices, lambda c: trim(c)), trim(target)) - 1
    ) end as gold,
    case when choice then list_transform(choices, lambda c: greatest(length(ltrim(c)), 1)) end as lengths
from parsed
"""


@dataclass
class TaskLog:
    """One (task, filter) of a samples file, read and checked, ready to write."""

    dataset: Dataset
    predictions: pa.Table
    ingested: dict
    path: Path


def sample_files(path: Path) -> list[tuple[str, Path]]:
    """(task, file) of every samples file at ``path`` (a file or a folder searched below)."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("samples_*.jsonl") if p.is_file())
        if not files:
            raise NotFound(f"no lm-evaluation-harness samples_<task>_<date>.jsonl files under {path}")
    else:
        raise NotFound(f"no such file or folder: {path}")
    out: dict[str, Path] = {}
    for f in files:
        m = SAMPLES.fullmatch(f.name)
        if not m:
            raise CeError(
                f"{f.name} is not named like an lm-evaluation-harness samples file"
                " (samples_<task>_<date>.jsonl); pass the file lm_eval --log_samples wrote"
            )
        task = m["task"]
        if task in out:
            raise CeError(
                f"{path} holds two sample files of task {task!r} ({out[task].name}, {f.name});"
                " pass the one to ingest"
            )
        out[task] = f
    return sorted(out.items())


def read_samples(path: Path, task: str, metric: str | None) -> list[TaskLog]:
    """The (task, filter) logs of one samples file, every value checked."""
    candidates = [metric] if metric else list(METRICS)
    columns = COLUMNS | {m: "DOUBLE" for m in candidates}
    con = duckdb.connect()
    try:
        # DuckDB reads a path as a glob: it must name this one file and nothing beside it
        matched = con.sql("select file from glob($path)", params={"path": str(path)}).fetchall()
        if len(matched) != 1 or Path(matched[0][0]).resolve() != path.resolve():
            raise CeError(
                f"{path} reads as a pattern ({len(matched)} files match its * ? or [ ]); rename the"
                " file or its folder without them"
            )
        table = con.sql(READ, params={"path": str(path), "columns": columns}).to_arrow_table()
    except duckdb.Error as e:
        reason = str(e).splitlines()[0][:300]
        raise CeError(
            f"{path.name} is not an lm-evaluation-harness samples file ce can read ({reason})"
        ) from None
    if table.num_rows == 0:
        raise CeError(f"{path.name} holds no samples")
    chosen = next((c for c in candidates if table[c].null_count < table.num_rows), None)
    if chosen is None:
        raise CeError(
            f"{path.name}: no line has the metric {' or '.join(candidates)}; name a 0/1 metric"
            " of the task with --metric (e.g. --metric acc)"
        )
    filters = table["filter"].fill_null("none")
    return [
        _task_log(path, task, flt, chosen, table.filter(pc.equal(filters, flt)))
        for flt in sorted(pc.unique(filters).to_pylist())
    ]


def _task_log(path: Path, task: str, flt: str, metric: str, rows: pa.Table) -> TaskLog:
    name = task if flt == "none" else f"{task}.{flt}"
    where = f"{path.name} (filter {flt})"
    if not NAME_PATTERN.fullmatch(name):
        raise CeError(
            f"{where}: task and filter {name!r} cannot name a dataset in the store (letters,"
            " digits and . _ + - only); rename the file samples_<task>_<date>.jsonl"
        )
    ids = rows["doc_id"]
    if ids.null_count:
        raise CeError(f"{where}: {ids.null_count} line(s) have no doc_id")
    choice = rows["choice"].to_pylist()
    if any(c is None for c in choice) or len(set(choice)) > 1:
        raise CeError(f"{where}: some lines hold no responses or mix multiple-choice and generated answers")
    rows = rows.append_column("metric_value", rows[metric])
    values = pc.unique(rows["metric_value"].drop_null()).to_pylist()
    odd = [v for v in values if v not in (0.0, 1.0)]
    if odd:
        raise CeError(
            f"{where}: metric {metric!r} is not 0 or 1 per document (e.g. {odd[0]});"
            f" name a 0/1 metric with --metric (one of {', '.join(METRICS)})"
        )
    multiple_choice = choice[0]
    if multiple_choice:
        predictions, labels, distribution = _choices(where, rows, metric)
    else:
        answers = rows["answer_text"]
        predictions = {"prediction": answers}
        labels, distribution = pa.nulls(rows.num_rows, pa.int64()), None
    example_ids = pc.cast(ids, pa.string())
    examples = {"example_id": example_ids, "idx": ids, "text": rows["doc_text"], "label": labels}
    if not multiple_choice:  # the gold answer text
        examples["answers"] = pa.ListArray.from_arrays(
            pa.array(np.arange(rows.num_rows + 1), pa.int32()), rows["target"].combine_chunks()
        )
    examples = pa.table(examples)
    data = from_table(name, "classification", examples, f"lm-evaluation-harness log {path.name}")
    correct = pc.equal(rows["metric_value"], 1.0)
    table = pa.table(
        {
            "example_id": examples["example_id"],
            **predictions,
            "correct": correct,
            "metric": pa.array([metric] * rows.num_rows, pa.string()),
            "doc_hash": rows["doc_hash"],
            "prompt_hash": rows["prompt_hash"],
            "target_hash": rows["target_hash"],
        }
    )
    ingested = {
        "tool": "lm-evaluation-harness",
        "format": "samples jsonl",
        "task": task,
        "filter": flt,
        "metric": metric,
        "output_type": "multiple_choice" if multiple_choice else "generate_until",
        "distribution": distribution,
        "lacks": None if distribution else NO_DISTRIBUTION,
    }
    return TaskLog(data, table, ingested, path)


def _choices(where: str, rows: pa.Table, metric: str) -> tuple[dict, pa.Array, str]:
    """Predictions of a multiple-choice log, vectorised over all documents: the per-choice
    log-likelihoods, the softmax of the ranking scores (divided by the choice's length in
    characters for acc_norm), the top choice (the first of equals, as numpy's argmax) and its
    text, and the gold choice of each document."""
    ll = rows["ll"].combine_chunks()
    counts = pc.list_value_length(ll).to_numpy(zero_copy_only=False)
    choices = rows["choices"].combine_chunks()
    values = pc.list_flatten(ll).to_numpy(zero_copy_only=False)
    if choices.null_count:
        first = int(np.flatnonzero(choices.is_null().to_numpy(zero_copy_only=False))[0])
        raise CeError(
            f"{where}: document {rows['doc_id'][first]} has no arguments naming its choices"
            " (gen_args_<i>.arg_1); ce reads the samples of lm-evaluation-harness 0.4.3 and later"
        )
    options = pc.list_value_length(choices).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero((counts == 0) | (counts != options))
    if bad.size:
        raise CeError(
            f"{where}: document {rows['doc_id'][int(bad[0])]} has {counts[bad[0]]} log-likelihoods for"
            f" {len(choices[int(bad[0])])} choices"
        )
    if not np.all(np.isfinite(values)):  # also a value that was not a number (null -> nan)
        first = int(np.searchsorted(np.cumsum(counts), np.flatnonzero(~np.isfinite(values))[0], side="right"))
        raise CeError(
            f"{where}: document {rows['doc_id'][first]} has a log-likelihood that is not a finite number"
        )
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    score = values
    if metric == "acc_norm":
        score = values / pc.list_flatten(rows["lengths"].combine_chunks()).to_numpy(zero_copy_only=False)
    top = np.maximum.reduceat(score, starts)
    each = np.repeat(top, counts)
    weights = np.exp(score - each)
    probs = weights / np.repeat(np.add.reduceat(weights, starts), counts)
    positions = np.where(score == each, np.arange(score.size), score.size)
    best = np.minimum.reduceat(positions, starts)
    texts = pc.utf8_trim_whitespace(pc.take(pc.list_flatten(choices), pa.array(best)))
    kind = "length-normalised " if metric == "acc_norm" else ""
    return (
        {
            "prediction": texts,
            "pred_label": pa.array(best - starts, pa.int64()),
            "probs": pa.ListArray.from_arrays(pa.array(np.append(starts, score.size), pa.int32()), probs),
            "loglikelihoods": ll.cast(pa.list_(pa.float64())),
        },
        rows["gold"],
        f"softmax of the per-choice {kind}log-likelihoods",
    )


def _hash_quietly(files: list[Path]) -> None:
    """sha256_of each file, ahead of time; a failure is left for the caller's own call."""
    for f in files:
        try:
            sha256_of(f)
        except OSError:
            return


def ingest_lmeval(store: Store, path: str | Path, model: str, metric: str | None = None) -> list[dict]:
    """Write ``model``'s predictions from every task of the lm-evaluation-harness samples at
    ``path`` (a samples file or an output folder); every file is read and checked first."""
    path = Path(path)
    check_name("model", model)
    if metric is not None and (metric in COLUMNS or metric in ("resps", "metrics")):
        raise CeError(
            f"--metric {metric!r} names a field of every sample, not a metric; use e.g. acc or acc_norm"
        )
    if metric is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_@.,-]{0,63}", metric):
        raise CeError(f"--metric {metric!r} is not a metric name (e.g. acc, acc_norm, exact_match)")
    files = sample_files(path)
    # the files' sha256 (for the run records) while DuckDB reads them: hashlib releases the
    # GIL, and sha256_of caches the digests for write_ingested
    hashing = threading.Thread(target=_hash_quietly, args=([f for _, f in files],), daemon=True)
    hashing.start()
    try:
        logs = [log for task, f in files for log in read_samples(f, task, metric)]
    finally:
        hashing.join()
    for log in logs:  # a dataset the store holds with other documents stops all, before any write
        try:
            check_examples(store, log.dataset)
        except CeError as e:
            raise CeError(
                f"{log.path.name}: {str(e).split(';')[0]}; ingest it into another --store, or rename"
                " the samples file (samples_<task>_<date>.jsonl names the dataset)"
            ) from None
    out = []
    for log in logs:
        params = {"file": str(log.path.resolve()), "model": model, "metric": metric}
        run = write_ingested(
            store, "ingest-lm-eval", params, log.path, model, log.dataset, log.predictions, log.ingested
        )
        correct = log.predictions["correct"]
        out.append(
            {
                "run_id": run,
                "model": model,
                "dataset": log.dataset.name,
                "examples": len(log.dataset),
                "correct": pc.sum(correct.cast(pa.int64())).as_py() or 0,
                "metric": log.ingested["metric"],
                "distribution": log.ingested["distribution"],
            }
        )
    return out
