"""A decoder family end to end (issue 16): a tiny Llama with a classification head and its
compressed variants through compress, extract (both stages, with neighbours), ood, attack and
ce compare, from one experiment file, as a user would run them."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import ce
from ce.cli import cli
from ce.query.sql import connect
from ce.store import Store

pytestmark = pytest.mark.usefixtures("data_dir")


def grid(llama) -> str:
    return f"""
[[compress]]
model = "{llama["classification"]}"
method = "layers:1"
output = "llama-1"

[[compress]]
model = "{llama["classification"]}"
method = "int8"
output = "llama-int8"

[[extract]]
models = [{{ name = "llama", model = "{llama["classification"]}" }}, "llama-1", "llama-int8"]
datasets = ["sst2-dev"]
stages = ["finetuned", "pretrained"]
limit = 24
k_max = 10

[[ood]]
models = [{{ name = "llama", model = "{llama["classification"]}" }}, "llama-1"]
bank = "sst2-dev"
datasets = ["imdb-1k"]
limit = 24
k_max = 10
val_fraction = 0.3

[[attack]]
models = [{{ name = "llama", model = "{llama["classification"]}" }}, "llama-1"]
dataset = "sst2-dev"
attack = "deepwordbug"
limit = 3
"""


def test_a_decoder_and_its_compressed_variants_run_end_to_end(family_models, store_dir, tmp_path):
    path = tmp_path / "decoders.toml"
    path.write_text(grid(family_models["llama"]))
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(path), "--store", str(store_dir)])
    assert result.exit_code == 0, result.output
    con = connect(Store(store_dir))
    embedded = con.sql(
        "select model, stage, count(*), count(distinct vector::varchar) from embeddings"
        " where dataset = 'sst2-dev' group by all order by all"
    ).fetchall()
    assert [(m, s, n) for m, s, n, _ in embedded if s == "finetuned"] == [
        ("llama", "finetuned", 24),
        ("llama-1", "finetuned", 24),
        ("llama-int8", "finetuned", 24),
    ]
    assert all(n == distinct for _, _, n, distinct in embedded)  # the last token, not <s>
    neighbours = con.sql(
        "select model, stage, count(*), bool_and(neighbors[1] <> idx) from neighbors"
        " where dataset = 'sst2-dev' group by all"
    ).fetchall()
    assert len(neighbours) == 6 and all(n == 24 and not_self for _, _, n, not_self in neighbours)
    assert con.sql("select count(*) from attacks").fetchall() == [(6,)]
    families = con.sql("select distinct family, pooling from representations").fetchall()
    assert families == [("decoder", "last")]

    compare = runner.invoke(cli, ["compare", "--store", str(store_dir), "--reference", "llama"])
    assert compare.exit_code == 0, compare.output
    assert "Traceback" not in compare.output
    table = {
        (r["model_i"], r["model_j"]): r
        for r in ce.open(store_dir).table2(k=10, reference="llama").rows()
        if r["dataset"] == "sst2-dev"
    }
    for other in ("llama-1", "llama-int8"):
        row = table["llama", other]  # the reference first
        assert row["repr_before"] is not None and row["repr_after"] is not None
        assert row["errors_n"] == 24 and row["flips"] is not None and row["kl"] is not None
    ood = [
        r for r in ce.open(store_dir).table2(k=10, reference="llama").rows() if r["distribution"] is not None
    ]
    assert [(r["model_i"], r["model_j"], r["ood_dataset"]) for r in ood] == [("llama", "llama-1", "imdb-1k")]
