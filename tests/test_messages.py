"""Bad input ends in one line that names the problem and the fix, and leaves the store as it was:
malformed experiment files, damaged model folders, data files with a byte order mark, the store
given before the command name, and out-of-range option values."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from ce.cli import cli

from .conftest import snapshot

pytestmark = pytest.mark.usefixtures("data_dir")


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def one_line(result, *words: str, code: int = 1) -> str:
    """The single stderr line of a failed command; it holds every one of ``words``."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("Error: ") and "internal error" not in line, line
    assert "Traceback" not in result.output
    for word in words:
        assert word in line, (word, line)
    return line


@pytest.fixture(scope="module")
def two_model_store(tiny_models, tmp_path_factory):
    """A store with two tiny models' predictions, embeddings and neighbours on 12 SST-2 examples."""
    store = tmp_path_factory.mktemp("messages") / "store"
    for name in ("one", "two"):
        result = invoke(
            "extract",
            "--model",
            tiny_models["classification"],
            "--dataset",
            "sst2-dev",
            "--limit",
            12,
            "--name",
            name,
            "--store",
            store,
        )
        assert result.exit_code == 0, result.output
    return store


@pytest.fixture
def store(two_model_store, tmp_path):
    """A private copy of the two-model store."""
    return shutil.copytree(two_model_store, tmp_path / "store")


# 1. Experiment files: every key's type and sign, checked before anything runs.

EXTRACT = "[[extract]]\nmodels = ['m']\ndatasets = ['sst2-dev']\n"
OOD = "[[ood]]\nmodels = ['m']\nbank = 'sst2-dev'\ndatasets = ['imdb-1k']\n"
FINETUNE = "[[finetune]]\nmodel = 'm'\ntask = 'classification'\ndataset = 'sst2-train'\noutput = 'o'\n"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "[[extract]]\nmodels = 'minilm'\ndatasets = ['sst2-dev']\n",
            ["[[extract]] number 1", "models must be a non-empty list of model references", "e.g."],
        ),
        (
            "[[extract]]\nmodels = ['m']\ndatasets = 3\n",
            ["[[extract]] number 1", "datasets must be a list of strings", "found the integer 3"],
        ),
        (EXTRACT + "limit = 'ten'\n", ["limit must be an integer", 'found the string "ten"', "limit = 10"]),
        (EXTRACT + "stages = 'pretrained'\n", ["stages must be a list of strings", "stages = ["]),
        (EXTRACT + "k_max = -5\n", ["[[extract]] number 1", "k_max must be at least 1", "found -5"]),
        (
            "[[ingest]]\nfile = 'gone.json'\nmodel = 'm'\ndataset = 'sst2-dev'\n",
            ["[[ingest]] number 1", "no such error list", "gone.json"],
        ),
        (
            "[[compress]]\nmodel = 'b'\nmethod = 'int8'\noutput = 'a'\n"
            "[[compress]]\nmodel = 'a'\nmethod = 'int8'\noutput = 'b'\n",
            ["make each other's models in a circle", "b -> a, a -> b"],
        ),
        (EXTRACT + "limit = true\n", ["limit must be an integer", "found true"]),
        (EXTRACT + "batch_size = 2.5\n", ["batch_size must be an integer", "found the number 2.5"]),
        (EXTRACT + "stages = []\n", ["stages is empty", "list at least one"]),
        (EXTRACT + "max_length = 8\n", ["[[extract]] number 1", "max_length must be at least 16"]),
        (
            "[[extract]]\nmodels = [3]\ndatasets = ['sst2-dev']\n",
            ["models entry 1 must be a model reference", "{ name = ", "found the integer 3"],
        ),
        (
            "[[extract]]\nmodels = ['m', { name = 'a', modl = 'b' }]\ndatasets = ['sst2-dev']\n",
            ["models entry 2", "found a table with keys name, modl"],
        ),
        (
            "[[extract]]\nmodels = [{ name = '../x', model = 'm' }]\ndatasets = ['sst2-dev']\n",
            ["models entry 1", "is not usable in the store"],
        ),
        (
            "[extract]\nmodels = ['m']\ndatasets = ['d']\n",
            ["[extract] is a single table", "write [[extract]]"],
        ),
        ("extract = [1]\n", ["[[extract]] number 1 is the integer 1, not a table"]),
        (
            EXTRACT + "[[extract]]\nmodels = ['m']\ndatasets = 'd'\n",
            ["[[extract]] number 2", "datasets must be a list"],
        ),
        (OOD + "val_fraction = 1.5\n", ["[[ood]] number 1", "val_fraction 1.5 must lie strictly between"]),
        (OOD + "k_max = 'all'\n", ["[[ood]] number 1", "k_max must be an integer", "k_max = 100"]),
        (OOD + "val_fraction = nan\n", ["val_fraction must be a finite number"]),
        (
            "[[attack]]\nmodels = ['m']\nrestart = 1\n",
            ["[[attack]] number 1", "restart must be true or false"],
        ),
        ("[[attack]]\nmodels = ['m']\nseed = -1\n", ["seed must be at least 0"]),
        ("[[attack]]\nmodels = ['m']\nattack = 'bert-atack'\n", ["did you mean bert-attack?"]),
        (FINETUNE + "epochs = '3'\n", ["[[finetune]] number 1", "epochs must be a finite number"]),
        (FINETUNE + "warmup_ratio = 1.0\n", ["warmup_ratio must lie in [0, 1)"]),
        (
            "[[compress]]\nmodel = 'm'\nmethod = 'fp4'\noutput = 'o'\n",
            ["[[compress]] number 1", "unknown compression method 'fp4'"],
        ),
        (
            "[[compress]]\nmodel = 'm'\nmethod = 'int8'\noutput = 7\n",
            ["output must be a string", 'output = "my-model"'],
        ),
    ],
)
def test_malformed_experiment_files(store, tmp_path, text, words):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    before = snapshot(store)
    one_line(invoke("run", path, "--store", store), str(path), *words)
    one_line(invoke("run", path, "--check", "--store", store), str(path), *words)
    assert snapshot(store) == before


