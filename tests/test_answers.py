"""The measures of changed answers and calibration (Dutta et al. 2024; design brief): every
SQL file on a five-example store checked by hand, Table 2's orientation of the asymmetric
measures, and an independent recount in numpy on random distributions."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from ce.query import compare
from ce.query.compare import mcnemar_exact
from ce.query.sql import connect
from ce.store import Store
from ce.store.schema import ADDED_LATER

GOLD = [0, 1, 2, 0, 1]
IDS = ["x1", "x2", "x3", "x4", "x5"]
# 'ref' (the reference) and 'oth' (its compressed copy): x2 flips correct -> wrong, x4 changes
# from one wrong answer to another, x5 has no correctness nor distribution for oth.
REF = dict(
    pred_label=[0, 1, 0, 1, 1],
    correct=[True, True, False, False, True],
    probs=[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.2, 0.3], [0.3, 0.4, 0.3], [0.1, 0.6, 0.3]],
    prompt_hash=["h1", "h2", "h3", "h4", "h5"],
)
OTH = dict(
    pred_label=[0, 2, 0, 2, 1],
    correct=[True, False, False, False, None],
    probs=[[0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.45, 0.2, 0.35], [0.2, 0.3, 0.5], None],
    prompt_hash=["h1", "h2", "h3", "other", "h5"],
)


def write(store: Store, models: dict[str, dict], dataset: str = "mc", gold=GOLD, ids=IDS) -> Store:
    with store.run("test", {}) as run:
        run.write("examples", {"dataset": dataset}, pa.table({"example_id": ids, "label": gold}))
        for model, cols in models.items():
            run.write(
                "predictions", {"model": model, "dataset": dataset}, pa.table({"example_id": ids, **cols})
            )
    return store


@pytest.fixture
def hand(store_dir) -> Store:
    return write(Store(store_dir), {"ref": REF, "oth": OTH})


def rows(store: Store, sql: str) -> list[dict]:
    return connect(store).sql(sql).to_arrow_table().to_pylist()


def kl(p, q) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


def js(p, q) -> float:
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    return (kl(p, m) + kl(q, m)) / 2


def test_answer_agreement_examples_hand_checked(hand):
    got = {r["example_id"]: r for r in rows(hand, "select * from answer_agreement_examples()")}
    assert {r["model_i"] + r["model_j"] for r in got.values()} == {"othref"}  # name order: oth first
    assert [got[i]["c_to_w"] for i in IDS] == [False, False, False, False, None]  # oth right, ref wrong
    assert [got[i]["w_to_c"] for i in IDS] == [False, True, False, False, None]  # x2: ref right, oth wrong
    assert [got[i]["changed"] for i in IDS] == [False, True, False, True, False]
    assert [got[i]["scored"] for i in IDS] == [True, True, True, True, False]
    assert [got[i]["compared"] for i in IDS] == [True, True, True, True, None]
    assert [got[i]["prompt_differs"] for i in IDS] == [False, False, False, True, False]
    assert [got[i]["top1"] for i in IDS] == [True, False, True, False, None]
    for i, (p, q) in enumerate(zip(OTH["probs"][:4], REF["probs"][:4], strict=True)):
        r = got[IDS[i]]
        assert r["kl_ij"] == pytest.approx(kl(p, q)) and r["kl_ji"] == pytest.approx(kl(q, p))
        assert r["js"] == pytest.approx(js(p, q))
    # Brier of x2 (gold 1): ref (0.1, 0.8, 0.1) -> 0.01 + 0.04 + 0.01;
    # oth (0.2, 0.3, 0.5) -> 0.04 + 0.49 + 0.25
    assert (got["x2"]["brier_j"], got["x2"]["brier_i"]) == (pytest.approx(0.06), pytest.approx(0.78))


def test_answer_agreement_hand_checked(hand):
    [r] = rows(hand, "select * from answer_agreement()")
    assert (r["model_i"], r["model_j"], r["n"], r["scored"], r["compared"]) == ("oth", "ref", 5, 4, 4)
    assert (r["c_to_w"], r["w_to_c"]) == (0, 1)
    assert (r["flips"], r["flips_ij"], r["flips_ji"]) == (0.25, 0.0, 0.25)
    assert (r["changes"], r["agreement"], r["top1"]) == (0.4, 0.6, 0.5)
    # Brier over x1-x4: ref (0.14 + 0.06 + 0.78 + 0.74) / 4, oth (0.14 + 0.78 + 0.665 + 0.98) / 4
    assert (r["brier_n"], r["brier_j"], r["brier_i"]) == (4, pytest.approx(0.43), pytest.approx(0.64125))
    assert r["prompts_differ"] == 1
    # ECE/MCE over the pair's compared and scored examples, x1-x4: ref's confidences 0.7 0.8
    # 0.5 0.4 (bins 10 12 7 6), correct 1 1 0 0: gaps .3 .2 .5 .4 -> ECE 1.4 / 4, MCE .5
    assert (r["ece_j"], r["mce_j"]) == (pytest.approx(0.35), pytest.approx(0.5))
    assert (r["ece_i"], r["mce_i"]) == (pytest.approx(0.4375), pytest.approx(0.5))


def test_calibration_hand_checked(hand):
    got = {r["model"]: r for r in rows(hand, "select * from calibration()")}
    # ref: confidences 0.7 0.8 0.5 0.4 0.6 (bins 10 12 7 6 9, one each), correct 1 1 0 0 1:
    # gaps .3 .2 .5 .4 .4 -> ECE 1.8 / 5, MCE .5; Brier (0.14 + 0.06 + 0.78 + 0.74 + 0.26) / 5
    assert (got["ref"]["n"], got["ref"]["ece"], got["ref"]["mce"]) == (
        5,
        pytest.approx(0.36),
        pytest.approx(0.5),
    )
    assert got["ref"]["brier"] == pytest.approx(0.396)
    # oth (x5 has no distribution): 0.7 (bin 10, right), 0.5 and 0.5 (bin 7, both wrong), 0.45
    # (bin 6, wrong): ECE (0.3 + 2 * 0.5 + 0.45) / 4, MCE 0.5
    assert (got["oth"]["n"], got["oth"]["ece"], got["oth"]["mce"]) == (4, pytest.approx(0.4375), 0.5)


def test_flips_by_margin_hand_checked(hand):
    got = rows(hand, "select * from flips_by_margin() where model_i = 'ref' order by decile")
    # ref's margins over the four scored examples: x4 0.1, x3 0.2, x1 0.5, x2 0.7; only x2 flips
    assert [(r["decile"], r["n"], r["flip_rate"]) for r in got] == [
        (1, 1, 0.0),
        (2, 1, 0.0),
        (3, 1, 0.0),
        (4, 1, 1.0),
    ]
    assert [r["margin_lo"] for r in got] == [pytest.approx(m) for m in (0.1, 0.2, 0.5, 0.7)]


def test_table2_shows_the_reference_first_and_mirrors_the_asymmetric_measures(hand):
    con = connect(hand)
    [r] = compare.table2(con, reference="ref").rows()
    assert (r["model_i"], r["model_j"]) == ("ref", "oth")
    # ref correct, oth wrong on x2: a negative flip of oth against its reference
    assert (r["flips_neg"], r["flips_pos"], r["flips_c_to_w"], r["flips_w_to_c"]) == (0.25, 0.0, 1, 0)
    pairs = zip(OTH["probs"][:4], REF["probs"][:4], strict=True)
    assert r["kl"] == pytest.approx(np.mean([kl(q, p) for p, q in pairs]))
    assert (r["brier_ref"], r["brier_other"]) == (pytest.approx(0.43), pytest.approx(0.64125))
    assert r["brier_diff"] == pytest.approx(0.64125 - 0.43)
    assert (r["ece_ref"], r["ece_other"], r["ece_diff"]) == (
        pytest.approx(0.35),
        pytest.approx(0.4375),
        pytest.approx(0.0875),
    )
    assert r["flips_mcnemar_p"] == 1.0  # one discordant example: 2 * P(X <= 0 | 1, 1/2)
    assert r["prompts_differ"] == 1
    [t] = compare.table2(con, reference="oth").rows()
    assert (t["model_i"], t["flips_neg"], t["flips_pos"]) == ("oth", 0.0, 0.25)
    notes = compare.table2(con, reference="ref").notes
    assert any("different prompts for 1 document(s) of mc" in n for n in notes)


def test_intervals_follow_the_mirror(hand):
    con = connect(hand)
    [r] = compare.table2(con, reference="ref", ci=0.95, replicates=200).rows()
    assert r["flips_neg_lo"] <= 0.25 <= r["flips_neg_hi"] and r["flips_neg_hi"] > 0
    assert r["flips_pos_lo"] == r["flips_pos_hi"] == 0.0


def test_a_log_without_distributions_leaves_the_divergences_empty(store_dir):
    bare = {k: v for k, v in REF.items() if k != "probs"}
    store = write(Store(store_dir), {"ref": bare, "oth": {k: v for k, v in OTH.items() if k != "probs"}})
    [r] = compare.table2(connect(store), reference="ref").rows()
    assert r["flips"] == 0.25
    assert r["kl"] is None and r["js"] is None and r["top1"] is None and r["kl_n"] == 0
    assert r["brier_ref"] is None and r["ece_ref"] is None


def test_mcnemar_exact_hand_checked():
    assert mcnemar_exact(0, 0) is None
    assert mcnemar_exact(3, 0) == pytest.approx(2 * 0.5**3)  # 0.25
    assert mcnemar_exact(1, 4) == pytest.approx(2 * (1 + 5) / 32)  # P(X <= 1 | 5) = 6/32
    assert mcnemar_exact(10, 10) == 1.0


def test_every_measure_matches_an_independent_recount(store_dir):
    """Random answers and distributions for three models; numpy recomputes every value."""
    rng = np.random.default_rng(7)
    n, classes = 300, 4
    ids = [f"e{i}" for i in range(n)]
    gold = rng.integers(0, classes, n)
    models = {}
    for name in ("big", "int4", "int8"):
        logits = rng.normal(size=(n, classes)) + 2 * np.eye(classes)[gold] * rng.random((n, 1))
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        answer = probs.argmax(1)
        models[name] = dict(
            pred_label=answer.tolist(), correct=(answer == gold).tolist(), probs=probs.tolist()
        )
    store = write(Store(store_dir), models, gold=gold.tolist(), ids=ids)
    table = {(r["model_i"], r["model_j"]): r for r in compare.table2(connect(store), reference="big").rows()}
    assert set(table) == {("big", "int4"), ("big", "int8"), ("int4", "int8")}
    for (a, b), r in table.items():
        p, q = np.array(models[a]["probs"]), np.array(models[b]["probs"])
        ca, cb = np.array(models[a]["correct"]), np.array(models[b]["correct"])
        la, lb = np.array(models[a]["pred_label"]), np.array(models[b]["pred_label"])
        assert r["flips_neg"] == pytest.approx(np.mean(ca & ~cb))
        assert r["flips_pos"] == pytest.approx(np.mean(~ca & cb))
        assert r["flips"] == pytest.approx(np.mean(ca != cb))
        assert r["changes"] == pytest.approx(np.mean(la != lb))
        assert r["kl"] == pytest.approx(np.mean((p * np.log(p / q)).sum(1)))
        assert r["kl_rev"] == pytest.approx(np.mean((q * np.log(q / p)).sum(1)))
        m = (p + q) / 2
        assert r["js"] == pytest.approx(np.mean(((p * np.log(p / m)) + (q * np.log(q / m))).sum(1) / 2))
        one_hot = np.eye(classes)[gold]
        assert r["brier_ref"] == pytest.approx(np.mean(((p - one_hot) ** 2).sum(1)))
        for side, probs, correct in (("ref", p, ca), ("other", q, cb)):
            conf = probs.max(1)
            bins = np.minimum(np.floor(conf * 15), 14)
            gaps = [
                (np.sum(bins == k), abs(correct[bins == k].mean() - conf[bins == k].mean()))
                for k in np.unique(bins)
            ]
            assert r[f"ece_{side}"] == pytest.approx(sum(c * g for c, g in gaps) / n)
            assert r[f"mce_{side}"] == pytest.approx(max(g for _, g in gaps))


def test_the_store_names_its_reference(hand):
    from click.testing import CliRunner

    from ce.cli import cli

    def ce(*args):
        return CliRunner().invoke(cli, [*args, "--store", str(hand.root)])

    assert rows(hand, "select * from reference") == []
    assert ce("reference").stdout.startswith("none")
    # without a reference, 'oth' and 'ref' have no sizes: name order puts 'oth' first
    [r] = compare.table2(connect(hand)).rows()
    assert r["model_i"] == "oth"
    result = ce("reference", "ref")
    assert result.exit_code == 0 and "reference: ref (was none)" in result.stderr
    assert rows(hand, "select * from reference") == [{"model": "ref"}]
    [r] = compare.table2(connect(hand)).rows()
    assert (r["model_i"], r["flips_neg"]) == ("ref", 0.25)
    [r] = compare.table2(connect(hand), reference="oth").rows()  # a comparison's own choice wins
    assert r["model_i"] == "oth"
    assert [x["model"] for x in rows(hand, "select model from models order by model")] == ["oth", "ref"]
    bad = ce("reference", "nosuch")
    assert bad.exit_code != 0 and "no model 'nosuch'" in bad.stderr
    assert ce("reference", "--clear").exit_code == 0
    assert rows(hand, "select * from reference") == [] and ce("reference").stdout.startswith("none")


def test_a_store_written_before_the_answer_columns_still_reads(store_dir):
    """Parts of an earlier release lack probs, prompt_hash, ...: the views add them as nulls."""
    import pyarrow.parquet as pq

    store = write(
        Store(store_dir),
        {
            k: {"pred_label": v["pred_label"], "correct": v["correct"]}
            for k, v in (("ref", REF), ("oth", OTH))
        },
    )
    for part in store_dir.rglob("predictions/**/*.parquet"):
        table = pq.read_table(part)
        old = [c for c in table.column_names if c not in ADDED_LATER["predictions"]]
        pq.write_table(table.select(old), part)
    assert "probs" not in pq.read_schema(next(store_dir.rglob("predictions/**/*.parquet"))).names
    [r] = compare.table2(connect(store), reference="ref").rows()
    assert r["flips"] == 0.25 and r["kl"] is None and r["prompts_differ"] == 0


def test_compare_shows_each_pair_once_though_table2_repeats_it_per_ood_row(hand):
    """Table 2 has a row per OOD test set, bank and stage of a pair; the answer tables and
    the prompt notes of ce compare name each pair once."""
    import pyarrow as pa

    from ce.cli.tables import characteristic_tables

    table = compare.table2(connect(hand), reference="ref").relation.to_arrow_table()
    doubled = pa.concat_tables([table, table])
    titled = dict(characteristic_tables(doubled, 10))
    [changed] = [t for title, t in titled.items() if title.startswith("Changed answers")]
    assert changed.num_rows == 1 and changed["flips"].to_pylist() == [0.25]
    assert len(compare._prompt_notes(doubled)) == 1
