"""Hostile input to the issue-16 paths, through the CLI (ce extract): multiple-choice JSONL and
Parquet records, prompt templates, verbalizers, --layer, a model folder's config.json
(model_type, architectures) and its tokenizer.

Each refusal is one ``Error: ...`` line on stderr naming the problem, a non-zero exit, no
traceback and the store byte for byte as it was; each input that is legitimately fine is
read as it says. Nothing in the input becomes code, SQL text or a path outside the store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ce.cli import cli
from ce.store.store import Store

from .conftest import needs_data, snapshot, stored

pytestmark = needs_data("sst2/sst2_train.tsv", "sst2/sst2_dev.tsv", "squad2/dev-v2.0.json")

GOOD = [
    {"id": f"g{i}", "question": f"Is {i} even?", "choices": ["yes", "no"], "answer": i % 2} for i in range(4)
]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A tiny Llama with its LM head (decoder: choices by log-likelihood, label words) and a
    tiny BERT with a multiple-choice head, tokenizers trained on a slice of the corpus."""
    from .families import build_family, corpus

    root = tmp_path_factory.mktemp("hostile-families")
    texts = corpus()[:600]
    llama = build_family("llama", root, texts, heads=("lm",))["lm"]
    bert = build_family("bert", root, texts, heads=("choice",))["choice"]
    return {"llama": llama, "bert": bert}


@pytest.fixture(scope="module")
def base_store(models, tmp_path_factory) -> Path:
    """A store with one complete extraction of its own, so that 'unchanged' means something."""
    root = tmp_path_factory.mktemp("hostile-base")
    data = write_jsonl(root / "good.jsonl", GOOD)
    result = ce(root / "store", "extract", "--model", models["llama"], "--dataset", data, "--k-max", "2")
    assert result.exit_code == 0, result.output
    return root / "store"


@pytest.fixture
def lab(base_store, tmp_path) -> Path:
    """A fresh copy of the base store for one test."""
    store = tmp_path / "store"
    shutil.copytree(base_store, store)
    return store


def ce(store: Path, *args):
    return CliRunner().invoke(cli, ["--store", str(store), *map(str, args)])


def extract(store: Path, model, dataset, *extra):
    return ce(store, "extract", "--model", model, "--dataset", dataset, "--k-max", "2", *extra)


def refused(store: Path, model, dataset, *extra, words: tuple[str, ...] = ()) -> str:
    """Run extract, assert a one-line refusal holding ``words`` and an unchanged store."""
    before = snapshot(store)
    result = extract(store, model, dataset, *extra)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("Error: ") and "internal error" not in line and "Traceback" not in line, line
    for word in words:
        assert word in line, (word, line)
    assert snapshot(store) == before
    return line


def accepted(store: Path, model, dataset, *extra) -> dict:
    """Run extract, assert success; the run's record."""
    result = extract(store, model, dataset, *extra)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return Store(store).runs()[-1]


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def q(**fields) -> dict:
    return {"question": "q", "choices": ["a", "b"], "answer": 0} | fields


def model_with(
    models, tmp_path, name: str, config: dict | None = None, tokenizer: dict | None = None
) -> Path:
    """A copy of the tiny Llama with config.json / tokenizer_config.json fields replaced."""
    folder = tmp_path / name
    shutil.copytree(models["llama"], folder)
    for file, changes in (("config.json", config), ("tokenizer_config.json", tokenizer)):
        if changes:
            path = folder / file
            path.write_text(json.dumps(json.loads(path.read_text()) | changes))
    if tokenizer:
        (folder / "special_tokens_map.json").unlink(missing_ok=True)
    return folder


# -- multiple-choice records -------------------------------------------------------------

