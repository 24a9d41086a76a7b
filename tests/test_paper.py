"""The paper's Table 2 prediction-error column from the authors' published error lists,
ingested as the demo's experiment file lists them."""

from __future__ import annotations

import itertools
import json

import pytest

import ce
from ce.cli.demo import demo_file
from ce.extractors.experiment import load_experiment
from ce.extractors.ingest import ingest_errors
from ce.query.sql import connect
from ce.store import Store

from .conftest import DATA_DIR, needs_data

LISTS = DATA_DIR / "paper" / "squad2-dev-errors"
PAPER_LISTS = {  # file stem -> model, as data/experiments/demo.toml ingests them
    entry["file"].rsplit("/", 1)[1].removesuffix(".json"): entry["model"]
    for entry in load_experiment(demo_file())["ingest"]
}


@pytest.fixture(scope="module")
def paper_store(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("paper") / "store")
    for stem, alias in PAPER_LISTS.items():
        ingest_errors(store, LISTS / f"{stem}.json", alias, "squad2-dev")
    return store


@needs_data("paper/squad2-dev-errors/bert_large.json", "squad2/dev-v2.0.json")
def test_all_fifteen_pairs_match_a_recount_of_the_lists(paper_store):
    errors = {
        alias: set(json.loads((LISTS / f"{stem}.json").read_text())) for stem, alias in PAPER_LISTS.items()
    }
    got = {tuple(sorted((r["model_i"], r["model_j"]))): r for r in ce.open(paper_store).table2().rows()}
    assert len(got) == 15
    for a, b in itertools.combinations(sorted(errors), 2):
        expected = len(errors[a] & errors[b]) / len(errors[a] | errors[b])
        assert got[(a, b)]["errors"] == pytest.approx(expected, abs=1e-12)


@needs_data("paper/squad2-dev-errors/bert_large.json", "squad2/dev-v2.0.json")
def test_published_values_to_three_decimals(paper_store):
    rows = ce.open(paper_store).table2().rows()
    got = {(r["model_i"], r["model_j"]): r["errors"] for r in rows}
    # each pair names the larger model first (the published sizes of the aliases)
    assert round(got[("bert-large", "bert-base")], 3) == 0.528
    assert round(got[("bert-mini", "bert-tiny")], 3) == 0.487
    assert [r["model_i"] for r in rows[:5]] == ["bert-large"] * 5  # the reference's row first


@needs_data("paper/squad2-dev-errors/bert_large.json", "squad2/dev-v2.0.json")
def test_error_counts_equal_the_list_lengths(paper_store):
    con = connect(paper_store)
    assert {r[0] for r in con.sql("select n from error_agreement()").fetchall()} == {11873}
    counts = dict(con.sql("select model, count(*) from errors group by model").fetchall())
    for stem, alias in PAPER_LISTS.items():
        assert counts[alias] == len(json.loads((LISTS / f"{stem}.json").read_text()))