def test_an_experiment_file_is_checked_whole_before_any_step_runs(tiny_models, store, tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(
        f"[[compress]]\nmodel = '{tiny_models['classification']}'\nmethod = 'layers:1'\noutput = 'small'\n"
        + EXTRACT.replace("'m'", "'small'")
        + "k_max = -5\n"
    )
    before = snapshot(store)
    one_line(invoke("run", path, "--store", store), "[[extract]] number 1", "k_max must be at least 1")
    assert snapshot(store) == before  # the valid [[compress]] step did not run


# 2. Damaged model folders.


def _truncate(folder, size):
    os.truncate(folder / "model.safetensors", size(os.path.getsize(folder / "model.safetensors")))


def _edit_config(folder):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_size": 64}))


DAMAGE = {
    "half": (lambda f: _truncate(f, lambda n: n // 2), ["model.safetensors is damaged or incomplete"]),
    "header": (lambda f: _truncate(f, lambda n: 100), ["model.safetensors", "shorter than its"]),
    "empty": (lambda f: _truncate(f, lambda n: 0), ["model.safetensors", "0 bytes"]),
    "config": (
        lambda f: (f / "config.json").write_text('{"model_type": "bert",'),
        ["config.json is damaged or incomplete", "not valid JSON"],
    ),
    "tokenizer": (
        lambda f: (f / "tokenizer.json").write_text('{"version": '),
        ["tokenizer.json is damaged or incomplete"],
    ),
    "no-tokenizer": (
        lambda f: [p.unlink() for p in f.iterdir() if p.name.startswith(("tokenizer", "vocab", "special"))],
        ["has no tokenizer", "tokenizer.save_pretrained"],
    ),
    "mismatch": (_edit_config, ["do not fit its config.json", "size mismatch"]),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_model_folders(tiny_models, copy_model, store, damage):
    spoil, words = DAMAGE[damage]
    folder = copy_model(tiny_models["classification"], "tiny-damaged")
    spoil(folder)
    before = snapshot(store)
    result = invoke("extract", "--model", folder, "--dataset", "sst2-dev", "--limit", 5, "--store", store)
    line = one_line(result, str(folder), *words)
    assert "re-download" in line or "save_pretrained" in line
    assert snapshot(store) == before


# 3. Data files: a UTF-8 byte order mark is read; other damage is named.


@pytest.mark.parametrize(("name", "sep"), [("reviews.csv", ","), ("reviews.tsv", "\t")])
def test_a_byte_order_mark_is_not_part_of_the_header(tiny_models, store, tmp_path, name, sep):
    path = tmp_path / name
    path.write_text(f"\ufefftext{sep}label\na fine film{sep}1\na dull film{sep}0\n", encoding="utf-8")
    result = invoke("extract", "--model", tiny_models["classification"], "--dataset", path, "--store", store)
    assert result.exit_code == 0, result.output
    got = invoke("query", "select count(*) as n from examples where dataset = 'reviews'", "--store", store)
    assert got.stdout.split()[-1] == "2"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"text,label\ncaf\xe9 noir,1\n", ["is not UTF-8 text", "0xe9", "save it as UTF-8"]),
        (b"text,label\ngood,1\nbad\n", ["row 3: 1 column(s) where row 1 has 2", "quote a text"]),
        (b"text,label\ngood,pos\n", ["row 2: label 'pos' is not an integer", "0, 1"]),
    ],
)
def test_bad_data_files(tiny_models, store, tmp_path, content, words):
    path = tmp_path / "reviews.csv"
    path.write_bytes(content)
    before = snapshot(store)
    result = invoke("extract", "--model", tiny_models["classification"], "--dataset", path, "--store", store)
    one_line(result, str(path), *words)
    assert snapshot(store) == before


# 4. --store before the command name, after it, and in CE_STORE.

COUNT = "select count(distinct model) as n from predictions"


@pytest.mark.parametrize(
    ("where", "env"),
    [
        ("group", None),  # ce --store S query ...
        ("command", None),  # ce query ... --store S
        ("both", None),  # ce --store ELSEWHERE query ... --store S: the command's wins
        ("env", "store"),  # CE_STORE=S ce query ...
        ("group", "elsewhere"),  # CE_STORE=ELSEWHERE ce --store S query ...: the command line wins
    ],
)
def test_store_before_or_after_the_command(store, tmp_path, where, env):
    elsewhere = tmp_path / "elsewhere"
    args = {
        "group": ["--store", store, "query", COUNT],
        "command": ["query", COUNT, "--store", store],
        "both": ["--store", elsewhere, "query", COUNT, "--store", store],
        "env": ["query", COUNT],
    }[where]
    environ = {"CE_STORE": str({"store": store, "elsewhere": elsewhere}[env])} if env else None
    result = invoke(*args, env=environ)
    assert result.exit_code == 0, result.output
    assert result.stdout.split()[-1] == "2"
    assert not elsewhere.exists()


def test_store_before_compare_and_bundle(store, tmp_path):
    result = invoke("--store", store, "compare", "--table", "2", "--k", "5", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert '"sst2-dev","one","two"' in result.stdout
    bundle, other = tmp_path / "b.cebundle", tmp_path / "other"
    assert invoke("--store", store, "bundle", "export", bundle).exit_code == 0
    result = invoke("--store", other, "bundle", "import", bundle)
    assert result.exit_code == 0, result.output
    assert invoke("--store", other, "query", COUNT).stdout.split()[-1] == "2"


def test_an_empty_store_path_is_refused(store):
    before = snapshot(store)
    one_line(invoke("--store", "", "query", "select 1"), "--store", "is empty", "give a folder", code=2)
    one_line(invoke("query", "select 1", "--store", " "), "--store", "is empty", code=2)
    assert snapshot(store) == before


# 5. Option values of ce query.


def test_negative_max_rows_is_refused(store):
    before = snapshot(store)
    one_line(
        invoke("query", "select 1", "--max-rows", -1, "--store", store),
        "--max-rows",
        "-1 is negative",
        "0 for every row",
        code=2,
    )
    assert snapshot(store) == before


@pytest.mark.parametrize("rows", ["0", "99999999999999999999"])
def test_zero_or_huge_max_rows_show_every_row(store, rows):
    result = invoke("query", "select * from range(60)", "--max-rows", rows, "--store", store)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 62 and "more rows" not in result.stdout


def test_a_usage_error_after_the_command_points_to_its_help(store):
    one_line(invoke("--store", store, "query", "select $a", "-p", "a"), "(see 'ce query --help')", code=2)
