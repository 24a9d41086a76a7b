"""``ingest_table``: any table of per-example answers (CSV, TSV, JSONL, JSON, Parquet)
becomes predictions; every stored field is checked against a recount made here, and every
hostile table is refused in one line that names the problem and the fix, the store unchanged.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ce.extractors.datasets import load_dataset
from ce.extractors.ingest_table import ingest_table
from ce.extractors.squad_metric import score as squad_score
from ce.store import Store
from ce.store.errors import CeError
from ce.store.schema import KINDS

from .conftest import needs_data, snapshot, stored

PRED_COLUMNS = [f.name for f in KINDS["predictions"].schema if f.name != "run_id"]


def last_record(store_dir: Path) -> dict:
    return Store(store_dir).runs()[-1]


def prediction(example_id, **values) -> dict:
    row = dict.fromkeys(PRED_COLUMNS)
    row.update(example_id=example_id, **values)
    return row


def close(found: list[dict], wanted: list[dict]) -> None:
    assert [f["example_id"] for f in found] == [w["example_id"] for w in wanted]
    for f, w in zip(found, wanted, strict=True):
        assert set(f) == set(w)
        for key, value in w.items():
            if isinstance(value, float):
                assert math.isclose(f[key], value, rel_tol=1e-12), (w["example_id"], key, f[key], value)
            elif isinstance(value, list) and value and isinstance(value[0], float):
                assert f[key] == pytest.approx(value, rel=1e-12), (w["example_id"], key)
            else:
                assert f[key] == value, (w["example_id"], key, f[key], value)


# -- tables that work -------------------------------------------------------------------------
CSV = (
    "uid,text,pred,gold,p0,p1,p2\n"
    "001,a good film,1,1,0.1,0.7,0.2\n"
    '002,"bad, truly ""bad""",0,1,0.5,0.25,0.25\n'
    "3,meh,2,2,0.0,0.0,1.0\n"
    "004,no gold here,0,,0.9,0.05,0.05\n"
)


def test_csv_builds_its_dataset_and_grades_against_its_gold(tmp_path, store_dir):
    path = tmp_path / "preds.csv"
    path.write_text(CSV)
    out = ingest_table(
        Store(store_dir),
        path,
        "bert-pruned",
        "my-reviews",
        id_column="uid",
        answer_column="pred",
        gold_column="gold",
        prob_columns=["p0", "p1", "p2"],
        text_column="text",
    )
    assert out["dataset"] == "my-reviews" and out["examples"] == 4
    assert (out["correct"], out["graded"], out["correct_from"]) == (2, 3, "answer == gold label")
    examples = stored(store_dir, "examples", dataset="my-reviews")
    assert [(e["example_id"], e["idx"], e["text"], e["label"]) for e in examples] == [
        ("001", 0, "a good film", 1),
        ("002", 1, 'bad, truly "bad"', 1),
        ("3", 2, "meh", 2),
        ("004", 3, "no gold here", None),
    ]
    probs = [[0.1, 0.7, 0.2], [0.5, 0.25, 0.25], [0.0, 0.0, 1.0], [0.9, 0.05, 0.05]]
    close(
        stored(store_dir, "predictions", model="bert-pruned", dataset="my-reviews"),
        [
            prediction("001", prediction="1", pred_label=1, score=0.7, correct=True, probs=probs[0]),
            prediction("002", prediction="0", pred_label=0, score=0.5, correct=False, probs=probs[1]),
            prediction("3", prediction="2", pred_label=2, score=1.0, correct=True, probs=probs[2]),
            prediction("004", prediction="0", pred_label=0, score=0.9, correct=None, probs=probs[3]),
        ],
    )
    rec = last_record(store_dir)
    assert rec["command"] == "ingest-predictions" and rec["task"] == "classification"
    assert rec["ingested"] == {
        "tool": "table",
        "format": "csv",
        "columns": {
            "id": "uid",
            "answer": "pred",
            "gold": "gold",
            "text": "text",
            "probs": ["p0", "p1", "p2"],
        },
        "correct_from": "answer == gold label",
    }
    assert rec["source_sha256"] and rec["model"] == "bert-pruned"


