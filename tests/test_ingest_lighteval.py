"""``ingest_lighteval``: lighteval's details Parquet files become predictions.

The files here are written the way lighteval (>= 0.11) writes them: ``Doc``,
``ModelResponse`` and ``DetailsLogger.Detail`` dataclasses with lighteval's fields, turned
into rows by ``asdict`` and ``datasets.Dataset.from_list``, columns sorted, saved with
``Dataset.to_parquet`` as ``details_<task>_<date>.parquet`` (EvaluationTracker.save and
save_details; huggingface/lighteval src/lighteval/logging/). Every stored field is checked
against a recount made here from the dataclasses, not from the file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ce.extractors.ingest_lighteval import dataset_name_for, ingest_lighteval
from ce.store import Store
from ce.store.errors import CeError

from .conftest import snapshot, stored

DATE = "2025-11-05T14-52-08.352779"
NORM = "acc:logprob_normalization=LogProbCharNorm(name='norm', ignore_first_space=False)"


# -- lighteval's records, field for field (lighteval.tasks.requests / models.model_output) ----
class SamplingMethod(str, Enum):  # noqa: UP042 (as lighteval declares it)
    GENERATIVE = "GENERATIVE"
    LOGPROBS = "LOGPROBS"
    PERPLEXITY = "PERPLEXITY"


@dataclass
class Doc:
    query: str
    choices: list[str]
    gold_index: int | list[int]
    instruction: str | None = None
    images: list | None = None
    specific: dict | None = None
    unconditioned_query: str | None = None
    original_query: str | None = None
    id: str = ""
    task_name: str = ""
    fewshot_samples: list = field(default_factory=list)
    sampling_methods: list[SamplingMethod] = field(default_factory=list)
    fewshot_sorting_class: str | None = None
    generation_size: int | None = None
    stop_sequences: list[str] | None = None
    use_logits: bool = False
    num_samples: int = 1
    generation_grammar: None = None


@dataclass
class ModelResponse:
    input: str | list | None = None
    input_tokens: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    output_tokens: list[list[int]] = field(default_factory=list)
    text_post_processed: list[str] | None = None
    reasonings: list[str | None] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    argmax_logits_eq_gold: list[bool] = field(default_factory=list)
    logits: list[list[float]] | None = None
    unconditioned_logprobs: list[float] | None = None
    truncated_tokens_count: int = 0
    padded_tokens_count: int = 0


@dataclass
class Detail:
    doc: Doc
    model_response: ModelResponse
    metric: dict


def save_details(folder: Path, task: str, details: list[Detail], date: str = DATE) -> Path:
    """As EvaluationTracker.save and save_details write one task's details."""
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    dataset = Dataset.from_list([asdict(d) for d in details])
    names = [c for c in dataset.column_names if c != "id"]
    dataset = dataset.select_columns(sorted(names))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"details_{task}_{date}.parquet"
    dataset.to_parquet(str(path))
    return path


def choice_detail(task, ix, query, choices, gold, logprobs, metric, *, pmi=None, fewshot=()) -> Detail:
    doc = Doc(
        query=query,
        choices=choices,
        gold_index=gold,
        instruction="",
        id=str(ix),
        task_name=task,
        fewshot_samples=[asdict(f) for f in fewshot],
        sampling_methods=[SamplingMethod.LOGPROBS],
        unconditioned_query="Answer:" if pmi else None,
    )
    lp = list(logprobs) + (list(pmi) if pmi else [])
    response = ModelResponse(
        input=query,
        input_tokens=[101, 7, 8, 9],
        output_tokens=[[11 + j] for j in range(len(lp))],
        logprobs=lp,
        argmax_logits_eq_gold=[False] * len(lp),
    )
    return Detail(doc, response, metric)


def generative_detail(task, ix, query, references, text, metric, post=None) -> Detail:
    doc = Doc(
        query=query,
        choices=references,
        gold_index=0,
        id=str(ix),
        task_name=task,
        sampling_methods=[SamplingMethod.GENERATIVE],
        generation_size=32,
        stop_sequences=["\n"],
    )
    response = ModelResponse(
        input=query,
        input_tokens=[101, 5],
        text=text,
        output_tokens=[[3, 4]],
        text_post_processed=post,
        reasonings=[None],
    )
    return Detail(doc, response, metric)


