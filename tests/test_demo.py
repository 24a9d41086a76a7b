"""ce demo --quick: the whole study on real data and real weights, offline, twice."""

from __future__ import annotations

from click.testing import CliRunner

from ce.cli import cli
from ce.query.sql import connect
from ce.store import Store


def test_quick_demo_runs_the_study_and_reuses_the_store(store_dir, data_dir, tmp_path):
    runner = CliRunner()
    first = runner.invoke(cli, ["demo", "--quick", "--store", str(store_dir)])
    assert first.exit_code == 0, first.output
    store = Store(store_dir)
    con = connect(store)
    kinds = dict(
        con.sql(
            "select 'predictions', count(distinct model) from predictions"
            " where dataset = 'sst2-dev' union all"
            " select 'embeddings', count(distinct model || stage) from embeddings"
            " where dataset = 'sst2-dev' union all"
            " select 'ood', count(distinct model) from ood_scores union all"
            " select 'attacks', count(distinct model) from attacks"
        ).fetchall()
    )
    assert kinds == {"predictions": 4, "embeddings": 8, "ood": 4, "attacks": 4}
    runs = [r for r in store.runs() if r["command"] == "extract"]
    assert all(r["loaded"]["target"]["sha256"] for r in runs)  # real weights, hashed
    assert "Table 3" in first.stdout and "large" in first.stdout
    before = len(store.runs())
    second = runner.invoke(cli, ["demo", "--quick", "--store", str(store_dir)])
    assert second.exit_code == 0, second.output
    assert len(store.runs()) == before  # nothing was computed again
    report = tmp_path / "report.html"
    result = runner.invoke(cli, ["report", "-o", str(report), "--store", str(store_dir)])
    assert result.exit_code == 0 and report.stat().st_size > 10_000
