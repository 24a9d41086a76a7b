"""``ce ingest predictions``: any table of per-example answers (CSV, TSV, JSONL, JSON or
Parquet) becomes a model's predictions.

The table names its columns: the example id, the answer, and optionally whether the answer
was correct, the gold answer, the answer distribution (one column per class, or one list
column) and the example's text. Gold comes from a known ce dataset when ``dataset`` names
one (every id must be in it), else from the table (a dataset built from the file).

Nothing here builds SQL: the file is read with pyarrow (CSV, TSV, Parquet) or Python's own
JSON parser (JSONL and JSON: pyarrow's JSON reader replaces bytes that are not UTF-8
instead of refusing them), and column names are only ever dictionary keys.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import pyarrow as pa

from ce.store.errors import CeError, NotFound, did_you_mean, error_line
from ce.store.schema import check_name
from ce.store.store import Store

from .datasets import DATASETS, Dataset, from_table, load_dataset, not_utf8
from .ingest import write_ingested
from .squad_metric import score as squad_score

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
KINDS = "a .csv, .tsv, .jsonl, .json or .parquet file"
PROBS_TOLERANCE = 1e-3  # how far a row's probabilities may sum from 1
INT64 = 2**63
_INTEGER = re.compile(r"[+-]?\d{1,19}")
_TRUE = {"true", "1", "1.0"}
_FALSE = {"false", "0", "0.0"}


# -- files ---------------------------------------------------------------------------------
def source_file(path: str | Path, what: str, kinds: str) -> Path:
    """``path`` when it is a regular file (a symlink to one counts); else a one-line error
    that says what it is instead: missing, a broken symlink, a symlink loop, a folder, a
    FIFO or device (reading one could block for ever). ``kinds`` lists the files wanted."""
    path = Path(path).expanduser()
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise CeError(f"{what} {path} is a symlink loop; pass the file it should point to") from None
        if os.path.islink(path):
            raise NotFound(f"{what} {path} is a broken symlink; pass the file it should point to") from None
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            raise NotFound(f"no such {what}: {path}; pass {kinds}") from None
        raise CeError(f"cannot read {what} {path}: {e.strerror}; check its permissions") from None
    if stat.S_ISDIR(st.st_mode):
        raise CeError(f"{what} {path} is a folder; pass {kinds}")
    if not stat.S_ISREG(st.st_mode):
        raise CeError(f"{what} {path} is not a regular file (a FIFO, socket or device); pass {kinds}")
    return path


def first_line(error: BaseException) -> str:
    """The line of an error that says what went wrong (error_line), without its closing full
    stop: it goes inside a sentence."""
    return error_line(error).rstrip(".")[:300]


def _block_size(path: Path) -> int:
    """pyarrow's block: big enough that no row straddles two (a huge cell is not an error)."""
    return min(max(path.stat().st_size + 1, 1 << 20), 1 << 30)


def read_columns(path: Path, fmt: str, names: list[str]) -> dict[str, list]:
    """The values of columns ``names`` of the table at ``path``, as Python lists (CSV and TSV
    cells as text). Errors name the file and the fix."""
    try:
        if fmt in ("csv", "tsv"):
            return _read_delimited(path, "," if fmt == "csv" else "\t", names)
        if fmt in ("jsonl", "json"):
            return _read_json(path, fmt, names)
        return _read_parquet(path, names)
    except CeError:
        raise
    except UnicodeDecodeError as e:
        raise not_utf8(path, e) from None
    except (pa.ArrowException, ValueError, OSError) as e:
        text = first_line(e)
        if "UTF8" in text or "UTF-8" in text:
            raise CeError(
                f"cannot read {path}: it holds text that is not UTF-8 ({text}); save it as UTF-8"
            ) from None
        raise CeError(f"cannot read {path} as {fmt.upper()}: {text}; check the file's format") from None


def _check_names(path: Path, found: list[str], names: list[str]) -> None:
    for name in dict.fromkeys(names):
        if name not in found:
            shown = ", ".join(repr(f) for f in found[:20]) + (", ..." if len(found) > 20 else "")
            raise CeError(
                f"{path} has no column {name!r}{did_you_mean(name, found)}; its columns: {shown or 'none'}"
            )
        if found.count(name) > 1:
            raise CeError(
                f"{path} has {found.count(name)} columns named {name!r}; rename them so each is unique"
            )


