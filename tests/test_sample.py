"""--limit N takes a seeded sample, stratified by label (by article for QA), nested in N, on
the real data files; --sample first keeps the first N rows."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from ce.cli import cli
from ce.extractors.datasets import load_dataset, sample_rows, subset
from ce.store import Store
from ce.store.errors import CeError

from .conftest import REPO, needs_data

pytestmark = pytest.mark.usefixtures("data_dir")

IMDB = "imdb/aclimdb_test.csv"
SQUAD = "squad2/dev-v2.0.json"


@pytest.fixture(scope="module")
def imdb():
    return load_dataset("imdb-test")


@pytest.fixture(scope="module")
def squad():
    return load_dataset("squad2-dev")


def ids(data) -> list[str]:
    return data.table["example_id"].to_pylist()


@needs_data(IMDB)
def test_a_limited_imdb_test_holds_both_labels_evenly(imdb):
    assert set(imdb.table["label"].slice(0, 100).to_pylist()) == {0}  # the file is sorted by label
    for n in (100, 101, 1000):
        sample = subset(imdb, n)
        counts = Counter(sample.table["label"].to_pylist())
        assert len(sample) == n and abs(counts[0] - counts[1]) <= 1
        idx = sample.table["idx"].to_pylist()
        assert idx == sorted(idx)  # in file order, each row with its own idx and id
        assert sample.table.to_pylist() == imdb.table.take(idx).to_pylist()


@needs_data(IMDB, SQUAD)
@pytest.mark.parametrize("name", ["imdb", "squad"])
@pytest.mark.parametrize("seed", [0, 3])
def test_a_smaller_sample_lies_inside_a_larger_one(name, seed, request):
    data = request.getfixturevalue(name)
    sizes = (1, 2, 5, 37, 100, 300, 1001, 5000)
    samples = [set(ids(subset(data, n, seed=seed))) for n in sizes]
    assert [len(s) for s in samples] == list(sizes)
    assert all(small < large for small, large in zip(samples, samples[1:], strict=False))


@needs_data(IMDB)
def test_the_seed_chooses_the_sample(imdb):
    assert ids(subset(imdb, 100, seed=7)) == ids(subset(imdb, 100, seed=7))
    assert ids(subset(imdb, 100, seed=7)) != ids(subset(imdb, 100, seed=8))
    assert Counter(subset(imdb, 100, seed=8).table["label"].to_pylist()) == {0: 50, 1: 50}


@needs_data(SQUAD)
def test_a_qa_sample_spans_the_articles_in_proportion(squad):
    sizes = Counter(squad.table["title"].to_pylist())
    assert set(squad.table["title"].slice(0, 300).to_pylist()) == {
        "Normans",
        "Computational_complexity_theory",
    }  # the first 300 questions
    sample = Counter(subset(squad, 300).table["title"].to_pylist())
    assert len(sample) == len(sizes) == 35
    for title, n in sizes.items():
        assert abs(sample[title] - 300 * n / len(squad)) <= 1, title


def test_a_qa_file_without_titles_samples_its_questions(tmp_path):
    lines = [
        '{"header": {"dataset": "x"}}',
        *(
            f'{{"context": "c{i}", "qas": [{{"qid": "q{i}", "question": "?", "answers": ["c"]}}]}}'
            for i in range(50)
        ),
    ]
    (tmp_path / "mrqa.jsonl").write_text("\n".join(lines) + "\n")
    data = load_dataset(str(tmp_path / "mrqa.jsonl"))
    picked = ids(subset(data, 10))
    assert len(set(picked)) == 10 and picked != ids(data)[:10]
    assert set(picked) < set(ids(subset(data, 20)))


@needs_data(IMDB)
def test_sample_first_keeps_the_first_rows(imdb):
    first = subset(imdb, 60, sample="first")
    assert first.table.to_pylist() == imdb.table.slice(0, 60).to_pylist()
    assert (sample_rows(imdb, 60, sample="first") == range(60)).all()
    assert subset(imdb, None) is imdb and subset(imdb, len(imdb) + 5, sample="first") is imdb


@needs_data(IMDB)
def test_the_shards_of_a_sample_partition_it(imdb):
    whole = ids(subset(imdb, 100, seed=2))
    shards = [ids(subset(imdb, 100, f"{i}/3", seed=2)) for i in range(3)]
    assert [len(s) for s in shards] == [33, 33, 34]
    assert sum(shards, []) == whole  # in order, no overlap, nothing left out


def test_the_sample_is_the_same_on_every_machine():
    """No Python hash(): the sample does not change with PYTHONHASHSEED or the process."""
    code = "from ce.extractors.datasets import *; print(sample_rows(load_dataset('sst2-dev'), 8).tolist())"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=os.environ | {"PYTHONHASHSEED": seed},
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert runs == {"[84, 410, 429, 457, 607, 639, 693, 802]"}


def files(sha: str = "ab") -> SimpleNamespace:
    return SimpleNamespace(record=lambda: {"sha256": {"model.safetensors": sha}})


def test_without_a_limit_sample_and_seed_leave_the_identity_as_it_was(tiny_models):
    """Where the limit keeps every example, how it would sample changes nothing: the keys
    are left out (the identity of runs made before samples were)."""
    from ce.extractors.extract import ExtractOptions, extract_identity
    from ce.extractors.finetune import FinetuneOptions, finetune_identity
    from ce.extractors.loading import model_files
    from ce.extractors.ood import OodOptions, ood_identity
    from ce.extractors.registry import ResolvedModel

    data = load_dataset("sst2-dev")  # 872 examples
    classifier = model_files(ResolvedModel("t", str(tiny_models["classification"]), True))

    def extraction(**kw):
        return extract_identity(ExtractOptions(**kw), classifier, data, "cpu")

    plain = extraction()
    assert "sample" not in plain and "seed" not in plain
    for limit in (None, 872, 5000):
        assert extraction(limit=limit, seed=5, sample="first") == plain
    limited = extraction(limit=100)
    assert (limited["limit"], limited["sample"], limited["seed"]) == (100, "stratified", 0)
    assert extraction(limit=100, seed=1) != limited != extraction(limit=100, sample="first")

    def ood(**kw):
        roles = {"bank": data, "id_val": data, "test": data}
        return ood_identity(OodOptions(**kw), classifier, roles, None, "m")

    assert ood(seed=4, sample="first") == ood() and ood(limit=900, seed=4) == ood(limit=900)
    assert ood(limit=10, seed=4) != ood(limit=10)

    def tuned(**kw):
        return finetune_identity(FinetuneOptions(**kw), files(), data)

    assert tuned(sample="first") == tuned() and "sample" not in tuned()
    assert tuned(limit=10, sample="first") != tuned(limit=10)
    assert tuned(seed=1) != tuned()  # the seed also seeds training


@needs_data(IMDB)
def test_a_one_label_sample_says_so(imdb, tmp_path, capsys):
    subset(imdb, 60, sample="first")
    assert capsys.readouterr().err == (
        "note: the sample of 60 from imdb-test holds only label 0; the file may be sorted by"
        " label: drop --sample first for a stratified sample\n"
    )
    subset(imdb, 60)
    subset(imdb, None, sample="first")
    assert capsys.readouterr().err == ""
    subset(imdb, 1, seed=5)
    assert capsys.readouterr().err.endswith("holds only label 0; raise --limit\n")
    (tmp_path / "ones.csv").write_text("text,label\n" + "".join(f"t{i},1\n" for i in range(9)))
    subset(load_dataset(str(tmp_path / "ones.csv")), 4)
    note = capsys.readouterr().err
    assert note == "note: the sample of 4 from ones holds only label 1, as all of ones does\n"


@needs_data(IMDB)
def test_the_note_reaches_the_command_line(tiny_models, tmp_path):
    args = ["extract", "-m", str(tiny_models["classification"]), "-d", "imdb-test", "--limit", "3"]
    result = CliRunner().invoke(cli, [*args, "--sample", "first", "--no-neighbors", "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "note: the sample of 3 from imdb-test holds only label 0;" in result.stderr


def one_line(result, *words: str, code: int) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize("command", ["extract", "ood", "attack", "finetune", "compress"])
def test_a_bad_sample_is_one_line(command, tmp_path):
    result = CliRunner().invoke(cli, [command, "--sample", "random", "--store", str(tmp_path)])
    one_line(result, "--sample", "'random' is not one of 'stratified', 'first'", code=2)


def test_a_bad_sample_in_an_experiment_file_or_the_api(tmp_path):
    from ce.extractors.attack import AttackOptions
    from ce.extractors.attack import check_options as check_attack
    from ce.extractors.extract import ExtractOptions, check_options
    from ce.extractors.finetune import FinetuneOptions
    from ce.extractors.finetune import check_options as check_finetune

    path = tmp_path / "grid.toml"
    path.write_text("[[extract]]\nmodels = ['m']\ndatasets = ['sst2-dev']\nlimit = 5\nsample = 'random'\n")
    result = CliRunner().invoke(cli, ["run", str(path), "--check", "--store", str(tmp_path / "s")])
    one_line(result, "[[extract]] number 1", "unknown sample 'random'; use stratified or first", code=1)
    for check, options in (
        (check_options, ExtractOptions),
        (check_attack, AttackOptions),
        (check_finetune, FinetuneOptions),
    ):
        with pytest.raises(CeError, match="unknown --sample 'all'; use stratified or first"):
            check(options(sample="all"))


def test_run_takes_sample_and_seed_with_limit_only(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text("[[extract]]\nmodels = ['m']\ndatasets = ['sst2-dev']\n")
    result = CliRunner().invoke(cli, ["run", str(path), "--seed", "3", "--store", str(tmp_path / "s")])
    one_line(result, "--sample and --seed go with --limit", code=2)


def test_an_experiment_step_takes_sample_and_seed():
    from ce.extractors.experiment import SECTIONS

    for section in ("finetune", "extract", "ood", "attack"):
        assert {"limit", "sample", "seed"} <= SECTIONS[section], section


def test_ood_reads_a_larger_stored_sample_and_scores_its_own(tiny_models, tmp_path):
    """Samples are nested, so stored embeddings of a larger sample (same seed) serve a
    smaller one; another seed's sample is extracted anew."""
    from ce.extractors.extract import ExtractOptions, extract
    from ce.extractors.ood import OodOptions, run_ood
    from ce.query.sql import connect

    store, model = Store(tmp_path / "store"), str(tiny_models["classification"])
    for dataset in ("sst2-dev", "imdb-1k"):
        extract(store, model, dataset, ExtractOptions(limit=40, k_max=None), name="t", progress=False)
    before = len(store.runs())
    options = OodOptions(limit=20, k_max=3, val_fraction=0.5)
    run_ood(store, model, "sst2-dev", None, "imdb-1k", options, name="t", progress=False)
    assert [r["command"] for r in store.runs()[before:]] == ["ood"]
    scored = connect(store).sql("select example_id from ood_scores where role = 'test'").fetchall()
    assert sorted(i for (i,) in scored) == sorted(ids(subset(load_dataset("imdb-1k"), 20)))
    again = OodOptions(limit=20, k_max=3, val_fraction=0.5, seed=1)
    run_ood(store, model, "sst2-dev", None, "imdb-1k", again, name="t", progress=False)
    assert [r["command"] for r in store.runs()[before + 1 :]] == ["extract", "extract", "ood"]


def test_a_longer_attack_continues_a_shorter_one(sharp_classifier, tiny_models, tmp_path):
    from ce.extractors.attack import AttackOptions, run_attack
    from ce.query.sql import connect

    store = Store(tmp_path / "store")

    def attack(limit: int):
        options = AttackOptions(
            attack="deepwordbug",
            sentence_encoder=str(tiny_models["base"]),
            limit=limit,
            checkpoint_every=4,
            max_length=64,
        )
        return run_attack(store, str(sharp_classifier), "sst2-dev", options, progress=False)

    first, longer = attack(4), attack(8)
    assert (first.examples, longer.examples, longer.resumed_from) == (4, 8, 4)
    got = connect(store).sql("select example_id from attacks").fetchall()
    assert sorted(i for (i,) in got) == sorted(ids(subset(load_dataset("sst2-dev"), 8)))
