"""``ce ingest textattack``: TextAttack's CSV log of an attack becomes a model's attack results.

TextAttack 0.3's ``CSVLogger`` (``AttackArgs(log_to_csv=...)``) writes one row per attacked
example with the columns of :data:`COLUMNS`: both texts, with the words that differ wrapped
in ``[[ ]]`` (``csv_coloring_style="file"``, the default; ``html`` wraps them in ``<font>``
tags, ``plain`` not at all) and line breaks written as ``<SPLIT>``; the goal function's score
of each; the outputs (class labels); the queries; and the result type (``Successful``,
``Failed``, ``Skipped``). Each row becomes

* an example of the dataset: ``example_id`` = the row number from 0, ``text`` = the original
  text with the markers removed and line breaks restored, ``label`` = the ground truth;
* a prediction of the model: its original output against the ground truth (``probs`` stay
  null: the log holds one score, not the distribution);
* an attack result as ``ce attack`` writes it (see :func:`ce.extractors.attack.result_row`):
  succeeded/failed/skipped, the texts, outputs, queries, the words of the original text and
  (succeeded only) the words perturbed, counted by TextAttack's own word splitting.

TextAttack's ``original_score``/``perturbed_score`` are goal-function scores; for
untargeted classification (``UntargetedClassification``, every classification recipe)
that is 1 - P(ground truth). ce's scores are the probability of the output, so they are
known where the output is the ground truth (1 - score) and left null where it is not
(the log lacks the other classes' probabilities). Rows whose result and outputs disagree
with untargeted classification are refused.

The log is untrusted: every row is checked before the store is touched, and any problem
is one error line that names it and the fix.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import pyarrow as pa

from ce.store.errors import CeError, NotFound
from ce.store.schema import check_name
from ce.store.store import Store

from .datasets import DATASETS, Dataset, check_examples, from_table, load_dataset
from .ingest import write_ingested

COLUMNS = (
    "original_text",
    "perturbed_text",
    "original_score",
    "perturbed_score",
    "original_output",
    "perturbed_output",
    "ground_truth_output",
    "num_queries",
    "result_type",
)
RESULTS = {"Successful": "succeeded", "Failed": "failed", "Skipped": "skipped"}
MAX_BYTES = 2 << 30  # a log is read whole
MAX_FIELD = 1_000_000  # characters: a longer field is an unclosed quote, not a text
SPLIT_TOKEN = "<SPLIT>"  # textattack.shared.AttackedText.SPLIT_TOKEN: a line break of the text

# The marks TextAttack puts around the words that differ, by csv_coloring_style: "file"
# [[word]], "html" <font color = red>word</font> (and ANSI codes, should a log hold them).
# A word never holds brackets, angle brackets or white space.
_FILE_MARK = re.compile(r"\[\[([^\[\]\s]+)\]\]")
_HTML_MARK = re.compile(r"<font color = [a-z]+>([^<>\s]+)</font>")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Several inputs (premise and hypothesis): each line is "Key: value" with the key marked.
_MULTI_INPUT = re.compile(r"^(\[\[\[\[\w[\w ]*\]\]\]\]|<font color = bold><font color = underline>\w)")
_LABEL = re.compile(r"\d{1,9}")
_COUNT = re.compile(r"\d{1,18}")
_FLOAT = re.compile(r"-?\d+(\.\d*)?([eE][-+]?\d+)?")
_TOLERANCE = 1e-6  # float32 rounding of 1 - p


def ingest_textattack(store: Store, path: str | Path, model: str, dataset: str, attack: str) -> dict:
    """Record TextAttack's CSV log at ``path`` as ``model``'s results of ``attack`` on the
    dataset ``dataset`` (its examples are the log's original texts and ground truths).
    Returns {run_id, model, dataset, attack, examples, succeeded, failed, skipped}."""
    path = Path(path)
    check_name("model", model)
    check_name("dataset", dataset)
    check_name("attack", attack)
    rows = read_log(path)
    attacks, predictions, examples = _tables(rows)
    data = from_table(dataset, "classification", examples, str(path))
    _check_dataset_name(store, data, path)
    counts = {r: sum(row["result"] == r for row in rows) for r in ("succeeded", "failed", "skipped")}
    ingested = {
        "tool": "textattack",
        "format": "csv",
        "rows": len(rows),
        **counts,
        "example_id": "the row number of the log, from 0",
        "scores": "probability of the output = 1 - TextAttack's goal score (UntargetedClassification)"
        " where the output is the ground truth; null where it is not",
        "lacks": ["probs", "the probability of an output other than the ground truth"],
    }
    params = {"file": str(path.resolve()), "model": model, "dataset": dataset, "attack": attack}
    run = write_ingested(
        store,
        "ingest-textattack",
        params,
        path,
        model,
        data,
        predictions,
        ingested,
        attacks=(attack, attacks),
    )
    return {
        "run_id": run,
        "model": model,
        "dataset": dataset,
        "attack": attack,
        "examples": len(rows),
        **counts,
    }


def read_log(path: Path) -> list[dict]:
    """The checked rows of TextAttack's CSV log: texts unmarked, numbers parsed, the result
    as ce names it; ``line`` is where the row ends in the file."""
    text = _decode(path)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))  # MAX_FIELD is checked below, with the line
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        header = _header(path, next(reader, None))
        rows = []
        for fields in reader:
            if not fields:
                continue  # a blank line
            rows.append(_row(path, reader.line_num, header, fields))
    except csv.Error as e:
        raise CeError(
            f"{path}, line {reader.line_num}: not readable as CSV ({e}); TextAttack quotes every"
            " text and doubles the quotes inside it: fix the quoting on or before that line"
        ) from None
    finally:
        csv.field_size_limit(limit)
    if not rows:
        raise CeError(
            f"{path} holds TextAttack's header but no attack results; log an attack of at least one example"
        )
    return rows


def _decode(path: Path) -> str:
    if not path.exists():
        raise NotFound(f"no such TextAttack log: {path}")
    if not path.is_file():
        raise CeError(f"{path} is not a file; pass TextAttack's CSV log (AttackArgs(log_to_csv=...))")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise CeError(
            f"{path} is {size:,} bytes, more than ce reads at once ({MAX_BYTES:,}); is it a TextAttack log?"
        )
    data = path.read_bytes()
    if not data.strip():
        raise CeError(f"{path} is empty; pass TextAttack's CSV log (AttackArgs(log_to_csv=...))")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise CeError(f"{path} is UTF-16 text; TextAttack writes UTF-8: save it as UTF-8 (no BOM needed)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CeError(
            f"{path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); TextAttack"
            " writes UTF-8: pass the log as it wrote it, or convert it to UTF-8"
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise CeError(
            f"{path} holds a NUL character (at character {nul}), so it is not a text file;"
            " pass TextAttack's CSV log"
        )
    return text


def _header(path: Path, header: list[str] | None) -> list[str]:
    if not header:
        raise CeError(
            f"{path}: line 1 is blank; TextAttack's CSV log starts with its header ({','.join(COLUMNS)})"
        )
    seen = set()
    for name in header:
        if name in seen:
            raise CeError(f"{path}: column {name[:60]!r} occurs twice in the header; keep one of them")
        seen.add(name)
    missing = [c for c in COLUMNS if c not in seen]
    if missing:
        hint = ""
        if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
            hint = " (its header is not comma-separated: save it as CSV with commas)"
        raise CeError(
            f"{path} lacks column(s) {', '.join(missing)}{hint}; pass TextAttack's CSV log"
            f" (AttackArgs(log_to_csv=...)), whose header is {','.join(COLUMNS)}"
        )
    extra = [c for c in header if c not in COLUMNS]
    if extra:
        shown = ", ".join(repr(c[:60]) for c in extra[:5])
        raise CeError(
            f"{path} has column(s) {shown} that TextAttack's CSV log does not; remove them"
            f" (expected exactly {','.join(COLUMNS)})"
        )
    return header


def _row(path: Path, line: int, header: list[str], fields: list[str]) -> dict:
    where = f"{path}, line {line}"
    if len(fields) != len(header):
        raise CeError(
            f"{where}: {len(fields)} field(s) where the header has {len(header)}; quote every text"
            " (TextAttack does) so that its commas stay inside it"
        )
    for name, value in zip(header, fields, strict=True):
        if len(value) > MAX_FIELD:
            raise CeError(
                f"{where}: {name} holds {len(value):,} characters (at most {MAX_FIELD:,}); an unclosed"
                " quote runs on to the end of the file: check the quotes before that line"
            )
    raw = dict(zip(header, fields, strict=True))
    kind = raw["result_type"]
    if kind not in RESULTS:
        if kind == "Maximized":
            raise CeError(
                f"{where}: result_type Maximized comes from a goal function that maximizes a score,"
                " not a classification attack; ce ingests Successful, Failed and Skipped results"
            )
        raise CeError(
            f"{where}: unknown result_type {kind[:40]!r}; TextAttack writes Successful, Failed or Skipped"
        )
    original, perturbed = raw["original_text"], raw["perturbed_text"]
    if _MULTI_INPUT.match(original):
        raise CeError(
            f"{where}: the text has several inputs (e.g. premise and hypothesis); ce ingests"
            " attacks on classifiers of one text"
        )
    row = {
        "line": line,
        "result": RESULTS[kind],
        "original_text": unmark(original),
        "perturbed_text": unmark(perturbed),
        "original_output": _int(where, raw, "original_output", _LABEL, "a class label (0, 1, ...)"),
        "perturbed_output": _int(where, raw, "perturbed_output", _LABEL, "a class label (0, 1, ...)"),
        "ground_truth": _int(where, raw, "ground_truth_output", _LABEL, "a class label (0, 1, ...)"),
        "queries": _int(where, raw, "num_queries", _COUNT, "a count of queries"),
        "original_goal": _score(where, raw, "original_score"),
        "perturbed_goal": _score(where, raw, "perturbed_score"),
    }
    _check_untargeted(where, kind, row)
    return row


def unmark(text: str) -> str:
    """A text of the log as the model saw it: TextAttack's marks around words removed and
    its <SPLIT> turned back into the line break it stands for."""
    text = _FILE_MARK.sub(r"\1", text)
    text = _HTML_MARK.sub(r"\1", text)
    text = _ANSI.sub("", text)
    return text.replace(SPLIT_TOKEN, "\n")


def _int(where: str, raw: dict, name: str, pattern: re.Pattern, what: str) -> int:
    value = raw[name]
    if not pattern.fullmatch(value):
        why = "a classifier's outputs are class labels" if name != "num_queries" else "a whole number"
        raise CeError(
            f"{where}: {name} {value[:40]!r} is not {what} ({why}); ce ingests attacks on classifiers"
        )
    return int(value)


def _score(where: str, raw: dict, name: str) -> float:
    value = raw[name]
    number = float(value) if _FLOAT.fullmatch(value) else math.nan
    if not -_TOLERANCE <= number <= 1 + _TOLERANCE:
        raise CeError(
            f"{where}: {name} {value[:40]!r} is not a score between 0 and 1; TextAttack's"
            " classification goal scores are 1 - the probability of the ground truth"
        )
    return number


def _check_untargeted(where: str, kind: str, row: dict) -> None:
    """Skipped: the model was wrong already; Successful: right, then wrong; Failed: right
    both times. ce's summaries (accuracy before and under attack) rest on these."""
    o, p, g = row["original_output"], row["perturbed_output"], row["ground_truth"]
    if kind == "Skipped":
        ok = o != g
    elif kind == "Successful":
        ok = o == g != p
    else:
        ok = o == g == p
    if not ok:
        raise CeError(
            f"{where}: a {kind} result with original_output {o}, perturbed_output {p} and"
            f" ground_truth_output {g} is not untargeted classification's (Skipped: wrong before;"
            " Successful: right, then wrong; Failed: right both times); ce ingests logs of"
            " TextAttack's UntargetedClassification goal"
        )


def _tables(rows: list[dict]) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(attacks, predictions, examples) of the checked rows, as ``ce attack`` and ``ce
    extract`` fill those kinds."""
    from .attack_env import import_textattack

    import_textattack()
    from textattack.shared import AttackedText

    ids = [str(i) for i in range(len(rows))]
    words, perturbed_words = [], []
    for r in rows:
        original = AttackedText(r["original_text"])
        words.append(len(original.words))
        changed = r["result"] == "succeeded"
        perturbed_words.append(
            len(original.all_words_diff(AttackedText(r["perturbed_text"]))) if changed else 0
        )

    def probability(output: int, goal: float, truth: int) -> float | None:
        return 1.0 - goal if output == truth else None  # untargeted: goal = 1 - P(truth)

    original_score = [probability(r["original_output"], r["original_goal"], r["ground_truth"]) for r in rows]
    attacks = pa.table(
        {
            "example_id": pa.array(ids, pa.string()),
            "ground_truth": pa.array([r["ground_truth"] for r in rows], pa.int64()),
            "result": pa.array([r["result"] for r in rows], pa.string()),
            "original_text": pa.array([r["original_text"] for r in rows], pa.string()),
            "perturbed_text": pa.array([r["perturbed_text"] for r in rows], pa.string()),
            "original_output": pa.array([r["original_output"] for r in rows], pa.int64()),
            "original_score": pa.array(original_score, pa.float64()),
            "perturbed_output": pa.array([r["perturbed_output"] for r in rows], pa.int64()),
            "perturbed_score": pa.array(
                [probability(r["perturbed_output"], r["perturbed_goal"], r["ground_truth"]) for r in rows],
                pa.float64(),
            ),
            "queries": pa.array([r["queries"] for r in rows], pa.int64()),
            "words_perturbed": pa.array(perturbed_words, pa.int64()),
            "words": pa.array(words, pa.int64()),
        }
    )
    predictions = pa.table(
        {
            "example_id": pa.array(ids, pa.string()),
            "prediction": pa.array([str(r["original_output"]) for r in rows], pa.string()),
            "pred_label": pa.array([r["original_output"] for r in rows], pa.int64()),
            "score": pa.array(original_score, pa.float64()),
            "correct": pa.array([r["original_output"] == r["ground_truth"] for r in rows], pa.bool_()),
        }
    )
    examples = pa.table(
        {
            "example_id": pa.array(ids, pa.string()),
            "text": pa.array([r["original_text"] for r in rows], pa.string()),
            "label": pa.array([r["ground_truth"] for r in rows], pa.int64()),
        }
    )
    return attacks, predictions, examples


def _check_dataset_name(store: Store, data: Dataset, path: Path) -> None:
    """Refuse a name whose examples would not be the log's: a dataset the store holds with
    other examples, or one of ce's registered datasets (unless the log is all of it, in
    order), whose later runs the store would then refuse."""
    if data.name in DATASETS:
        try:
            same = load_dataset(data.name).fingerprint == data.fingerprint
        except CeError:
            same = False
        if not same:
            raise CeError(
                f"dataset {data.name} is one of ce's datasets ('ce datasets') and the {len(data)}"
                f" examples of {path} are not all of it in order; give them another dataset name,"
                f" e.g. {data.name}-textattack"
            )
    try:
        check_examples(store, data)
    except CeError:
        raise CeError(
            f"the store's dataset {data.name} holds other examples than the {len(data)} of {path}"
            " (another log, or the same examples in another order or number); give them another"
            " dataset name, or use another --store"
        ) from None