def _read_delimited(path: Path, delimiter: str, names: list[str]) -> dict[str, list]:
    import pyarrow.csv as pacsv

    read = pacsv.ReadOptions(block_size=_block_size(path))
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    found = pacsv.open_csv(path, read_options=read, parse_options=parse).schema.names
    _check_names(path, found, names)
    wanted = list(dict.fromkeys(names))
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in wanted}, include_columns=wanted, strings_can_be_null=False
    )
    table = pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    return {n: [v if v != "" else None for v in table[n].to_pylist()] for n in wanted}


def _read_json(path: Path, fmt: str, names: list[str]) -> dict[str, list]:
    text = path.read_bytes().decode("utf-8")  # strict: a byte that is not UTF-8 is an error
    text = text.removeprefix("\ufeff")
    where = "it"
    try:
        if fmt == "json":
            rows = json.loads(text)
            if not isinstance(rows, list):
                raise CeError(f"{path} must hold a JSON list of objects, one per example (or use .jsonl)")
        else:
            rows = []
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    where = f"line {number}"
                    rows.append(json.loads(line))
    except RecursionError:
        raise CeError(
            f"cannot read {path}: {where} nests too deeply; write one flat object per example"
        ) from None
    except ValueError as e:
        raise CeError(
            f"cannot read {path}: {where} is not JSON ({e}); write one JSON object per line"
        ) from None
    found: dict[str, None] = {}
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise CeError(f"cannot read {path}: row {i} is not a JSON object; write one object per example")
        found.update(dict.fromkeys(row))
    _check_names(path, list(found), names)
    return {n: [row.get(n) for row in rows] for n in dict.fromkeys(names)}


def _read_parquet(path: Path, names: list[str]) -> dict[str, list]:
    import pyarrow.parquet as pq

    found = pq.read_schema(path).names
    _check_names(path, found, names)
    wanted = list(dict.fromkeys(names))
    table = pq.read_table(path, columns=wanted)
    return {n: table.column(n).to_pylist() for n in wanted}


# -- values --------------------------------------------------------------------------------
def where(row: int, ids: list[str] | None) -> str:
    """'row 3 (id 'x')': a data row (1-based) as an error names it."""
    return f"row {row + 1}" + (f" (id {ids[row]!r})" if ids and ids[row] is not None else "")