# -- the fixture run: four tasks of one model -------------------------------------------------
ARC = "lighteval|arc:easy|0"
NQ = "lighteval|natural_questions|0"
MIXED = "custom|mixed|0"
TQA = "lighteval|truthfulqa:mc|0"
MC1 = "truthfulqa_mc1"


def arc_details() -> list[Detail]:
    shot = Doc(query="Which is a liquid?", choices=["ice", "water", "steam", "rock"], gold_index=1, id="99")
    rows = [  # ix, gold, logprobs, acc, acc_norm
        (3, 1, [-4.0, -0.5, -3.0, -6.0], 1, 1),
        (0, 2, [-1.0, -2.0, -1.5, -9.0], 0, 1),
        (10, 0, [-2.0, -2.0, -3.0, -4.0], 1, 0),  # a tie: the first choice wins, as np.argmax
        (2, 3, [-10000.0, -9999.0, -float("inf"), -10001.0], 0, 0),
        (7, 1, [-1e308, -0.0, -1e-300, -5e-324], 1, 1),
        (1, 0, [-0.1, -3.0, -2.0, -2.5], 1, 1),
    ]
    return [
        choice_detail(
            ARC,
            ix,
            f"Question {ix}: which one?",
            [f"option {ix}.{j}" for j in range(4)],
            gold,
            lp,
            {"acc": acc, NORM: norm},
            fewshot=[shot] if ix == 3 else (),
        )
        for ix, gold, lp, acc, norm in rows
    ]


def nq_details() -> list[Detail]:
    rows = [  # ix, references, text, post, em, f1
        (5, ["Paris"], ["Paris"], None, 1.0, 1.0),
        (1, ["1969"], ["in 1969"], ["1969"], 0.0, 0.667),
        (12, ["Mount Everest", "Everest"], ["K2", "Everest"], None, 0.0, 0.0),
        (0, ["blue"], [""], None, 0.0, 0.0),
    ]
    return [
        generative_detail(NQ, ix, f"Q{ix}?", refs, text, {"em": em, "f1": f1}, post)
        for ix, refs, text, post, em, f1 in rows
    ]


def mixed_details() -> list[Detail]:
    out = []
    for ix, gold, lp, acc, em in [(0, 0, [-1.0, -2.0], 1, 0.0), (1, 1, [-1.0, -2.0], 0, 1.0)]:
        choices = ["yes", "no"]
        out.append(choice_detail(MIXED, ix, f"Is {ix} odd?", choices, gold, lp, {"acc": acc}))
        out.append(generative_detail(MIXED, ix, f"Is {ix} odd?", choices, [choices[gold]], {"em": em}))
    return out


def tqa_details() -> list[Detail]:
    rows = [  # ix, golds, logprobs, unconditioned, mc1, mc2
        (4, [0, 2], [-2.0, -1.0, -3.0], [-5.0, -5.0, -5.0], False, 0.4),
        (9, [1], [-0.5, -0.2, -4.0], [-1.0, -1.0, -1.0], True, 0.7),
    ]
    return [
        choice_detail(
            TQA, ix, f"T{ix}?", ["a", "b", "c"], golds, lp, {MC1: mc1, "truthfulqa_mc2": mc2}, pmi=u
        )
        for ix, golds, lp, u, mc1, mc2 in rows
    ]


TASKS = {ARC: arc_details, NQ: nq_details, MIXED: mixed_details, TQA: tqa_details}


@pytest.fixture
def details_dir(tmp_path) -> Path:
    folder = tmp_path / "results" / "details" / "org" / "model" / DATE
    for task, make in TASKS.items():
        save_details(folder, task, make())
    return tmp_path / "results" / "details"


