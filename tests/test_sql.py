"""Every SQL file, on a three-example store whose numbers are checked by hand."""

from __future__ import annotations

import itertools

import duckdb
import pyarrow as pa
import pytest

from ce.query.sql import connect, library, parameters, resolve
from ce.store import Store
from ce.store.errors import NotFound, QueryError

from . import test_answers, test_families, test_knn_kernel, test_noise_floor

EXAMPLES = pa.table(
    {"example_id": ["x1", "x2", "x3"], "idx": [0, 1, 2], "text": ["a", "b", "c"], "label": [0, 1, 1]}
)


def write_store(root, wrong: dict[str, set[str]], dataset="toy") -> Store:
    store = Store(root)
    with store.run("test", {}) as run:
        run.write("examples", {"dataset": dataset}, EXAMPLES)
        for model, errors in wrong.items():
            ids = EXAMPLES["example_id"].to_pylist()
            run.write(
                "predictions",
                {"model": model, "dataset": dataset},
                pa.table(
                    {
                        "example_id": ids,
                        "correct": [i not in errors for i in ids],
                        "exact": [0.0 if i in errors else 1.0 for i in ids],
                    }
                ),
            )
    return store


@pytest.fixture
def toy(store_dir) -> Store:
    # a errs on {x1, x2}, b on {x2, x3}: both = {x2}, either = {x1, x2, x3}: Jaccard 1/3.
    return write_store(store_dir, {"a": {"x1", "x2"}, "b": {"x2", "x3"}})


def rows(store: Store, sql: str, params=None) -> list[dict]:
    return connect(store).sql(sql, params=params).to_arrow_table().to_pylist()


def test_error_agreement_hand_checked(toy):
    [r] = rows(toy, "select * from error_agreement()")
    assert (r["model_i"], r["model_j"], r["n"]) == ("a", "b", 3)
    assert (r["errors_i"], r["errors_j"], r["both"], r["either"]) == (2, 2, 1, 3)
    assert r["jaccard"] == pytest.approx(1 / 3)
    # independent models with error rates 2/3 and 2/3: (4/9) / (4/3 - 4/9) = 1/2
    assert r["expected_jaccard"] == pytest.approx(0.5)
    # agreement on x2 only: po = 1/3, pe = 4/9 + 1/9 = 5/9, kappa = (1/3 - 5/9) / (4/9) = -1/2
    assert r["kappa"] == pytest.approx(-0.5)
    # McNemar: only a wrong on x1, only b on x3: (|1 - 1| - 1)^2 / 2 = 1/2
    assert (r["only_i"], r["only_j"], r["mcnemar_chi2"]) == (1, 1, pytest.approx(0.5))


def test_error_agreement_examples_hand_checked(toy):
    got = rows(toy, "select example_id, wrong_i, wrong_j from error_agreement_examples() order by example_id")
    assert [(r["example_id"], r["wrong_i"], r["wrong_j"]) for r in got] == [
        ("x1", True, False),
        ("x2", True, True),
        ("x3", False, True),
    ]


def test_error_agreement_uses_only_examples_both_models_predicted(store_dir):
    store = write_store(store_dir, {"a": {"x1"}})
    with store.run("test", {}) as run:
        run.write(
            "predictions",
            {"model": "b", "dataset": "toy"},
            pa.table({"example_id": ["x1", "x2"], "correct": [False, True]}),
        )
    [r] = rows(store, "select * from error_agreement()")
    assert (r["n"], r["both"], r["either"], r["jaccard"]) == (2, 1, 1, 1.0)


def test_errors_view_hand_checked(toy):
    got = rows(toy, "select model, example_id from errors order by all")
    assert [(r["model"], r["example_id"]) for r in got] == [
        ("a", "x1"),
        ("a", "x2"),
        ("b", "x2"),
        ("b", "x3"),
    ]


