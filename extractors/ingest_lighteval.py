"""``ce ingest lighteval``: lighteval's per-task details become a model's predictions.

lighteval (>= 0.11) saves one ``details_<task>_<date>.parquet`` per task under
``<output dir>/details/<model>/<date>/``: ``EvaluationTracker.save`` turns each
``DetailsLogger.Detail`` into a row with ``asdict`` and ``datasets.Dataset.from_list``
(columns sorted), so a row has three struct columns (see
src/lighteval/logging/info_loggers.py, evaluation_tracker.py, tasks/requests.py and
models/model_output.py of huggingface/lighteval):

* ``doc``: the ``Doc``: ``query``, ``choices``, ``gold_index`` (an int or a list), ``id``
  (the example's index in its split), ``task_name`` ("suite|task|fewshots"), ...
* ``model_response``: the ``ModelResponse``: ``text`` (generations), ``text_post_processed``,
  ``logprobs`` (one per choice for a log-likelihood task, then one per choice of the
  unconditioned query under PMI), ``argmax_logits_eq_gold``, ...
* ``metric``: the sample's scores by metric name ("acc", "em", "acc:<params>", ...).

A task whose metrics use two sampling methods logs each example once per method; the rows
that carry the correctness metric are the ones kept. Older lighteval (<= 0.10) wrote flat
columns (example, predictions, metrics, ...) and is refused with a message that says so.
"""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ce.store.errors import CeError, NotFound, did_you_mean
from ce.store.schema import NAME_PATTERN, check_name
from ce.store.store import Store

from .datasets import check_examples, from_table
from .ingest import write_ingested
from .ingest_table import first_line, source_file

FORMAT = "lighteval details parquet (>= 0.11: doc, model_response, metric)"
KINDS = "a lighteval details_<task>_<date>.parquet file or a folder of them"
COLUMNS = ("doc", "model_response", "metric")
LEGACY = ("example", "predictions", "metrics", "full_prompt", "gold_index")
# The metrics whose per-example value says whether the answer was right, most direct first
# (a name may carry parameters after ':', e.g. "acc:logprob_normalization=..."; the plain
# name comes before its parameterised forms).
CORRECTNESS = (
    "acc",
    "loglikelihood_acc",
    "em",
    "exact_match",
    "quasi_exact_match",
    "prefix_exact_match",
    "prefix_quasi_exact_match",
    "extractive_match",
    "truthfulqa_mc1",
    "mc1",
    "acc_norm",
    "loglikelihood_acc_norm",
    "pass@k",
    "pass@1",
    "maj@n",
    "avg@n",
)
EXACT = ("em", "exact_match")  # fill the predictions' exact column where numeric
_DATE = re.compile(r"_\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(\.\d+)?$")


