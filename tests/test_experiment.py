"""ce run EXPERIMENT.toml: the whole grid from one file, skipping what the store has."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from ce.cli import cli
from ce.extractors.experiment import load_experiment
from ce.query.sql import connect
from ce.store import Store

from .conftest import REPO, snapshot

pytestmark = pytest.mark.usefixtures("data_dir")


def grid(tiny_models) -> str:
    return f"""
[[compress]]
model = "{tiny_models["classification"]}"
method = "layers:1"
output = "small"

[[extract]]
models = ["{tiny_models["classification"]}", {{ name = "small", model = "small" }}]
datasets = ["sst2-dev"]
stages = ["finetuned", "pretrained"]
limit = 20
k_max = 5

[[ood]]
models = ["small"]
bank = "sst2-dev"
datasets = ["imdb-1k"]
limit = 20
k_max = 3
val_fraction = 0.3

[[attack]]
models = ["small"]
dataset = "sst2-dev"
attack = "deepwordbug"
limit = 4
"""


def started(stderr: str) -> list[str]:
    """The steps that ran, as each announced itself when it started: '[3/7] STEP (WHY)'."""
    return [m.group(1) for m in re.finditer(r"^\[\d+/\d+\] (.+\))$", stderr, re.MULTILINE)]


def test_the_grid_runs_once_and_then_skips(tiny_models, store_dir, tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(grid(tiny_models))
    runner = CliRunner()
    first = runner.invoke(cli, ["run", str(path), "--store", str(store_dir)])
    assert first.exit_code == 0, first.output
    assert "7 step(s) run" in first.stderr  # compress, 4 extracts, ood, attack
    lines = first.stderr.splitlines()
    assert lines[0] == "plan: 7 steps, 7 to run, 0 already in the store"
    assert lines[1] == "[1/7] compress small (not in the store)"  # said as it starts
    assert re.fullmatch(r"\[1/7\] compress small done in \S+; 6 to go, ETA ~\S+( min)?", lines[2]), lines
    assert [line.split(" (")[0] for line in started(first.stderr)] == [
        "compress small",
        "extract tiny-classification finetuned sst2-dev",
        "extract tiny-classification pretrained sst2-dev",
        "extract small finetuned sst2-dev",
        "extract small pretrained sst2-dev",
        "ood small imdb-1k",
        "attack small deepwordbug",
    ]
    table = lines[lines.index(next(x for x in lines if x.startswith("step times: 7 ran"))) + 1 :][:7]
    assert [row.split()[0] for row in table] == [str(i) for i in range(1, 8)]
    assert all(re.fullmatch(r"\s+\d  \S.* +\d+\.\ds  ran", row) for row in table), table
    assert "{" not in first.output and "\r" not in first.output  # no raw dicts, no bars
    con = connect(Store(store_dir))
    got = dict(
        con.sql(
            "select model || ' ' || stage, count(*) from embeddings where dataset = 'sst2-dev' group by all"
        ).fetchall()
    )
    assert got == {
        "tiny-classification finetuned": 20,
        "tiny-classification pretrained": 20,
        "small finetuned": 20,
        "small pretrained": 20,
    }
    assert con.sql("select count(*) from attacks").fetchall() == [(4,)]
    before = snapshot(store_dir)
    second = runner.invoke(cli, ["run", str(path), "--store", str(store_dir)])
    assert second.exit_code == 0 and "0 step(s) run" in second.stderr
    assert second.stderr.startswith("plan: 7 steps, 0 to run, 7 already in the store\n")
    assert "[7/7] attack small deepwordbug: in the store, skipped" in second.stderr
    assert snapshot(store_dir) == before


def test_check_lists_the_steps_it_would_run_and_runs_nothing(tiny_models, store_dir, tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(grid(tiny_models))
    runner = CliRunner()
    check = runner.invoke(cli, ["run", str(path), "--check", "--store", str(store_dir)])
    assert check.exit_code == 0, check.output
    assert check.stdout.splitlines() == [
        "plan: 7 steps, 7 to run, 0 already in the store",
        "  1  compress small: runs (not in the store)",
        "  2  extract tiny-classification finetuned sst2-dev: runs (not in the store)",
        "  3  extract tiny-classification pretrained sst2-dev: runs (not in the store)",
        "  4  extract small finetuned sst2-dev: runs (after small is made)",
        "  5  extract small pretrained sst2-dev: runs (after small is made)",
        "  6  ood small imdb-1k: runs (after small is made)",
        "  7  attack small deepwordbug: runs (after small is made)",
    ]
    assert not store_dir.exists()  # nothing written, not even an empty store
    assert runner.invoke(cli, ["run", str(path), "--store", str(store_dir)]).exit_code == 0
    path.write_text(grid(tiny_models).replace("limit = 4", "limit = 5"))
    again = runner.invoke(cli, ["run", str(path), "--check", "--store", str(store_dir)])
    assert again.stdout.splitlines()[0] == "plan: 7 steps, 1 to run, 6 already in the store"
    assert "  7  attack small deepwordbug: runs (4 examples done before)" in again.stdout
    assert "  1  compress small: in the store, skipped" in again.stdout


def test_a_changed_compression_remakes_the_model_and_every_step_that_reads_it(
    tiny_models, store_dir, tmp_path
):
    """The compressed model's files change, so the steps on it run again and say why;
    the steps on the untouched parent do not."""
    path = tmp_path / "grid.toml"
    path.write_text(grid(tiny_models))
    runner = CliRunner()
    assert runner.invoke(cli, ["run", str(path), "--store", str(store_dir)]).exit_code == 0
    path.write_text(grid(tiny_models).replace('method = "layers:1"', 'method = "prune:0.5"'))
    again = runner.invoke(cli, ["run", str(path), "--store", str(store_dir)])
    assert again.exit_code == 0, again.output
    lines = started(again.stderr)
    assert lines[0] == "compress small (method layers:1 -> prune:0.5)"
    assert [line.split(" (")[0] for line in lines[1:]] == [
        "extract small finetuned sst2-dev",
        "extract small pretrained sst2-dev",
        "ood small imdb-1k",
        "attack small deepwordbug",
    ]
    assert all("weights of target" in line for line in lines[1:3]), lines


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[extract]]\nmodels = ['m']\ndatasets = ['d']\nk = 3\n", "unknown key 'k' in [[extract]]"),
        ("[[extrct]]\nmodels = ['m']\n", "unknown section [[extrct]] (did you mean extract?)"),
        ("[[ood]]\nmodels = ['m']\n", "[[ood]] number 1 needs bank, datasets"),
        ("[[extract]]\nmodels = ['m']\ndatasets = ['d']\nstages = ['after']\n", "unknown stage"),
        ("[extract\n", "is not valid TOML"),
    ],
)
def test_bad_experiment_files_are_one_line_errors(store_dir, tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["run", str(path), "--store", str(store_dir)])
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert snapshot(store_dir) == {}


def test_the_shipped_paper_grid_is_valid():
    spec = load_experiment(REPO / "data" / "experiments" / "paper.toml")
    assert len(spec["extract"][0]["models"]) == 6


def test_the_shipped_decoder_grid_is_valid():
    spec = load_experiment(REPO / "data" / "experiments" / "decoders.toml")
    assert [c["method"] for c in spec["compress"]] == ["int4-weight", "layers:18"]
    assert spec["extract"][0]["layer"] == 0.5 and spec["ood"][0]["layer"] == 0.5
