"""ce export: the store's predictions as Parquet, CSV and lm-evaluation-harness sample logs,
read back by pandas, pyarrow, JSON and ce ingest lm-eval."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ce.cli import cli
from ce.query.export import COLUMNS, export_predictions
from ce.query.sql import connect
from ce.store import Store

from .test_sql import write_store

DOCS = [
    {"idx": i, "sentence": s, "label": g, "choices": ["negative", "positive"]}
    for i, (s, g) in enumerate([("good film", 1), ("bad plot", 0), ("fine actor", 1), ("dull", 0)])
]
LL = {"a": [[-1.0, -2.0], [-0.5, -3.0], [-2.5, -0.25], [-1.0, -1.0]], "b": [[-3.0, -1.0]] * 4}


def softmax(values: list[float]) -> list[float]:
    top = max(values)
    weights = [math.exp(v - top) for v in values]
    return [w / sum(weights) for w in weights]


def write_lmeval_like(store: Store) -> None:
    """Predictions as ce ingest lm-eval writes them: documents as JSON text, doc ids as
    example ids, per-choice log-likelihoods, probs, metric and hashes."""
    with store.run("test", {}, dataset="mc") as run:
        run.write(
            "examples",
            {"dataset": "mc"},
            pa.table(
                {
                    "example_id": [str(d["idx"]) for d in DOCS],
                    "idx": [d["idx"] for d in DOCS],
                    "text": [json.dumps(d, separators=(",", ":")) for d in DOCS],
                    "label": [d["label"] for d in DOCS],
                }
            ),
        )
        for model, ll in LL.items():
            best = [max(range(2), key=lambda i, row=row: (row[i], -i)) for row in ll]
            run.write(
                "predictions",
                {"model": model, "dataset": "mc"},
                pa.table(
                    {
                        "example_id": [str(d["idx"]) for d in DOCS],
                        "prediction": [DOCS[0]["choices"][b] for b in best],
                        "pred_label": best,
                        "correct": [b == d["label"] for b, d in zip(best, DOCS, strict=True)],
                        "probs": [softmax(row) for row in ll],
                        "loglikelihoods": ll,
                        "metric": ["acc"] * len(DOCS),
                        "doc_hash": [f"d{i}" for i in range(len(DOCS))],
                        "prompt_hash": [f"p{i}" for i in range(len(DOCS))],
                        "target_hash": [f"t{i}" for i in range(len(DOCS))],
                    }
                ),
            )


@pytest.fixture
def store(tmp_path) -> Store:
    store = write_store(tmp_path / "store", {"a": {"x1", "x2"}, "b": {"x2", "x3"}})
    write_lmeval_like(store)
    return store


def stored(store: Store, models=(), datasets=()) -> list[dict]:
    """The store's predictions with the example's gold label, as the export should give them."""
    rows = (
        connect(store)
        .sql(
            "select p.*, e.label as gold, e.idx from predictions p left join examples e"
            " using (dataset, example_id) order by model, dataset, idx, example_id"
        )
        .to_arrow_table()
        .to_pylist()
    )
    return [
        r for r in rows if (not models or r["model"] in models) and (not datasets or r["dataset"] in datasets)
    ]


def same_rows(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    names = [n for n, _, _ in COLUMNS if n in want[0]]
    assert {"model", "dataset", "example_id", "prediction", "correct", "gold", "probs"} <= set(names)
    for g, w in zip(got, want, strict=True):
        assert {n: g[n] for n in names} == {n: w[n] for n in names}


def test_parquet_reads_back_with_pyarrow_and_pandas(store, tmp_path):
    out = tmp_path / "predictions.parquet"
    info = export_predictions(connect(store), out, "parquet")
    assert info["rows"] == 14 and info["models"] == ["a", "b"] and info["datasets"] == ["mc", "toy"]
    table = pq.read_table(out)
    assert table.column_names == [n for n, _, _ in COLUMNS]
    assert table.schema.field("probs").type == pa.list_(pa.float64())
    same_rows(table.to_pylist(), stored(store))
    import pandas as pd

    frame = pd.read_parquet(out)
    assert list(frame["model"]) == [r["model"] for r in stored(store)]
    assert list(frame["gold"]) == [r["gold"] for r in stored(store)]


def test_csv_reads_back_with_pandas(store, tmp_path):
    import pandas as pd

    out = tmp_path / "predictions.csv"
    export_predictions(connect(store), out, "csv", models=["a"])
    frame = pd.read_csv(out, dtype={"example_id": str})
    want = stored(store, models=["a"])
    assert list(frame.columns) == [n for n, _, _ in COLUMNS]
    assert list(frame["example_id"]) == [r["example_id"] for r in want]
    assert list(frame["correct"]) == [r["correct"] for r in want]
    probs = [None if isinstance(p, float) else json.loads(p) for p in frame["probs"]]
    assert probs == [r["probs"] for r in want]  # JSON text, exact
    gold = [None if math.isnan(g) else int(g) for g in frame["gold"]]
    assert gold == [r["gold"] for r in want]


def test_the_filters_select_and_a_typo_is_named(store, tmp_path):
    out = tmp_path / "one.parquet"
    export_predictions(connect(store), out, "parquet", models=["b"], datasets=["mc"])
    assert pq.read_table(out).num_rows == 4
    runner = CliRunner()
    result = runner.invoke(
        cli, ["export", str(tmp_path / "x.parquet"), "--model", "c", "--store", str(store.root)]
    )
    assert result.exit_code == 1 and not (tmp_path / "x.parquet").exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no predictions of model 'c'" in lines[0], lines
    result = runner.invoke(cli, ["export", str(tmp_path / "no" / "x.csv"), "--store", str(store.root)])
    assert result.exit_code == 1 and "does not exist" in result.stderr


LINE_KEYS = {
    "doc_id",
    "doc",
    "target",
    "arguments",
    "resps",
    "filtered_resps",
    "filter",
    "metrics",
}


def test_lmeval_lines_are_sample_lines(store, tmp_path):
    out = tmp_path / "logs"
    result = CliRunner().invoke(cli, ["export", str(out), "--format", "lm-eval", "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jsonl"))
    assert [f.split("/")[0] for f in files] == ["a", "a", "b", "b"]
    assert all(f.split("/")[1].startswith(("samples_mc_", "samples_toy_")) for f in files)
    mc = [json.loads(x) for x in next(out.glob("a/samples_mc_*.jsonl")).read_text().splitlines()]
    assert [line["doc_id"] for line in mc] == [0, 1, 2, 3]
    for line, doc, ll in zip(mc, DOCS, LL["a"], strict=True):
        assert LINE_KEYS | {"doc_hash", "prompt_hash", "target_hash", "acc"} == set(line)
        assert line["doc"] == doc and line["target"] == str(doc["label"]) and line["filter"] == "none"
        assert [float(r[0]) for r in line["filtered_resps"]] == ll
        assert [a["arg_1"] for a in line["arguments"].values()] == [" negative", " positive"]
        assert line["acc"] in (0, 1) and line["metrics"] == ["acc"]
    toy = [json.loads(x) for x in next(out.glob("a/samples_toy_*.jsonl")).read_text().splitlines()]
    assert [line["doc_id"] for line in toy] == [0, 1, 2]  # ids x1.. are not numbers: positions
    for line in toy:
        assert LINE_KEYS | {"exact_match"} == set(line)
        assert line["doc"]["example_id"] in ("x1", "x2", "x3")
        assert line["exact_match"] == (line["doc"]["example_id"] == "x3")  # a errs on x1, x2


def test_ce_ingest_lmeval_reads_the_logs_back_as_the_same_predictions(store, tmp_path):
    ingest = pytest.importorskip("ce.extractors.ingest_lmeval")
    out = tmp_path / "logs"
    export_predictions(connect(store), out, "lm-eval", datasets=["mc"])
    again = Store(tmp_path / "again")
    for model in ("a", "b"):
        ingest.ingest_lmeval(again, out / model, model)
    names = ["prediction", "pred_label", "correct", "loglikelihoods", "metric", "doc_hash", "prompt_hash"]
    want = stored(store, datasets=["mc"])
    got = stored(again, datasets=["mc"])
    assert [(r["model"], r["example_id"]) for r in got] == [(r["model"], r["example_id"]) for r in want]
    for g, w in zip(got, want, strict=True):
        assert {n: g[n] for n in names} == {n: w[n] for n in names}
        assert g["probs"] == pytest.approx(w["probs"])
    examples = connect(again).sql("select text, label from examples order by idx").fetchall()
    assert [(json.loads(t), label) for t, label in examples] == [(d, d["label"]) for d in DOCS]


def test_predictions_without_log_likelihoods_or_numbered_ids_come_back_by_position(store, tmp_path):
    """ce's own classification predictions (probs, a label as the prediction, ids that are
    not numbers) and answers without a distribution: the ids come back as positions, the
    rest as stored (probs through their logs, a probability of 0 included)."""
    ingest = pytest.importorskip("ce.extractors.ingest_lmeval")
    probs = [[0.25, 0.75], [1.0, 0.0], [0.6, 0.4]]
    with store.run("test", {}) as run:
        run.write(
            "predictions",
            {"model": "c", "dataset": "toy"},
            pa.table(
                {
                    "example_id": ["x1", "x2", "x3"],
                    "prediction": ["1", "0", "0"],
                    "pred_label": [1, 0, 0],
                    "correct": [True, False, True],
                    "probs": probs,
                }
            ),
        )
    out = tmp_path / "logs"
    export_predictions(connect(store), out, "lm-eval", datasets=["toy"])
    got = {}
    for model in ("a", "c"):  # a's answers make a generation log, c's a multiple-choice one
        again = Store(tmp_path / f"again-{model}")
        ingest.ingest_lmeval(again, out / model, model)
        got |= {(r["model"], r["example_id"]): r for r in stored(again)}
    for want in stored(store, models=["a", "c"], datasets=["toy"]):
        g = got[(want["model"], str(want["idx"]))]
        assert (g["prediction"], g["pred_label"], g["correct"]) == (
            want["prediction"],
            want["pred_label"],
            want["correct"],
        )
        assert g["probs"] == (None if want["probs"] is None else pytest.approx(want["probs"], abs=1e-12))
    assert len(got) == 6


def test_a_table_correctness_column_named_like_an_lm_eval_field_round_trips(tmp_path):
    """A table ingested with --correct target stores metric 'target'; the lm-eval export
    writes acc instead, so the line's target stays the gold and ce ingest lm-eval reads it."""
    from ce.extractors.ingest_lmeval import ingest_lmeval

    csv = tmp_path / "t.csv"
    csv.write_text("id,answer,target,gold,p0,p1\ne0,0,1,0,0.8,0.2\ne1,0,0,1,0.6,0.4\ne2,1,1,1,0.3,0.7\n")
    src = Store(tmp_path / "src")
    result = CliRunner().invoke(cli, [
        "ingest", "predictions", str(csv), "--model", "m", "--dataset", "tab", "--id", "id",
        "--answer", "answer", "--correct", "target", "--gold", "gold", "--prob", "p0", "--prob", "p1",
        "--store", str(src.root),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = tmp_path / "logs"
    export_predictions(connect(src), out, "lm-eval")
    [line] = [json.loads(x) for x in next(out.rglob("*.jsonl")).read_text().splitlines()][:1]
    assert line["acc"] == 1 and line["target"] == "0" and "metrics" in line
    back = Store(tmp_path / "back")
    ingest_lmeval(back, next(out.rglob("*.jsonl")), "m")
    got = {
        r["example_id"]: r
        for r in connect(back).sql("select * from predictions").to_arrow_table().to_pylist()
    }
    assert [got[str(i)]["correct"] for i in range(3)] == [True, False, True]
    assert got["1"]["probs"] == pytest.approx([0.6, 0.4])
