"""Datasets by name, from a local copy under ``CE_DATA_DIR`` or from the Hugging Face Hub,
and any local file: SQuAD JSON, MRQA JSONL, multiple-choice JSONL (see choice_data.py),
CSV/TSV (text and label columns) or Parquet.

Every loader returns the same thing: a :class:`Dataset` whose ``table`` has the columns of
the store's ``examples`` kind, with stable ids (SQuAD question ids as published). Only a
multiple-choice dataset (task ``choice``) has the ``choices`` column: the others' tables,
and so their fingerprints, are what they were before it existed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ce.store.errors import CeError, NotFound, did_you_mean, error_line
from ce.store.schema import KINDS, check_name, examples_fingerprint
from ce.store.store import Store, parse_shard

from .choice_data import SHAPES, choice_row, shape_of

# the columns of every dataset's table; a multiple-choice one adds ``choices``
EXAMPLE_COLUMNS = [f for f in KINDS["examples"].schema if f.name not in ("run_id", "choices")]
EXAMPLE_SCHEMA = pa.schema(EXAMPLE_COLUMNS)
CHOICE_SCHEMA = EXAMPLE_SCHEMA.append(KINDS["examples"].schema.field("choices"))


def example_schema(task: str) -> pa.Schema:
    """The columns of a ``task`` dataset's table."""
    return CHOICE_SCHEMA if task == "choice" else EXAMPLE_SCHEMA


@dataclass(frozen=True)
class Dataset:
    name: str
    task: str  # 'qa', 'classification' or 'choice' (multiple choice)
    table: pa.Table  # the examples schema, without run_id (and choices but for 'choice')
    source: str  # where it was read from

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the examples' content, the same whether read locally or from the Hub."""
        return examples_fingerprint(self.table.to_batches(max_chunksize=4096))

    def __len__(self) -> int:
        return self.table.num_rows


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    task: str
    local: str | None  # path relative to CE_DATA_DIR
    hub: tuple[str, str | None, str] | None  # (id, config, split)
    description: str
    questions_of: str | None = None  # the questions of this named QA dataset, as unlabelled texts
    prompt: str | None = None  # decoders: the default prompt template (choices.py)
    label_words: str | None = None  # decoders without a head: the default verbalizer (choices.py)


# what a decoder without a classification head reads a sentiment dataset with (choices.py)
SENTIMENT_DEFAULTS = {"prompt": "{text}\nSentiment:", "label_words": "negative,positive"}
QUESTION_PROMPT = "Question: {question}\nAnswer:"

