"""Every command through the CLI: help with an example, one-line errors, store unchanged."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ce.cli import COMMANDS, cli
from ce.store.schema import SCHEMA_VERSION

from .conftest import snapshot

PAPER = "paper/squad2-dev-errors/bert_base.json"


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.fixture
def filled_store(store_dir, data_dir):
    result = invoke(
        "ingest",
        "errors",
        data_dir / PAPER,
        "--model",
        "bert-base",
        "--dataset",
        "squad2-dev",
        "--store",
        store_dir,
    )
    assert result.exit_code == 0, result.output
    return store_dir


def test_every_command_has_help_with_an_example():
    for name in COMMANDS:
        result = invoke(name, "--help")
        assert result.exit_code == 0, name
        assert "Example" in result.stdout, f"ce {name} --help has no example"
    result = invoke("ingest", "errors", "--help")
    assert result.exit_code == 0 and "Example" in result.stdout


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and "ce, version" in result.stdout


def one_line_error(result, contains: str, code: int | None = None):
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and contains in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "contains"),
    [
        (
            ["extract", "--model", "bert-larg", "--dataset", "squad2-dev"],
            "unknown model 'bert-larg' (did you mean bert-large",
        ),
        (
            ["extract", "--model", "minilm", "--dataset", "squad2-de", "--stage", "pretrained"],
            "unknown dataset 'squad2-de' (did you mean squad2-dev",
        ),
        (["extract", "--model", "minilm", "--dataset", "missing/file.json"], "no such file"),
        (["extract", "--model", "./no/such/dir", "--dataset", "sst2-dev"], "not a directory"),
        (["extract", "--model", "minilm", "--dataset", "squad2-dev"], "no known fine-tuned qa checkpoint"),
        (
            [
                "extract",
                "--model",
                "minilm",
                "--dataset",
                "sst2-dev",
                "--stage",
                "pretrained",
                "--device",
                "cuda",
            ],
            "no CUDA device",
        ),
        (
            ["extract", "--model", "minilm", "--dataset", "sst2-dev", "--limit", "0"],
            "--limit must be at least 1",
        ),
        (
            ["ingest", "errors", "no-such.json", "--model", "m", "--dataset", "squad2-dev"],
            "no such error list",
        ),
        (["query", "selec 1"], "SQL error: Parser Error"),
        (["query", "acuracy"], "(did you mean accuracy?)"),
        (["query", "select $m"], "missing parameter m"),
        (["compare", "--dataset", "squad2"], "(did you mean squad2-dev?)"),
        (["query", "accuracy", "--format", "parquet"], "needs an output file"),
        (["qury"], "no command 'qury' (did you mean query?)"),
        (["compare", "--tpr", "2"], "tpr 2.0 must lie strictly between 0 and 1"),
        (["compare", "--format", "csv"], "add --table 2, 3, floor, groups or pie"),
        (["compare", "--by", "colour"], "Invalid value for '--by'"),
        (["compress", "--model", "minilm", "--method", "fp4", "-o", "x"], "unknown compression method 'fp4'"),
        (["compress", "--model", "minilm", "--method", "prune:2", "-o", "x"], "must lie in [0, 1)"),
        (
            ["compress", "--model", "minilm", "--method", "layers:3", "-o", "bert-base"],
            "-o bert-base is a model alias",
        ),
        (
            ["finetune", "--model", "minilm", "--task", "qa", "--dataset", "sst2-dev", "-o", "x"],
            "is a classification dataset, not qa",
        ),
        (["report", "-o", "/no/such/dir/r.html"], "folder /no/such/dir does not exist"),
        (["bundle", "import", "missing.cebundle"], "no such bundle: missing.cebundle"),
        (["bundle", "export", "/no/such/dir/x.cebundle"], "folder /no/such/dir does not exist"),
        (["run", "missing.toml"], "no such experiment file: missing.toml"),
        (["extract", "--model", "minilm", "--dataset", "sst2-dev", "--shard", "3/3"], "I must lie in 0..N-1"),
        (["attack", "--model", "minilm", "--shard", "x"], "shard 'x' is not I/N"),
        (["ood", "--model", "m", "--bank", "sst2-dev", "--dataset", "imdb-1k", "--shard", "5/2"], "0..N-1"),
        (["extract", "--model", "minilm", "--dataset", "sst2-dev", "--shards", "2"], "go with --engine ray"),
        (
            ["extract", "--model", "minilm", "--dataset", "sst2-dev", "--engine", "ray", "--shards", "0"],
            "--shards 0: give at least 1",
        ),
        (
            ["extract", "--model", "minilm", "--dataset", "sst2-dev", "--engine", "ray", "--shard", "0/2"],
            "drop --shard",
        ),
        (
            [
                "extract",
                "--model",
                "minilm",
                "--dataset",
                "sst2-dev",
                "--stage",
                "pretrained",
                "--k-max",
                "0",
            ],
            "--k-max must be at least 1",
        ),
        (
            [
                "extract",
                "--model",
                "minilm",
                "--dataset",
                "sst2-dev",
                "--stage",
                "pretrained",
                "--name",
                "../x",
            ],
            "is not usable in the store",
        ),
        (
            ["attack", "--model", "minilm", "--attack", "bert-atack"],
            "unknown attack recipe 'bert-atack' (did you mean bert-attack?)",
        ),
        (["attack", "--model", "minilm", "--dataset", "squad2-dev"], "attacks need a classification"),
        (["sweep", "--k", "1,a"], "is not a comma-separated list of integers"),
        (
            ["neighbors", "--model", "nope", "--dataset", "squad2-dev"],
            "no finetuned embeddings of nope on squad2-dev",
        ),
        (
            [
                "ood",
                "--model",
                "minilm",
                "--bank",
                "squad2-dev",
                "--dataset",
                "covidqa",
                "--val-fraction",
                "1.5",
            ],
            "--val-fraction 1.5 must lie strictly between 0 and 1",
        ),
        (
            ["ood", "--model", "minilm", "--bank", "squad2-dev", "--dataset", "covidqa", "--k-max", "0"],
            "--k-max must be at least 1",
        ),
    ],
)
def test_user_errors_are_one_line_and_leave_the_store_unchanged(filled_store, args, contains):
    before = snapshot(filled_store)
    result = invoke(*args, "--store", filled_store) if args[0] != "qury" else invoke(*args)
    one_line_error(result, contains)
    assert snapshot(filled_store) == before


@pytest.mark.parametrize(
    ("content", "contains"),
    [
        ("[1", "is not valid JSON"),
        ('{"a": 1}', "must hold a JSON list of example ids"),
        ('["56ddde6b9a695914005b9628", "not-an-id"]', "1 id(s) are not in dataset squad2-dev"),
    ],
)
def test_bad_error_lists(filled_store, tmp_path, content, contains):
    bad = tmp_path / "errors.json"
    bad.write_text(content)
    before = snapshot(filled_store)
    result = invoke(
        "ingest", "errors", bad, "--model", "m", "--dataset", "squad2-dev", "--store", filled_store
    )
    one_line_error(result, contains, code=1)
    assert snapshot(filled_store) == before


def test_malformed_data_file(filled_store, tmp_path):
    bad = tmp_path / "reviews.csv"
    bad.write_text("just,three,columns\n1,2,3\n")
    before = snapshot(filled_store)
    result = invoke(
        "extract", "--model", "minilm", "--dataset", bad, "--stage", "pretrained", "--store", filled_store
    )
    one_line_error(result, "need a header with a text column")
    assert snapshot(filled_store) == before


def test_demo_without_data_is_one_line(store_dir):
    result = invoke("demo", "--store", store_dir, env={"CE_DATA_DIR": ""})
    one_line_error(result, "the demo reads real data from CE_DATA_DIR", code=1)
    assert not store_dir.exists()


def test_store_of_another_schema_version(store_dir):
    store_dir.mkdir()
    (store_dir / "ce-store.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    before = snapshot(store_dir)
    one_line_error(invoke("query", "accuracy", "--store", store_dir), "schema version")
    one_line_error(
        invoke("ingest", "errors", "x.json", "--model", "m", "--dataset", "squad2-dev", "--store", store_dir),
        "schema version",
    )
    assert snapshot(store_dir) == before


def test_debug_works_on_every_command():
    """--debug anywhere, also on commands without a store (it was an unknown option there)."""
    for args in (["models", "--debug"], ["datasets", "--debug"], ["--debug", "models"]):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)


def test_debug_shows_the_traceback(filled_store):
    result = invoke("--debug", "query", "selec 1", "--store", filled_store)
    assert result.exit_code != 0 and result.exception is not None
    assert type(result.exception).__name__ == "QueryError"


def test_query_formats(filled_store, tmp_path):
    csv = invoke(
        "query",
        "select model, count(*) as n from errors group by model",
        "--format",
        "csv",
        "--store",
        filled_store,
    )
    assert csv.exit_code == 0 and csv.stdout.splitlines() == ['"model","n"', '"bert-base",3236']
    js = invoke("query", "accuracy", "--format", "json", "--store", filled_store)
    assert json.loads(js.stdout.splitlines()[0])["n"] == 11873
    out = tmp_path / "acc.parquet"
    pq = invoke("query", "accuracy", "--format", "parquet", "-o", out, "--store", filled_store)
    assert pq.exit_code == 0
    import pyarrow.parquet as papq

    assert papq.read_table(out).num_rows == 1
    table = invoke("query", "--list")
    assert "error_agreement()" in table.stdout and "accuracy" in table.stdout


def test_compare_prints_table2(filled_store, data_dir):
    result = invoke(
        "ingest",
        "errors",
        data_dir / "paper/squad2-dev-errors/bert_large.json",
        "--model",
        "bert-large",
        "--dataset",
        "squad2-dev",
        "--store",
        filled_store,
    )
    assert result.exit_code == 0
    result = invoke("compare", "--store", filled_store)
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    # the larger model (by its published size) leads the pair: bert-large, then bert-base
    assert ["squad2-dev", "bert-large", "bert-base", "0.528", "0.142", "0.589"] in [r[:6] for r in rows]


NO_TORCH = """
import sys
from ce.cli import cli
for args in (["--help"], ["query", "select 1 as one", "--store", sys.argv[1]],
             ["query", "--list"], ["compare", "--store", sys.argv[1]]):
    try:
        cli.main(args)
    except SystemExit as e:
        assert e.code == 0, (args, e.code)