HOSTILE_RECORDS = [
    ("nested-object", [q(choices=[{"a": 1}, "b"])], "line 1: choice 0 is a dict ({'a': 1}), not a string"),
    ("nested-list", [q(choices=[["a"], "b"])], "line 1: choice 0 is a list (['a']), not a string"),
    ("choices-null", [q(choices=None)], "line 1: choices is null, not a list"),
    ("choices-number", [q(choices=5)], "line 1: choices is an int (5), not a list"),
    ("choices-string", [q(choices="a,b")], "choices is a str ('a,b'), not a list"),
    ("one-choice", [q(choices=["a"])], "holds 1 choice(s); a question needs two or more"),
    ("float-text", [q(answer="1e3")], "answer '1e3' names no choice; give the gold choice's index (0..1)"),
    ("float-string", [q(answer="1.0")], "answer '1.0' names no choice"),
    ("infinity-string", [q(answer="Infinity")], "answer 'Infinity' names no choice"),
    ("superscript-digit", [q(answer="\u00b2")], "answer '\u00b2' names no choice"),
    ("arabic-indic-digit", [q(answer="\u0661")], "answer '\u0661' names no choice"),
    ("negative", [q(answer=-1)], "answer -1 is out of range for 2 choices; give an index in 0..1"),
    ("huge-float", [q(label=1e300)], "label 1e+300 is out of range"),
    ("bool-true", [q(answer=True)], "answer True names no choice"),
    ("bool-false", [q(label=False)], "label False names no choice"),
    ("list-answer", [q(answer=[1])], "answer [1] names no choice"),
    ("dict-answer", [q(answer={"a": 1})], "answer {'a': 1} names no choice"),
    ("duplicate-ids", [q(id="x"), q(id="x")], "example id 'x' occurs more than once; ids must be unique"),
    ("int-and-string-id", [q(id=7), q(id="7")], "example id '7' occurs more than once"),
    ("id-equals-a-position", [q(), q(id="0")], "example id '0' occurs more than once"),
    ("float-id", [q(id=1.5)], "line 1: id 1.5 is not a string or an integer"),
    ("empty-id", [q(id="")], "line 1: id '' is not a string or an integer"),
    ("null-line", [q(), None], "line 2: not a multiple-choice record (NoneType)"),
    (
        "mrqa-after-choice",
        [q(), {"header": {"dataset": "x"}}],
        "line 2: not a multiple-choice record (header)",
    ),
    (
        "answer-key-list",
        [{"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": ["A"]}],
        "answerKey ['A'] is none of the choices' labels A, B",
    ),
    (
        "arc-labels-short",
        [{"question": "q", "choices": {"text": ["a", "b"], "label": ["A"]}, "answerKey": "A"}],
        "choices.label must list one label per choice (2)",
    ),
    (
        "ctx-b-null",
        [{"ctx_a": "c", "ctx_b": None, "endings": ["x", "y"], "label": 0}],
        "ctx_b is null, not a string",
    ),
    ("ending-only-markup", [{"ctx": "c", "endings": ["[x]", "y"], "label": 0}], "choice 0 is empty"),
    (
        "passage-number",
        [{"question": "q", "passage": 5, "answer": True}],
        "passage is an int (5), not a string",
    ),
    (
        "boolq-string-answer",
        [{"question": "q", "passage": "p", "answer": "yes"}],
        "answer 'yes' is not true or false",
    ),
]


@pytest.mark.parametrize(
    ("records", "message"), [c[1:] for c in HOSTILE_RECORDS], ids=[c[0] for c in HOSTILE_RECORDS]
)
def test_hostile_choice_records_are_refused_in_one_line(models, lab, tmp_path, records, message):
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    refused(lab, models["llama"], path, words=(str(path), message))


HOSTILE_BYTES = [
    (
        "nul-in-string",
        b'{"question": "a\x00b", "choices": ["a", "b"], "answer": 0}\n',
        "line 1: not JSON (Invalid control",
    ),
    (
        "nul-between-tokens",
        b'{"question": "a",\x00 "choices": ["a", "b"], "answer": 0}\n',
        "line 1: not JSON",
    ),
    ("nul-line", b"\x00\x00\x00\n", "line 1: not JSON"),
    (
        "huge-integer",
        b'{"question": "q", "choices": ["a", "b"], "answer": ' + b"9" * 5000 + b"}\n",
        "line 1: not JSON",
    ),
    (
        "nan-literal",
        b'{"question": "q", "choices": ["a", "b"], "answer": NaN}\n',
        "answer nan names no choice",
    ),
    (
        "bom-mid-file",
        b'{"question": "q", "choices": ["a", "b"], "answer": 0}\n'
        b'\xef\xbb\xbf{"question": "r", "choices": ["a", "b"]}\n',
        "line 2: not JSON (Unexpected UTF-8 BOM",
    ),
    ("latin-1", b'{"question": "caf\xe9", "choices": ["a", "b"], "answer": 0}\n', "it is not UTF-8 text"),
    ("first-record-a-list", b"[1, 2]\n", "its first record (list) is neither MRQA"),
    ("only-blank-lines", b"\n \n\n", "holds no examples"),
]