def test_tsv_with_a_correctness_column_and_free_text(tmp_path, store_dir):
    path = tmp_path / "answers.tsv"
    path.write_text("id\tanswer\tok\nq1\tParis\ttrue\nq2\t1969\tFALSE\nq3\tblue\t1\nq4\t\t0\nq5\tx\t\n")
    out = ingest_table(
        Store(store_dir), path, "m", "quiz", id_column="id", answer_column="answer", correct_column="ok"
    )
    assert (out["correct"], out["graded"], out["correct_from"]) == (2, 4, "column ok")
    close(
        stored(store_dir, "predictions", model="m", dataset="quiz"),
        [
            prediction("q1", prediction="Paris", correct=True, metric="ok"),
            prediction("q2", prediction="1969", pred_label=1969, correct=False, metric="ok"),
            prediction("q3", prediction="blue", correct=True, metric="ok"),
            prediction("q4", correct=False, metric="ok"),
            prediction("q5", prediction="x", correct=None, metric="ok"),
        ],
    )
    assert last_record(store_dir)["task"] == "qa"  # free-text answers, no gold: not labels


def test_parquet_and_json_formats(tmp_path, store_dir):
    path = tmp_path / "out.parquet"
    table = pa.table(
        {
            "id": pa.array([10, 11, 12, 13], pa.int64()),
            "label": pa.array([1.0, 0.0, None, math.nan]),  # pandas: ints with a gap become floats
            "right": [1.0, 0.0, None, math.nan],
            "dist": pa.array([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0], [0.5, 0.5]], pa.list_(pa.float64())),
        }
    )
    pq.write_table(table, path)
    out = ingest_table(
        Store(store_dir),
        path,
        "m",
        "pq",
        id_column="id",
        answer_column="label",
        correct_column="right",
        probs_column="dist",
    )
    assert out["correct"] == 1 and out["graded"] == 2
    close(
        stored(store_dir, "predictions", model="m", dataset="pq"),
        [
            prediction(
                "10",
                prediction="1",
                pred_label=1,
                score=0.75,
                correct=True,
                probs=[0.25, 0.75],
                metric="right",
            ),
            prediction(
                "11", prediction="0", pred_label=0, score=0.5, correct=False, probs=[0.5, 0.5], metric="right"
            ),
            prediction("12", correct=None, probs=[1.0, 0.0], metric="right"),
            prediction("13", correct=None, probs=[0.5, 0.5], metric="right"),
        ],
    )
    # a JSON list of objects, text gold: graded by equality with the gold text
    js = tmp_path / "gen.json"
    rows = [
        {"k": "a", "out": "Paris", "ref": "Paris", "q": "capital of France?"},
        {"k": "b", "out": "paris", "ref": "Paris", "q": "capital of France, again?"},
        {"k": 7, "out": 3, "ref": "3", "q": "1+2?"},
    ]
    js.write_text(json.dumps(rows))
    out = ingest_table(
        Store(store_dir),
        js,
        "m",
        "gen",
        id_column="k",
        answer_column="out",
        gold_column="ref",
        text_column="q",
    )
    assert (out["correct"], out["correct_from"]) == (2, "answer == gold text")
    examples = stored(store_dir, "examples", dataset="gen")
    assert [(e["example_id"], e["question"], e["answers"], e["label"]) for e in examples] == [
        ("a", "capital of France?", ["Paris"], None),
        ("b", "capital of France, again?", ["Paris"], None),
        ("7", "1+2?", ["3"], None),
    ]
    assert [p["correct"] for p in stored(store_dir, "predictions", model="m", dataset="gen")] == [
        True,
        False,
        True,
    ]
    assert last_record(store_dir)["task"] == "qa"


def test_numeric_gold_with_free_text_answers_compares_texts(tmp_path, store_dir):
    path = tmp_path / "gsm.csv"
    path.write_text("id,answer,gold\na,42,42\nb,forty-two,42\nc," + "9" * 400 + ",7\n")
    out = ingest_table(
        Store(store_dir), path, "m", "gsm", id_column="id", answer_column="answer", gold_column="gold"
    )
    assert out["correct_from"] == "answer == gold text" and last_record(store_dir)["task"] == "qa"
    got = stored(store_dir, "predictions", model="m", dataset="gsm")
    assert [(g["prediction"], g["pred_label"], g["correct"]) for g in got] == [
        ("42", 42, True),
        ("forty-two", None, False),
        ("9" * 400, None, False),  # too big for a label index: text only
    ]
    assert [e["answers"] for e in stored(store_dir, "examples", dataset="gsm")] == [["42"], ["42"], ["7"]]


