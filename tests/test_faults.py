"""Faults: SIGKILL at random points, two writers at once, a full disk."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ce.query.sql import connect
from ce.store import Store

from .conftest import snapshot

pytestmark = pytest.mark.usefixtures("data_dir")

CE = [sys.executable, "-c", "from ce.cli import main; main()"]
KILLS = 10


def start(args: list[str], store: Path) -> subprocess.Popen:
    return subprocess.Popen(
        CE + [str(a) for a in args] + ["--store", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"TQDM_DISABLE": "1"},
    )


def check_whole(store_dir: Path) -> None:
    """Only whole runs: every live part exists, no partition shows a row twice."""
    if not (store_dir / "ce-store.json").exists():
        return
    store = Store(store_dir)
    for parts in store.live_parts().values():
        for part in parts:
            assert (store_dir / part.path).is_file(), part.path
    con = connect(store)
    for kind, keys in (
        ("predictions", "model, dataset"),
        ("embeddings", "model, stage, dataset"),
        ("neighbors", "model, stage, dataset"),
        ("examples", "dataset"),
        ("ood_scores", "model, bank, dataset, role"),
        ("attacks", "model, attack, dataset"),
    ):
        dupes = con.sql(
            f"select count(*) from (select {keys}, example_id, count(*) c"
            f" from {kind} group by all having c > 1)"
        ).fetchall()[0][0]
        assert dupes == 0, f"{kind} shows rows twice"


def kill_at_random_points(args: list[str], store_dir: Path, seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(KILLS):
        proc = start(args, store_dir)
        time.sleep(rng.uniform(0.2, seconds))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check_whole(store_dir)
    done = subprocess.run(
        CE + [str(a) for a in args] + ["--store", str(store_dir)],
        capture_output=True,
        text=True,
        env=os.environ | {"TQDM_DISABLE": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    check_whole(store_dir)
    assert not list(store_dir.rglob("*.tmp")) and not list(store_dir.rglob(".tmp-*"))


def test_killed_extracts(tiny_models, store_dir):
    args = [
        "extract",
        "--model",
        tiny_models["classification"],
        "--dataset",
        "sst2-dev",
        "--limit",
        "300",
        "--name",
        "m",
    ]
    kill_at_random_points(args, store_dir, 7.0, seed=1)
    con = connect(Store(store_dir))
    assert con.sql("select count(*) from predictions").fetchall() == [(300,)]
    assert con.sql("select count(*) from neighbors").fetchall() == [(300,)]


def test_killed_ood(tiny_models, store_dir):
    args = [
        "ood",
        "--model",
        tiny_models["base"],
        "--stage",
        "pretrained",
        "--name",
        "m",
        "--bank",
        "sst2-dev",
        "--dataset",
        "imdb-1k",
        "--limit",
        "60",
        "--k-max",
        "5",
    ]
    kill_at_random_points(args, store_dir, 8.0, seed=2)
    con = connect(Store(store_dir))
    roles = dict(con.sql("select role, count(*) from ood_scores group by role").fetchall())
    assert roles["test"] == 60 and roles["id_val"] > 0


def test_killed_attacks(tiny_models, store_dir):
    args = [
        "attack",
        "--model",
        tiny_models["classification"],
        "--dataset",
        "sst2-dev",
        "--attack",
        "deepwordbug",
        "--limit",
        "30",
        "--checkpoint-every",
        "3",
        "--name",
        "m",
    ]
    kill_at_random_points(args, store_dir, 16.0, seed=3)
    con = connect(Store(store_dir))
    assert con.sql("select count(*), count(distinct example_id) from attacks").fetchall() == [(30, 30)]


def test_two_writers_at_once(tiny_models, store_dir):
    procs = [
        start(
            [
                "extract",
                "--model",
                tiny_models["classification"],
                "--dataset",
                "sst2-dev",
                "--limit",
                "100",
                "--name",
                name,
            ],
            store_dir,
        )
        for name in ("one", "two")
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    check_whole(store_dir)
    con = connect(Store(store_dir))
    assert con.sql("select model, count(*) from predictions group by model order by model").fetchall() == [
        ("one", 100),
        ("two", 100),
    ]
    assert con.sql("select count(*) from examples").fetchall() == [(872,)]


@pytest.fixture
def small_disk(tmpfs):
    return tmpfs("400k")


def test_a_full_disk_is_one_line_and_keeps_the_store(small_disk, tmp_path, data_dir):
    store_dir = small_disk / "store"
    ids = tmp_path / "sst2_errors.json"
    ids.write_text(json.dumps(["0", "1"]))
    first = subprocess.run(
        CE
        + ["ingest", "errors", str(ids), "--model", "m", "--dataset", "sst2-dev", "--store", str(store_dir)],
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr
    before = snapshot(store_dir)
    big = data_dir / "paper" / "squad2-dev-errors" / "bert_base.json"
    full = subprocess.run(
        CE
        + [
            "ingest",
            "errors",
            str(big),
            "--model",
            "bert-base",
            "--dataset",
            "squad2-dev",
            "--store",
            str(store_dir),
        ],
        capture_output=True,
        text=True,
    )
    assert full.returncode == 1
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no space left"), full.stderr
    assert snapshot(store_dir) == before