@pytest.mark.parametrize(
    ("content", "message"), [c[1:] for c in HOSTILE_BYTES], ids=[c[0] for c in HOSTILE_BYTES]
)
def test_hostile_jsonl_bytes_are_refused_in_one_line(models, lab, tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    refused(lab, models["llama"], path, words=(message,))


HOSTILE_PARQUET = [
    ("choices-string", {"choices": ["a,b"]}, "row 1: choices is a str ('a,b'), not a list"),
    ("choices-ints", {"choices": [[1, 2]]}, "row 1: choice 0 is an int (1), not a string"),
    (
        "choices-binary",
        {"choices": pa.array([[b"a", b"b"]], pa.list_(pa.binary()))},
        "choice 0 is a bytes (b'a')",
    ),
    (
        "choices-map",
        {"choices": pa.array([[("a", "b"), ("c", "d")]], pa.map_(pa.string(), pa.string()))},
        "choice 0 is a tuple",
    ),
    (
        "choices-null",
        {"choices": pa.array([None], pa.list_(pa.string()))},
        "row 1: choices is null, not a list",
    ),
    ("choices-nested", {"choices": [[["a"], ["b"]]]}, "choice 0 is a list (['a']), not a string"),
    ("label-nan", {"label": [float("nan")]}, "label nan names no choice"),
    ("label-decimal", {"label": pa.array([1], pa.decimal128(5, 0))}, "label Decimal('1') names no choice"),
    ("label-bool", {"label": [True]}, "label True names no choice"),
    ("question-int", {"question": [3]}, "row 1: question is an int (3), not a string"),
    ("id-timestamp", {"id": pa.array([1], pa.timestamp("s"))}, "is not a string or an integer"),
]


@pytest.mark.parametrize(
    ("columns", "message"), [c[1:] for c in HOSTILE_PARQUET], ids=[c[0] for c in HOSTILE_PARQUET]
)
def test_hostile_parquet_choices_are_refused_in_one_line(models, lab, tmp_path, columns, message):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"question": ["q"], "choices": [["a", "b"]], "label": [0]} | columns), path)
    refused(lab, models["llama"], path, words=(str(path), message))


def test_hostile_parquet_files_are_refused_in_one_line(models, lab, tmp_path):
    dup = tmp_path / "dup.parquet"
    pq.write_table(pa.table({"id": ["x", "x"], "question": ["q", "r"], "choices": [["a", "b"]] * 2}), dup)
    refused(lab, models["llama"], dup, words=("example id 'x' occurs more than once",))
    empty = tmp_path / "empty.parquet"
    pq.write_table(
        pa.table({"question": pa.array([], pa.string()), "choices": pa.array([], pa.list_(pa.string()))}),
        empty,
    )
    refused(lab, models["llama"], empty, words=("holds no examples",))
    for name, content in (("zero", b""), ("text", b"not parquet at all\n")):
        path = tmp_path / f"{name}.parquet"
        path.write_bytes(content)
        refused(lab, models["llama"], path, words=(f"cannot read {path}", "check the file's format"))


