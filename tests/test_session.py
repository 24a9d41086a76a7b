"""``import ce``: one session per store, the comparisons and every SQL file as methods, one
connection and one read of the records; the table of measures generates every comparison."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pyarrow as pa
import pytest

import ce
import ce.query.measures as measures
import ce.session
from ce.query.compare import NO_REPLICAS
from ce.query.sql import catalogue, library
from ce.store.errors import CeError, NotFound, QueryError

from .test_sql import write_neighbors, write_store


@pytest.fixture
def toy(store_dir):
    # a errs on {x1, x2}, b on {x2, x3}: both = {x2}, either = {x1, x2, x3}: Jaccard 1/3.
    store = write_store(store_dir, {"a": {"x1", "x2"}, "b": {"x2", "x3"}})
    write_neighbors(store, {"a": [[1, 2], [0, 2], [0, 1]], "b": [[2, 1], [0, 2], [1, 0]]})
    return store


def test_results_are_relations_with_notes(toy):
    s = ce.open(toy.root)
    t2 = s.table2(k=1, tpr=0.5)
    assert t2.columns[:4] == ["dataset", "model_i", "model_j", "errors"]
    assert t2.df()["errors"].tolist() == pytest.approx([1 / 3])
    assert isinstance(t2.arrow(), pa.RecordBatchReader)
    assert t2.notes == [NO_REPLICAS]  # no replicas: the floor columns are empty, and say so
    # lists of two neighbours: k = 2 is usable, and the note says which lists stop there
    assert s.sweep([1, 2]).notes == [NO_REPLICAS]
    assert s.table3().fetchall() == []


def test_a_note_is_an_attribute_of_the_result(toy):
    with toy.run("test", {}) as run:  # a second dataset whose lists hold one neighbour
        for model in ("a", "b"):
            one = pa.table({"example_id": ["y1", "y2"], "idx": [0, 1], "neighbors": [[1], [0]]})
            run.write("neighbors", {"model": model, "stage": "finetuned", "dataset": "other"}, one)
    t2 = ce.open(toy).table2(k=2)
    assert t2.notes == ["note: neighbour lists of other stop at K_max = 1; left out for k > 1", NO_REPLICAS]
    assert "left out for k > 1" in repr(t2)


def test_every_sql_file_is_a_method_with_its_signature(toy):
    s = ce.open(toy)
    for f in catalogue():
        method = getattr(s.sql, f.name)
        assert list(inspect.signature(method).parameters) == list(f.params)
        assert f.help.split()[0] in method.__doc__
    assert str(inspect.signature(s.sql.ood_agreement)) == "(k, tpr=0.95)"
    by_method = s.sql.knn_agreement(k=1).rows()
    by_sql = s.query("select * from knn_agreement($k)", k=1).rows()
    assert by_method == by_sql and by_method[0]["mean_jaccard"] == pytest.approx(1 / 3)
    assert s.sql.table2(k=1, tpr=0.5).rows()[0]["errors"] == pytest.approx(1 / 3)
    with pytest.raises(TypeError):
        s.sql.knn_agreement()  # k is required
    with pytest.raises(QueryError, match="missing parameter k"):
        s.query("knn_agreement")


def test_one_connection_and_one_read_of_the_records(toy, monkeypatch):
    connections, reads = [], []
    real_connect, real_runs = ce.session.connect, type(toy).runs
    monkeypatch.setattr(ce.session, "connect", lambda store: connections.append(1) or real_connect(store))
    monkeypatch.setattr(type(toy), "runs", lambda self: reads.append(1) or real_runs(self))
    s = ce.open(toy)
    s.table2(k=1, ci=0.9, replicates=20)
    s.table3()
    s.sweep([1, 2])
    s.sliced(by="label", k=1)
    s.sql.accuracy().fetchall()
    assert (len(connections), len(reads)) == (1, 1)


def test_a_job_through_the_session_is_seen_by_the_next_query(toy, tmp_path):
    s = ce.open(toy)
    assert s.query("select count(distinct model) from predictions").fetchall() == [(2,)]
    listed = tmp_path / "c.json"
    listed.write_text('["y1"]')
    data = tmp_path / "other.csv"
    data.write_text("example_id,text,label\ny1,a,0\ny2,b,1\n")
    before = s.query("select count(distinct model) as n from predictions")
    s.ingest(listed, "c", str(data), dataset_name="other")
    assert s.query("select count(distinct model) from predictions").fetchall() == [(3,)]
    assert before.fetchall() == [(2,)]  # a result taken before the job keeps its snapshot


def test_numbers_stay_numbers(toy):
    """k, tpr, ci, replicates and seed become SQL text: anything but a number is refused."""
    s = ce.open(toy)
    hostile = "1) + length((select string_agg(run_id, '') from runs)) + (0"
    for bad in ({"seed": hostile}, {"replicates": 50.5}, {"ci": "0.9"}, {"k": hostile}, {"tpr": "0.5"}):
        with pytest.raises(CeError):
            s.table2(**({"ci": 0.9} | bad))
    assert s.table2(k=1, tpr=np.float64(0.5)).rows()[0]["errors"] == pytest.approx(1 / 3)


def test_jobs_name_an_unknown_option(toy):
    with pytest.raises(CeError, match="unknown option 'kmax' \\(did you mean k_max"):
        ce.open(toy).extract("minilm", "sst2-dev", kmax=5)


def test_import_ce_is_light():
    assert {"open", "Session", "Result", "MEASURES", "Store", "CeError"} <= set(dir(ce))
    with pytest.raises(AttributeError):
        ce.no_such_thing  # noqa: B018


def test_table2_and_the_measures_agree_on_their_columns():
    text = library()["table2"].text  # the SQL query: the measures computed by default
    for m in measures.MEASURES:
        named = f" as {m.name}," in text or f" as {m.name} " in text
        assert named == (m.optional is None), m.name
    every = measures.table2_sql(measures.selected(tuple(measures.OPTIONAL)), {"cka": "_cka_agreement"})
    assert all(f" as {m.name}," in every or f" as {m.name} " in every for m in measures.MEASURES)
    assert measures.table2_columns()[:8] == [
        "errors",
        "errors_n",
        "errors_i",
        "errors_j",
        "errors_few",
        "errors_chance",
        "errors_kappa",
        "errors_mcnemar_chi2",
    ]


def test_a_new_measure_is_a_row(toy, monkeypatch):
    """A measure added to the table (agreement of the correct answers) appears in Table 2,
    its interval, the slices and (if it depends on k) the sweep, with nothing else added."""
    right = dataclasses.replace(
        measures.BY_NAME["errors"],
        name="rights",
        label="correct answers",
        numerator="(not wrong_i and not wrong_j)::int",
        denominator="(not wrong_i or not wrong_j)::int",
        value="jaccard_right",
        summary="(select *, 1.0 * both_right / nullif(either_right, 0) as jaccard_right from"
        " (select dataset, model_i, model_j, count(*) as n, count(*) filter (not wrong_i) as right_i,"
        " count(*) filter (not wrong_j) as right_j,"
        " count(*) filter (not wrong_i and not wrong_j) as both_right,"
        " count(*) filter (not wrong_i or not wrong_j) as either_right from error_agreement_examples()"
        " group by all))",
        companions={},
        sizes=("right_i", "right_j"),
        support="either_right",
    )
    monkeypatch.setattr(measures, "MEASURES", (*measures.MEASURES, right))
    monkeypatch.setattr(measures, "BY_NAME", {**measures.BY_NAME, "rights": right})
    library.cache_clear()
    try:
        s = ce.open(toy)
        [row] = s.table2(k=1, ci=0.9, replicates=50).rows()
        # right answers: a on {x3}, b on {x1}: both none, either {x1, x3}: 0
        assert row["rights"] == 0.0
        assert (row["rights_n"], row["rights_i"], row["rights_j"], row["rights_few"]) == (3, 1, 1, True)
        assert row["rights_lo"] == 0.0 and row["rights_hi"] == 0.0
        sliced = {
            r["slice"]: r["jaccard"] for r in s.sliced("label", k=1).rows() if r["characteristic"] == "rights"
        }
        assert sliced == {"label 0": 0.0, "label 1": 0.0}
    finally:
        library.cache_clear()


def test_a_path_with_no_store_is_named_not_read_as_empty(tmp_path):
    s = ce.open(tmp_path / "no-such-store")
    with pytest.raises(NotFound, match="no store at .*no-such-store"):
        s.table2()
    assert not (tmp_path / "no-such-store").exists()  # reading made nothing