def dataset_name_for(task: str) -> str:
    """The store name of a lighteval task: each run of characters outside letters, digits
    and . _ + - becomes '-', runs of '-' become one, leading and trailing punctuation goes
    ("lighteval|arc:easy|0" -> "lighteval-arc-easy-0"). A name that is empty or too long
    afterwards is an error (never cut: two tasks could meet)."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", task)
    name = re.sub(r"--+", "-", name).strip("-._+")
    if not name or not NAME_PATTERN.fullmatch(name):
        shown = task if len(task) <= 60 else task[:57] + "..."
        raise CeError(
            f"lighteval task {shown!r} gives no usable dataset name ({len(name)} characters of letters,"
            " digits and . _ + -, at most 128); rename the task or its details file"
        )
    return name


def details_files(path: str | Path) -> list[Path]:
    """The details Parquet files at ``path``: the file itself, or every details_*.parquet
    under the folder (symlinked folders are not followed, so a loop cannot trap the walk)."""
    path = Path(path).expanduser()
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        is_dir = False  # source_file says what is wrong with it
    if not is_dir:
        file = source_file(path, "lighteval details", KINDS)
        if file.suffix.lower() != ".parquet":
            raise CeError(
                f"{file} is not a details Parquet file (lighteval's results_*.json holds only the"
                f" averages); pass {KINDS}"
            )
        return [file]
    found = []
    for folder, dirs, files in os.walk(path, followlinks=False):
        dirs.sort()
        found += [
            Path(folder) / f for f in sorted(files) if f.startswith("details_") and f.endswith(".parquet")
        ]
    if not found:
        raise NotFound(
            f"no details_*.parquet under {path}; pass lighteval's <output dir>/details/<model>/<date>"
            " folder or one details file"
        )
    return [source_file(f, "lighteval details", KINDS) for f in found]


def ingest_lighteval(
    store: Store, path: str | Path, model: str, *, metric: str | None = None, dataset_name: str | None = None
) -> list[dict]:
    """Write ``model``'s predictions from lighteval details (a file, or a folder of them):
    one dataset per task, named from the task (see dataset_name_for) unless
    ``dataset_name`` names the dataset of a single task. ``correct`` comes
    from ``metric`` when given, else from the first of CORRECTNESS the details hold with 0/1
    values; for multiple choice the answer is the choice of highest log-likelihood, probs
    their softmax; for generation the (post-processed) text. Every file is read and checked
    before anything is written."""
    check_name("model", model)
    if dataset_name is not None:
        check_name("dataset", dataset_name)
    files = details_files(path)
    if dataset_name is not None and len(files) > 1:
        raise CeError(
            f"{path} holds {len(files)} details files; a dataset name names one task's dataset:"
            " pass one details file with it, or leave the names to the tasks"
        )
    tasks = [_read_task(f, metric, dataset_name) for f in files]
    names: dict[str, Path] = {}
    for task in tasks:
        if task["data"].name in names:
            raise CeError(
                f"task {task['task']!r} (dataset {task['data'].name}) is in {names[task['data'].name]} and"
                f" {task['file']}; pass one run's folder (details/<model>/<date>) or one file"
            )
        names[task["data"].name] = task["file"]
    for task in tasks:  # refuse before any write
        check_examples(store, task["data"])
    results = []
    for task in tasks:
        params = {"file": str(task["file"].resolve()), "model": model, "task": task["task"], "metric": metric}
        if dataset_name is not None:
            params["dataset_name"] = dataset_name
        run = write_ingested(
            store,
            "ingest-lighteval",
            params,
            task["file"],
            model,
            task["data"],
            task["table"],
            task["ingested"],
        )
        graded = [c for c in task["table"]["correct"].to_pylist() if c is not None]
        results.append(
            {
                "run_id": run,
                "model": model,
                "dataset": task["data"].name,
                "task": task["task"],
                "examples": task["table"].num_rows,
                "metric": task["ingested"]["metric"],
                "correct": sum(graded) if graded else None,
                "graded": len(graded),
            }
        )
    return results


# -- reading ---------------------------------------------------------------------------------
def _read_task(file: Path, metric: str | None, dataset_name: str | None) -> dict:
    try:
        return _parse(file, _columns(file), metric, dataset_name)
    except CeError:
        raise
    except UnicodeDecodeError:
        raise CeError(f"cannot read {file}: it holds text that is not UTF-8; re-save the details") from None
    except (pa.ArrowException, OSError) as e:
        raise CeError(
            f"cannot read {file} as lighteval details: {first_line(e)}; pass a details_*.parquet file"
        ) from None


def _columns(file: Path) -> dict[str, list]:
    """doc, model_response and metric as lists of dicts (their needed fields only)."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(file)
    names = schema.names
    if not all(c in names for c in COLUMNS):
        if sum(c in names for c in LEGACY) >= 3:
            raise CeError(
                f"{file} holds lighteval details of version 0.10 or older (flat columns example,"
                " predictions, metrics); ce reads the doc/model_response/metric details of lighteval"
                " 0.11 and later: re-run the evaluation with a recent lighteval"
            )
        missing = [c for c in COLUMNS if c not in names]
        raise CeError(
            f"{file} has no column {missing[0]!r} (its columns: {', '.join(names[:12]) or 'none'}); it is not"
            f" a lighteval details file: pass {KINDS}"
        )
    for c in COLUMNS:
        if names.count(c) > 1 or not pa.types.is_struct(schema.field(c).type):
            raise CeError(
                f"{file}: column {c!r} is not one struct column; it is not a lighteval details file"
            )
    table = pq.read_table(file, columns=list(COLUMNS))
    fields = {
        "doc": (("id", "query", "choices", "gold_index"), ("task_name",)),
        "model_response": ((), ("text", "text_post_processed", "logprobs")),
        "metric": ((), None),
    }
    out: dict[str, list] = {}
    for column, (required, optional) in fields.items():
        array = table[column].combine_chunks()
        have = [array.type.field(i).name for i in range(array.type.num_fields)]
        for name in required:
            if name not in have:
                raise CeError(
                    f"{file}: column {column!r} has no field {name!r}; it is not a lighteval details file"
                )
        if array.null_count:
            row = array.is_null().to_pylist().index(True)
            raise CeError(f"{file}: row {row + 1} has no {column}; every row of lighteval details has one")
        wanted = [n for n in have if optional is None or n in required or n in optional]
        values = {n: pc.struct_field(array, [have.index(n)]).to_pylist() for n in wanted}
        out[column] = [{n: values[n][i] for n in wanted} for i in range(len(array))]
    return out


def _binary(values: list) -> bool:
    """Whether the metric's values are all 0/1 (or bool), at least one present."""
    present = [v for v in values if v is not None]
    return bool(present) and all(
        isinstance(v, bool) or (isinstance(v, int | float) and not isinstance(v, bool) and v in (0, 1))
        for v in present
    )