heavy = [m for m in ("torch", "transformers", "faiss", "datasets") if m in sys.modules]
assert not heavy, heavy
print("ok")
"""


def test_help_and_query_do_not_import_torch(filled_store):
    out = subprocess.run([sys.executable, "-c", NO_TORCH, str(filled_store)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_extract_neighbors_compare_and_sweep_through_the_cli(tiny_models, store_dir):
    for name in ("one", "two"):
        result = invoke(
            "extract",
            "--model",
            tiny_models["classification"],
            "--dataset",
            "sst2-dev",
            "--limit",
            "30",
            "--k-max",
            "8",
            "--name",
            name,
            "--store",
            store_dir,
        )
        assert result.exit_code == 0, result.output
    result = invoke("compare", "--table", "2", "--k", "5", "--format", "csv", "--store", store_dir)
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    record = dict(zip(header.replace('"', "").split(","), row.replace('"', "").split(","), strict=True))
    assert (record["model_i"], record["model_j"], record["repr_after"]) == ("one", "two", "1")
    assert record["errors"] == "1" and record["distribution"] == ""  # the same model twice
    result = invoke("sweep", "--k", "1,8", "--format", "csv", "--store", store_dir)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3
    before = snapshot(store_dir)
    one_line_error(invoke("compare", "--k", "9", "--store", store_dir), "above K_max = 8")
    assert snapshot(store_dir) == before
    result = invoke(
        "neighbors", "--model", "one", "--dataset", "sst2-dev", "--k-max", "20", "--store", store_dir
    )
    assert result.exit_code == 0, result.output
    result = invoke(
        "query",
        "select model, max(len(neighbors)) as k from neighbors group by model order by model",
        "--format",
        "csv",
        "--store",
        store_dir,
    )
    assert result.stdout.splitlines()[1:] == ['"one",20', '"two",8']
