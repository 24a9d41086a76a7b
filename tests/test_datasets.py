"""Named datasets from CE_DATA_DIR, and local files of every supported format."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ce.engine.errors import CeError, NotFound
from ce.extractors.datasets import DATASETS, load_dataset

from .conftest import needs_data


@pytest.mark.parametrize(
    ("name", "rows", "task"),
    [
        ("squad2-dev", 11873, "qa"),
        ("imdb-1k", 1000, "classification"),
        ("sst2-dev", 872, "classification"),
        ("newsqa-sample", 17, "qa"),
        ("covidqa", 1380, "qa"),
        ("squadshifts-new-wiki", 7938, "qa"),
    ],
)
def test_named_local_datasets(data_dir, name, rows, task):
    ds = load_dataset(name)
    assert (len(ds), ds.task, ds.name) == (rows, task, name)
    assert ds.table["example_id"].null_count == 0
    assert len(set(ds.table["example_id"].to_pylist())) == rows


@needs_data("squad2/dev-v2.0.json")
def test_squad2_dev_keeps_published_ids_and_all_gold_answers():
    ds = load_dataset("squad2-dev")
    t = ds.table
    assert t["is_impossible"].to_pylist().count(True) == 5945
    first = t.slice(0, 1).to_pylist()[0]
    assert first["example_id"] == "56ddde6b9a695914005b9628"
    assert first["answers"] == ["France"] * 4 and first["title"] == "Normans"
    impossible = t.filter(t["is_impossible"]).slice(0, 1).to_pylist()[0]
    assert impossible["answers"] == []


@needs_data("imdb/imdb_1k.tsv")
def test_imdb_labels_are_binary():
    labels = load_dataset("imdb-1k").table["label"].to_pylist()
    assert set(labels) == {0, 1}


def test_every_registered_dataset_says_where_it_comes_from():
    for spec in DATASETS.values():
        assert spec.local or spec.hub, spec.name


def test_csv_with_header_and_tsv_without(tmp_path):
    csv = tmp_path / "reviews.csv"
    csv.write_text('id,text,label\nr1,"good, really",1\nr2,bad,0\n')
    ds = load_dataset(str(csv))
    assert ds.name == "reviews" and ds.task == "classification"
    assert ds.table.select(["example_id", "text", "label"]).to_pylist() == [
        {"example_id": "r1", "text": "good, really", "label": 1},
        {"example_id": "r2", "text": "bad", "label": 0},
    ]
    tsv = tmp_path / "plain.tsv"
    tsv.write_text("fine film\t1\nawful\t0\n")
    assert load_dataset(str(tsv), name="mine").table["example_id"].to_pylist() == ["0", "1"]


def test_mrqa_jsonl_and_parquet(tmp_path):
    jl = tmp_path / "news.jsonl"
    jl.write_text(
        json.dumps({"header": {"dataset": "x"}})
        + "\n"
        + json.dumps(
            {
                "context": "Paris is in France.",
                "qas": [{"qid": "q1", "question": "Where is Paris?", "answers": ["France"]}],
            }
        )
        + "\n"
    )
    ds = load_dataset(str(jl))
    assert ds.task == "qa" and ds.table.to_pylist()[0]["answers"] == ["France"]
    pqf = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"sentence": ["a", "b"], "label": [0, 1]}), pqf)
    ds = load_dataset(str(pqf))
    assert ds.task == "classification" and ds.table["text"].to_pylist() == ["a", "b"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.txt", "hello", "unknown file type '.txt'"),
        ("x.json", "[1, 2]", "is not SQuAD JSON"),
        ("x.json", "{", "cannot read"),
        ("x.csv", "id,text,label\na,t,1\na,u,0\n", "example id 'a' occurs more than once"),
        ("x.csv", "id,text,label\n", "holds no examples"),
        ("x.csv", "id,text,label\na,t,pos\n", "cannot read"),
    ],
)
def test_bad_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CeError, match=message):
        load_dataset(str(path))


def test_unknown_names_get_suggestions():
    with pytest.raises(NotFound, match="did you mean imdb-1k"):
        load_dataset("imdb-1")


def test_missing_local_copy_without_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("CE_DATA_DIR", str(tmp_path))
    with pytest.raises(NotFound, match="has no Hub copy"):
        load_dataset("imdb-1k")
