"""``ce ingest lm-eval`` on logs the real lm-evaluation-harness wrote (tests/lmeval_logs.py):
every measure of changed answers against a recount of the JSONL files, the prompt-hash flag,
acc_norm, a generation log without distributions, and hostile logs."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from ce.cli import cli
from ce.query import compare
from ce.query.sql import connect
from ce.store import Store

from .conftest import needs_data, snapshot
from .lmeval_logs import GEN_TASK, MC_TASK

pytest.importorskip("lm_eval")
pytestmark = needs_data("sst2/sst2_dev.tsv", "sst2/sst2_train.tsv")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def recount(path, normalised: bool = False) -> dict[int, dict]:
    """Per document, recomputed from the JSONL with the json module and numpy only."""
    out = {}
    for s in lines(path):
        ll = np.array([float(r[0]) for r in s["filtered_resps"]])
        choices = [a["arg_1"] for a in s["arguments"].values()]
        score = ll / np.array([len(c.lstrip()) for c in choices]) if normalised else ll
        p = np.exp(score - score.max())
        out[s["doc_id"]] = {
            "probs": p / p.sum(),
            "answer": int(np.argmax(score)),
            "correct": s["acc_norm" if normalised else "acc"] == 1.0,
            "gold": int(s["target"]),
            "prompt": s["prompt_hash"],
        }
    return out


@pytest.fixture
def ingested(lm_eval_runs, store_dir):
    for name in ("a", "b"):
        result = invoke(
            "ingest",
            "lm-eval",
            lm_eval_runs["runs"][name]["output_path"],
            "--model",
            f"model-{name}",
            "--store",
            store_dir,
        )
        assert result.exit_code == 0, result.output
        assert f"model-{name} on {MC_TASK}" in result.stderr and "softmax" in result.stderr
    return Store(store_dir)


def test_every_measure_matches_a_recount_of_the_logs(lm_eval_runs, ingested):
    a = recount(lm_eval_runs["runs"]["a"][MC_TASK])
    b = recount(lm_eval_runs["runs"]["b"][MC_TASK])
    docs = sorted(a)
    assert len(docs) == lm_eval_runs["n_docs"] == 40
    con = connect(ingested)
    stored = {
        (r["model"], int(r["example_id"])): r
        for r in con.sql(f"select * from predictions where dataset = '{MC_TASK}'")
        .to_arrow_table()
        .to_pylist()
    }
    for d in docs:
        for name, counted in (("model-a", a), ("model-b", b)):
            r = stored[(name, d)]
            assert r["pred_label"] == counted[d]["answer"] and r["correct"] == counted[d]["correct"]
            assert r["probs"] == pytest.approx(counted[d]["probs"].tolist())
            assert r["metric"] == "acc" and r["prompt_hash"] == counted[d]["prompt"]
    [row] = [r for r in compare.table2(con, reference="model-a").rows() if r["dataset"] == MC_TASK]
    assert (row["model_i"], row["model_j"]) == ("model-a", "model-b")
    c_to_w = sum(a[d]["correct"] and not b[d]["correct"] for d in docs)
    w_to_c = sum(b[d]["correct"] and not a[d]["correct"] for d in docs)
    assert c_to_w + w_to_c > 0, "the two tiny models should disagree somewhere"
    assert (row["flips_c_to_w"], row["flips_w_to_c"]) == (c_to_w, w_to_c)
    assert row["flips"] == pytest.approx((c_to_w + w_to_c) / 40)
    assert row["flips_neg"] == pytest.approx(c_to_w / 40) and row["flips_pos"] == pytest.approx(w_to_c / 40)
    assert row["changes"] == pytest.approx(np.mean([a[d]["answer"] != b[d]["answer"] for d in docs]))
    assert row["top1"] == pytest.approx(np.mean([a[d]["answer"] == b[d]["answer"] for d in docs]))
    p = np.array([a[d]["probs"] for d in docs])
    q = np.array([b[d]["probs"] for d in docs])
    assert row["kl"] == pytest.approx(np.mean((p * np.log(p / q)).sum(1)))
    assert row["kl_rev"] == pytest.approx(np.mean((q * np.log(q / p)).sum(1)))
    m = (p + q) / 2
    assert row["js"] == pytest.approx(np.mean((p * np.log(p / m) + q * np.log(q / m)).sum(1) / 2))
    gold = np.eye(p.shape[1])[[a[d]["gold"] for d in docs]]
    assert row["brier_ref"] == pytest.approx(np.mean(((p - gold) ** 2).sum(1)))
    assert row["brier_other"] == pytest.approx(np.mean(((q - gold) ** 2).sum(1)))
    conf, right = p.max(1), np.array([a[d]["correct"] for d in docs])
    bins = np.minimum(np.floor(conf * 15), 14)
    ece = sum(
        np.sum(bins == k) * abs(right[bins == k].mean() - conf[bins == k].mean()) for k in np.unique(bins)
    )
    assert row["ece_ref"] == pytest.approx(ece / 40)
    expected_p = min(
        1.0,
        2
        * sum(math.comb(c_to_w + w_to_c, i) for i in range(min(c_to_w, w_to_c) + 1))
        / 2 ** (c_to_w + w_to_c),
    )
    assert row["flips_mcnemar_p"] == pytest.approx(expected_p)
    assert row["prompts_differ"] == 0


def test_different_prompts_are_named(lm_eval_runs, ingested):
    result = invoke(
        "ingest",
        "lm-eval",
        lm_eval_runs["runs"]["a_variant"]["output_path"],
        "--model",
        "model-a-reworded",
        "--store",
        ingested.root,
    )
    assert result.exit_code == 0, result.output
    rows = compare.table2(connect(ingested), reference="model-a").rows()
    [row] = [r for r in rows if r["dataset"] == MC_TASK and r["model_j"] == "model-a-reworded"]
    assert row["prompts_differ"] == 40
    shown = invoke("compare", "--reference", "model-a", "--store", ingested.root)
    assert shown.exit_code == 0, shown.output
    assert (
        f"model-a and model-a-reworded saw different prompts for 40 document(s) of {MC_TASK}" in shown.stderr
    )


def test_acc_norm_ranks_by_length_normalised_likelihood(lm_eval_runs, store_dir):
    log = lm_eval_runs["runs"]["a"][MC_TASK]
    result = invoke(
        "ingest", "lm-eval", log, "--model", "a-norm", "--metric", "acc_norm", "--store", store_dir
    )
    assert result.exit_code == 0, result.output
    counted = recount(log, normalised=True)
    got = connect(Store(store_dir)).sql("select * from predictions").to_arrow_table().to_pylist()
    for r in got:
        d = counted[int(r["example_id"])]
        assert (r["pred_label"], r["correct"], r["metric"]) == (d["answer"], d["correct"], "acc_norm")
    assert sum(r["pred_label"] != recount(log)[int(r["example_id"])]["answer"] for r in got) > 0


def test_a_generation_log_has_answers_but_no_distribution(lm_eval_runs, ingested):
    con = connect(ingested)
    got = con.sql(
        f"select * from predictions where dataset = '{GEN_TASK}' and model = 'model-a'"
    ).to_arrow_table()
    logged = {s["doc_id"]: s for s in lines(lm_eval_runs["runs"]["a"][GEN_TASK])}
    for r in got.to_pylist():
        s = logged[int(r["example_id"])]
        assert r["prediction"] == s["filtered_resps"][0] and r["probs"] is None
        assert r["correct"] == (s["exact_match"] == 1.0) and r["metric"] == "exact_match"
    result = compare.table2(con, reference="model-a")
    [row] = [r for r in result.rows() if r["dataset"] == GEN_TASK]
    assert row["changes"] is not None and row["kl"] is None and row["brier_ref"] is None
    assert any(f"no answer distributions on {GEN_TASK}" in n for n in result.notes)
    examples = con.sql(f"select * from examples where dataset = '{GEN_TASK}'").to_arrow_table().to_pylist()
    assert {tuple(x["answers"]) for x in examples} <= {(s["target"],) for s in logged.values()}


@pytest.mark.parametrize(
    ("change", "contains"),
    [
        (lambda ls: ls[:3] + ['{"doc_id": 3, "doc": {'], "not an lm-evaluation-harness samples file"),
        (lambda ls: [_set(ls[0], acc=0.5)] + ls[1:], "is not 0 or 1 per document"),
        (lambda ls: [_set(ls[0], filtered_resps=[["nan", "False"]] * 4)] + ls[1:], "not a finite number"),
        (
            lambda ls: [_set(ls[0], filtered_resps=[["-1.0", "False"]])] + ls[1:],
            "1 log-likelihoods for 4 choices",
        ),
        (lambda ls: ls + ls[:1], "occurs more than once"),
        (lambda ls: [_set(ls[0], doc_id="'; drop table predictions; --")] + ls[1:], "not an lm-evaluation"),
        (lambda ls: [_drop(x, "acc") for x in ls], "no line has the metric acc"),
        (lambda ls: [], "holds no samples"),
    ],
)
def test_hostile_logs_are_one_line_errors_and_change_nothing(
    lm_eval_runs, ingested, tmp_path, change, contains
):
    source = lm_eval_runs["runs"]["a"][MC_TASK]
    bad = tmp_path / source.name
    bad.write_text("".join(x + "\n" for x in change(source.read_text(encoding="utf-8").splitlines())))
    before = snapshot(ingested.root)
    args = ["--metric", "acc"] if "metric acc" in contains else []
    result = invoke("ingest", "lm-eval", bad, "--model", "evil", *args, "--store", ingested.root)
    assert result.exit_code != 0
    assert contains in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output
    assert snapshot(ingested.root) == before


def test_a_folder_checks_every_file_before_writing(lm_eval_runs, store_dir, tmp_path):
    folder = tmp_path / "out"
    shutil.copytree(lm_eval_runs["runs"]["a"]["output_path"], folder)
    gen = next(folder.rglob(f"samples_{GEN_TASK}_*.jsonl"))
    gen.write_text(gen.read_text(encoding="utf-8")[:-20])  # the last line cut short
    result = invoke("ingest", "lm-eval", folder, "--model", "a", "--store", store_dir)
    assert result.exit_code != 0 and gen.name in result.stderr
    assert snapshot(store_dir) == {}
    weird = folder / "samples_bad$name_2026-01-01T00-00-00.000000.jsonl"
    weird.write_text(next(folder.rglob(f"samples_{MC_TASK}_*.jsonl")).read_text(encoding="utf-8"))
    gen.unlink()
    result = invoke("ingest", "lm-eval", folder, "--model", "a", "--store", store_dir)
    assert result.exit_code != 0 and "cannot name a dataset" in result.stderr
    assert snapshot(store_dir) == {}


def _set(line: str, **fields) -> str:
    row = json.loads(line)
    row.update(fields)
    return json.dumps(row)


def _drop(line: str, field: str) -> str:
    row = json.loads(line)
    row.pop(field, None)
    return json.dumps(row)


def test_store_conflicts_and_odd_paths_stop_before_any_write(lm_eval_runs, ingested, tmp_path):
    # a folder whose second task clashes with the store's documents: nothing of the first lands
    folder = tmp_path / "out"
    folder.mkdir()
    mc = lm_eval_runs["runs"]["a"][MC_TASK]
    (folder / mc.name.replace(MC_TASK, "aaa_task")).write_text(mc.read_text(encoding="utf-8"))
    other = [_set(x, doc={"changed": True}) for x in mc.read_text(encoding="utf-8").splitlines()]
    (folder / mc.name).write_text("".join(x + "\n" for x in other))
    before = snapshot(ingested.root)
    result = invoke("ingest", "lm-eval", folder, "--model", "c", "--store", ingested.root)
    assert result.exit_code != 0 and "holds other examples" in result.stderr and "rename" in result.stderr
    assert snapshot(ingested.root) == before
    # a glob-looking folder must not pull in its neighbour's samples
    star, neighbour = tmp_path / "st*r", tmp_path / "stXr"
    star.mkdir()
    neighbour.mkdir()
    (star / mc.name).write_text(mc.read_text(encoding="utf-8"))
    (neighbour / mc.name).write_text(mc.read_text(encoding="utf-8"))
    result = invoke("ingest", "lm-eval", star / mc.name, "--model", "c", "--store", ingested.root)
    assert result.exit_code != 0 and "reads as a pattern" in result.stderr
    # an older log without arguments, and a metric that names a field of every sample
    bare = tmp_path / mc.name
    bare.write_text(
        "".join(_drop(x, "arguments") + "\n" for x in mc.read_text(encoding="utf-8").splitlines())
    )
    result = invoke("ingest", "lm-eval", bare, "--model", "c", "--store", ingested.root)
    assert result.exit_code != 0 and "no arguments naming its choices" in result.stderr
    result = invoke("ingest", "lm-eval", mc, "--model", "c", "--metric", "target", "--store", ingested.root)
    assert result.exit_code != 0 and "names a field of every sample" in result.stderr
    assert snapshot(ingested.root) == before
