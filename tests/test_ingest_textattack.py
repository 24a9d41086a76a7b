"""ce ingest textattack: a real TextAttack CSV log (DeepWordBug on SST-2 dev sentences, a tiny
classifier, offline) becomes attack results, predictions and examples that match what ``ce
attack`` writes for the same results, and that ce's SQL reads; hostile logs are refused
with one line and leave the store byte for byte as it was."""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ce.extractors.ingest_textattack import COLUMNS, MAX_FIELD, ingest_textattack
from ce.query.sql import connect
from ce.store import Store
from ce.store.errors import CeError

from .conftest import snapshot

pytestmark = pytest.mark.usefixtures("data_dir")

SST2_ROWS = 20
CRAFTED = [  # texts a spreadsheet would read as formulas, quotes, commas, a line break
    ('=HYPERLINK("http://x.test","click") , a "quoted" charming film\nand a second line , with commas', 1),
    ("@SUM(A1:A9) -- a dull , tedious mess", 0),
]


@pytest.fixture(scope="module")
def attacked(sharp_classifier, tmp_path_factory):
    """DeepWordBug through TextAttack's own Attacker and CSV logger ("file" colouring):
    {csv, results (TextAttack's AttackResult objects), texts, labels, expected (the rows
    ce attack writes for those results)}. A query budget of 20 makes some attacks fail."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ce.extractors.attack import AttackOptions, build_attack, classifier_wrapper, result_row
    from ce.extractors.attack_env import import_textattack, quiet_textattack
    from ce.extractors.datasets import load_dataset

    ta = import_textattack()
    sst2 = load_dataset("sst2-dev").table.slice(0, SST2_ROWS)
    texts = sst2["text"].to_pylist() + [t for t, _ in CRAFTED]
    labels = sst2["label"].to_pylist() + [label for _, label in CRAFTED]
    model = AutoModelForSequenceClassification.from_pretrained(sharp_classifier).eval()
    tokenizer = AutoTokenizer.from_pretrained(sharp_classifier)
    with quiet_textattack():
        attack, _ = build_attack(
            AttackOptions(attack="deepwordbug", query_budget=20), classifier_wrapper(model, tokenizer), "cpu"
        )
        log = tmp_path_factory.mktemp("textattack") / "log.csv"
        args = ta.AttackArgs(
            num_examples=len(texts),
            log_to_csv=str(log),
            csv_coloring_style="file",
            disable_stdout=True,
            silent=True,
            random_seed=0,
        )
        results = ta.Attacker(
            attack, ta.datasets.Dataset(list(zip(texts, labels, strict=True))), args
        ).attack_dataset()
    expected = [result_row(str(i), labels[i], r) for i, r in enumerate(results)]
    kinds = {row["result"] for row in expected}
    assert kinds == {"succeeded", "failed", "skipped"}, kinds  # the log exercises every result
    return {"csv": log, "results": results, "texts": texts, "labels": labels, "expected": expected}


def rows(store: Store, sql: str) -> list[dict]:
    return connect(store).sql(sql).to_arrow_table().to_pylist()


def ingest(
    store: Store, log: Path, model: str = "tiny", dataset: str = "sst2-ta", attack: str = "deepwordbug"
):
    return ingest_textattack(store, log, model, dataset, attack)


def test_rows_are_those_ce_attack_writes(attacked, tmp_path):
    store = Store(tmp_path / "store")
    info = ingest(store, attacked["csv"])
    expected = attacked["expected"]
    n = len(expected)
    counts = {k: sum(e["result"] == k for e in expected) for k in ("succeeded", "failed", "skipped")}
    assert info == {
        "run_id": info["run_id"],
        "model": "tiny",
        "dataset": "sst2-ta",
        "attack": "deepwordbug",
        "examples": n,
        **counts,
    }
    got = rows(store, "select * from attacks order by example_id::int")
    assert [(g["model"], g["attack"], g["dataset"]) for g in got] == [("tiny", "deepwordbug", "sst2-ta")] * n
    exact = [
        "example_id",
        "ground_truth",
        "result",
        "original_text",
        "perturbed_text",
        "original_output",
        "perturbed_output",
        "queries",
        "words_perturbed",
        "words",
    ]
    for g, e in zip(got, expected, strict=True):
        assert {k: g[k] for k in exact} == {k: e[k] for k in exact}
        # ce's scores are P(output); the log's are 1 - P(truth): known where output = truth
        if e["original_output"] == e["ground_truth"]:
            assert g["original_score"] == pytest.approx(e["original_score"], abs=1e-6)
        else:
            assert g["original_score"] is None
        if e["perturbed_output"] == e["ground_truth"]:
            assert g["perturbed_score"] == pytest.approx(e["perturbed_score"], abs=1e-6)
        else:
            assert g["perturbed_score"] is None
    assert any(g["result"] == "failed" and g["perturbed_text"] != g["original_text"] for g in got)

    examples = rows(store, "select * from examples order by idx")
    assert [x["example_id"] for x in examples] == [str(i) for i in range(n)]
    assert [x["text"] for x in examples] == attacked["texts"]  # markers gone, <SPLIT> a line break
    assert [x["label"] for x in examples] == attacked["labels"]
    assert examples[SST2_ROWS]["text"].startswith('=HYPERLINK("http://x.test"')  # data, kept verbatim

    predictions = rows(store, "select * from predictions order by example_id::int")
    for p, e in zip(predictions, expected, strict=True):
        assert p["pred_label"] == e["original_output"] and p["prediction"] == str(e["original_output"])
        assert p["correct"] == (e["result"] != "skipped") == (e["original_output"] == e["ground_truth"])
        assert p["probs"] is None
        assert (p["score"] is None) == (e["result"] == "skipped")

    [record] = [r for r in store.runs() if r["command"] == "ingest-textattack"]
    assert record["ingested"]["tool"] == "textattack" and record["ingested"]["format"] == "csv"
    assert {k: record["ingested"][k] for k in counts} == counts
    assert "probs" in record["ingested"]["lacks"]
    assert record["model"] == "tiny" and record["dataset"] == "sst2-ta" and record["examples"] == n
    assert len(record["source_sha256"]) == 64


def test_summary_sql_equals_a_recount_of_the_csv(attacked, tmp_path):
    """Recounted from the CSV with pandas: results, ground truth, queries, and the words
    TextAttack marked in the original text of each successful attack (a swap attack marks
    the words that differ)."""
    store = Store(tmp_path / "store")
    ingest(store, attacked["csv"])
    log = pd.read_csv(attacked["csv"])
    assert list(log.columns) == list(COLUMNS)  # the installed TextAttack's header
    n = len(log)
    kinds = log["result_type"].value_counts().to_dict()
    succeeded = log[log["result_type"] == "Successful"]
    marked = [len(re.findall(r"\[\[.+?\]\]", t)) for t in succeeded["original_text"]]
    got = rows(store, "select * from attacks order by example_id::int")
    assert [g["ground_truth"] for g in got] == log["ground_truth_output"].tolist()
    assert [g["queries"] for g in got] == log["num_queries"].tolist()
    assert [g["words_perturbed"] for g in got if g["result"] == "succeeded"] == marked

    [s] = rows(store, "select * from attack_summary()")
    before = (n - kinds.get("Skipped", 0)) / n
    under = kinds.get("Failed", 0) / n
    assert (s["model"], s["attack"], s["dataset"], s["n"]) == ("tiny", "deepwordbug", "sst2-ta", n)
    assert s["accuracy_before"] == pytest.approx(before)
    assert s["accuracy_under_attack"] == pytest.approx(under)
    assert s["success_rate"] == pytest.approx(len(succeeded) / (n - kinds.get("Skipped", 0)))
    assert s["mean_queries"] == pytest.approx(log[log["result_type"] != "Skipped"]["num_queries"].mean())
    assert s["mean_words_perturbed"] == pytest.approx(sum(marked) / len(marked))
    words = [g["words"] for g in got if g["result"] == "succeeded"]
    assert s["mean_share_perturbed"] == pytest.approx(
        sum(m / w for m, w in zip(marked, words, strict=True)) / len(marked)
    )


def test_two_models_agree_in_sql_and_a_reingest_replaces(attacked, tmp_path):
    store = Store(tmp_path / "store")
    for model in ("x", "y", "x"):
        ingest(store, attacked["csv"], model=model)
    n = len(attacked["expected"])
    assert rows(store, "select model, count(*) as n from attacks group by model order by model") == [
        {"model": "x", "n": n},
        {"model": "y", "n": n},
    ]
    [r] = rows(store, "select * from attack_agreement()")
    right = [e for e in attacked["expected"] if e["result"] != "skipped"]
    broken = sum(e["result"] == "succeeded" for e in right)
    assert (r["n"], r["broken_i"], r["broken_j"], r["both"]) == (len(right), broken, broken, broken)
    assert r["jaccard"] == pytest.approx(1.0)


@pytest.mark.parametrize("style", ["plain", "html"])
def test_other_colouring_styles_read_the_same(attacked, tmp_path, style):
    """The same results logged by TextAttack's CSVLogger with another colouring."""
    from textattack.loggers import CSVLogger

    log = tmp_path / f"{style}.csv"
    logger = CSVLogger(filename=str(log), color_method=None if style == "plain" else style)
    for result in attacked["results"]:
        logger.log_attack_result(result)
    logger.flush()
    if style == "html":
        assert "<font color = " in log.read_text()
    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    ingest(a, attacked["csv"])
    ingest(b, log)
    sql = "select * exclude (run_id) from attacks order by example_id::int"
    assert rows(b, sql) == rows(a, sql)