def as_id(value: Any, row: int, column: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        if not value:
            raise CeError(f"row {row + 1} has an empty id in column {column!r}; give every row an id")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None:
        raise CeError(f"row {row + 1} has no id in column {column!r}; give every row an id")
    raise CeError(
        f"row {row + 1}: id {_short(value)} in column {column!r} is a {type(value).__name__};"
        " ids must be text or integers"
    )


def as_text(value: Any, row: int, column: str, ids: list[str] | None) -> str | None:
    """A cell as text: integral numbers without a fraction (1.0 -> '1'), None as None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):  # a missing value as pandas writes it
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    raise CeError(
        f"{where(row, ids)}: the value {_short(value)} of column {column!r} is a {type(value).__name__};"
        " give a text or a number"
    )


def as_index(text: str | None) -> int | None:
    """The label index a text spells (an integer that fits int64), else None."""
    if text is None or not _INTEGER.fullmatch(text.strip()):
        return None
    value = int(text.strip())
    return value if -INT64 <= value < INT64 else None


def as_bool(value: Any, row: int, column: str, ids: list[str]) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):  # missing
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise CeError(
        f"{where(row, ids)}: correctness {_short(value)} in column {column!r} is not true/false or 1/0;"
        " write true, false, 1 or 0"
    )


def as_float(value: Any, row: int, column: str, ids: list[str]) -> float:
    if isinstance(value, bool) or value is None:
        bad = "missing" if value is None else f"{_short(value)} (not a number)"
        raise CeError(
            f"{where(row, ids)}: probability in column {column!r} is {bad}; give a number on every row"
        )
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise CeError(
            f"{where(row, ids)}: probability {_short(value)} in column {column!r} is not a number;"
            " write numbers such as 0.25"
        ) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_probs(rows: list[list[float]], ids: list[str], what: str) -> None:
    """Each row an answer distribution: finite, non-negative, summing to 1 within
    PROBS_TOLERANCE, as long as the first row. Not renormalised: an error names the row.
    ``what`` names where the probabilities are ("column 'p'", "columns 'p0', 'p1'")."""
    width = len(rows[0]) if rows else 0
    for i, probs in enumerate(rows):
        if not probs:
            raise CeError(f"{where(i, ids)}, {what}: no probabilities; give one per class on every row")
        if len(probs) != width:
            raise CeError(
                f"{where(i, ids)}, {what}: {len(probs)} probabilities where row 1 has {width};"
                " give one probability per class, the same classes on every row"
            )
        for value in probs:
            if not math.isfinite(value):
                raise CeError(
                    f"{where(i, ids)}, {what}: {value!r} is not a finite number; give finite probabilities"
                )
            if value < 0:
                raise CeError(f"{where(i, ids)}, {what}: {value!r} is negative; probabilities cannot be")
        total = math.fsum(probs)
        if abs(total - 1.0) > PROBS_TOLERANCE:
            raise CeError(
                f"{where(i, ids)}, {what}: the probabilities sum to {total:.6g}, not 1 (within"
                f" {PROBS_TOLERANCE}); give probabilities (a softmax), not logits or scores: ce does not"
                " renormalise them"
            )


def _probs_cells(values: list[Any], column: str, ids: list[str]) -> list[list[float]]:
    rows = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                value = None
            if not isinstance(value, list):
                raise CeError(
                    f"{where(i, ids)}: column {column!r} holds text that is not a JSON list of numbers;"
                    ' write a list such as "[0.2, 0.8]"'
                )
        if value is None:
            raise CeError(f"{where(i, ids)}: column {column!r} is empty; give the probabilities on every row")
        if not isinstance(value, list | tuple):
            raise CeError(
                f"{where(i, ids)}: column {column!r} holds {_short(value)}, not a list of probabilities;"
                " or name one column per class instead"
            )
        rows.append([as_float(v, i, column, ids) for v in value])
    return rows


# -- ingest --------------------------------------------------------------------------------
def ingest_table(
    store: Store,
    path: str | Path,
    model: str,
    dataset: str,
    *,
    id_column: str,
    answer_column: str,
    correct_column: str | None = None,
    gold_column: str | None = None,
    prob_columns: list[str] | None = None,
    probs_column: str | None = None,
    text_column: str | None = None,
    dataset_name: str | None = None,
) -> dict:
    """Write ``model``'s predictions from the table at ``path``: one row per example.

    ``dataset`` is a known ce dataset (or a data file ce reads), whose examples must hold
    every id and which brings the gold; any other name becomes the name of a dataset built
    from the table (ids, ``text_column``, gold from ``gold_column``). ``correct`` comes from
    ``correct_column`` (bool, 0/1, "true"/"false"), else from the answer against the gold
    (the label of a classification dataset: a built one is that when gold and answers are
    all integers; SQuAD exact match for a known QA dataset; equal text otherwise), else
    stays unknown (null, and the run's ``ingested`` says so). Answers that are integers fill
    ``pred_label``; ``probs`` (``prob_columns``, one per class in class order, or the list
    column ``probs_column``) must be distributions. Nothing is written unless all is valid."""
    source = source_file(path, "table", KINDS)
    check_name("model", model)
    fmt = FORMATS.get(source.suffix.lower())
    if fmt is None:
        raise CeError(f"cannot read {source}: unknown table type {source.suffix!r}; use {KINDS}")
    if prob_columns is not None and probs_column is not None:
        raise CeError("give the probabilities either as one column per class or as one list column, not both")
    if prob_columns is not None and not prob_columns:
        raise CeError("the list of probability columns is empty; name one column per class, in class order")
    known = _known_dataset(dataset)
    if known and (gold_column or text_column):
        raise CeError(
            f"dataset {dataset} is a known dataset and brings its own texts and gold; drop the gold and"
            " text columns, or give the dataset a new name to build it from the table"
        )
    columns = {"id": id_column, "answer": answer_column}
    for role, name in [("correct", correct_column), ("gold", gold_column), ("text", text_column)]:
        if name is not None:
            columns[role] = name
    if prob_columns is not None:
        columns["probs"] = list(prob_columns)
    elif probs_column is not None:
        columns["probs"] = probs_column
    names = [id_column, answer_column, *(n for n in (correct_column, gold_column, text_column) if n)]
    names += list(prob_columns or []) + ([probs_column] if probs_column else [])
    for name in names:
        if not isinstance(name, str) or not name:
            raise CeError(f"column name {name!r} is not a column name; pass the header's text")
    if dataset_name is not None or not known:
        check_name("dataset", dataset_name or dataset)
    cells = read_columns(source, fmt, names)
    n = len(cells[id_column])
    if n == 0:
        raise CeError(f"{source} holds no rows; ingest a table with one row per example")

    try:
        data, table, correct_from, notes = _predictions(
            source, dataset, dataset_name, known, cells, columns, n
        )
    except CeError as e:
        if str(e).startswith("row "):  # a row's problem: say which file it is in
            raise type(e)(f"{source}, {e}") from None
        raise
    ingested = {"tool": "table", "format": fmt, "columns": columns, "correct_from": correct_from}
    if notes:
        ingested["notes"] = notes
    params = {"file": str(source.resolve()), "model": model, "dataset_arg": dataset, "columns": columns}
    run = write_ingested(store, "ingest-predictions", params, source, model, data, table, ingested)
    right = [c for c in table["correct"].to_pylist() if c is not None]
    return {
        "run_id": run,
        "model": model,
        "dataset": data.name,
        "examples": n,
        "correct": sum(right) if right else None,
        "graded": len(right),
        "correct_from": correct_from,
    }


def _predictions(
    source: Path,
    dataset: str,
    dataset_name: str | None,
    known: bool,
    cells: dict[str, list],
    columns: dict,
    n: int,
) -> tuple[Dataset, pa.Table, str | None, list[str]]:
    """The dataset and the predictions table of the table's cells, every value checked."""
    id_column, answer_column = columns["id"], columns["answer"]
    correct_column, gold_column, text_column = (
        columns.get("correct"),
        columns.get("gold"),
        columns.get("text"),
    )
    prob_columns = columns["probs"] if isinstance(columns.get("probs"), list) else None
    probs_column = columns["probs"] if isinstance(columns.get("probs"), str) else None
    ids = [as_id(v, i, id_column) for i, v in enumerate(cells[id_column])]
    seen: dict[str, int] = {}
    for i, example in enumerate(ids):
        if example in seen:
            raise CeError(
                f"{source}: id {_short(example)} is on rows {seen[example] + 1} and {i + 1};"
                " give one row per example (ids must be unique)"
            )
        seen[example] = i
    answers = [as_text(v, i, answer_column, ids) for i, v in enumerate(cells[answer_column])]
    labels = [as_index(a) for a in answers]

    probs = None
    if prob_columns:
        per_column = [[as_float(v, i, c, ids) for i, v in enumerate(cells[c])] for c in prob_columns]
        probs = [list(row) for row in zip(*per_column, strict=True)]
        check_probs(probs, ids, f"columns {', '.join(map(repr, prob_columns))}")
    elif probs_column:
        probs = _probs_cells(cells[probs_column], probs_column, ids)
        check_probs(probs, ids, f"column {probs_column!r}")
    if probs is not None:
        for i, label in enumerate(labels):
            if label is not None and not 0 <= label < len(probs[i]):
                raise CeError(
                    f"{where(i, ids)}: answer {label} is not a class of the {len(probs[i])} probabilities;"
                    " give one probability per class, in class order"
                )

    if known:
        data = load_dataset(dataset, dataset_name)
        _check_ids_in(source, ids, data)
    else:
        name = dataset_name or dataset
        data = _dataset_from_table(source, name, ids, cells, gold_column, text_column, answers)

    correct, exact, f1, correct_from = _correctness(data, known, ids, answers, labels, cells, correct_column)
    notes = []
    missing = sum(a is None for a in answers)
    if missing and correct_from and not correct_column:
        notes.append(f"{missing} row(s) without an answer graded as wrong (an empty answer for QA)")
    if correct_from is None:
        notes.append("correctness unknown: the table has no correctness column and the dataset no gold")
    table = pa.table(
        {
            "example_id": pa.array(ids, pa.string()),
            "prediction": pa.array(answers, pa.string()),
            "pred_label": pa.array(labels, pa.int64()),
            "score": pa.array(
                [None if probs is None or lab is None else probs[i][lab] for i, lab in enumerate(labels)],
                pa.float64(),
            ),
            "exact": pa.array(exact, pa.float64()),
            "f1": pa.array(f1, pa.float64()),
            "correct": pa.array(correct, pa.bool_()),
            "probs": pa.array(probs if probs is not None else [None] * n, pa.list_(pa.float64())),
            "metric": pa.array([correct_column] * n if correct_column else [None] * n, pa.string()),
        }
    )
    return data, table, correct_from, notes


def _known_dataset(dataset: str) -> bool:
    """Whether ``dataset`` names a ce dataset or a data file ce reads (else: a new name)."""
    if not isinstance(dataset, str) or not dataset:
        raise CeError("give a dataset: a name from 'ce datasets', or a new name for the table's own examples")
    if dataset in DATASETS:
        return True
    path = Path(dataset).expanduser()
    return path.suffix.lower() in (".json", ".jsonl", ".csv", ".tsv", ".parquet") and path.is_file()


def _check_ids_in(source: Path, ids: list[str], data: Dataset) -> None:
    have = set(data.table["example_id"].to_pylist())
    unknown = [i for i in ids if i not in have]
    if unknown:
        sample = data.table["example_id"][0].as_py()
        raise CeError(
            f"{source}: {len(unknown)} of its {len(ids)} ids are not in dataset {data.name}, e.g."
            f" {_short(unknown[0])} (its ids look like {sample!r}); is this a table of another dataset?"
        )


def _dataset_from_table(
    source: Path,
    name: str,
    ids: list[str],
    cells: dict[str, list],
    gold_column: str | None,
    text_column: str | None,
    answers: list[str | None],
) -> Dataset:
    check_name("dataset", name)
    columns: dict[str, pa.Array] = {"example_id": pa.array(ids, pa.string())}
    task = "classification"
    if text_column:
        texts = [as_text(v, i, text_column, ids) for i, v in enumerate(cells[text_column])]
        columns["text"] = pa.array(texts, pa.string())
    if gold_column:
        golds = [as_text(v, i, gold_column, ids) for i, v in enumerate(cells[gold_column])]
        if all(g is None for g in golds):
            raise CeError(
                f"{source}: the gold column {gold_column!r} is empty on every row;"
                " name the column of gold answers"
            )
        gold_labels = [as_index(g) for g in golds]
        spelled = [g is None or lab is not None for g, lab in zip(golds, gold_labels, strict=True)]
        if all(spelled) and all(a is None or as_index(a) is not None for a in answers):  # labels
            columns["label"] = pa.array(gold_labels, pa.int64())
        else:
            task = "qa"
            gold_lists = [[g] if g is not None else None for g in golds]
            columns["answers"] = pa.array(gold_lists, pa.list_(pa.string()))
            if text_column:
                columns["question"] = columns["text"]
    elif any(a is not None and as_index(a) is None for a in answers):
        task = "qa"  # free-text answers without gold: not labels
    return from_table(name, task, pa.table(columns), str(source))


def _correctness(
    data: Dataset,
    known: bool,
    ids: list[str],
    answers: list[str | None],
    labels: list[int | None],
    cells: dict[str, list],
    correct_column: str | None,
) -> tuple[list, list, list, str | None]:
    """(correct, exact, f1, how) per row: from the column, else against the gold, else unknown."""
    n = len(ids)
    none = [None] * n
    by_id = {e: i for i, e in enumerate(data.table["example_id"].to_pylist())}
    rows = [by_id[e] for e in ids]
    gold_labels = data.table["label"].to_pylist()
    gold_answers = data.table["answers"].to_pylist()
    if correct_column:
        correct = [as_bool(v, i, correct_column, ids) for i, v in enumerate(cells[correct_column])]
        return correct, none, none, f"column {correct_column}"
    if any(gold_labels[r] is not None for r in rows):
        correct = []
        for i, r in enumerate(rows):
            gold = gold_labels[r]
            if gold is None:
                correct.append(None)
            elif answers[i] is None:
                correct.append(False)  # no answer: wrong, and the run says how many
            elif labels[i] is None:
                raise CeError(
                    f"{where(i, ids)}: answer {_short(answers[i])} is not a label index, so ce cannot"
                    f" grade it against gold label {gold}; write answers as 0, 1, ... or give a"
                    " correctness column"
                )
            else:
                correct.append(labels[i] == gold)
        return correct, none, none, "answer == gold label"
    if known and data.task == "qa" and any(gold_answers[r] is not None for r in rows):
        exact, f1 = [], []
        for i, r in enumerate(rows):
            e, f = squad_score(gold_answers[r], answers[i] or "")
            exact.append(e)
            f1.append(f)
        return [e == 1.0 for e in exact], exact, f1, "SQuAD exact match against the dataset's answers"
    if any(gold_answers[r] for r in rows):
        correct = [
            None if not gold_answers[r] else answers[i] == gold_answers[r][0] for i, r in enumerate(rows)
        ]
        return correct, none, none, "answer == gold text"
    return none, none, none, None