def test_odd_but_legitimate_records_are_read_as_they_say(models, lab, tmp_path):
    records = [
        q(id="one-point-zero", answer=1.0),  # an integral number
        q(id="minus-zero", answer=-0.0),
        q(id="spaced-digit", answer=" 1 "),
        q(id="letter", answer="B"),
        q(id="by-text", answer="b"),
        q(id="escaped-nul", question="a\u0000b", choices=["x\u0000", "y"]),
        q(id="line-separator", question="q\u2028x"),
        q(id="no-gold"),
        {"id": "arc-ints", "question": "q", "choices": {"text": ["a", "b"], "label": [1, 2]}, "answerKey": 2},
        {"id": "boolq", "question": "q", "passage": "p", "answer": False},
        {"id": "hellaswag", "ctx": "c", "endings": ["x", "y"], "label": "1"},
        q(id="odd-subject", subject={"a": 1}),
    ]
    records[7].pop("answer")
    path = write_jsonl(tmp_path / "odd.jsonl", records)
    record = accepted(lab, models["llama"], path)
    assert record["task"] == "choice" and record["examples"] == len(records)
    rows = {r["example_id"]: r for r in stored(lab, "examples", dataset="odd")}
    labels = {k: r["label"] for k, r in rows.items()}
    assert labels == {
        "one-point-zero": 1,
        "minus-zero": 0,
        "spaced-digit": 1,
        "letter": 1,
        "by-text": 1,
        "escaped-nul": 0,
        "line-separator": 0,
        "no-gold": None,
        "arc-ints": 1,
        "boolq": 0,
        "hellaswag": 1,
        "odd-subject": 0,
    }
    assert rows["escaped-nul"]["question"] == "a\x00b" and rows["escaped-nul"]["choices"] == ["x\x00", "y"]
    assert rows["line-separator"]["question"] == "q\u2028x"
    assert rows["boolq"]["choices"] == ["no", "yes"] and rows["boolq"]["context"] == "p"
    assert rows["odd-subject"]["title"] is None


def test_ids_that_look_like_paths_or_sql_stay_data(models, lab, tmp_path):
    ids = ["../../../etc/passwd", "'; drop table examples; --", "x\ny", str(10**40)]
    path = write_jsonl(tmp_path / "ids.jsonl", [q(id=i if n < 3 else 10**40) for n, i in enumerate(ids)])
    outside = sorted(p.name for p in tmp_path.iterdir())
    accepted(lab, models["llama"], path)
    assert sorted(p.name for p in tmp_path.iterdir()) == outside  # nothing written beside the store
    assert sorted(r["example_id"] for r in stored(lab, "examples", dataset="ids")) == sorted(ids)
    assert not any("passwd" in str(p) or "drop" in str(p) for p in lab.rglob("*"))
    answered = ce(lab, "query", "select count(*) as n from examples where dataset = 'ids'")
    assert answered.exit_code == 0 and "4" in answered.stdout, answered.output


def test_a_parquet_of_legitimate_column_types_is_read(models, lab, tmp_path):
    path = tmp_path / "typed.parquet"
    table = pa.table(
        {
            "question": pa.array(["q1", "q2"]).dictionary_encode(),
            "choices": pa.array([["a", "b"], ["c", "d", "e"]], pa.large_list(pa.large_string())),
            "label": [1.0, 2.0],
        }
    )
    pq.write_table(table, path)
    accepted(lab, models["llama"], path)
    rows = stored(lab, "examples", dataset="typed")
    assert [(r["question"], r["choices"], r["label"]) for r in rows] == [
        ("q1", ["a", "b"], 1),
        ("q2", ["c", "d", "e"], 2),
    ]
    arc = tmp_path / "arc.parquet"
    pq.write_table(
        pa.table(
            {"question": ["q"], "choices": [{"text": ["a", "b"], "label": ["A", "B"]}], "answerKey": ["B"]}
        ),
        arc,
    )
    accepted(lab, models["llama"], arc)
    assert [r["label"] for r in stored(lab, "examples", dataset="arc")] == [1]