def test_windows_line_ends_and_a_bom_read_the_same(attacked, tmp_path):
    """pandas writes CRLF on Windows; a spreadsheet may add a UTF-8 BOM."""
    log = tmp_path / "windows.csv"
    log.write_bytes(b"\xef\xbb\xbf" + attacked["csv"].read_bytes().replace(b"\n", b"\r\n"))
    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    ingest(a, attacked["csv"])
    ingest(b, log)
    sql = "select * exclude (run_id) from attacks order by example_id::int"
    assert rows(b, sql) == rows(a, sql)


# -- hostile logs ------------------------------------------------------------------------
def read_rows(log: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(log.read_text(encoding="utf-8"), newline="")))


def write_rows(table: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\n").writerows(table)
    return out.getvalue().encode()


def edit(change):
    """A hostile log: ``change`` edits a copy of the real log's rows (header first)."""

    def make(log: Path) -> bytes:
        table = [list(r) for r in read_rows(log)]
        change(table)
        return write_rows(table)

    return make


def set_field(column: str, value: str, where=lambda r: True):
    """Set ``column`` to ``value`` in the first row ``where`` holds for."""

    def change(table):
        i = table[0].index(column)
        row = next(r for r in table[1:] if where(dict(zip(table[0], r, strict=True))))
        row[i] = value

    return edit(change)


def drop_column(name: str):
    def change(table):
        i = table[0].index(name)
        for r in table:
            del r[i]

    return edit(change)


def add_column(table):
    table[0].append("note")
    for r in table[1:]:
        r.append("x")


def rename(old: str, new: str):
    def change(table):
        table[0][table[0].index(old)] = new

    return edit(change)


def raw(data: bytes):
    return lambda log: data


def huge_field(log: Path) -> bytes:
    table = read_rows(log)
    table[1][0] = "a" * (MAX_FIELD + 1)
    return write_rows(table)


def unclosed_quote(log: Path) -> bytes:
    lines = log.read_text(encoding="utf-8").split("\n")
    lines[1] = lines[1][:-1]  # the first result's closing quote
    return "\n".join(lines).encode()


def not_utf8(log: Path) -> bytes:
    return log.read_bytes().replace(b"charming", "charmé".encode("latin-1"), 1)


def utf16(log: Path) -> bytes:
    return log.read_text(encoding="utf-8").encode("utf-16")


def semicolons(log: Path) -> bytes:
    table = read_rows(log)
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=";", lineterminator="\n").writerows(table)
    return out.getvalue().encode()