_NAMED = [  # the datasets 'ce datasets' lists, in this order
    DatasetSpec(
        "squad2-dev",
        "qa",
        "squad2/dev-v2.0.json",
        ("rajpurkar/squad_v2", None, "validation"),
        "SQuAD 2.0 dev, 11,873 questions",
    ),
    DatasetSpec(
        "squad2-train",
        "qa",
        "squad2/train-v2.0.json",
        ("rajpurkar/squad_v2", None, "train"),
        "SQuAD 2.0 train, 130,319 questions",
    ),
    DatasetSpec(
        "newsqa",
        "qa",
        "ood/mrqa_NewsQA.jsonl",
        ("mrqa-workshop/mrqa", None, "validation:NewsQA"),
        "NewsQA (MRQA dev), the paper's out-of-distribution set",
    ),
    DatasetSpec(
        "newsqa-sample",
        "qa",
        "ood/mrqa_NewsQA_sample.jsonl",
        None,
        "17 NewsQA questions (MRQA format); fixtures only",
    ),
    DatasetSpec(
        "squadshifts-reddit",
        "qa",
        "ood/squadshifts_reddit_v1.0.json",
        ("squadshifts", "reddit", "test"),
        "SQuADShifts, Reddit",
    ),
    DatasetSpec(
        "squadshifts-amazon",
        "qa",
        "ood/squadshifts_amazon_reviews_v1.0.json",
        ("squadshifts", "amazon", "test"),
        "SQuADShifts, Amazon reviews",
    ),
    DatasetSpec(
        "squadshifts-new-wiki",
        "qa",
        "ood/squadshifts_new_wiki_v1.0.json",
        ("squadshifts", "new_wiki", "test"),
        "SQuADShifts, new Wikipedia",
    ),
    DatasetSpec(
        "squadshifts-nyt",
        "qa",
        "ood/squadshifts_nyt_v1.0.json",
        ("squadshifts", "nyt", "test"),
        "SQuADShifts, New York Times",
    ),
    DatasetSpec(
        "covidqa",
        "qa",
        "ood/covidqa_200423.json",
        ("deepset/covid_qa_deepset", None, "train"),
        "COVID-QA, 1,380 questions",
    ),
    DatasetSpec(
        "squad2-questions",
        "classification",
        None,
        None,
        "the 11,873 questions of SQuAD 2.0 dev as unlabelled texts: out of distribution for"
        " sentence classifiers",
        questions_of="squad2-dev",
    ),
    DatasetSpec(
        "imdb-1k",
        "classification",
        "imdb/imdb_1k.tsv",
        None,
        "the 1,000 IMDB test reviews of the BERT-Attack paper",
        **SENTIMENT_DEFAULTS,
    ),
    DatasetSpec(
        "imdb-test",
        "classification",
        "imdb/aclimdb_test.csv",
        ("stanfordnlp/imdb", None, "test"),
        "IMDB test, 25,000 reviews",
        **SENTIMENT_DEFAULTS,
    ),
    DatasetSpec(
        "imdb-train",
        "classification",
        "imdb/aclimdb_train.csv",
        ("stanfordnlp/imdb", None, "train"),
        "IMDB train (locally the first 20,000 of the 25,000; imdb-val the rest)",
        **SENTIMENT_DEFAULTS,
    ),
    DatasetSpec(
        "imdb-val",
        "classification",
        "imdb/aclimdb_val.csv",
        None,
        "IMDB train, the last 5,000 reviews (local copy only)",
        **SENTIMENT_DEFAULTS,
    ),
    DatasetSpec(
        "sst2-train",
        "classification",
        "sst2/sst2_train.tsv",
        ("stanfordnlp/sst2", None, "train"),
        "GLUE SST-2 train, 67,349 sentences",
        **SENTIMENT_DEFAULTS,
    ),
    DatasetSpec(
        "sst2-dev",
        "classification",
        "sst2/sst2_dev.tsv",
        ("stanfordnlp/sst2", None, "validation"),
        "GLUE SST-2 dev, 872 sentences",
        **SENTIMENT_DEFAULTS,
    ),
    DatasetSpec(
        "arc-easy",
        "choice",
        "choice/arc_easy_test.jsonl",
        ("allenai/ai2_arc", "ARC-Easy", "test"),
        "AI2 ARC Easy test, 2,376 science questions (multiple choice)",
        prompt=QUESTION_PROMPT,
    ),
    DatasetSpec(
        "arc-challenge",
        "choice",
        "choice/arc_challenge_test.jsonl",
        ("allenai/ai2_arc", "ARC-Challenge", "test"),
        "AI2 ARC Challenge test, 1,172 science questions (multiple choice)",
        prompt=QUESTION_PROMPT,
    ),
    DatasetSpec(
        "hellaswag",
        "choice",
        "choice/hellaswag_val.jsonl",
        ("Rowan/hellaswag", None, "validation"),
        "HellaSwag validation, 10,042 contexts and 4 endings each (multiple choice)",
        prompt="{question}",
    ),
    DatasetSpec(
        "mmlu",
        "choice",
        "choice/mmlu_test.jsonl",
        ("cais/mmlu", "all", "test"),
        "MMLU test, 14,042 questions of 57 subjects (multiple choice)",
        prompt=QUESTION_PROMPT,
    ),
    DatasetSpec(
        "boolq",
        "choice",
        "choice/boolq_val.jsonl",
        ("google/boolq", None, "validation"),
        "BoolQ validation, 3,270 yes/no questions on a passage (choices no, yes)",
        prompt="{context}\nQuestion: {question}?\nAnswer:",
    ),
]
DATASETS: dict[str, DatasetSpec] = {d.name: d for d in _NAMED}


