"""Named datasets from CE_DATA_DIR, and local files of every supported format."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ce.extractors.datasets import DATASETS, load_dataset
from ce.store.errors import CeError, NotFound

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
        assert spec.local or spec.hub or spec.questions_of in DATASETS, spec.name


def test_the_questions_view_is_the_qa_sets_questions_unlabelled(data_dir):
    qa = load_dataset("squad2-dev")
    view = load_dataset("squad2-questions")
    assert (view.task, len(view)) == ("classification", len(qa))
    assert view.table["example_id"].to_pylist() == qa.table["example_id"].to_pylist()
    assert view.table["text"].to_pylist() == [q.strip() for q in qa.table["question"].to_pylist()]
    assert view.table["label"].null_count == len(view)  # to embed and score, not to grade
    assert view.fingerprint != qa.fingerprint


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


# A Hub dataset that fails to load, for real, in a fresh process: the offline switches and
# HF_ENDPOINT are read when huggingface_hub is imported, and nothing may reach the network
# (the endpoint is a closed port or a local server that answers as the Hub does).
HUB_SCRIPT = """
import sys, time
time.sleep = lambda seconds: None  # huggingface_hub waits 23 s between refused connections
from ce.extractors import datasets as d
hub_id, config, split = sys.argv[1], sys.argv[2] or None, sys.argv[3]
d.DATASETS["ghost"] = d.DatasetSpec("ghost", "qa", "ghost/ghost.json", (hub_id, config, split), "no cache")
try:
    d.load_dataset("ghost")
except d.CeError as e:
    print(e)
"""


def load_from_hub(tmp_path, env, hub_id="ce-tests/no-such-dataset", config="", split="validation") -> str:
    """The one-line error of loading a registered dataset from ``hub_id`` under ``env``."""
    from ce.extractors.datasets import OFFLINE_SWITCHES

    kept = {k: v for k, v in os.environ.items() if k not in (*OFFLINE_SWITCHES, "HF_ENDPOINT", "HF_TOKEN")}
    env = {**kept, "HF_HOME": str(tmp_path / "hf-home"), "CE_DATA_DIR": str(tmp_path), **env}
    done = subprocess.run(
        [sys.executable, "-c", HUB_SCRIPT, hub_id, config, split],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    assert lines[0].startswith(f"could not load ghost from the Hugging Face Hub ({hub_id}): ")
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fake_hub(status: int, error_code: str):
    """A local HTTP server that answers every request as the Hub does for a repo that is
    gated or missing (status and X-Error-Code header); yields its address."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(status)
            self.send_header("X-Error-Code", error_code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


ONLINE = {"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}


@pytest.mark.parametrize(
    ("env", "switch"),
    [
        ({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}, "HF_DATASETS_OFFLINE=1"),
        ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE=1"),
    ],
)
def test_hub_load_offline_names_the_switch_and_the_local_copy(tmp_path, env, switch):
    line = load_from_hub(tmp_path, env)
    assert f"the Hub is off here ({switch} is set) and no copy is cached" in line
    assert f"put a local copy at {tmp_path}/ghost/ghost.json" in line
    assert line.endswith(f"or unset {switch.split('=')[0]}")


def test_hub_load_with_the_hub_unreachable(tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    line = load_from_hub(tmp_path, {**ONLINE, "HF_ENDPOINT": endpoint})
    assert f"the Hub at {endpoint} cannot be reached" in line
    assert f"put a local copy at {tmp_path}/ghost/ghost.json, or retry once online" in line


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (
            401,
            "GatedRepo",
            "the dataset is gated: run `hf auth login` (or set HF_TOKEN) and accept its terms",
        ),
        (404, "RepoNotFound", "the Hub has no dataset ce-tests/no-such-dataset (or it is private"),
    ],
)
def test_hub_load_of_a_gated_or_missing_repo(tmp_path, status, code, expected):
    with fake_hub(status, code) as endpoint:
        line = load_from_hub(tmp_path, {**ONLINE, "HF_ENDPOINT": endpoint})
    assert expected in line
    assert line.endswith(f"put a local copy at {tmp_path}/ghost/ghost.json")


@pytest.mark.parametrize(
    ("config", "split", "expected"),
    [
        ("nope", "train", "it has no config 'nope' (BuilderConfig 'nope' not found"),
        ("", "dev", "it has no split 'dev'"),
    ],
)
def test_hub_load_of_a_missing_config_or_split(tmp_path, config, split, expected):
    """datasets raises these from the builder, alike for a Hub repo and a folder (here)."""
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "train.csv").write_text("question,context\nq,c\n")
    line = load_from_hub(tmp_path, {"HF_HUB_OFFLINE": "1"}, str(folder), config, split)
    assert expected in line
    assert line.endswith(f"put a local copy at {tmp_path}/ghost/ghost.json")