# -- the independent recount ---------------------------------------------------------------------
def expected(task: str, details: list[Detail]) -> tuple[str, list[dict], list[dict]]:
    """(metric, examples, predictions) as ce must store them, recounted from the records."""
    metric = {ARC: "acc", NQ: "em", MIXED: "acc", TQA: MC1}[task]
    kept = [d for d in details if d.metric.get(metric) is not None]
    kept.sort(key=lambda d: int(d.doc.id))
    examples, predictions = [], []
    for idx, d in enumerate(kept):
        golds = d.doc.gold_index if isinstance(d.doc.gold_index, list) else [d.doc.gold_index]
        generative = bool(d.model_response.text)
        examples.append(
            {
                "example_id": d.doc.id,
                "idx": idx,
                "title": None,
                "context": None,
                "question": d.doc.query if generative else None,
                "text": d.doc.query,
                "label": None if generative or len(golds) != 1 else golds[0],
                "answers": [d.doc.choices[g] for g in golds],
                "is_impossible": None,
                "choices": None,  # as ingested logs of ce before choices were kept: same fingerprint
            }
        )
        row = dict.fromkeys(
            ["prediction", "pred_label", "score", "exact", "f1", "probs", "loglikelihoods"]
            + ["null_score", "span_score", "doc_hash", "prompt_hash", "target_hash"]
        )
        row.update(example_id=d.doc.id, metric=metric, correct=d.metric[metric] == 1)
        if generative:
            texts = d.model_response.text_post_processed or d.model_response.text
            row["prediction"] = texts[0]
        else:
            n = len(d.doc.choices)
            lls = d.model_response.logprobs[:n]
            best = 0
            for j in range(1, n):
                if lls[j] > lls[best]:
                    best = j
            top = max(lls)
            weights = [math.exp(v - top) if v - top > -math.inf else 0.0 for v in lls]
            probs = [w / math.fsum(weights) for w in weights]
            row.update(
                prediction=d.doc.choices[best],
                pred_label=best,
                probs=probs,
                score=probs[best],
                loglikelihoods=lls,
            )
        if isinstance(d.metric.get("em"), float):
            row["exact"] = d.metric["em"]
        if isinstance(d.metric.get("f1"), float):
            row["f1"] = d.metric["f1"]
        predictions.append(row)
    return metric, examples, predictions


def same(found, wanted, where: str) -> None:
    if isinstance(wanted, float) and isinstance(found, float):
        assert math.isclose(found, wanted, rel_tol=1e-12, abs_tol=1e-300), where
    elif isinstance(wanted, list) and wanted and isinstance(wanted[0], float):
        assert found is not None and len(found) == len(wanted), where
        for i, (f, w) in enumerate(zip(found, wanted, strict=True)):
            same(f, w, f"{where}[{i}]")
    else:
        assert found == wanted, (where, found, wanted)


def test_ingest_lighteval_recounts_every_field(details_dir, store_dir):
    out = ingest_lighteval(Store(store_dir), details_dir, "smol")
    by_task = {r["task"]: r for r in out}
    assert set(by_task) == set(TASKS)
    names = {ARC: "lighteval-arc-easy-0", NQ: "lighteval-natural_questions-0", MIXED: "custom-mixed-0"}
    names[TQA] = "lighteval-truthfulqa-mc-0"
    records = {r["dataset"]: r for r in Store(store_dir).runs()}
    for task, make in TASKS.items():
        name = names[task]
        metric, examples, predictions = expected(task, make())
        result = by_task[task]
        assert result["dataset"] == name and result["metric"] == metric
        assert result["examples"] == len(predictions)
        assert result["correct"] == sum(p["correct"] for p in predictions)
        got_examples = stored(store_dir, "examples", dataset=name)
        assert got_examples == examples, task
        got = stored(store_dir, "predictions", model="smol", dataset=name)
        assert [g["example_id"] for g in got] == [p["example_id"] for p in predictions]
        for g, p in zip(got, predictions, strict=True):
            assert set(g) == set(p), set(g) ^ set(p)
            for key in p:
                same(g[key], p[key], f"{task} {p['example_id']} {key}")
        rec = records[name]
        assert rec["command"] == "ingest-lighteval" and rec["status"] == "complete"
        assert rec["model"] == "smol" and rec["examples"] == len(examples)
        assert rec["task"] == ("qa" if task == NQ else "classification")
        ing = rec["ingested"]
        assert ing["tool"] == "lighteval" and ing["task"] == task and ing["metric"] == metric
        assert "doc, model_response, metric" in ing["format"]
        assert rec["source_sha256"] and rec["params"]["file"].endswith(f"details_{task}_{DATE}.parquet")
    notes = {t: " ".join(records[names[t]]["ingested"].get("notes", [])) for t in TASKS}
    assert "2 row(s) without metric acc left out" in notes[MIXED]
    assert "PMI" in notes[TQA]
    assert NORM in records[names[ARC]]["ingested"]["metrics"]
    assert notes[ARC] == "" and notes[NQ] == "prediction is the first of several generations per example"