def nul(log: Path) -> bytes:
    return log.read_bytes().replace(b"charming", b"char\x00ming", 1)


def bad_quoting(log: Path) -> bytes:
    text = log.read_text(encoding="utf-8")
    return text.replace('"Successful"', '"Successful"x', 1).encode()


def short_row(table):
    del table[2][-1]


def skipped_but_right(table):
    h = table[0]
    row = next(r for r in table[1:] if r[h.index("result_type")] == "Skipped")
    row[h.index("original_output")] = row[h.index("ground_truth_output")]


def header_only(log: Path) -> bytes:
    return log.read_bytes().split(b"\n", 1)[0] + b"\n"


def multi_input(table):
    h = table[0]
    table[1][h.index("original_text")] = "[[[[Premise]]]]: a film<SPLIT>[[[[Hypothesis]]]]: a movie"


HOSTILE = {
    "empty file": (raw(b""), "is empty"),
    "blank file": (raw(b"\n \n"), "is empty"),
    "header only": (header_only, "no attack results"),
    "blank first line": (lambda log: b"\n" + log.read_bytes(), "line 1 is blank"),
    "missing column": (drop_column("num_queries"), "lacks column(s) num_queries"),
    "extra column": (edit(add_column), "'note'"),
    "duplicated column": (rename("perturbed_score", "original_score"), "occurs twice"),
    "semicolons": (semicolons, "not comma-separated"),
    "short row": (edit(short_row), "8 field(s) where the header has 9"),
    "bad quoting": (bad_quoting, "not readable as CSV"),
    "unclosed quote": (unclosed_quote, "line"),
    "huge field": (huge_field, "characters (at most"),
    "not utf-8": (not_utf8, "not UTF-8"),
    "utf-16": (utf16, "UTF-16"),
    "nul byte": (nul, "NUL"),
    "fractional output": (set_field("original_output", "1.5"), "original_output '1.5' is not a class label"),
    "negative label": (set_field("ground_truth_output", "-1"), "is not a class label"),
    "text as output": (set_field("perturbed_output", "positive"), "is not a class label"),
    "huge number": (set_field("num_queries", "9" * 5000), "is not a count of queries"),
    "unknown result": (set_field("result_type", "Bogus"), "unknown result_type 'Bogus'"),
    "maximized result": (set_field("result_type", "Maximized"), "Maximized"),
    "score out of range": (set_field("original_score", "1.7"), "not a score between 0 and 1"),
    "score nan": (set_field("perturbed_score", "nan"), "not a score between 0 and 1"),
    "score missing": (set_field("perturbed_score", ""), "not a score between 0 and 1"),
    "score with underscores": (set_field("perturbed_score", "0_5"), "not a score between 0 and 1"),
    "skipped but right": (edit(skipped_but_right), "UntargetedClassification"),
    "succeeded but still right": (
        set_field(
            "perturbed_output",
            "1",
            where=lambda r: r["result_type"] == "Successful" and r["ground_truth_output"] == "1",
        ),
        "not untargeted classification's",
    ),
    "several inputs": (edit(multi_input), "several inputs"),
}