def test_no_gold_no_correctness_column_leaves_correct_unknown(tmp_path, store_dir):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "x", "a": 0}\n\n{"id": "y", "a": 1}\n')
    out = ingest_table(Store(store_dir), path, "m", "unlabelled", id_column="id", answer_column="a")
    assert out["correct"] is None and out["correct_from"] is None
    assert [p["correct"] for p in stored(store_dir, "predictions", model="m", dataset="unlabelled")] == [
        None,
        None,
    ]
    rec = last_record(store_dir)
    assert rec["ingested"]["correct_from"] is None
    assert rec["ingested"]["notes"] == [
        "correctness unknown: the table has no correctness column and the dataset no gold"
    ]


@needs_data("sst2/sst2_dev.tsv")
def test_a_known_dataset_brings_the_gold(tmp_path, store_dir):
    sst2 = load_dataset("sst2-dev")
    gold = dict(zip(sst2.table["example_id"].to_pylist(), sst2.table["label"].to_pylist(), strict=True))
    ids = ["0", "5", "17", "871"]
    lines = []
    for k, i in enumerate(ids):
        answer = gold[i] if k % 2 == 0 else 1 - gold[i]
        probs = [0.2, 0.8] if answer == 1 else [0.6, 0.4]
        lines.append(json.dumps({"id": int(i) if k == 1 else i, "y": answer, "p": probs}))
    path = tmp_path / "sst.jsonl"
    path.write_text("\n".join(lines) + "\n")
    store = Store(store_dir)
    out = ingest_table(store, path, "tiny", "sst2-dev", id_column="id", answer_column="y", probs_column="p")
    assert (out["dataset"], out["examples"], out["correct"]) == ("sst2-dev", 4, 2)
    examples = stored(store_dir, "examples", dataset="sst2-dev")
    assert len(examples) == len(sst2) and last_record(store_dir)["dataset_fingerprint"] == sst2.fingerprint
    wanted = []
    for k, i in enumerate(ids):
        answer = gold[i] if k % 2 == 0 else 1 - gold[i]
        probs = [0.2, 0.8] if answer == 1 else [0.6, 0.4]
        wanted.append(
            prediction(
                i,
                prediction=str(answer),
                pred_label=answer,
                score=probs[answer],
                correct=k % 2 == 0,
                probs=probs,
            )
        )
    close(stored(store_dir, "predictions", model="tiny", dataset="sst2-dev"), wanted)
    # a second model: the examples are not written again
    ingest_table(store, path, "tiny2", "sst2-dev", id_column="id", answer_column="y")
    assert "examples" not in {p["kind"] for p in last_record(store_dir)["parts"]}


@needs_data("ood/mrqa_NewsQA_sample.jsonl")
def test_a_known_qa_dataset_is_graded_by_squad_exact_match(tmp_path, store_dir):
    news = load_dataset("newsqa-sample")
    ids = news.table["example_id"].to_pylist()[:3]
    answers = news.table["answers"].to_pylist()[:3]
    given = [answers[0][0].upper() + ".", "something else", "The " + answers[2][0]]
    path = tmp_path / "news.csv"
    path.write_text("qid,answer\n" + "".join(f'{i},"{a}"\n' for i, a in zip(ids, given, strict=True)))
    out = ingest_table(Store(store_dir), path, "m", "newsqa-sample", id_column="qid", answer_column="answer")
    assert out["correct_from"] == "SQuAD exact match against the dataset's answers"
    wanted = []
    for i, gold, answer in zip(ids, answers, given, strict=True):
        exact, f1 = squad_score(gold, answer)
        wanted.append(prediction(i, prediction=answer, exact=exact, f1=f1, correct=exact == 1.0))
    close(stored(store_dir, "predictions", model="m", dataset="newsqa-sample"), wanted)
    assert [w["correct"] for w in wanted][:2] == [True, False]


# -- hostile tables ----------------------------------------------------------------------------
@pytest.fixture
def filled(tmp_path) -> Path:
    """A store that already holds a run, so 'unchanged' means something."""
    store_dir = tmp_path / "filled"
    path = tmp_path / "first.csv"
    path.write_text(CSV)
    ingest_table(
        Store(store_dir),
        path,
        "first",
        "my-reviews",
        id_column="uid",
        answer_column="pred",
        gold_column="gold",
        text_column="text",
    )
    return store_dir