def test_a_second_model_reuses_the_examples_and_one_file_works(details_dir, store_dir):
    store = Store(store_dir)
    ingest_lighteval(store, details_dir, "smol")
    file = next(details_dir.rglob(f"details_{ARC}_*.parquet"))
    before = stored(store_dir, "examples", dataset="lighteval-arc-easy-0")
    (out,) = ingest_lighteval(store, file, "smol-pruned", metric=NORM)
    assert out["metric"] == NORM and out["dataset"] == "lighteval-arc-easy-0"
    assert stored(store_dir, "examples", dataset="lighteval-arc-easy-0") == before
    got = stored(store_dir, "predictions", model="smol-pruned", dataset="lighteval-arc-easy-0")
    norm = {d.doc.id: d.metric[NORM] == 1 for d in arc_details()}
    assert {g["example_id"]: g["correct"] for g in got} == norm
    assert {g["metric"] for g in got} == {NORM}
    rec = Store(store_dir).runs()[-1]
    assert "argmax and softmax of the raw log-likelihoods" in " ".join(rec["ingested"]["notes"])


def test_task_names_become_store_names():
    assert dataset_name_for("lighteval|arc:easy|0") == "lighteval-arc-easy-0"
    assert dataset_name_for("mmlu:college_chemistry|5") == "mmlu-college_chemistry-5"
    assert dataset_name_for("x'; DROP TABLE predictions; --|0") == "x-DROP-TABLE-predictions-0"
    assert dataset_name_for("|-.leading|trailing.-|") == "leading-trailing"
    for bad in ("|||", "日本語", "a" * 129):
        with pytest.raises(CeError, match="gives no usable dataset name"):
            dataset_name_for(bad)


def test_no_correctness_metric_leaves_correct_unknown(tmp_path, store_dir):
    details = [
        choice_detail("ppl|0", i, f"q{i}", ["a", "b"], 0, [-1.0, -2.0], {"ppl": 3.5}) for i in range(2)
    ]
    file = save_details(tmp_path, "ppl|0", details)
    (out,) = ingest_lighteval(Store(store_dir), file, "m")
    assert out["metric"] is None and out["correct"] is None
    got = stored(store_dir, "predictions", model="m", dataset="ppl-0")
    assert [g["correct"] for g in got] == [None, None] and [g["pred_label"] for g in got] == [0, 0]
    rec = Store(store_dir).runs()[-1]
    assert "correctness unknown" in rec["ingested"]["notes"][0] and "ppl" in rec["ingested"]["notes"][0]


# -- hostile input: one line, the problem and the fix, the store unchanged -------------------
@pytest.fixture
def filled(tmp_path) -> Path:
    """A store that already holds a run, so 'unchanged' means something."""
    store_dir = tmp_path / "filled"
    folder = tmp_path / "first"
    save_details(folder, ARC, arc_details())
    ingest_lighteval(Store(store_dir), folder, "first")
    return store_dir


def refused(store_dir: Path, path, *words: str, **options) -> str:
    before = snapshot(store_dir)
    with pytest.raises(CeError) as info:
        ingest_lighteval(Store(store_dir), path, "victim", **options)
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    for word in words:
        assert word in message, (word, message)
    assert snapshot(store_dir) == before
    return message