@pytest.fixture(scope="module")
def holding(attacked, tmp_path_factory) -> Path:
    """A store that already holds the real log's ingest (so 'unchanged' means something)."""
    root = tmp_path_factory.mktemp("holding") / "store"
    ingest(Store(root), attacked["csv"])
    return root


def refused(store_root: Path, *fragments: str, **call) -> str:
    """Assert ``ingest(**call)`` raises one CeError line holding ``fragments`` and leaves
    the store as it was; return the line."""
    before = snapshot(store_root)
    store = Store(store_root)
    runs = len(store.runs())
    with pytest.raises(CeError) as raised:
        ingest(store, **call)
    line = str(raised.value)
    assert "\n" not in line and line.strip() == line, line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert snapshot(store_root) == before
    assert len(Store(store_root).runs()) == runs
    return line


@pytest.fixture
def store_copy(holding, tmp_path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(holding, root)
    return root


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_log_is_refused_and_the_store_unchanged(attacked, store_copy, tmp_path, case):
    make, fragment = HOSTILE[case]
    log = tmp_path / "hostile.csv"
    log.write_bytes(make(attacked["csv"]))
    line = refused(store_copy, fragment, log=log)
    assert str(log) in line or "line" in line or "column" in line


@pytest.mark.parametrize(
    "call, fragment",
    [
        ({"model": "bad/name"}, "model name 'bad/name'"),
        ({"dataset": "../up"}, "dataset name '../up'"),
        ({"attack": ""}, "attack name ''"),
        ({"dataset": "sst2-dev"}, "one of ce's datasets"),
    ],
    ids=["model", "dataset", "attack", "registered dataset"],
)
def test_bad_names_are_refused(attacked, store_copy, call, fragment):
    refused(store_copy, fragment, log=attacked["csv"], **call)


def test_a_dataset_name_that_holds_other_examples_is_refused(attacked, store_copy, tmp_path):
    fewer = tmp_path / "fewer.csv"
    fewer.write_bytes(write_rows(read_rows(attacked["csv"])[:6]))
    refused(store_copy, "holds other examples", "another dataset name", log=fewer)
    ingest(Store(store_copy), fewer, dataset="sst2-ta-5")  # under its own name it is welcome
    assert rows(Store(store_copy), "select count(*) as n from examples where dataset = 'sst2-ta-5'") == [
        {"n": 5}
    ]


def test_missing_file_and_folder_are_refused(store_copy, tmp_path):
    refused(store_copy, "no such TextAttack log", log=tmp_path / "nowhere.csv")
    refused(store_copy, "is not a file", log=tmp_path)


def test_a_refused_log_creates_no_store(attacked, tmp_path):
    log = tmp_path / "bad.csv"
    log.write_bytes(set_field("result_type", "Bogus")(attacked["csv"]))
    with pytest.raises(CeError):
        ingest(Store(tmp_path / "new"), log)
    assert not (tmp_path / "new").exists()