def test_accuracy_query_hand_checked(toy):
    got = rows(toy, library()["accuracy"].text)
    assert [(r["model"], r["n"], r["accuracy"], r["exact_match"]) for r in got] == [
        ("a", 3, pytest.approx(1 / 3), pytest.approx(1 / 3)),
        ("b", 3, pytest.approx(1 / 3), pytest.approx(1 / 3)),
    ]
    assert got[0]["accuracy_lo"] == pytest.approx(0.0615, abs=1e-4)  # Wilson, 1 of 3
    assert got[0]["accuracy_hi"] == pytest.approx(0.7923, abs=1e-4)


def test_table2_query_hand_checked(toy):
    [r] = rows(toy, library()["table2"].text, {"k": 1, "tpr": 0.5, "reference": None})
    assert (r["dataset"], r["model_i"], r["model_j"]) == ("toy", "a", "b")
    assert (r["errors"], r["errors_chance"], r["errors_kappa"]) == (
        pytest.approx(1 / 3),
        pytest.approx(0.5),
        pytest.approx(-0.5),
    )
    # beside the Jaccard: the examples compared, both sets' sizes, and a flag: 3 < 20 items
    assert (r["errors_n"], r["errors_i"], r["errors_j"], r["errors_few"]) == (3, 2, 2, True)
    # the reference leads its pairs: b named, the pair reads (b, a), sizes swapped along
    [r] = rows(toy, library()["table2"].text, {"k": 1, "tpr": 0.5, "reference": "b"})
    assert (r["model_i"], r["model_j"], r["errors"]) == ("b", "a", pytest.approx(1 / 3))


def write_neighbors(store: Store, lists: dict[str, list[list[int]]]) -> None:
    with store.run("test", {}) as run:
        for model, nb in lists.items():
            run.write(
                "neighbors",
                {"model": model, "stage": "finetuned", "dataset": "toy"},
                pa.table({"example_id": ["x1", "x2", "x3"], "idx": [0, 1, 2], "neighbors": nb}),
            )


