"""ce demo --quick: the whole study on real data and real weights, offline, twice."""

from __future__ import annotations

from click.testing import CliRunner

from ce.cli import cli
from ce.query.sql import connect
from ce.store import Store


def printed_tables(stdout: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table ce printed: a header line, a rule of dashes."""
    lines = stdout.splitlines()
    found = []
    for i, line in enumerate(lines[1:], 1):
        if line.startswith("---"):
            end = next((j for j in range(i + 1, len(lines)) if not lines[j].strip()), len(lines))
            title = lines[i - 2] if i >= 2 else ""
            found.append((title, lines[i - 1].split(), [r.split() for r in lines[i + 1 : end]]))
    return found


def check_every_jaccard_has_its_support(stdout: str) -> None:
    """Every table that prints a Jaccard prints n beside it, and the two sets' sizes (or, for
    neighbour sets, k in its title); none is wider than 120 columns (titles included)."""
    assert max(len(line) for line in stdout.splitlines()) <= 120
    jaccards = [(t, h) for t, h, rows in printed_tables(stdout) if "jaccard" in h]
    assert len(jaccards) >= 4  # errors, representation before and after, distribution
    for title, header in jaccards:
        assert "n" in header, title
        sizes = (
            [c for c in header if c.endswith("_i") and c != "model_i"],
            [c for c in header if c.endswith("_j") and c != "model_j"],
        )
        both = len(sizes[0]) == len(sizes[1]) == 1 or "sets" in header  # "sets": i/j, beside a floor
        assert both or "k = " in title, (title, header)
        assert "chance" in header, title


def test_quick_demo_runs_the_study_and_reuses_the_store(store_dir, data_dir, tmp_path):
    runner = CliRunner()
    report = tmp_path / "demo.html"
    first = runner.invoke(cli, ["demo", "--quick", "--store", str(store_dir), "--report", str(report)])
    assert first.exit_code == 0, first.output
    check_every_jaccard_has_its_support(first.stdout)
    # the fine-tuned models' answers and their distributions: flips and divergences
    assert "Changed answers" in first.stdout and "Answer distributions" in first.stdout
    assert "Changed answers" in report.read_text(encoding="utf-8")
    assert report.is_file() and str(report) in first.stderr
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
    # four models before fine-tuning; after it, three replicas (seeds 0, 1, 2) of each of four
    assert kinds == {"predictions": 12, "embeddings": 16, "ood": 12, "attacks": 12}
    groups = con.sql(
        "select replica_group, count(*), list(seed order by seed) from replicas"
        " where model in (select model from predictions) group by all"
    ).fetchall()  # (the model folders the store made form groups too: demo-large-sst2, ...)
    assert sorted(groups) == [(g, 3, [0, 1, 2]) for g in ("int8", "large", "layers3", "prune30")]
    # every agreement of the reference's replicas beside its floor; the groups; the PIEs
    assert "Noise floor" in first.stdout and "Groups compared" in first.stdout and "floor" in first.stdout
    assert "Noise floor: compression against retraining" in report.read_text(encoding="utf-8")
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
