"""The lm-evaluation-harness sample logs that tests/lmeval_logs.py writes with the real harness."""

from __future__ import annotations

import json

import pytest

from .conftest import needs_data
from .lmeval_logs import CHOICES, GEN_TASK, MC_TASK

pytest.importorskip("lm_eval")
pytestmark = needs_data("sst2/sst2_dev.tsv", "sst2/sst2_train.tsv")

N_DOCS = 40


@pytest.fixture
def logs(lm_eval_runs):
    return lm_eval_runs


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def lm_pred(sample) -> int:
    """The multiple-choice answer from the logged log-likelihoods (lm-eval logs them as strings)."""
    lls = [float(ll) for ll, _is_greedy in sample["filtered_resps"]]
    return max(range(len(lls)), key=lls.__getitem__)


def test_every_run_writes_results_and_one_sample_line_per_doc(logs):
    assert set(logs["runs"]) == {"a", "b", "a_variant"}
    assert len(read(logs["dataset"])) == N_DOCS
    for run, files in logs["runs"].items():
        tasks = [MC_TASK] if run == "a_variant" else [MC_TASK, GEN_TASK]
        assert json.loads(files["results"].read_text())["results"].keys() == set(tasks)
        for task in tasks:
            path = files[task]
            assert path.name.startswith(f"samples_{task}_") and path.suffix == ".jsonl"
            assert path.parent.parent == files["output_path"]
            samples = read(path)
            assert [s["doc_id"] for s in samples] == list(range(N_DOCS))
            assert all(s["filter"] == "none" for s in samples)


def test_multiple_choice_lines(logs):
    samples = read(logs["runs"]["a"][MC_TASK])
    for s in samples:
        assert s["doc"]["choices"] == CHOICES and s["target"] == str(s["doc"]["label"])
        assert len(s["arguments"]) == len(s["resps"]) == len(s["filtered_resps"]) == len(CHOICES)
        assert [a["arg_1"] for a in s["arguments"].values()] == [f" {c}" for c in CHOICES]
        assert s["metrics"] == ["acc", "acc_norm"]
        assert s["acc"] == float(lm_pred(s) == s["doc"]["label"])


def test_the_two_models_disagree_on_some_docs(logs):
    a, b = (read(logs["runs"][m][MC_TASK]) for m in ("a", "b"))
    assert [s["doc_hash"] for s in a] == [s["doc_hash"] for s in b]
    assert [s["prompt_hash"] for s in a] == [s["prompt_hash"] for s in b]
    assert any(lm_pred(x) != lm_pred(y) for x, y in zip(a, b, strict=True))
    assert any(x["acc"] != y["acc"] for x, y in zip(a, b, strict=True))
    gen_a, gen_b = (read(logs["runs"][m][GEN_TASK]) for m in ("a", "b"))
    assert any(x["resps"] != y["resps"] for x, y in zip(gen_a, gen_b, strict=True))


def test_the_prompt_variant_changes_every_prompt_hash_but_no_doc(logs):
    a, variant = (read(logs["runs"][r][MC_TASK]) for r in ("a", "a_variant"))
    assert [s["doc_hash"] for s in a] == [s["doc_hash"] for s in variant]
    assert [s["target_hash"] for s in a] == [s["target_hash"] for s in variant]
    assert all(x["prompt_hash"] != y["prompt_hash"] for x, y in zip(a, variant, strict=True))