def test_knn_agreement_hand_checked(toy):
    write_neighbors(toy, {"a": [[1, 2], [0, 2], [0, 1]], "b": [[2, 1], [0, 2], [1, 0]]})
    [r] = rows(toy, "select * from knn_agreement(1)")
    # k = 1: x1 {1} vs {2}: 0; x2 {0} vs {0}: 1; x3 {0} vs {1}: 0
    assert (r["dataset"], r["stage"], r["model_i"], r["model_j"], r["n"]) == ("toy", "finetuned", "a", "b", 3)
    assert r["mean_jaccard"] == pytest.approx(1 / 3)
    assert r["var_jaccard"] == pytest.approx(2 / 9)  # ((1/3)^2 * 2 + (2/3)^2) / 3
    assert r["mutual_knn"] == pytest.approx(1 / 3)
    # random 1-sets of the other 2 examples: the same one (J = 1) half the time
    assert r["chance_jaccard"] == pytest.approx(1 / 2)
    # an independent recount: random 2-sets of 5 items, by enumerating every pair of sets
    sets = [set(c) for c in itertools.combinations(range(5), 2)]
    expected = sum(len(a & b) / len(a | b) for a in sets for b in sets) / len(sets) ** 2
    [c] = rows(toy, "select chance_knn_jaccard(2, 5) as c, chance_knn_jaccard(3, 2) as too_many")
    assert c["c"] == pytest.approx(expected) and c["too_many"] is None
    got = rows(toy, "select idx, shared, size_i, jaccard from knn_agreement_examples(1) order by idx")
    assert [(r["idx"], r["shared"], r["size_i"], r["jaccard"]) for r in got] == [
        (0, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (2, 0, 1, 0.0),
    ]
    [r] = rows(toy, "select * from knn_agreement(2)")  # every pair of sets is equal
    assert (r["mean_jaccard"], r["var_jaccard"], r["mutual_knn"]) == (1.0, 0.0, 1.0)
    with pytest.raises(duckdb.Error, match="k = 3 is outside 1..2"):
        rows(toy, "select * from knn_agreement(3)")


def test_knn_agreement_past_the_head_column_reads_the_full_lists(toy):
    # 12 neighbours: k <= HEAD reads neighbors_head, k > HEAD the full lists
    a = [list(range(1, 13))]
    b = [[*range(1, 11), 20, 12]]  # equal to a but at rank 11
    with toy.run("test", {}) as run:
        for model, nb in (("a", a), ("b", b)):
            table = pa.table({"example_id": ["x1"], "idx": [0], "neighbors": nb})
            run.write("neighbors", {"model": model, "stage": "finetuned", "dataset": "toy"}, table)
    jaccard = {
        k: rows(toy, f"select mean_jaccard from knn_agreement({k})")[0]["mean_jaccard"] for k in (10, 11, 12)
    }
    assert jaccard == {10: 1.0, 11: pytest.approx(10 / 12), 12: pytest.approx(11 / 13)}
    [head] = rows(toy, "select neighbors_head from neighbors where model = 'a'")
    assert head["neighbors_head"] == list(range(1, 11))
    limits = rows(toy, "select model, k_min, k_max from list_limits order by model")
    assert [(r["model"], r["k_min"], r["k_max"]) for r in limits] == [("a", 12, 12), ("b", 12, 12)]


def test_parts_from_before_the_head_columns_still_answer(toy):
    """A part written by an older ce (no head column, no recorded lengths) is read through
    the full lists: the same answers."""
    import json

    import pyarrow.parquet as pq

    write_neighbors(toy, {"a": [[1, 2], [0, 2], [0, 1]], "b": [[2, 1], [0, 2], [1, 0]]})
    before = rows(toy, "select * from knn_agreement(1)")
    [rec] = [r for r in toy.runs() if any(p["kind"] == "neighbors" for p in r["parts"])]
    for part in rec["parts"]:
        path = toy.root / part["path"]
        pq.write_table(pq.read_table(path).drop_columns(["neighbors_head"]), path)
        del part["lengths"]
    (toy.root / "runs" / f"{rec['run_id']}.json").write_text(json.dumps(rec))
    assert rows(toy, "select * from knn_agreement(1)") == before
    limits = rows(toy, "select model, k_min, k_max from list_limits order by model")
    assert [(r["model"], r["k_min"], r["k_max"]) for r in limits] == [("a", 2, 2), ("b", 2, 2)]


def test_pair_counts_from_masks_equal_those_of_the_pairwise_join(store_dir):
    """error_agreement and ood_agreement count through per-example bit masks; the examples
    macros join every pair. Both must agree, also when models cover different examples."""
    import numpy as np

    rng = np.random.default_rng(0)
    store = Store(store_dir)
    ids = [f"x{i}" for i in range(300)]
    with store.run("test", {}) as run:
        for m in range(5):
            keep = sorted(rng.choice(300, size=200 + 20 * m, replace=False))
            run.write(
                "predictions",
                {"model": f"m{m}", "dataset": "toy"},
                pa.table({"example_id": [ids[i] for i in keep], "correct": rng.random(len(keep)) < 0.6}),
            )
            distances = np.sort(rng.random((len(keep), 3)), axis=1).tolist()
            roles = ["id_val" if i % 4 == 0 else "test" for i in keep]
            run.write(
                "ood_scores",
                {"model": f"m{m}", "stage": "finetuned", "bank": "toy", "dataset": "shift"},
                pa.table(
                    {
                        "example_id": [ids[i] for i in keep],
                        "role": roles,
                        "source": ["toy" if r == "id_val" else "shift" for r in roles],
                        "distances": distances,
                    }
                ),
            )
    recount = {
        "error_agreement()": "select dataset, model_i, model_j, count(*) as n,"
        " count(*) filter (where wrong_i) as errors_i, count(*) filter (where wrong_j) as errors_j,"
        " count(*) filter (where wrong_i and wrong_j) as both,"
        " count(*) filter (where wrong_i or wrong_j) as either,"
        " count(*) filter (where wrong_i and not wrong_j) as only_i,"
        " count(*) filter (where wrong_j and not wrong_i) as only_j"
        " from error_agreement_examples() group by all order by all",
        "ood_agreement(2, tpr := 0.8)": "select dataset, model_i, model_j, count(*) as n,"
        " count(*) filter (where ood_i) as ood_i, count(*) filter (where ood_j) as ood_j,"
        " count(*) filter (where ood_i and ood_j) as both,"
        " count(*) filter (where ood_i or ood_j) as either"
        " from ood_agreement_examples(2, tpr := 0.8) group by all order by all",
    }
    for macro, sql in recount.items():
        expected = rows(store, sql)
        columns = ", ".join(f'"{c}"' for c in expected[0])
        assert len(expected) == 10
        assert rows(store, f"select {columns} from {macro} order by all") == expected


def test_ood_agreement_hand_checked(toy):
    val = [0.1, 0.2, 0.3, 0.4, 0.5]  # tpr 0.5 -> threshold 0.3 for both models
    tests = {"a": [0.35, 0.25, 0.9], "b": [0.1, 0.5, 0.6]}  # OOD: a {x1, x3}, b {x2, x3}
    with toy.run("test", {}) as run:
        for model, dist in tests.items():
            run.write(
                "ood_scores",
                {"model": model, "stage": "finetuned", "bank": "toy", "dataset": "shift"},
                pa.table(
                    {
                        "example_id": [f"v{i}" for i in range(5)] + ["x1", "x2", "x3"],
                        "role": ["id_val"] * 5 + ["test"] * 3,
                        "source": ["toy"] * 5 + ["shift"] * 3,
                        "distances": [[d] for d in val + dist],
                    }
                ),
            )
    [r] = rows(toy, "select * from ood_agreement(1, tpr := 0.5)")
    assert (r["stage"], r["bank"], r["id_val"], r["dataset"], r["n"]) == (
        "finetuned",
        "toy",
        "toy",
        "shift",
        3,
    )
    assert (r["ood_i"], r["ood_j"], r["both"], r["either"]) == (2, 2, 1, 3)
    assert r["jaccard"] == pytest.approx(1 / 3) and r["ood_rate_i"] == pytest.approx(2 / 3)
    # independent detectors flagging 2/3 each: (4/9) / (4/3 - 4/9) = 1/2
    assert r["expected_jaccard"] == pytest.approx(0.5)
    flags = rows(
        toy, "select example_id, ood_i, ood_j from ood_agreement_examples(1, tpr := 0.5) order by example_id"
    )
    assert [(r["example_id"], r["ood_i"], r["ood_j"]) for r in flags] == [
        ("x1", True, False),
        ("x2", False, True),
        ("x3", True, True),
    ]
    flags = rows(toy, "select model, example_id, threshold, ood from ood_flags(1, tpr := 0.5) order by all")
    assert [(r["model"], r["example_id"], r["ood"]) for r in flags] == [
        ("a", "x1", True),
        ("a", "x2", False),
        ("a", "x3", True),
        ("b", "x1", False),
        ("b", "x2", True),
        ("b", "x3", True),
    ]
    assert [r["threshold"] for r in flags] == [pytest.approx(0.3)] * 6
    [t] = rows(toy, library()["table2"].text, {"k": 1, "tpr": 0.5, "reference": None})
    assert (t["ood_dataset"], t["ood_bank"], t["ood_stage"]) == ("shift", "toy", "finetuned")
    assert t["distribution"] == pytest.approx(1 / 3)
    with pytest.raises(duckdb.Error, match="tpr = 1.0 must lie strictly between 0 and 1"):
        rows(toy, "select * from ood_agreement(1, tpr := 1.0)")


def write_attacks(store: Store, results: dict[str, list[str]]) -> None:
    with store.run("test", {}) as run:
        for model, res in results.items():
            run.write(
                "attacks",
                {"model": model, "attack": "bert-attack", "dataset": "toy"},
                pa.table(
                    {
                        "example_id": ["x1", "x2", "x3"],
                        "ground_truth": [1, 1, 0],
                        "result": res,
                        "queries": [10, 20, 1],
                        "words_perturbed": [2 if r == "succeeded" else 0 for r in res],
                        "words": [10, 10, 10],
                    }
                ),
            )


def test_attack_summary_hand_checked(toy):
    write_attacks(toy, {"a": ["succeeded", "failed", "skipped"]})
    [r] = rows(toy, "select * from attack_summary()")
    # 2 of 3 right before; 1 of 3 still right under attack; 1 of the 2 attacked broke
    assert (r["model"], r["attack"], r["dataset"], r["n"]) == ("a", "bert-attack", "toy", 3)
    assert r["accuracy_before"] == pytest.approx(2 / 3)
    assert r["accuracy_under_attack"] == pytest.approx(1 / 3)
    assert (r["drop_abs"], r["drop_rel"]) == (pytest.approx(1 / 3), pytest.approx(0.5))
    assert r["success_rate"] == pytest.approx(0.5)
    assert r["mean_queries"] == pytest.approx(15.0)  # over the attacked examples
    assert r["mean_words_perturbed"] == 2.0  # a count of words, in the successful attack
    assert r["mean_share_perturbed"] == pytest.approx(0.2)  # 2 of its 10 words
    # 95% Wilson intervals, by hand: 1 of 3 under attack, 1 of 2 broken
    assert (r["accuracy_under_attack_lo"], r["accuracy_under_attack_hi"]) == (
        pytest.approx(0.0615, abs=1e-4),
        pytest.approx(0.7923, abs=1e-4),
    )
    assert (r["success_rate_lo"], r["success_rate_hi"]) == (
        pytest.approx(0.0945, abs=1e-4),
        pytest.approx(0.9055, abs=1e-4),
    )
    [w] = rows(
        toy, "select wilson_interval(0, 10) as a, wilson_interval(10, 10) as b, wilson_interval(0, 0) as c"
    )
    assert w["a"]["lo"] == 0.0 and w["a"]["hi"] == pytest.approx(0.2775, abs=1e-4)
    assert w["b"]["hi"] == 1.0 and w["b"]["lo"] == pytest.approx(0.7225, abs=1e-4)
    assert w["c"] is None  # no trials, no proportion: empty, not zero


def test_attack_agreement_hand_checked(toy):
    # both right before on x1, x2 (b skips x3): a broke {x1}, b broke {x1, x2} -> 1/2
    write_attacks(toy, {"a": ["succeeded", "failed", "failed"], "b": ["succeeded", "succeeded", "skipped"]})
    [r] = rows(toy, "select * from attack_agreement()")
    assert (r["model_i"], r["model_j"], r["n"], r["broken_i"], r["broken_j"]) == ("a", "b", 2, 1, 2)
    assert (r["both"], r["either"], r["jaccard"]) == (1, 2, 0.5)
    got = rows(
        toy, "select example_id, broken_i, broken_j from attack_agreement_examples() order by example_id"
    )
    assert [(r["example_id"], r["broken_i"], r["broken_j"]) for r in got] == [
        ("x1", True, True),
        ("x2", False, True),
    ]  # x3: b skipped it


def test_table3_query_hand_checked(toy):
    write_attacks(toy, {"a": ["succeeded", "failed", "skipped"], "b": ["failed", "failed", "failed"]})
    got = rows(toy, library()["table3"].text)
    # in model_rank order: no parameter counts here, so by name
    assert [(r["model"], r["accuracy_before"], r["accuracy_under_attack"]) for r in got] == [
        ("a", pytest.approx(2 / 3), pytest.approx(1 / 3)),
        ("b", 1.0, 1.0),
    ]


def test_models_and_their_rank_hand_checked(toy):
    # a and b hold rows from a run that names no model; the others come with records as
    # extract and ingest write them (provenance fields at the record's top level)
    facts = {
        "big": {"model_parameters": 100, "model_bytes": 400, "architecture": "BertModel"},
        "pruned": {"model_parameters": 100, "model_nonzero_parameters": 70, "model_bytes": 400},
        "paper": {"published_parameters": 50},
    }
    for model, provenance in facts.items():
        command = "ingest-errors" if model == "paper" else "extract"
        with toy.run(command, {"model_arg": f"{model}-folder"}, model=model, **provenance) as run:
            run.write(
                "predictions",
                {"model": model, "dataset": "toy"},
                pa.table({"example_id": ["x1"], "correct": [True]}),
            )
    found = {r["model"]: r for r in rows(toy, "select * from models")}
    assert set(found) == {"a", "b", "big", "pruned", "paper"}
    assert (found["big"]["parameters"], found["big"]["bytes"], found["big"]["source"]) == (
        100,
        400,
        "big-folder",
    )
    assert found["pruned"]["parameters"] == 70  # non-zero weights count where known
    assert (found["paper"]["parameters"], found["paper"]["method"]) == (50, "ingested error list")
    assert found["a"]["kinds"] == ["predictions"] and found["a"]["parameters"] is None
    ranked = [r["model"] for r in rows(toy, "select * from model_rank() order by rank")]
    assert ranked == ["big", "pruned", "paper", "a", "b"]  # parameters, largest first; then names
    ranked = [r["model"] for r in rows(toy, "select * from model_rank(reference := 'paper') order by rank")]
    assert ranked == ["paper", "big", "pruned", "a", "b"]


HAND_CHECKED = {
    "models": test_models_and_their_rank_hand_checked,
    "model_rank": test_models_and_their_rank_hand_checked,
    "error_agreement_examples": test_error_agreement_examples_hand_checked,
    "knn_agreement_examples": test_knn_agreement_hand_checked,
    "ood_agreement_examples": test_ood_agreement_hand_checked,
    "attack_agreement_examples": test_attack_agreement_hand_checked,
    "attack_summary": test_attack_summary_hand_checked,
    "wilson_interval": test_attack_summary_hand_checked,
    "attack_agreement": test_attack_agreement_hand_checked,
    "table3": test_table3_query_hand_checked,
    "knn_agreement": test_knn_agreement_hand_checked,
    "chance_knn_jaccard": test_knn_agreement_hand_checked,
    "chance_knn_rank_rho": test_knn_kernel.test_chance_rank_rho_is_the_mean_over_every_pair_of_lists,
    "ood_agreement": test_ood_agreement_hand_checked,
    "ood_flags": test_ood_agreement_hand_checked,
    "error_agreement": test_error_agreement_hand_checked,
    "errors": test_errors_view_hand_checked,
    "accuracy": test_accuracy_query_hand_checked,
    "table2": test_table2_query_hand_checked,
    "answer_agreement_examples": test_answers.test_answer_agreement_examples_hand_checked,
    "answer_agreement": test_answers.test_answer_agreement_hand_checked,
    "calibration": test_answers.test_calibration_hand_checked,
    "flips_by_margin": test_answers.test_flips_by_margin_hand_checked,
    "reference": test_answers.test_the_store_names_its_reference,
    "representations": test_families.test_representations_hand_checked,
    "replicas": test_noise_floor.test_the_store_has_the_replica_groups,
    "pie_examples": test_noise_floor.test_pie_examples_by_hand,
}


def test_every_sql_file_has_a_hand_checked_test():
    assert set(library()) == set(HAND_CHECKED), "add a hand-checked test for each new .sql file"


def test_every_sql_file_has_help():
    assert all(f.help for f in library().values())


def test_parameters_skip_strings_and_comments():
    assert parameters("select $k, '$not' -- $nor\n, $tpr, $k") == ["k", "tpr"]


def test_resolve_checks_parameters_and_names():
    with pytest.raises(QueryError, match=r"missing parameter m; it takes: m"):
        resolve("select $m", {})
    with pytest.raises(QueryError, match=r"unknown parameter k; it takes: none"):
        resolve("accuracy", {"k": "3"})
    with pytest.raises(NotFound, match="did you mean accuracy"):
        resolve("acuracy", {})
    assert resolve("select $k", {"k": "10"})[1] == {"k": 10}
    assert resolve("error_agreement", {})[0] == "select * from error_agreement()"


def test_empty_store_has_every_view(store_dir):
    con = connect(Store(store_dir))
    for view in ("examples", "predictions", "embeddings", "neighbors", "ood_scores", "runs", "errors"):
        assert con.sql(f"select count(*) from {view}").fetchall() == [(0,)]
    assert con.sql("select count(*) from error_agreement()").fetchall() == [(0,)]
    assert not store_dir.exists()  # reading never creates a store