def test_hostile_dataset_and_model_names_are_refused(models, lab, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    for name in ("../../evil", "a'b", "x/y", ".", "..", "a b"):
        refused(
            lab,
            models["llama"],
            good,
            "--dataset-name",
            name,
            words=(f"dataset name {name!r} is not usable",),
        )
        refused(lab, models["llama"], good, "--name", name, words=(f"model name {name!r} is not usable",))
    for stem in (".", ".."):  # the file's stem names the dataset
        path = tmp_path / "odd"
        path.mkdir(exist_ok=True)
        write_jsonl(path / f"{stem}.jsonl", GOOD)
        refused(lab, models["llama"], path / f"{stem}.jsonl", words=(f"dataset name {stem!r} is not usable",))


# -- prompt templates and label words ----------------------------------------------------

HOSTILE_PROMPTS = [
    ("{text.__class__}", "unknown field {text.__class__}"),
    ("{question.__init__.__globals__}", "unknown field {question.__init__.__globals__}"),
    ("{__import__}", "unknown field {__import__}"),
    ("{0}", "unknown field {0}"),
    ("{}", "unknown field {}"),
    ("{text[0]}", "unknown field {text[0]}"),
    ("{text:>10}", "unknown field {text:>10}"),
    ("{text!r}", "unknown field {text!r}"),
    ("{text:{question}}", "unknown field {text:{question}}"),
    ("{", "is not a template (Single '{' encountered"),
    ("}", "is not a template (Single '}' encountered"),
]


@pytest.mark.parametrize(("prompt", "message"), HOSTILE_PROMPTS)
def test_hostile_prompts_are_refused_before_anything_runs(models, lab, tmp_path, prompt, message):
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    line = refused(lab, models["llama"], good, "--prompt", prompt, words=(message,))
    assert "use {text}, {question} or {context}" in line or "write fields as {text}" in line


def test_an_encoder_choice_head_refuses_a_hostile_prompt_too(models, lab, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    refused(lab, models["bert"], good, "--prompt", "{question.__class__}", words=("unknown field",))


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("{text}", "names {text}, which a QA prompt does not fill"),
        ("{context}", "--prompt has no {question}"),
        ("{question.__class__}", "unknown field {question.__class__}"),
    ],
)
def test_hostile_qa_prompts_are_refused(models, lab, prompt, message):
    refused(lab, models["llama"], "squad2-dev", "--limit", "2", "--prompt", prompt, words=(message,))


@pytest.mark.parametrize(
    "prompt", ["{{text}} {question}", "\x00{question}\x00", "\n\n{question}\n", " ", "Answer:"]
)
def test_odd_but_legitimate_prompts_run_as_given(models, lab, tmp_path, prompt):
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    record = accepted(lab, models["llama"], good, "--prompt", prompt)
    assert record["identity"]["prompt"] == prompt and record["answered_by"] == "choose-lm"


@pytest.mark.parametrize(
    ("verbalizer", "message"),
    [
        (",", "label word 0 is empty"),
        (",,,,", "label word 0 is empty"),
        ("  ,  ", "label word 0 is empty"),
        ("good", "names one label word"),
        (",".join(f"w{i}" for i in range(1000)), "names 1000 label words but dataset sst2-dev has 2 labels"),
    ],
    ids=["comma", "commas", "blanks", "one-word", "thousand-words"],
)
def test_hostile_verbalizers_are_refused(models, lab, verbalizer, message):
    refused(lab, models["llama"], "sst2-dev", "--limit", "4", "--verbalizer", verbalizer, words=(message,))


def test_legitimate_verbalizers_are_recorded_as_given(models, lab):
    record = accepted(lab, models["llama"], "sst2-dev", "--limit", "4", "--verbalizer", " bad , good ")
    assert record["answered_by"] == "verbalize" and record["identity"]["verbalizer"] == "bad,good"


# -- --layer ---------------------------------------------------------------------------

REFUSED_LAYERS = [
    ("nan", "--layer nan: a fraction of depth lies strictly between 0 and 1"),
    ("NaN", "a fraction of depth lies strictly between 0 and 1"),
    ("inf", "--layer inf: a fraction of depth"),
    ("-inf", "--layer -inf: a fraction of depth"),
    ("1e309", "--layer 1e309: a fraction of depth"),
    ("-1e309", "--layer -1e309: a fraction of depth"),
    ("1.5", "--layer 1.5: a fraction of depth"),
    ("1e3", "--layer 1000: the model has 2 blocks, so use 0..2 or -3..-1"),
    ("1_0", "--layer 10: the model has 2 blocks"),
    ("3", "--layer 3: the model has 2 blocks"),
    ("-4", "--layer -4: the model has 2 blocks"),
    ("0x1", "--layer '0x1' is not a layer"),
    ("", "--layer '' is not a layer"),
    (" ", "--layer ' ' is not a layer"),
    ("True", "--layer 'True' is not a layer"),
    ("middle", "--layer 'middle' is not a layer"),
]


