"""Multiple-choice datasets (task "choice", issue 16): the JSONL shapes, the Hub rows of the
named datasets, hostile records refused in one line before anything is written, and the
fingerprints of the datasets without choices unchanged."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ce.extractors.choice_data import choice_row
from ce.extractors.datasets import DATASETS, load_dataset, sample_rows, strata, subset
from ce.store.errors import CeError
from ce.store.schema import ADDED_LATER, KINDS, examples_fingerprint
from ce.store.store import Store

from .conftest import DATA_DIR, needs_data, snapshot
from .test_fingerprint import per_row

# the fingerprints of today's examples (before the choices column existed): every stored run
# of these datasets stays current only while they are these
FINGERPRINTS = {
    "sst2-dev": "c5028282135a3af05410f6db02265eb984ae5c60379c8a275a15e137f74f3735",
    "squad2-dev": "f7aeecd9a58e7befcc46c4c46567c48eb2e0a5b65bda50650e484607ebead82f",
}

# one record of each Hub dataset, as `datasets` gives it (fields and types of the real rows)
HUB_ROWS = {
    "arc-easy": {
        "id": "Mercury_7175875",
        "question": "An astronomer observes that a planet rotates faster after a meteorite impact. Which is"
        " the most likely effect of this increase in rotation?",
        "choices": {
            "text": [
                "Planetary density will decrease.",
                "Planetary years will become longer.",
                "Planetary days will become shorter.",
                "Planetary gravity will become stronger.",
            ],
            "label": ["A", "B", "C", "D"],
        },
        "answerKey": "C",
    },
    "arc-challenge": {
        "id": "NYSEDREGENTS_2006_8_10",
        "question": "Which two body systems are directly involved in movement?",
        "choices": {
            "text": ["muscular and skeletal", "digestive and excretory", "respiratory and reproductive"],
            "label": ["1", "2", "3"],
        },
        "answerKey": "1",
    },
    "hellaswag": {
        "ind": 24,
        "activity_label": "Roof shingle removal",
        "ctx_a": "A man is sitting on a roof.",
        "ctx_b": "he",
        "ctx": "A man is sitting on a roof. he",
        "endings": [
            "is using wrap to wrap a pair of skis.",
            "is ripping level tiles off.",
            "is holding a rubik's cube.",
            "starts pulling up roofing on a roof.",
        ],
        "source_id": "activitynet~v_-JhWjGDPHMY",
        "split": "val",
        "split_type": "indomain",
        "label": "3",
    },
    "mmlu": {
        "question": "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.",
        "subject": "abstract_algebra",
        "choices": ["0", "4", "2", "6"],
        "answer": 1,
    },
    "boolq": {
        "question": "do iran and afghanistan speak the same language",
        "answer": True,
        "passage": "Persian (/ˈpɜːrʒən, -ʃən/), also known by its endonym Farsi, is one of the Western"
        " Iranian languages within the Indo-Iranian branch of the Indo-European language family.",
    },
}
EXPECTED = {  # (label, choices[label], title, context?)
    "arc-easy": (2, "Planetary days will become shorter.", None, False),
    "arc-challenge": (0, "muscular and skeletal", None, False),
    "hellaswag": (3, "starts pulling up roofing on a roof.", "Roof shingle removal", False),
    "mmlu": (1, "4", "abstract_algebra", False),
    "boolq": (1, "yes", None, True),
}


@pytest.mark.parametrize("name", sorted(HUB_ROWS))
def test_each_hub_shape_becomes_an_example(name):
    row = choice_row(HUB_ROWS[name], 5, f"{name} row 5")
    label, gold, title, has_context = EXPECTED[name]
    assert row["label"] == label and row["choices"][label] == gold and row["title"] == title
    assert row["text"] == row["question"] and (row["context"] is not None) == has_context
    assert row["example_id"] == str(HUB_ROWS[name].get("id", HUB_ROWS[name].get("ind", 5)))


def test_hellaswag_is_cleaned_as_lm_evaluation_harness_cleans_it():
    row = choice_row(
        {
            "activity_label": "Making a cake",
            "ctx_a": "She mixes the flour. [title] Bake it.",
            "ctx_b": "then",
            "endings": ["puts it in  the oven [step] now.", "eats it."],
            "label": "",
        },
        0,
        "x",
    )
    assert row["question"] == "Making a cake: She mixes the flour.. Bake it. Then"
    assert row["choices"] == ["puts it in the oven now.", "eats it."]
    assert row["label"] is None  # the test split's unknown gold


@pytest.mark.parametrize("name", sorted(HUB_ROWS))
def test_named_datasets_load_through_the_hub_path(name, monkeypatch, tmp_path):
    import datasets as hf

    spec = DATASETS[name]
    assert spec.task == "choice" and spec.hub is not None
    asked = []

    def fake_load_dataset(hub_id, config, split):
        asked.append((hub_id, config, split))
        return [HUB_ROWS[name], {**HUB_ROWS[name], "id": "other", "ind": 99}]

    monkeypatch.setenv("CE_DATA_DIR", str(tmp_path))  # no local copy: the Hub
    monkeypatch.setattr(hf, "load_dataset", fake_load_dataset)
    data = load_dataset(name)
    assert asked == [spec.hub] and data.task == "choice" and data.source == f"hf://{spec.hub[0]}"
    assert data.table.schema.names[-1] == "choices" and len(data) == 2
    assert data.table["label"].to_pylist() == [EXPECTED[name][0]] * 2


def test_the_named_hub_ids_are_the_published_ones():
    hubs = {name: DATASETS[name].hub for name in HUB_ROWS}
    assert hubs == {
        "arc-easy": ("allenai/ai2_arc", "ARC-Easy", "test"),
        "arc-challenge": ("allenai/ai2_arc", "ARC-Challenge", "test"),
        "hellaswag": ("Rowan/hellaswag", None, "validation"),
        "mmlu": ("cais/mmlu", "all", "test"),
        "boolq": ("google/boolq", None, "validation"),
    }


def test_a_named_dataset_reads_its_local_copy_first(monkeypatch, tmp_path):
    folder = tmp_path / "choice"
    folder.mkdir()
    (folder / "boolq_val.jsonl").write_text(json.dumps(HUB_ROWS["boolq"]) + "\n")
    monkeypatch.setenv("CE_DATA_DIR", str(tmp_path))
    data = load_dataset("boolq")
    assert data.task == "choice" and data.table["choices"].to_pylist() == [["no", "yes"]]
    assert data.source == str(folder / "boolq_val.jsonl")


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


def sst2_records(n: int = 40) -> list[dict]:
    """MMLU-style questions from real SST-2 dev sentences (gold = the sentence's label)."""
    lines = (DATA_DIR / "sst2" / "sst2_dev.tsv").read_text(encoding="utf-8").splitlines()[1 : n + 1]
    records = []
    for i, line in enumerate(lines):
        text, label = line.rsplit("\t", 1)
        records.append(
            {
                "id": f"s{i}",
                "question": text.strip(),
                "choices": ["negative", "positive"],
                "answer": int(label),
            }
        )
    return records


@needs_data("sst2/sst2_dev.tsv")
def test_a_local_jsonl_of_every_shape_end_to_end(tmp_path):
    records = [
        *sst2_records(6),
        {"question": "Pick B", "choices": ["a", "b", "c"], "answer": "B"},  # a letter
        {"question": "Pick c", "choices": ["a", "b", "c"], "label": 2.0},  # an integral number
        {"question": "Pick by name", "choices": ["x", "y"], "answer": "y"},  # the choice's text
        HUB_ROWS["arc-easy"],
        {**HUB_ROWS["hellaswag"], "label": 1},
        {"ctx": "A dog runs.", "endings": ["It barks.", "It flies."], "label": 0},
        HUB_ROWS["boolq"],
        {"question": "Unlabelled?", "choices": ["yes", "no"]},
    ]
    data = load_dataset(write_jsonl(tmp_path / "mixed.jsonl", records))
    assert (data.name, data.task, len(data)) == ("mixed", "choice", len(records))
    rows = data.table.to_pylist()
    assert [r["label"] for r in rows[6:]] == [1, 2, 1, 2, 1, 0, 1, None]
    assert rows[0]["choices"] == ["negative", "positive"] and rows[0]["text"] == rows[0]["question"]
    assert [r["idx"] for r in rows] == list(range(len(records)))
    assert rows[12]["context"] == HUB_ROWS["boolq"]["passage"]
    assert data.fingerprint == load_dataset(str(tmp_path / "mixed.jsonl")).fingerprint
    changed = [dict(r) for r in records]
    changed[0]["choices"] = ["negative", "positive!"]
    assert load_dataset(write_jsonl(tmp_path / "other.jsonl", changed)).fingerprint != data.fingerprint


def test_a_choice_parquet_is_read_as_multiple_choice(tmp_path):
    path = tmp_path / "mc.parquet"
    table = pa.table({"question": ["q1", "q2"], "choices": [["a", "b"], ["c", "d", "e"]], "label": [1, 2]})
    pq.write_table(table, path)
    data = load_dataset(str(path))
    assert data.task == "choice" and data.table["choices"].to_pylist() == [["a", "b"], ["c", "d", "e"]]


BAD = [
    ({"question": "q", "choices": "a,b", "answer": 0}, "choices is a str ('a,b'), not a list"),
    (
        {"question": "q", "choices": [], "answer": 0},
        "choices holds 0 choice(s); a question needs two or more",
    ),
    ({"question": "q", "choices": ["a"], "answer": 0}, "holds 1 choice(s)"),
    ({"question": "q", "choices": ["a", 3], "answer": 0}, "choice 1 is an int (3), not a string"),
    ({"question": "q", "choices": ["a", " "], "answer": 0}, "choice 1 is empty"),
    ({"question": "q", "choices": ["a", "b"], "answer": 2}, "answer 2 is out of range for 2 choices"),
    ({"question": "q", "choices": ["a", "b"], "answer": -1}, "answer -1 is out of range"),
    (
        {"question": "q", "choices": ["a", "b"], "label": 10**30},
        "label 1000000000000000000000000000000 is out",
    ),
    ({"question": "q", "choices": ["a", "b"], "label": float("nan")}, "label nan names no choice"),
    ({"question": "q", "choices": ["a", "b"], "label": 1e300}, "label 1e+300 is out of range"),
    ({"question": "q", "choices": ["a", "b"], "label": True}, "label True names no choice"),
    ({"question": "q", "choices": ["a", "b"], "answer": "maybe"}, "answer 'maybe' names no choice"),
    ({"question": ["q"], "choices": ["a", "b"], "answer": 0}, "question is a list (['q']), not a string"),
    (
        {"question": "q", "choices": {"text": ["a", "b"]}, "answerKey": "A"},
        "choices.label must list one label",
    ),
    (
        {"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"},
        "answerKey 'E'",
    ),
    ({"ctx": "c", "endings": ["a", "b"], "label": "x"}, "label 'x' names no choice"),
    ({"question": "q", "passage": "p", "answer": "yes"}, "answer 'yes' is not true or false"),
    (
        {"id": ["x"], "question": "q", "choices": ["a", "b"], "answer": 0},
        "id ['x'] is not a string or an integer",
    ),
]


@pytest.mark.parametrize(("record", "message"), BAD)
def test_hostile_records_fail_in_one_line_naming_the_line(tmp_path, record, message):
    good = {"question": "fine", "choices": ["a", "b"], "answer": 0}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(CeError) as caught:
        load_dataset(str(path))
    line = str(caught.value)
    assert "\n" not in line and message in line, line
    assert line.startswith(f"{path}, line 3: ")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'{"question": "q", "choices": ["caf\xe9", "b"], "answer": 0}\n',
            "it is not UTF-8 text (it holds the byte 0xe9)",
        ),
        (b'{"words": ["a"]}\n', "its first record (words) is neither MRQA"),
        (b"[1, 2]\n", "its first record (list) is neither MRQA"),
        (b'{"question": "q", "choices": ["a", "b"], "answer": 0}\n{"question": \n', "line 2: not JSON"),
        (
            b'{"question": "q", "choices": ["a", "b"], "answer": 0}\n{"text": "t"}\n',
            "line 2: not a multiple-choice record (text)",
        ),
        (b"\n\n", "holds no examples"),
        (
            b'{"id": 1, "question": "q", "choices": ["a", "b"]}\n'
            b'{"id": "1", "question": "r", "choices": ["a", "b"]}\n',
            "example id '1' occurs more than once",
        ),
    ],
)
def test_hostile_files_fail_in_one_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(CeError) as caught:
        load_dataset(str(path))
    assert "\n" not in str(caught.value) and message in str(caught.value), str(caught.value)