def write_table(path: Path, table: pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def details_table(details: list[Detail]) -> pa.Table:
    return pa.Table.from_pylist([asdict(d) for d in details])


def test_missing_and_foreign_columns(tmp_path, filled):
    table = details_table(arc_details())
    no_metric = table.drop_columns(["metric"])
    refused(filled, write_table(tmp_path / "a" / "details_x.parquet", no_metric), "'metric'")
    legacy = pa.table(
        {
            "example": ["q"],
            "full_prompt": ["q"],
            "predictions": [[[-1.0, 0.0]]],
            "metrics": [{"acc": 1}],
            "gold_index": [[0]],
        }
    )
    refused(filled, write_table(tmp_path / "b" / "details_y.parquet", legacy), "0.10 or older", "0.11")
    flat = table.set_column(table.schema.get_field_index("doc"), "doc", pa.array(["q"] * table.num_rows))
    refused(filled, write_table(tmp_path / "c" / "details_z.parquet", flat), "'doc'", "struct")
    nodoc_id = pa.table(
        {
            "doc": [{"query": "q", "choices": ["a"]}],
            "model_response": [{"text": ["a"]}],
            "metric": [{"acc": 1}],
        }
    )
    refused(filled, write_table(tmp_path / "d" / "details_w.parquet", nodoc_id), "no field 'id'")
    text = tmp_path / "e" / f"details_{ARC}_{DATE}.parquet"
    text.parent.mkdir()
    text.write_text("id,answer\n1,2\n")
    refused(filled, text, "cannot read", "lighteval details")
    empty = tmp_path / "f"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing here")
    refused(filled, empty, "no details_*.parquet under")
    refused(filled, tmp_path / "missing.parquet", "no such lighteval details")
    results = tmp_path / f"results_{DATE}.json"
    results.write_text('{"results": {}}')
    refused(filled, results, "not a details Parquet file", "results_*.json")
    refused(filled, write_table(tmp_path / "g" / "details_v.parquet", table.slice(0, 0)), "holds no rows")


def test_damaged_values(tmp_path, filled):
    def one(name, details, *words, metric=None):
        return refused(filled, save_details(tmp_path / name, ARC, details), *words, metric=metric)

    dup = arc_details()
    dup[1].doc.id = dup[0].doc.id
    one("dup", dup, "doc id '3' is on rows 1 and 2", "unique")
    for bad, word in [(float("nan"), "nan"), (float("inf"), "inf")]:
        details = arc_details()
        details[2].model_response.logprobs[1] = bad
        one(f"lp-{word}", details, f"holds {word}", "log-likelihood")
    short = arc_details()
    short[0].model_response.logprobs = short[0].model_response.logprobs[:3]
    one("short", short, "3 value(s) for 4 choices", "expected 4, or 8")
    allinf = arc_details()
    allinf[0].model_response.logprobs = [-float("inf")] * 4
    one("allinf", allinf, "every choice has log-likelihood -inf")
    for gold in (4, -1, 2**62):
        details = arc_details()
        details[0].doc.gold_index = gold
        one(f"gold{gold}", details, f"doc.gold_index {gold}", "4 choices")
    one("nometric", arc_details(), "no metric 'accuracy'", "did you mean", metric="accuracy")
    details = arc_details()
    for d in details:
        d.metric["soft"] = 0.25
    one("soft", details, "'soft' is not 0/1", metric="soft")
    two = mixed_details()
    for d in two:
        d.metric = {"ppl": 1.0}
    refused(filled, save_details(tmp_path / "two", MIXED, two), "doc id '0' is on rows 1 and 2", "--metric")


def test_not_utf8_and_odd_paths(tmp_path, filled):
    table = details_table(arc_details())
    doc = table["doc"].combine_chunks()
    queries = pa.array([b"\xff\xfe broken"] + [b"fine"] * (len(doc) - 1), pa.binary()).view(pa.string())
    names = [doc.type.field(i).name for i in range(doc.type.num_fields)]
    fields = [queries if name == "query" else doc.field(i) for i, name in enumerate(names)]
    broken = pa.StructArray.from_arrays(fields, fields=list(doc.type))
    bad = table.set_column(table.schema.get_field_index("doc"), "doc", broken)
    refused(filled, write_table(tmp_path / "u" / "details_u.parquet", bad), "not UTF-8")

    loop = tmp_path / "loop.parquet"
    os.symlink(loop, loop)
    refused(filled, loop, "symlink loop")
    dangling = tmp_path / "dangling.parquet"
    os.symlink(tmp_path / "nowhere", dangling)
    refused(filled, dangling, "broken symlink")
    fifo = tmp_path / "details_fifo.parquet"
    os.mkfifo(fifo)
    refused(filled, fifo, "not a regular file")

    # a folder that links to itself is walked once, a looping link inside it is skipped
    folder = tmp_path / "cyclic"
    save_details(folder, ARC, arc_details())
    os.symlink(folder, folder / "again")
    os.symlink(folder / "self", folder / "self")
    out = ingest_lighteval(Store(filled), folder, "cyclic")
    assert [r["examples"] for r in out] == [6]
    # ... but a details file that loops is named
    os.symlink(folder / f"details_{MIXED}_{DATE}.parquet", folder / f"details_{MIXED}_{DATE}.parquet")
    refused(filled, folder, "symlink loop")


def test_two_runs_of_a_task_and_foreign_examples(tmp_path, filled):
    folder = tmp_path / "runs"
    save_details(folder / "one", ARC, arc_details())
    save_details(folder / "two", ARC, arc_details(), date="2025-11-06T10-00-00.000001")
    refused(filled, folder, "lighteval-arc-easy-0", "pass one run's folder")
    # other examples under a name the store holds: refused before any task is written
    other = arc_details()
    other[0].doc.query = "a different question"
    both = tmp_path / "both"
    save_details(both, NQ, nq_details())
    save_details(both, ARC, other)
    refused(filled, both, "holds other examples", "--dataset-name")
    refused(filled, both, "holds 2 details files", "one details file", dataset_name="arc-v2")
    refused(filled, both, "dataset name 'bad name'", dataset_name="bad name")
    # ... which a name of its own fixes, for one task at a time
    (out,) = ingest_lighteval(
        Store(filled), next(both.glob("details_lighteval|arc*")), "m", dataset_name="arc-v2"
    )
    assert out["dataset"] == "arc-v2"
    texts = {e["example_id"]: e["text"] for e in stored(filled, "examples", dataset="arc-v2")}
    assert texts["3"] == "a different question"


def test_sql_looking_and_huge_values(tmp_path, store_dir):
    task = "x'; DROP TABLE predictions; --|0"
    sneaky = "acc'); DELETE FROM examples; --"
    details = arc_details()
    for i, d in enumerate(details):
        d.doc.id = f"{i}'; DROP TABLE examples; --"
        d.doc.task_name = task
        d.metric[sneaky] = 1 - d.metric["acc"]
    details[0].doc.query = "Robert'); DROP TABLE students;-- " * 40_000  # about 1.3 MB
    details[0].model_response.logprobs = [1e308, -1e308, -1e308, -1e308]
    file = save_details(tmp_path, "sneaky", details)
    (out,) = ingest_lighteval(Store(store_dir), file, "m", metric=sneaky)
    name = "x-DROP-TABLE-predictions-0"
    assert out["dataset"] == name and out["task"] == task and out["metric"] == sneaky
    examples = stored(store_dir, "examples", dataset=name)
    assert [e["example_id"] for e in examples] == sorted(d.doc.id for d in details)
    assert examples[0]["text"] == details[0].doc.query
    got = {g["example_id"]: g for g in stored(store_dir, "predictions", model="m", dataset=name)}
    assert {k: g["correct"] for k, g in got.items()} == {d.doc.id: d.metric[sneaky] == 1 for d in details}
    huge = got[details[0].doc.id]
    assert huge["probs"] == [1.0, 0.0, 0.0, 0.0] and huge["pred_label"] == 0
    assert huge["loglikelihoods"] == [1e308, -1e308, -1e308, -1e308]
    record = json.loads(next((store_dir / "runs").glob("*.json")).read_text())
    assert record["ingested"]["metric"] == sneaky and record["dataset"] == name


def test_the_cli_ingests_details_and_compare_shows_the_flips(details_dir, store_dir):
    from click.testing import CliRunner

    from ce.cli import cli

    def ce(*args):
        return CliRunner().invoke(cli, [str(a) for a in args])

    result = ce("ingest", "lighteval", details_dir, "--model", "big", "--store", store_dir)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("big on lighteval-") >= 1 and "Traceback" not in result.output
    shown = ce("compare", "--table", "2", "--store", store_dir)
    assert shown.exit_code == 0, shown.output