def data_dir() -> Path | None:
    value = os.environ.get("CE_DATA_DIR")
    return Path(value).expanduser() if value else None


def local_path(spec: DatasetSpec) -> Path | None:
    root = data_dir()
    if root is None or spec.local is None:
        return None
    path = root / spec.local
    return path if path.is_file() else None


def local_where(spec: DatasetSpec) -> str:
    """Where the local copy of ``spec`` belongs."""
    return f"{data_dir()}/{spec.local}" if data_dir() else f"CE_DATA_DIR/{spec.local}"


def load_dataset(name_or_path: str | Dataset, name: str | None = None) -> Dataset:
    """A registered dataset by name, or a local file (its stem names it unless ``name``);
    a Dataset already loaded is returned as it is (a caller that reuses one reads it once)."""
    if isinstance(name_or_path, Dataset):
        return name_or_path
    if name_or_path in DATASETS:
        spec = DATASETS[name_or_path]
        if spec.questions_of:
            return questions(load_dataset(spec.questions_of), name or spec.name)
        path = local_path(spec)
        if path is not None:
            return _from_file(path, name or spec.name, spec.task)
        if spec.hub is None:
            raise NotFound(
                f"dataset {spec.name} has no Hub copy and {local_where(spec)} is missing;"
                " set CE_DATA_DIR to the folder that holds it"
            )
        return _from_hub(spec, name or spec.name)
    path = Path(name_or_path).expanduser()
    if path.is_file():
        stem = re.sub(r"[^A-Za-z0-9._+-]", "-", path.stem)
        return _from_file(path, name or stem, None)
    if path.exists():
        raise CeError(f"dataset path {path} is a folder; pass a file (.json, .jsonl, .csv, .tsv or .parquet)")
    if os.sep in name_or_path or "." in name_or_path:
        raise NotFound(f"no such file: {name_or_path}; pass a data file or a name from 'ce datasets'")
    raise NotFound(
        f"unknown dataset {name_or_path!r}{did_you_mean(name_or_path, DATASETS)};"
        " use a name from 'ce datasets' or a data file"
    )


def questions(qa: Dataset, name: str) -> Dataset:
    """The questions of a QA dataset as a classification dataset without labels (same ids,
    text = the question, article kept as title): texts to embed and score, not to grade."""
    n = len(qa)
    table = pa.table(
        {
            "example_id": qa.table["example_id"],
            "idx": qa.table["idx"],
            "text": pa.array([q.strip() for q in qa.table["question"].to_pylist()], pa.string()),
            "label": pa.nulls(n, pa.int64()),
            "title": qa.table["title"],
        }
    )
    columns = [
        table[f.name] if f.name in table.column_names else pa.nulls(n, f.type) for f in EXAMPLE_COLUMNS
    ]
    return Dataset(
        name,
        "classification",
        pa.Table.from_arrays(columns, schema=EXAMPLE_SCHEMA),
        f"questions of {qa.source}",
    )