def test_a_hostile_file_is_refused_before_the_store_is_touched(tmp_path, tiny_models):
    from ce.extractors.extract import extract

    path = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "choices": ["a", "b"], "answer": 9}])
    store_dir = tmp_path / "store"
    store = Store(store_dir)
    before = snapshot(store_dir)
    with pytest.raises(CeError, match="answer 9 is out of range"):
        extract(store, str(tiny_models["classification"]), path, progress=False)
    assert snapshot(store_dir) == before


@needs_data("sst2/sst2_dev.tsv", "squad2/dev-v2.0.json")
@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_datasets_without_choices_keep_their_fingerprint(name):
    data = load_dataset(name)
    assert "choices" not in data.table.column_names
    assert data.fingerprint == FINGERPRINTS[name]
    # as a store gives them back: the choices column there, null in every row
    stored = data.table.append_column("choices", pa.nulls(len(data), pa.list_(pa.string())))
    assert examples_fingerprint(stored.to_batches(max_chunksize=4096)) == FINGERPRINTS[name]


def test_a_null_choice_is_left_out_of_its_row():
    table = pa.table(
        {
            "example_id": ["a", "b", "c"],
            "label": [0, None, 1],
            "choices": pa.array([["x", "y"], None, ["z\n", "w"]], pa.list_(pa.string())),
        }
    )
    rows = [{k: v for k, v in r.items() if v is not None or k != "choices"} for r in table.to_pylist()]
    expected = per_row(
        [pa.RecordBatch.from_pylist(rows[:1]), *[pa.RecordBatch.from_pylist([r]) for r in rows[1:]]]
    )
    assert examples_fingerprint(table.to_batches()) == expected  # mixed: a row at a time
    full = table.filter(pa.array([True, False, True]))
    assert examples_fingerprint(full.to_batches()) == per_row(full.to_batches())  # columnar
    assert ADDED_LATER["examples"] == ("choices",) and "choices" in KINDS["examples"].schema.names