def pick_metric(metrics: list[dict], asked: str | None, file: Path) -> str | None:
    """The metric ``correct`` comes from: ``asked`` (it must be there, with 0/1 values),
    else the first of CORRECTNESS the rows hold with 0/1 values, else None."""
    keys = list(dict.fromkeys(k for m in metrics for k in m))
    if asked is not None:
        if asked not in keys:
            shown = ", ".join(repr(k) for k in keys[:12]) or "none"
            raise CeError(f"{file} has no metric {asked!r}{did_you_mean(asked, keys)}; its metrics: {shown}")
        if not _binary([m.get(asked) for m in metrics]):
            raise CeError(
                f"{file}: metric {asked!r} is not 0/1 on every example, so it cannot say whether an answer"
                " was right; pick a metric such as acc or em"
            )
        return asked
    for base in CORRECTNESS:
        for key in sorted(
            (k for k in keys if k == base or k.startswith(base + ":")), key=lambda k: (k != base, k)
        ):
            if _binary([m.get(key) for m in metrics]):
                return key
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _sort_key(ids: list[str]):
    """lighteval ids are the examples' indices in their split: sort them as numbers."""
    if all(i.isdigit() and len(i) < 19 for i in ids):
        return lambda i: (int(i), i)
    return lambda i: (0, i)


def _parse(file: Path, columns: dict[str, list], asked: str | None, dataset_name: str | None) -> dict:
    docs, responses, metrics = columns["doc"], columns["model_response"], columns["metric"]
    if not docs:
        raise CeError(f"{file} holds no rows; pass the details of a task that ran")
    metrics = [{k: v for k, v in (m or {}).items()} for m in metrics]
    tasks = {d.get("task_name") for d in docs} - {None, ""}
    if len(tasks) > 1:
        shown = ", ".join(sorted(repr(t) for t in tasks)[:3])
        raise CeError(
            f"{file} holds rows of {len(tasks)} tasks ({shown}); lighteval writes one task per file"
        )
    task = tasks.pop() if tasks else _DATE.sub("", file.stem).removeprefix("details_")
    name = dataset_name or dataset_name_for(task)
    metric = pick_metric(metrics, asked, file)
    notes = []
    keep = list(range(len(docs)))
    if metric is not None:
        keep = [i for i in keep if metrics[i].get(metric) is not None]
        if len(keep) < len(docs):
            notes.append(
                f"{len(docs) - len(keep)} row(s) without metric {metric} left out (another sampling method's)"
            )
    else:
        found = ", ".join(sorted({k for m in metrics for k in m})[:12]) or "none"
        notes.append(f"correctness unknown: no 0/1 metric among the details' metrics ({found})")

    rows = [_row(file, i, docs[i], responses[i] or {}, metrics[i], metric) for i in keep]
    seen: dict[str, int] = {}
    for row in rows:
        if row["id"] in seen:
            raise CeError(
                f"{file}: doc id {row['id']!r} is on rows {seen[row['id']] + 1} and {row['row'] + 1}"
                + (
                    ""
                    if metric
                    else ": pick the rows with --metric (the task ran more than one sampling method)"
                )
                + "; ids must be unique"
            )
        seen[row["id"]] = row["row"]
    order = _sort_key([r["id"] for r in rows])
    rows.sort(key=lambda r: order(r["id"]))

    generative = sum(r["mode"] == "generative" for r in rows)
    choice = sum(r["mode"] == "choice" for r in rows)
    task_kind = "qa" if generative else "classification"
    examples = {
        "example_id": pa.array([r["id"] for r in rows], pa.string()),
        "text": pa.array([r["query"] for r in rows], pa.string()),
        "answers": pa.array([[r["choices"][g] for g in r["gold"]] for r in rows], pa.list_(pa.string())),
    }
    if task_kind == "qa":
        examples["question"] = examples["text"]
    else:
        examples["label"] = pa.array(
            [r["gold"][0] if len(r["gold"]) == 1 else None for r in rows], pa.int64()
        )
    data = from_table(name, task_kind, pa.table(examples), str(file))

    table = pa.table(
        {
            "example_id": pa.array([r["id"] for r in rows], pa.string()),
            "prediction": pa.array([r["prediction"] for r in rows], pa.string()),
            "pred_label": pa.array([r["pred_label"] for r in rows], pa.int64()),
            "score": pa.array([r["score"] for r in rows], pa.float64()),
            "exact": pa.array([r["exact"] for r in rows], pa.float64()),
            "f1": pa.array([r["f1"] for r in rows], pa.float64()),
            "correct": pa.array([r["correct"] for r in rows], pa.bool_()),
            "probs": pa.array([r["probs"] for r in rows], pa.list_(pa.float64())),
            "loglikelihoods": pa.array([r["loglikelihoods"] for r in rows], pa.list_(pa.float64())),
            "metric": pa.array([metric] * len(rows), pa.string()),
        }
    )
    if any(r["pmi"] for r in rows):
        notes.append("loglikelihoods are the first half of the 2n logprobs (PMI: the rest are unconditioned)")
    if any(r["samples"] > 1 for r in rows):
        notes.append("prediction is the first of several generations per example")
    if choice and metric is not None and metric not in ("acc", "loglikelihood_acc"):
        notes.append(
            f"correct comes from {metric}; pred_label and probs are the argmax and softmax of the raw"
            " log-likelihoods"
        )
    if choice and metric in ("acc", "loglikelihood_acc"):
        differ = sum(
            r["correct"] is not None
            and r["pred_label"] is not None
            and r["correct"] != (r["pred_label"] in r["gold"])
            for r in rows
        )
        if differ:
            notes.append(
                f"{differ} example(s) where {metric} disagrees with the argmax of the log-likelihoods"
            )
    ingested = {
        "tool": "lighteval",
        "format": FORMAT,
        "task": task,
        "metric": metric,
        "metrics": sorted({k for m in metrics for k in m})[:50],
        "answer": {
            "classification": "the choice of highest log-likelihood (model_response.logprobs)",
            "qa": "model_response.text_post_processed[0], else text[0]",
        }[task_kind],
        "columns": {"id": "doc.id", "text": "doc.query", "gold": "doc.gold_index", "choices": "doc.choices"},
    }
    if notes:
        ingested["notes"] = notes
    return {"file": file, "task": task, "data": data, "table": table, "ingested": ingested}