def refused(store_dir: Path, path, *words: str, dataset: str = "hostile", **options) -> str:
    options = {"id_column": "id", "answer_column": "answer", **options}
    before = snapshot(store_dir)
    with pytest.raises(CeError) as info:
        ingest_table(Store(store_dir), path, "victim", dataset, **options)
    message = str(info.value)
    assert "\n" not in message and len(message) < 700, message
    for word in words:
        assert word in message, (word, message)
    assert snapshot(store_dir) == before
    return message


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_missing_columns_and_ids(tmp_path, filled):
    good = "id,answer,gold,p0,p1\na,1,1,0.3,0.7\nb,0,1,0.6,0.4\n"
    path = write(tmp_path, "t.csv", good)
    refused(
        filled, path, "no column 'idd'", "did you mean id", "its columns: 'id', 'answer'", id_column="idd"
    )
    refused(filled, path, "no column 'pred'", answer_column="pred")
    refused(filled, path, "no column 'p2'", prob_columns=["p0", "p1", "p2"])
    refused(filled, path, "not both", prob_columns=["p0", "p1"], probs_column="p0")
    refused(
        filled,
        write(tmp_path, "dup.csv", "id,answer\na,1\nb,0\na,1\n"),
        "id 'a' is on rows 1 and 3",
        "unique",
    )
    refused(filled, write(tmp_path, "noid.csv", "id,answer\na,1\n,0\n"), "row 2 has no id")
    refused(
        filled, write(tmp_path, "noid.jsonl", '{"id": "a", "answer": 1}\n{"answer": 0}\n'), "row 2 has no id"
    )
    refused(
        filled, write(tmp_path, "fid.jsonl", '{"id": 1.5, "answer": 1}\n'), "is a float", "text or integers"
    )
    refused(filled, write(tmp_path, "twice.csv", "id,answer,id\na,1,b\n"), "2 columns named 'id'", "unique")
    refused(filled, write(tmp_path, "empty.csv", "id,answer\n"), "holds no rows")
    refused(filled, write(tmp_path, "nothing.csv", ""), "cannot read", "Empty CSV file")
    refused(filled, write(tmp_path, "ragged.csv", "id,answer\na,1\nb\n"), "cannot read", "Expected 2 columns")
    refused(filled, write(tmp_path, "t.xlsx", "x"), "unknown table type '.xlsx'", ".csv, .tsv")
    refused(filled, path, "dataset name 'bad name'", dataset="bad name")
    refused(filled, path, "drop the gold and text columns", dataset="sst2-dev", gold_column="gold")


def test_bad_probabilities(tmp_path, filled):
    def probs(name, rows, *words):
        content = "id,answer,p0,p1\n" + "".join(f"r{i},{a},{p},{q}\n" for i, (a, p, q) in enumerate(rows))
        return refused(filled, write(tmp_path, name, content), *words, prob_columns=["p0", "p1"])

    probs(
        "nan.csv",
        [(0, 0.5, 0.5), (1, "nan", 0.5)],
        "row 2 (id 'r1'), columns 'p0', 'p1': nan is not a finite number",
    )
    probs("inf.csv", [(0, "inf", 0.5)], "inf is not a finite number")
    probs("huge.csv", [(0, "1e999", 0.5)], "inf is not a finite number")
    probs("neg.csv", [(0, 1.5, -0.5)], "-0.5 is negative")
    probs("sum.csv", [(0, 0.5, 0.6)], "sum to 1.1", "not logits", "does not renormalise")
    probs("logits.csv", [(0, 2.3, -1.2)], "-1.2 is negative")
    probs("text.csv", [(0, "high", 0.5)], "probability 'high' in column 'p0' is not a number")
    probs("gap.csv", [(0, "", 0.5)], "is missing")
    probs("range.csv", [(5, 0.5, 0.5)], "answer 5 is not a class of the 2 probabilities")
    rows = ['{"id": "a", "answer": 0, "p": [0.5, 0.5]}', '{"id": "b", "answer": 1, "p": [0.2, 0.3, 0.5]}']
    refused(
        filled,
        write(tmp_path, "len.jsonl", "\n".join(rows)),
        "column 'p': 3 probabilities where row 1 has 2",
        probs_column="p",
    )
    rows = ['{"id": "a", "answer": 0, "p": [0.5, 0.5]}', '{"id": "b", "answer": 1, "p": {"x": 1}}']
    refused(
        filled, write(tmp_path, "obj.jsonl", "\n".join(rows)), "not a list of probabilities", probs_column="p"
    )
    rows = ['{"id": "a", "answer": 0, "p": NaN}']
    refused(
        filled,
        write(tmp_path, "nanlit.jsonl", "\n".join(rows)),
        "not a list of probabilities",
        probs_column="p",
    )
    rows = ['{"id": "a", "answer": 0, "p": []}']
    refused(filled, write(tmp_path, "nolen.jsonl", "\n".join(rows)), "no probabilities", probs_column="p")
    csv = 'id,answer,p\na,0,"[0.5, 0.5]"\nb,1,"[0.4, Infinity]"\n'
    refused(
        filled,
        write(tmp_path, "listcsv.csv", csv),
        "row 2 (id 'b'), column 'p': inf is not",
        probs_column="p",
    )
    csv = 'id,answer,p\na,0,"[0.5, 0.5"\n'
    refused(filled, write(tmp_path, "brokenlist.csv", csv), "not a JSON list of numbers", probs_column="p")


