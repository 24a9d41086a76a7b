"""ce attack on a tiny classifier with a tiny masked LM, offline: rows, summary, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ce.extractors.attack import AttackOptions, run_attack
from ce.extractors.attack_env import import_textattack
from ce.extractors.datasets import load_dataset, subset
from ce.query.sql import connect
from ce.store import Store
from ce.store.errors import CeError, NotFound

from .conftest import snapshot

pytestmark = pytest.mark.usefixtures("data_dir")


def options(tiny_models, **kw) -> AttackOptions:
    base = {
        "attacker": str(tiny_models["mlm"]),
        "sentence_encoder": str(tiny_models["base"]),
        "max_candidates": 8,
        "limit": 12,
        "checkpoint_every": 5,
    }
    return AttackOptions(**(base | kw))


def sampled_ids(limit: int) -> list[str]:
    """The ids of sst2-dev's seeded sample of ``limit`` (as the attacks' default seed 0 takes it)."""
    return sorted(subset(load_dataset("sst2-dev"), limit).table["example_id"].to_pylist(), key=int)


def rows(store: Store, sql: str) -> list[dict]:
    return connect(store).sql(sql).to_arrow_table().to_pylist()


def test_textattack_imports_offline():
    ta = import_textattack()
    import nltk

    assert "the" in nltk.corpus.stopwords.words("english")
    assert hasattr(ta, "Attack")


def test_bert_attack_rows_and_summary_equal_a_recount(sharp_classifier, tiny_models, store_dir):
    store = Store(store_dir)
    info = run_attack(store, str(sharp_classifier), "sst2-dev", options(tiny_models), progress=False)
    got = rows(store, "select * from attacks order by example_id::int")
    assert [r["example_id"] for r in got] == sampled_ids(12)
    assert info.succeeded + info.failed + info.skipped == 12
    for r in got:
        if r["result"] == "skipped":
            assert r["original_output"] != r["ground_truth"] and r["queries"] >= 1
        elif r["result"] == "succeeded":
            assert r["original_output"] == r["ground_truth"] != r["perturbed_output"]
            assert r["perturbed_text"] != r["original_text"] and r["words_perturbed"] >= 1
            assert r["words_perturbed"] <= 0.4 * r["words"] + 1
        else:
            assert r["original_output"] == r["ground_truth"] == r["perturbed_output"]
        assert 0.5 <= r["original_score"] <= 1.0
    assert info.succeeded >= 1  # the tiny model does break
    [summary] = rows(store, "select * from attack_summary()")
    n = len(got)
    before = sum(r["result"] != "skipped" for r in got) / n
    under = sum(r["result"] == "failed" for r in got) / n
    succeeded = [r for r in got if r["result"] == "succeeded"]
    assert summary["n"] == n
    assert summary["accuracy_before"] == pytest.approx(before)
    assert summary["accuracy_under_attack"] == pytest.approx(under)
    assert summary["drop_abs"] == pytest.approx(before - under)
    assert summary["drop_rel"] == pytest.approx((before - under) / before)
    assert summary["success_rate"] == pytest.approx(len(succeeded) / (n * before))
    assert summary["mean_share_perturbed"] == pytest.approx(
        sum(r["words_perturbed"] / r["words"] for r in succeeded) / len(succeeded)
    )
    assert summary["mean_words_perturbed"] == pytest.approx(
        sum(r["words_perturbed"] for r in succeeded) / len(succeeded)
    )
    runs = [r for r in store.runs() if r["command"] == "attack"]
    assert len(runs) == 3  # 12 examples committed 5 at a time
    recipe = runs[0]["recipe"]
    assert "max_candidates=8" in recipe["transformation"]
    assert "MaxWordsPerturbed(0.4)" in recipe["constraints"]
    assert "sentence-transformers" in recipe["sentence_encoder"]


def test_attack_agreement_over_examples_both_got_right(sharp_classifier, tiny_models, store_dir):
    store = Store(store_dir)
    for name in ("x", "y"):
        run_attack(
            store,
            str(sharp_classifier),
            "sst2-dev",
            options(tiny_models, attack="deepwordbug", limit=20),
            name=name,
            progress=False,
        )
    [r] = rows(store, "select * from attack_agreement()")
    got = rows(store, "select model, example_id, result from attacks")
    right = {
        m: {g["example_id"] for g in got if g["model"] == m and g["result"] != "skipped"} for m in ("x", "y")
    }
    both_right = right["x"] & right["y"]
    broken = {
        m: {g["example_id"] for g in got if g["model"] == m and g["result"] == "succeeded"} & both_right
        for m in ("x", "y")
    }
    assert r["n"] == len(both_right)
    assert (r["broken_i"], r["broken_j"]) == (len(broken["x"]), len(broken["y"]))
    assert r["jaccard"] == pytest.approx(len(broken["x"] & broken["y"]) / len(broken["x"] | broken["y"]))


KILL_ME = """
import sys
from ce.store import Store
from ce.extractors.attack import AttackOptions, run_attack
opts = AttackOptions(attacker=sys.argv[3], sentence_encoder=sys.argv[4], max_candidates=8,
                     limit=12, checkpoint_every=1)