def shard_rows(n: int, shard: str | None) -> slice:
    """The rows of shard "I/N" among ``n``: the I-th of N contiguous slices whose sizes
    differ by at most one (all rows when unsharded). Every job slices its shards here."""
    if shard is None:
        return slice(0, n)
    i, count = parse_shard(shard)
    return slice(i * n // count, (i + 1) * n // count)


SAMPLES = ("stratified", "first")  # --sample: how --limit N chooses its N examples


def check_sample(sample: str) -> None:
    if sample not in SAMPLES:
        raise CeError(f"unknown --sample {sample!r}; use {' or '.join(SAMPLES)}")


def limited(limit: int | None, size: int) -> bool:
    """Whether ``limit`` leaves out some of ``size`` examples (else it counts as no limit)."""
    return limit is not None and limit < size


def settled_sample(limit: int | None, size: int, sample: str, seed: int | None = None) -> dict:
    """The sampling settings as an identity (``identity(..., **settled)``) holds them: left
    out when ``limit`` keeps every example of ``size`` (how it would sample changes nothing,
    and the identity stays that of runs made before samples were); ``seed`` only where
    given (where it seeds the sample alone)."""
    from .identity import LEFT_OUT

    keep = limited(limit, size)
    settled = {"sample": sample if keep else LEFT_OUT}
    if seed is not None:
        settled["seed"] = seed if keep else LEFT_OUT
    return settled


def strata(dataset: Dataset) -> list[str]:
    """The stratum of each example a stratified sample keeps in proportion: its label
    (classification, multiple choice), else its article (QA title), else the example itself."""
    if dataset.task in ("classification", "choice"):
        return [str(label) for label in dataset.table["label"].to_pylist()]
    titles = dataset.table["title"].to_pylist()
    ids = dataset.table["example_id"].to_pylist()
    return [f"title:{t}" if t is not None else f"id:{i}" for t, i in zip(titles, ids, strict=True)]


def _rng(seed: int, name: str) -> np.random.Generator:
    """A generator derived from ``seed`` and ``name`` alone, the same on every machine."""
    digest = hashlib.sha256(f"{seed}\0{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def sample_order(dataset: Dataset, seed: int = 0) -> np.ndarray:
    """The positions of all examples in the order a stratified sample takes them: each
    stratum is shuffled (seeded by its name), its r-th of n_s examples gets the key
    (r + 0.5) / n_s, and examples are sorted by key, ties in a seeded random order. Any
    prefix holds each stratum in proportion, within one example, and the prefix of N lies
    inside the prefix of every M > N."""
    names = strata(dataset)
    members: dict[str, list[int]] = {}
    for position, name in enumerate(names):
        members.setdefault(name, []).append(position)
    keys = np.empty(len(names), dtype=np.float64)
    for name, rows in members.items():
        if len(rows) == 1:  # an example of its own (QA without titles): the ties order it
            keys[rows[0]] = 0.5
            continue
        shuffled = np.asarray(rows)[_rng(seed, f"stratum:{name}").permutation(len(rows))]
        keys[shuffled] = (np.arange(len(rows)) + 0.5) / len(rows)
    ties = _rng(seed, "ties").random(len(names))
    return np.lexsort((ties, keys))


def sample_rows(dataset: Dataset, limit: int | None, seed: int = 0, sample: str = "stratified") -> np.ndarray:
    """The positions (in file order) of the ``limit`` examples ``sample`` takes: a seeded
    sample stratified by label (by article for QA), or the first ``limit``; all when no
    limit applies."""
    check_sample(sample)
    if not limited(limit, len(dataset)):
        return np.arange(len(dataset))
    if sample == "first":
        return np.arange(limit)
    return np.sort(sample_order(dataset, seed)[:limit])


def sample_note(full: Dataset, rows: np.ndarray, sample: str) -> str | None:
    """A note when the limited classification (or multiple-choice) sample at positions
    ``rows`` holds one label only; else None."""
    if full.task not in ("classification", "choice") or len(rows) == len(full):
        return None
    labels = full.table["label"].to_pylist()
    found = {labels[i] for i in rows} - {None}
    if len(found) != 1:
        return None
    (label,) = found
    note = f"note: the sample of {len(rows)} from {full.name} holds only label {label}"
    if set(labels) - {None} == found:
        return f"{note}, as all of {full.name} does"
    if sample == "first":
        return f"{note}; the file may be sorted by label: drop --sample first for a stratified sample"
    return f"{note}; raise --limit"


def say_sample_note(full: Dataset, rows: np.ndarray, sample: str) -> None:
    """Print sample_note, if any, on stderr (the jobs' diagnostics channel)."""
    note = sample_note(full, rows, sample)
    if note:
        print(note, file=sys.stderr)


def subset(
    dataset: Dataset,
    limit: int | None,
    shard: str | None = None,
    *,
    seed: int = 0,
    sample: str = "stratified",
) -> Dataset:
    """The ``limit`` examples of ``sample_rows`` (a seeded sample stratified by label or
    article; ``sample="first"``: the first ones), in file order with their own idx, then the
    ``shard`` ("I/N") of those (see shard_rows). A limited classification sample holding one
    label only says so on stderr."""
    table = dataset.table
    if limited(limit, len(dataset)):
        rows = sample_rows(dataset, limit, seed, sample)
        table = table.slice(0, limit) if sample == "first" else table.take(pa.array(rows))
        say_sample_note(dataset, rows, sample)
    else:
        check_sample(sample)
    if shard is not None:
        rows = shard_rows(len(table), shard)
        table = table.slice(rows.start, rows.stop - rows.start)
    if table is dataset.table:
        return dataset
    return Dataset(dataset.name, dataset.task, table, dataset.source)


def from_table(name: str, task: str, table: pa.Table, source: str) -> Dataset:
    """A dataset whose examples arrive as a table (another tool's log): its columns that the
    examples schema has, the others null; ``idx`` is the row number unless given. Ids must
    be present and unique."""
    check_name("dataset", name)
    n = table.num_rows
    if n == 0:
        raise CeError(f"{source} holds no examples")
    ids = table["example_id"]
    if ids.null_count:
        raise CeError(f"{source}: {ids.null_count} example(s) have no id")
    if pc.count_distinct(ids).as_py() != n:
        counts = pc.value_counts(ids)
        dup = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
        raise CeError(f"{source}: example id {dup!r} occurs more than once; ids must be unique")
    if "idx" not in table.column_names:
        table = table.append_column("idx", pa.array(np.arange(n, dtype=np.int64)))
    schema = example_schema(task)
    columns = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(n, f.type) for f in schema
    ]
    return Dataset(name, task, pa.Table.from_arrays(columns, schema=schema), source)


def check_examples(store: Store, dataset: Dataset) -> bool:
    """True when the store already holds this dataset's examples; error if it holds others."""
    for rec in reversed(store.runs()):
        if rec.get("status") == "complete" and any(
            p["kind"] == "examples" and p["partition"] == {"dataset": dataset.name}
            for p in rec.get("parts", [])
        ):
            if rec.get("dataset_fingerprint") != dataset.fingerprint:
                raise CeError(
                    f"the store's dataset {dataset.name!r} holds other examples (fingerprint"
                    f" {str(rec.get('dataset_fingerprint'))[:12]}, this one"
                    f" {dataset.fingerprint[:12]}); give this data another name with"
                    " --dataset-name, or use another --store"
                )
            return True
    return False


def not_utf8(path: Path, e: UnicodeDecodeError) -> CeError:
    """The error for a data file that is not UTF-8 text, naming the first bad byte."""
    return CeError(
        f"cannot read {path}: it is not UTF-8 text (it holds the byte {e.object[e.start]:#04x});"
        " save it as UTF-8"
    )


def _from_file(path: Path, name: str, task: str | None) -> Dataset:
    check_name("dataset", name)
    suffix = path.suffix.lower()
    readers: dict[str, Callable[[Path], tuple[str, Iterable[dict]]]] = {
        ".json": _read_squad_json,
        ".jsonl": _read_jsonl,
        ".csv": lambda p: ("classification", _read_delimited(p, ",")),
        ".tsv": lambda p: ("classification", _read_delimited(p, "\t")),
        ".parquet": _read_parquet_rows,
    }
    if suffix not in readers:
        raise CeError(
            f"cannot read {path}: unknown file type {suffix!r}; use .json (SQuAD),"
            " .jsonl (MRQA or multiple choice), .csv, .tsv or .parquet"
        )
    try:
        found_task, rows = readers[suffix](path)
        if task is not None and task != found_task and "choice" in (task, found_task):
            raise CeError(
                f"{path} holds {found_task} examples where dataset {name} is {task}; put the"
                f" {task} file there"
            )
        table = _table(list(rows), path, found_task)
    except CeError:
        raise
    except UnicodeDecodeError as e:
        raise not_utf8(path, e) from None
    except (ValueError, KeyError, TypeError, IndexError, pa.ArrowException) as e:
        raise CeError(f"cannot read {path}: {type(e).__name__}: {e}; check the file's format") from None
    return Dataset(name, task or found_task, table, str(path))


def _table(rows: list[dict], path: Path, task: str = "classification") -> pa.Table:
    if not rows:
        raise CeError(f"{path} holds no examples")
    ids = [r["example_id"] for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise CeError(f"{path}: example id {dup!r} occurs more than once; ids must be unique")
    for i, row in enumerate(rows):
        row["idx"] = i
    return pa.Table.from_pylist(rows, schema=example_schema(task))


def _qa_row(qid, title, context, question, answers, impossible) -> dict:
    return {
        "example_id": str(qid),
        "title": title,
        "context": context,
        "question": question,
        "answers": [str(a) for a in answers],
        "is_impossible": bool(impossible),
    }


def _read_squad_json(path: Path) -> tuple[str, Iterable[dict]]:
    data = json.loads(path.read_text(encoding="utf-8-sig"))  # -sig: a leading BOM is dropped
    if not isinstance(data, dict) or "data" not in data:
        raise CeError(f"{path} is not SQuAD JSON (no top-level 'data' list)")
    rows = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                answers = [a["text"] for a in qa.get("answers", [])]
                impossible = qa.get("is_impossible", not answers)
                rows.append(
                    _qa_row(
                        qa["id"], article.get("title"), para["context"], qa["question"], answers, impossible
                    )
                )
    return "qa", rows


def _jsonl_records(path: Path) -> Iterable[tuple[int, object]]:
    """(line number, parsed JSON) of each non-blank line."""
    with open(path, encoding="utf-8-sig") as f:  # -sig: a leading BOM is dropped
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as e:
                raise CeError(
                    f"cannot read {path}, line {number}: not JSON ({e}); write one JSON object per line"
                ) from None
            except RecursionError:
                raise CeError(
                    f"cannot read {path}, line {number}: its JSON nests too deeply; write one flat"
                    " JSON object per line"
                ) from None


def _read_jsonl(path: Path) -> tuple[str, Iterable[dict]]:
    """MRQA (a header line, then contexts with their qas) or multiple-choice records (one
    question per line, in a shape of choice_data.SHAPES), told apart by the first record."""
    records = _jsonl_records(path)
    first = next((record for _, record in records), None)
    records.close()
    if first is None:
        raise CeError(f"{path} holds no examples")
    if isinstance(first, dict) and ("header" in first or "qas" in first):
        return _read_mrqa_jsonl(path)
    if shape_of(first) is None:
        keys = ", ".join(sorted(map(str, first))[:8]) if isinstance(first, dict) else type(first).__name__
        raise CeError(
            f"cannot read {path}: its first record ({keys}) is neither MRQA (a header, then"
            f" context and qas) nor multiple choice: {SHAPES}"
        )
    return "choice", [choice_row(r, i, f"{path}, line {n}") for i, (n, r) in enumerate(_jsonl_records(path))]


def _read_mrqa_jsonl(path: Path) -> tuple[str, Iterable[dict]]:
    rows = []
    for _, record in _jsonl_records(path):
        if "header" in record:
            continue
        for qa in record["qas"]:
            rows.append(
                _qa_row(
                    qa["qid"],
                    record.get("title"),
                    record["context"],
                    qa["question"],
                    qa.get("answers", []),
                    False,
                )
            )
    return "qa", rows


TEXT_COLUMNS = ("text", "sentence", "review", "content")


def _read_delimited(path: Path, sep: str) -> list[dict]:
    csv.field_size_limit(sys.maxsize)
    # utf-8-sig: the byte order mark Excel and Notepad write is not part of the first column's name
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter=sep, quoting=csv.QUOTE_MINIMAL if sep == "," else csv.QUOTE_NONE))
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if "label" in header and any(c in header for c in TEXT_COLUMNS):
        text_col = next(header.index(c) for c in TEXT_COLUMNS if c in header)
        label_col = header.index("label")
        id_col = next((header.index(c) for c in ("example_id", "id") if c in header), None)
        body, first = rows[1:], 2
    elif rows and len(rows[0]) == 2 and rows[0][1].strip().lstrip("-").isdigit():
        text_col, label_col, id_col, body, first = 0, 1, None, rows, 1  # text<sep>label, no header
    else:
        raise CeError(
            f"{path}: need a header with a text column ({', '.join(TEXT_COLUMNS)})"
            " and a label column, or two columns text and label without a header"
        )
    width = max(text_col, label_col, id_col or 0) + 1
    hint = (
        "quote a text that holds a comma or a line break" if sep == "," else "no tab or line break in a text"
    )
    out = []
    for i, r in enumerate(body):
        if not r:
            continue
        if len(r) < width:
            raise CeError(
                f"cannot read {path}, row {i + first}: {len(r)} column(s) where row 1 has"
                f" {len(rows[0])}; give every row all the columns ({hint})"
            )
        label = r[label_col].strip()
        if label and not label.lstrip("-").isdigit():
            raise CeError(
                f"cannot read {path}, row {i + first}: label {label!r} is not an integer;"
                " write labels as 0, 1, ..."
            )
        out.append(
            {
                "example_id": r[id_col] if id_col is not None else str(i),
                "text": r[text_col],
                "label": int(label) if label else None,
            }
        )
    return out