@pytest.mark.parametrize(("layer", "message"), REFUSED_LAYERS, ids=[repr(v) for v, _ in REFUSED_LAYERS])
def test_hostile_layers_are_refused(models, lab, tmp_path, layer, message):
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    refused(lab, models["llama"], good, "--stage", "pretrained", "--layer", layer, words=(message,))


@pytest.mark.parametrize(
    ("layer", "position"),
    [
        ("-0", 0),
        ("0.0", 0),
        ("1.0", 1),
        ("0.5", 1),
        ("\uff11", 1),
        ("-3", 0),
        ("-1", 2),
        (" 2 ", 2),
        ("1e-320", 0),
    ],
)
def test_odd_but_legitimate_layers_pick_the_hidden_state_they_name(models, lab, tmp_path, layer, position):
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    record = accepted(lab, models["llama"], good, "--stage", "pretrained", "--layer", layer)
    assert record["representation"] == {"pooling": "last", "layer": position, "blocks": 2}


# -- config.json and the tokenizer -----------------------------------------------------

NO_MODEL_TYPE = [["llama"], 5, None, {"llama": 1}, True]


@pytest.mark.parametrize("model_type", NO_MODEL_TYPE, ids=[repr(v) for v in NO_MODEL_TYPE])
def test_a_model_type_that_is_not_a_string_is_refused(models, lab, tmp_path, model_type):
    folder = model_with(models, tmp_path, "odd", {"model_type": model_type})
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    said = "names no model_type; add it" if model_type is None else "not a name such as"
    refused(lab, folder, good, words=(f"the config.json of {folder} ", said))


@pytest.mark.parametrize("model_type", ["llama\nbert", "__class__", "os.system", "LLAMA"])
def test_an_unknown_model_type_is_refused_naming_the_supported_ones(models, lab, tmp_path, model_type):
    folder = model_with(models, tmp_path, "odd", {"model_type": model_type})
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    refused(
        lab, folder, good, words=(f"is a {model_type!r} model, which ce does not support", "decoders (falcon")
    )


ARCHITECTURES = [
    ["os.system"],
    ["LlamaForSequenceClassification\nX"],
    ["EvilForSequenceClassification"],
    "LlamaForSequenceClassification",
    {"LlamaForSequenceClassification": 1},
    [None, 3],
    [],
]


@pytest.mark.parametrize("architectures", ARCHITECTURES, ids=[repr(v)[:40] for v in ARCHITECTURES])
def test_architectures_never_name_the_class_that_loads(models, lab, tmp_path, architectures):
    """config.json is data: the class comes from ce's route (a decoder answers multiple choice
    by its LM head), never from a name in architectures."""
    folder = model_with(models, tmp_path, "odd", {"architectures": architectures})
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    record = accepted(lab, folder, good)
    assert record["answered_by"] == "choose-lm" and record["architecture"] == "LlamaForCausalLM"
    assert record["model_class"] == "AutoModelForCausalLM"


def test_a_claimed_classification_head_that_is_absent_is_refused(models, lab, tmp_path):
    folder = model_with(models, tmp_path, "odd", {"architectures": ["X\nForSequenceClassification"]})
    refused(
        lab,
        folder,
        "sst2-dev",
        "--limit",
        "4",
        words=("has no trained sequence-classification head (missing score.weight)",),
    )


NO_SPECIAL = {"bos_token": None, "eos_token": None, "unk_token": None, "pad_token": None}


@pytest.mark.parametrize(
    ("tokenizer", "message"),
    [
        (
            NO_SPECIAL | {"add_bos_token": False, "tokenizer_class": "PreTrainedTokenizerFast"},
            "the tokenizer has no pad, end-of-text or unknown token to pad batches with; save it with",
        ),
        (NO_SPECIAL | {"add_bos_token": False}, "the tokenizer has no pad, end-of-text or unknown token"),
        (NO_SPECIAL, "could not load the tokenizer of"),
        ({"tokenizer_class": "os.system"}, "Tokenizer class os.system does not exist"),
    ],
    ids=["plain-fast", "llama", "llama-adds-bos", "class-os-system"],
)
def test_a_tokenizer_without_special_tokens_is_refused(models, lab, tmp_path, tokenizer, message):
    folder = model_with(models, tmp_path, "odd", tokenizer=tokenizer)
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    refused(lab, folder, good, words=(message,))