def _row(file: Path, i: int, doc: dict, response: dict, metrics: dict, metric: str | None) -> dict:
    at = f"{file}, row {i + 1}"
    example = doc.get("id")
    if isinstance(example, int) and not isinstance(example, bool):
        example = str(example)
    if not isinstance(example, str) or not example:
        raise CeError(f"{at}: doc.id is {example!r}; lighteval gives every example an id (its index)")
    at += f" (id {example!r})"
    query = doc.get("query")
    if query is not None and not isinstance(query, str):
        raise CeError(f"{at}: doc.query is not text")
    choices = doc.get("choices") or []
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise CeError(f"{at}: doc.choices is not a list of texts")
    gold = doc.get("gold_index")
    gold = [] if gold is None else gold if isinstance(gold, list) else [gold]
    for g in gold:
        if not isinstance(g, int) or isinstance(g, bool) or not 0 <= g < len(choices):
            raise CeError(
                f"{at}: doc.gold_index {g!r} is not the index of one of its {len(choices)} choices;"
                " the details are damaged"
            )
    row = {
        "row": i,
        "id": example,
        "query": query,
        "choices": choices,
        "gold": gold,
        "mode": None,
        "prediction": None,
        "pred_label": None,
        "score": None,
        "probs": None,
        "loglikelihoods": None,
        "pmi": False,
        "samples": 0,
    }
    texts = response.get("text_post_processed")
    if texts is None:
        texts = response.get("text")
    logprobs = response.get("logprobs") or []
    if texts:
        if not isinstance(texts, list) or not all(t is None or isinstance(t, str) for t in texts):
            raise CeError(f"{at}: model_response.text is not a list of texts")
        row.update(mode="generative", prediction=texts[0], samples=len(texts))
    elif len(choices) >= 2 and logprobs:
        n = len(choices)
        if len(logprobs) not in (n, 2 * n):
            raise CeError(
                f"{at}: model_response.logprobs has {len(logprobs)} value(s) for {n} choices (expected {n},"
                f" or {2 * n} under PMI); the details are damaged"
            )
        values = logprobs[:n]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v) or v == math.inf:
                raise CeError(
                    f"{at}: model_response.logprobs holds {v!r}; a log-likelihood must be a number below"
                    " +inf (the details are damaged)"
                )
        if all(v == -math.inf for v in values):
            raise CeError(f"{at}: every choice has log-likelihood -inf; the details are damaged")
        lls = np.asarray(values, dtype=np.float64)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            shifted = np.exp(lls - lls.max())
        probs = shifted / shifted.sum()
        pred = int(np.argmax(lls))
        row.update(
            mode="choice",
            prediction=choices[pred],
            pred_label=pred,
            score=float(probs[pred]),
            probs=[float(p) for p in probs],
            loglikelihoods=[float(v) for v in values],
            pmi=len(logprobs) == 2 * n,
        )
    value = metrics.get(metric) if metric else None
    row["correct"] = None if value is None else bool(value == 1)
    row["exact"] = next((_number(metrics.get(k)) for k in EXACT if _number(metrics.get(k)) is not None), None)
    row["f1"] = _number(metrics.get("f1"))
    return row