def _read_parquet_rows(path: Path) -> tuple[str, Iterable[dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except OSError as e:  # pyarrow's own errors are caught where files are read; this is not one
        raise CeError(f"cannot read {path}: not a readable Parquet file ({error_line(e)[:120]})") from None
    names = set(table.column_names)
    if "choices" in names and "question" in names:  # multiple choice, MMLU-style
        return "choice", [choice_row(r, i, f"{path}, row {i + 1}") for i, r in enumerate(table.to_pylist())]
    if "question" in names and "context" in names:
        task = "qa"
    elif names & set(TEXT_COLUMNS):
        task = "classification"
        text = next(c for c in TEXT_COLUMNS if c in names)
        if text != "text":
            table = table.rename_columns(["text" if c == text else c for c in table.column_names])
    else:
        raise CeError(
            f"{path}: need columns question and context (QA) or a text column"
            f" ({', '.join(TEXT_COLUMNS)}); found {', '.join(sorted(names))}"
        )
    if "example_id" not in names:
        id_col = "id" if "id" in names else None
        ids = table[id_col].cast(pa.string()) if id_col else pa.array([str(i) for i in range(table.num_rows)])
        table = table.append_column("example_id", ids)
    keep = [f.name for f in EXAMPLE_COLUMNS if f.name in table.column_names]
    rows = table.select(keep).to_pylist()
    for r in rows:
        r["example_id"] = str(r["example_id"])
    return task, rows


def _from_hub(spec: DatasetSpec, name: str) -> Dataset:
    import datasets as hf

    from . import hub

    hub_id, config, split = spec.hub
    split, _, subset = split.partition(":")
    try:
        with hub.access():  # one probe of a few seconds; the cache only when the Hub is out of reach
            ds = hf.load_dataset(hub_id, config, split=split)
    except Exception as e:  # offline, missing, gated, no such config: one line that says what to do
        raise CeError(
            f"could not load {spec.name} from the Hugging Face Hub ({hub_id}): {hub_failure(spec, e)}"
        ) from None
    if subset:
        ds = ds.filter(lambda r: r.get("subset") == subset)
    rows = []
    for i, r in enumerate(ds):
        if spec.task == "choice":
            rows.append(choice_row(r, i, f"{hub_id} ({spec.name}), row {i}"))
        elif spec.task == "qa":
            answers = r["answers"]["text"] if isinstance(r["answers"], dict) else r["answers"]
            rows.append(
                _qa_row(
                    r.get("id", r.get("qid", i)),
                    r.get("title"),
                    r["context"],
                    r["question"],
                    answers,
                    not answers,
                )
            )
        else:
            rows.append(
                {
                    "example_id": str(r.get("idx", i)),
                    "text": r.get("text", r.get("sentence")),
                    "label": r["label"],
                }
            )
    return Dataset(name, spec.task, _table(rows, Path(hub_id), spec.task), f"hf://{hub_id}")


OFFLINE_SWITCHES = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_switch() -> str | None:
    """The environment variable that keeps ``datasets`` or huggingface_hub off the Hub."""
    return next(
        (n for n in OFFLINE_SWITCHES if os.environ.get(n, "").upper() in ("1", "ON", "YES", "TRUE")), None
    )


def hub_failure(spec: DatasetSpec, error: Exception) -> str:
    """Why ``datasets`` could not load ``spec`` from the Hub, and the fix: a config or split
    it lacks, a gated or missing repo, an offline switch, an unreachable Hub, else the error."""
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    hub_id, config, split = spec.hub
    copy = f"put a local copy at {local_where(spec)}" if spec.local else "retry where the Hub can be reached"
    if spec.local and data_dir() is None:
        copy += " and set CE_DATA_DIR"
    chain = _chain(error)
    text = error_line(error)[:300]
    if isinstance(error, ValueError) and ("BuilderConfig" in text or "Config name is missing" in text):
        return f"it has no config {config!r} ({text}); {copy}"
    if isinstance(error, ValueError) and "Unknown split" in text:
        return f"it has no split {split!r} ({text}); {copy}"
    if any(isinstance(e, GatedRepoError) for e in chain) or (
        isinstance(error, DatasetNotFoundError) and "gated" in text
    ):
        return (
            "the dataset is gated: run `hf auth login` (or set HF_TOKEN) and accept its terms at"
            f" https://huggingface.co/datasets/{hub_id}, or {copy}"
        )
    if any(isinstance(e, DatasetNotFoundError | RepositoryNotFoundError) for e in chain):
        return f"the Hub has no dataset {hub_id} (or it is private: run `hf auth login`); {copy}"
    if any(isinstance(e, _connection_errors()) for e in chain):
        switch = offline_switch()
        if switch:
            shown = f"{switch}={os.environ[switch]}"
            return f"the Hub is off here ({shown} is set) and no copy is cached; {copy}, or unset {switch}"
        return (
            f"the Hub at {constants.ENDPOINT} cannot be reached and no copy is cached; {copy}, or retry"
            " once online (HF_HUB_OFFLINE=1 reads the local cache only, without trying the Hub)"
        )
    return f"{type(error).__name__}: {text}; {copy}"


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and the exceptions it was raised from or while handling."""
    found: list[BaseException] = []
    while error is not None and error not in found:
        found.append(error)
        error = error.__cause__ or error.__context__
    return found


def _connection_errors() -> tuple[type[BaseException], ...]:
    """The exception classes of a Hub that cannot be reached (the offline switch included)."""
    import httpx
    import requests
    from huggingface_hub.errors import LocalEntryNotFoundError

    return (
        ConnectionError,  # builtin: datasets re-raises as it, OfflineModeIsEnabled is one
        TimeoutError,
        LocalEntryNotFoundError,
        requests.ConnectionError,
        requests.Timeout,
        httpx.ConnectError,
        httpx.TimeoutException,
    )