def test_a_tokenizer_with_only_a_pad_token_runs(models, lab, tmp_path):
    tokenizer = NO_SPECIAL | {
        "pad_token": "<unk>",
        "add_bos_token": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    folder = model_with(models, tmp_path, "pad-only", tokenizer=tokenizer)
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    record = accepted(lab, folder, good, "--prompt", "{context}")  # an empty context for every example
    assert record["answered_by"] == "choose-lm" and "pad_token" not in record


# -- found by attacking, fixed since: each was an internal error or a wrong acceptance ----

CONFIG_VALUES = [
    ({"architectures": 5}, None),  # not a list: ignored, the route picks the class
    ({"architectures": True}, None),
    ({"pad_token_id": 1_000_000_000}, "has pad_token_id 1000000000, outside its vocab_size 1500"),
    ({"pad_token_id": True}, "has pad_token_id True, not a token id"),
    ({"pad_token_id": "0"}, "has pad_token_id '0', not a token id"),
    ({"num_hidden_layers": 0}, "has num_hidden_layers 0, not a positive whole number"),
    ({"num_hidden_layers": "2"}, "has num_hidden_layers '2', not a positive whole number"),
    ({"max_position_embeddings": 2}, "the model reads at most 2 tokens, too few for a question"),
    ({"model_type": "a" * 100_000}, "is a 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa... model"),
    ({"model_type": "bert"}, "do not fit its config.json ("),  # Llama weights under a BERT config
]


@pytest.mark.parametrize(("config", "message"), CONFIG_VALUES, ids=[repr(c)[:40] for c, _ in CONFIG_VALUES])
def test_hostile_config_values_are_refused_or_harmless(models, lab, tmp_path, config, message):
    folder = model_with(models, tmp_path, "odd", config)
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    if message is None:
        assert accepted(lab, folder, good)["answered_by"] == "choose-lm"
    else:
        line = refused(lab, folder, good, words=(message,))
        assert len(line) < 2000


def test_a_pad_token_outside_the_embeddings_is_refused(models, lab, tmp_path):
    folder = model_with(models, tmp_path, "odd", tokenizer={"pad_token": "<notinvocab>"})
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    refused(lab, folder, good, words=("the tokenizer pads with '<notinvocab>' (id 1500), which the model's",))


def test_deep_json_duplicate_labels_and_broken_parquet_are_one_line(models, lab, tmp_path):
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"question": "q", "choices": ' + "[" * 100_000 + "]" * 100_000 + ', "answer": 0}\n')
    refused(lab, models["llama"], deep, words=("line 1: its JSON nests too deeply",))
    arc = write_jsonl(
        tmp_path / "arc.jsonl",
        [{"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "A"]}, "answerKey": "A"}],
    )
    refused(lab, models["llama"], arc, words=("choices.label names a label twice",))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + b"\0" * 100 + b"PAR1")
    refused(lab, models["llama"], broken, words=(f"cannot read {broken}: not a readable Parquet file",))
    many = write_jsonl(tmp_path / "many.jsonl", [q(choices=[f"c{i}" for i in range(1001)])])
    refused(lab, models["llama"], many, words=("holds 1001 choices; ce scores at most 1000 per question",))


def test_duplicate_or_endless_label_words_are_refused(models, lab):
    refused(
        lab,
        models["llama"],
        "sst2-dev",
        "--limit",
        "4",
        "--verbalizer",
        "good,good",
        words=("names a label word twice",),
    )
    line = refused(
        lab,
        models["llama"],
        "sst2-dev",
        "--limit",
        "4",
        "--verbalizer",
        ",".join(f"w{i}" for i in range(3000)),
    )
    assert "at most 1000" in line and len(line) < 300