def test_a_stored_choice_dataset_reads_back_its_choices_and_old_parts_read_null(tmp_path):
    import duckdb

    from ce.query.sql import _create_base_views

    def connect(store: Store):  # the store's base views (the SQL library is not needed)
        con = duckdb.connect()
        _create_base_views(con, store)
        return con

    mc = load_dataset(write_jsonl(tmp_path / "mc.jsonl", [HUB_ROWS["mmlu"], HUB_ROWS["arc-easy"]]))
    store = Store(tmp_path / "store")
    with store.run("test", {}, dataset_fingerprint=mc.fingerprint) as run:
        run.write("examples", {"dataset": mc.name}, mc.table)
    con = connect(store)
    got = con.execute("select example_id, choices, label from examples order by idx").fetchall()
    assert got[0] == ("0", ["0", "4", "2", "6"], 1) and got[1][2] == 2
    part = next((tmp_path / "store" / "examples").rglob("*.parquet"))
    stored = pq.read_table(part)
    assert examples_fingerprint(stored.to_batches()) == mc.fingerprint
    old = tmp_path / "old"  # a store written before the column: its examples read null choices
    with Store(old).run("test", {}) as run:
        run.write("examples", {"dataset": "plain"}, mc.table.drop_columns(["choices"]))
    part = next((old / "examples").rglob("*.parquet"))
    pq.write_table(pq.read_table(part).drop_columns(["choices"]), part)
    assert connect(Store(old)).execute("select choices from examples").fetchall() == [(None,), (None,)]


@needs_data("sst2/sst2_dev.tsv")
def test_a_limited_sample_is_stratified_by_the_gold_choice(tmp_path):
    data = load_dataset(write_jsonl(tmp_path / "mc.jsonl", sst2_records(40)))
    labels = data.table["label"].to_pylist()
    assert strata(data) == [str(v) for v in labels]
    rows = sample_rows(data, 10, seed=0)
    share = sum(labels[i] for i in rows) / 10
    assert abs(share - sum(labels) / 40) <= 0.1
    sampled = subset(data, 10)
    assert sampled.task == "choice" and sampled.table["choices"].to_pylist()[0] == ["negative", "positive"]