def test_bad_correctness_and_gold(tmp_path, filled):
    path = write(tmp_path, "c.csv", "id,answer,ok\na,1,true\nb,0,maybe\n")
    refused(filled, path, "row 2 (id 'b')", "correctness 'maybe'", "true, false, 1 or 0", correct_column="ok")
    path = write(tmp_path, "nogold.csv", "id,answer,gold\na,1,\n")
    refused(filled, path, "gold column 'gold' is empty on every row", gold_column="gold")
    # the store holds other examples under this name: refused before anything is written
    path = write(tmp_path, "other.csv", "uid,pred,gold,text\n001,1,0,another text\n")
    refused(
        filled,
        path,
        "holds other examples",
        "--dataset-name",
        dataset="my-reviews",
        id_column="uid",
        answer_column="pred",
        gold_column="gold",
        text_column="text",
    )


@needs_data("sst2/sst2_dev.tsv")
def test_ids_not_in_the_known_dataset(tmp_path, filled):
    path = write(tmp_path, "k.csv", "id,answer\n0,1\n99999,1\nabc,0\n")
    refused(
        filled,
        path,
        "2 of its 3 ids are not in dataset sst2-dev",
        "'99999'",
        "another dataset",
        dataset="sst2-dev",
    )
    path = write(tmp_path, "t.csv", "id,answer,t\n0,1,x\n")
    refused(filled, path, "known dataset", dataset="sst2-dev", text_column="t")
    path = write(tmp_path, "g.csv", "id,answer\n0,1\n1,positive\n")
    refused(
        filled, path, "row 2 (id '1'): answer 'positive' is not a label index", "0, 1", dataset="sst2-dev"
    )
    path = write(tmp_path, "big.csv", "id,answer\n0," + "9" * 400 + "\n")
    refused(filled, path, "is not a label index", dataset="sst2-dev")


def test_not_utf8(tmp_path, filled):
    refused(filled, write(tmp_path, "v.csv", b"id,answer\na,\xff\xfe\n"), "not UTF-8", "save it as UTF-8")
    refused(filled, write(tmp_path, "h.csv", b"id,\xffanswer\na,1\n"), "not UTF-8", "0xff")
    refused(filled, write(tmp_path, "t.tsv", b"id\tanswer\na\t\xc3\x28\n"), "not UTF-8")
    refused(filled, write(tmp_path, "j.jsonl", b'{"id": "a", "answer": "\xff"}\n'), "not UTF-8", "0xff")
    refused(filled, write(tmp_path, "j.json", b'[{"id": "\xe9", "answer": 1}]'), "not UTF-8")
    broken = pa.array([b"ok", b"\xff"], pa.binary()).view(pa.string())
    pq.write_table(pa.table({"id": broken, "answer": [1, 0]}), tmp_path / "p.parquet")
    refused(filled, tmp_path / "p.parquet", "not UTF-8")
    write(tmp_path, "fake.parquet", "id,answer\na,1\n")
    refused(filled, tmp_path / "fake.parquet", "cannot read", "as PARQUET", "check the file's format")


def test_odd_json(tmp_path, filled):
    refused(
        filled, write(tmp_path, "a.jsonl", '{"id": "a", "answer": 1}\n{"id": "b",\n'), "line 2 is not JSON"
    )
    refused(filled, write(tmp_path, "b.jsonl", '["id", "answer"]\n'), "row 1 is not a JSON object")
    refused(filled, write(tmp_path, "c.json", '{"id": "a"}'), "JSON list of objects")
    deep = '{"id": "a", "answer": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    refused(filled, write(tmp_path, "d.jsonl", deep), "nests too deeply")
    nested = '{"id": "a", "answer": {"text": "x"}}\n'
    refused(filled, write(tmp_path, "e.jsonl", nested), "is a dict", "give a text or a number")