run_attack(Store(sys.argv[1]), sys.argv[2], "sst2-dev", opts, progress=False)
"""


def committed(store_dir) -> int:
    store = Store(store_dir)
    if not store.exists():
        return 0
    return sum(p.rows for p in store.live_parts()["attacks"])


def test_a_killed_attack_resumes_without_duplicates(sharp_classifier, tiny_models, store_dir):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILL_ME,
            str(store_dir),
            str(sharp_classifier),
            str(tiny_models["mlm"]),
            str(tiny_models["base"]),
        ],
        env=os.environ | {"CE_DATA_DIR": os.environ["CE_DATA_DIR"]},
    )
    deadline = time.time() + 120
    while committed(store_dir) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = committed(store_dir)
    assert 2 <= done < 12, "the attack should have been killed part way"
    store = Store(store_dir)
    info = run_attack(
        store, str(sharp_classifier), "sst2-dev", options(tiny_models, checkpoint_every=1), progress=False
    )
    assert info.resumed_from >= done
    got = rows(store, "select example_id from attacks")
    assert sorted((r["example_id"] for r in got), key=int) == sampled_ids(12)  # once each
    assert not [p for p in store_dir.rglob("*.tmp")]
    again = run_attack(
        store, str(sharp_classifier), "sst2-dev", options(tiny_models, checkpoint_every=1), progress=False
    )
    assert again.resumed_from == 12 and again.succeeded == 0  # nothing left to do


def test_each_checkpoint_record_spans_its_examples(sharp_classifier, tiny_models, store_dir, monkeypatch):
    """A checkpoint's run record starts before its first example is attacked and ends at its
    commit, not both at the commit; and TextAttack logs no line while attacking."""
    import logging

    from ce.store.store import now

    ta = import_textattack()
    seen = []
    attack = ta.Attack.attack

    def timed(self, *args, **kwargs):
        seen.append(now())
        time.sleep(0.02)
        return attack(self, *args, **kwargs)

    monkeypatch.setattr(ta.Attack, "attack", timed)
    logged = []
    handler = logging.Handler()
    handler.emit = logged.append
    logger = logging.getLogger("textattack.shared.utils.install")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # as textattack itself sets it
    try:
        store = Store(store_dir)
        opts = options(tiny_models, attack="deepwordbug", limit=4, checkpoint_every=2)
        run_attack(store, str(sharp_classifier), "sst2-dev", opts, progress=False)
    finally:
        logger.removeHandler(handler)
    assert logger.level == logging.INFO  # put back after the attack
    assert [r.getMessage() for r in logged if r.levelno < logging.WARNING] == []
    records = sorted((r for r in store.runs() if r["command"] == "attack"), key=lambda r: r["started"])
    assert len(records) == 2 and len(seen) == 4
    for record, first in zip(records, seen[::2], strict=True):
        assert record["started"] <= first < record["ended"]


@pytest.mark.parametrize(
    ("kwargs", "dataset", "model", "error", "message"),
    [
        ({"attack": "bert-atack"}, "sst2-dev", "sharp", NotFound, "did you mean bert-attack"),
        ({}, "sst2-dev", "qa", CeError, "no trained sequence-classification head"),
        ({}, "squad2-dev", "sharp", CeError, "attacks need a classification dataset"),
        ({}, "unlabelled", "sharp", CeError, "without a label"),
        ({"attacker": "BASE"}, "sst2-dev", "sharp", CeError, "is not a masked LM"),
    ],
)
def test_bad_input_writes_nothing(
    sharp_classifier, tiny_models, store_dir, tmp_path, kwargs, dataset, model, error, message
):
    if dataset == "unlabelled":
        dataset = str(tmp_path / "unlabelled.csv")
        (tmp_path / "unlabelled.csv").write_text("id,text,label\na,fine,\nb,bad,0\n")
    if kwargs.get("attacker") == "BASE":
        kwargs = {"attacker": str(tiny_models["base"])}
    target = str(sharp_classifier if model == "sharp" else tiny_models[model])
    store = Store(store_dir)
    with pytest.raises(error, match=message):
        run_attack(store, target, dataset, options(tiny_models, **kwargs), progress=False)
    assert snapshot(store_dir) == {}


def test_attack_shards_add_up_to_one_attack(sharp_classifier, tiny_models, tmp_path):
    whole, sharded = Store(tmp_path / "whole"), Store(tmp_path / "sharded")
    run_attack(whole, str(sharp_classifier), "sst2-dev", options(tiny_models, limit=8), progress=False)
    for i in (1, 0):
        assert rows(sharded, "select count(*) as n from attacks") == [{"n": 0}]
        opts = options(tiny_models, limit=8, shard=f"{i}/2", checkpoint_every=2)
        info = run_attack(sharded, str(sharp_classifier), "sst2-dev", opts, progress=False)
        assert info.examples == 4
    again = run_attack(
        sharded, str(sharp_classifier), "sst2-dev", options(tiny_models, limit=8, shard="1/2"), progress=False
    )
    assert again.resumed_from == 4  # a finished shard resumes with nothing left to do
    sql = "select * exclude (run_id) from attacks order by example_id"
    assert rows(sharded, sql) == rows(whole, sql)