def test_odd_paths(tmp_path, filled):
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    refused(filled, folder, "is a folder", ".csv, .tsv")
    loop = tmp_path / "loop.csv"
    os.symlink(loop, loop)
    refused(filled, loop, "symlink loop")
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    os.symlink(b, a)
    os.symlink(a, b)
    refused(filled, a, "symlink loop")
    dangling = tmp_path / "dangling.csv"
    os.symlink(tmp_path / "gone.csv", dangling)
    refused(filled, dangling, "broken symlink")
    refused(filled, tmp_path / "missing.csv", "no such table")
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    refused(filled, fifo, "not a regular file")
    # a symlink to a real table is fine
    real = write(tmp_path, "real.csv", "id,answer\na,1\n")
    link = tmp_path / "link.csv"
    os.symlink(real, link)
    out = ingest_table(Store(filled), link, "linked", "linked", id_column="id", answer_column="answer")
    assert out["examples"] == 1


def test_sql_looking_names_and_values_and_huge_cells(tmp_path, store_dir):
    id_col = 'id"; DROP TABLE predictions; --'
    answer_col = "answer') UNION SELECT * FROM read_csv('/etc/passwd'); --"
    sneaky = ["'); DELETE FROM examples; --", "1; DROP TABLE runs", "x' OR '1'='1"]
    big = "A" * 5_000_000
    rows = [{id_col: s, answer_col: s, "t": big if i == 0 else s} for i, s in enumerate(sneaky)]
    for suffix in ("jsonl", "csv", "parquet"):
        path = tmp_path / f"sneaky.{suffix}"
        table = pa.Table.from_pylist(rows)
        if suffix == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        elif suffix == "csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, path)
        else:
            pq.write_table(table, path)
        name = f"sneaky-{suffix}"
        out = ingest_table(
            Store(store_dir), path, "m", name, id_column=id_col, answer_column=answer_col, text_column="t"
        )
        assert out["examples"] == 3
        got = stored(store_dir, "predictions", model="m", dataset=name)
        assert [(g["example_id"], g["prediction"]) for g in got] == [(s, s) for s in sneaky]
        examples = stored(store_dir, "examples", dataset=name)
        assert [e["text"] for e in examples] == [big, *sneaky[1:]]
        assert last_record(store_dir)["ingested"]["columns"] == {
            "id": id_col,
            "answer": answer_col,
            "text": "t",
        }


def test_the_cli_ingests_a_csv_and_compare_counts_its_flips(tmp_path, store_dir):
    from click.testing import CliRunner

    from ce.cli import cli

    def ce(*args):
        return CliRunner().invoke(cli, [str(a) for a in args])

    # two models on four examples: 'small' flips e2 (right -> wrong) and changes e4 wrong -> other wrong
    rows = {
        "big": [("e1", 0, 0.9), ("e2", 1, 0.2), ("e3", 1, 0.3), ("e4", 2, 0.1)],
        "small": [("e1", 0, 0.8), ("e2", 0, 0.6), ("e3", 1, 0.4), ("e4", 1, 0.2)],
    }
    gold = {"e1": 0, "e2": 1, "e3": 1, "e4": 0}
    for model, answers in rows.items():
        path = tmp_path / f"{model}.csv"
        lines = ["id,answer,gold,text,p0,p1,p2"]
        for i, a, p0 in answers:
            rest = (1 - p0) / 2
            lines.append(f"{i},{a},{gold[i]},text of {i},{p0},{rest},{rest}")
        path.write_text("\n".join(lines) + "\n")
        result = ce(
            "ingest", "predictions", path, "--model", model, "--dataset", "toy-mc", "--id", "id",
            "--answer", "answer", "--gold", "gold", "--text", "text", "--prob", "p0", "--prob", "p1",
            "--prob", "p2", "--store", store_dir,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    assert ce("reference", "big", "--store", store_dir).exit_code == 0
    from ce.query import compare
    from ce.query.sql import connect
    from ce.store import Store

    [r] = compare.table2(connect(Store(store_dir))).rows()
    assert (r["model_i"], r["flips_c_to_w"], r["flips_w_to_c"], r["changes"]) == ("big", 1, 0, 0.5)
    assert r["kl_n"] == 4 and r["kl"] > 0
