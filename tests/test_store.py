"""The store: atomic runs, replacement without duplicates, rollback, versions, killed runs."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading

import pyarrow as pa
import pytest

from ce.query.sql import connect
from ce.store import Store
from ce.store.errors import CeError, StoreError
from ce.store.schema import SCHEMA_VERSION

from .conftest import snapshot


def preds(ids, correct=True):
    return pa.table({"example_id": ids, "correct": [correct] * len(ids)})


def count(store: Store, sql="select count(*) from predictions") -> int:
    return connect(store).sql(sql).fetchall()[0][0]


def test_rerun_replaces_the_partition_without_duplicates(store_dir):
    store = Store(store_dir)
    for _ in range(3):
        with store.run("test", {}) as run:
            run.write("predictions", {"model": "m", "dataset": "d"}, preds(["a", "b"]))
    assert count(store) == 2
    parts = list((store_dir / "predictions").rglob("*.parquet"))
    assert len(parts) == 1  # superseded parts are removed
    assert count(store, "select count(distinct run_id) from predictions") == 1
    assert len(store.runs()) == 3


def test_other_partitions_stay(store_dir):
    store = Store(store_dir)
    with store.run("test", {}) as run:
        run.write("predictions", {"model": "m1", "dataset": "d"}, preds(["a"]))
    with store.run("test", {}) as run:
        run.write("predictions", {"model": "m2", "dataset": "d"}, preds(["a", "b"]))
    assert count(store, "select count(*) from predictions where model = 'm1'") == 1
    assert count(store) == 3


def test_a_failed_run_leaves_the_store_as_it_was(store_dir):
    store = Store(store_dir)
    with store.run("test", {}) as run:
        run.write("predictions", {"model": "m", "dataset": "d"}, preds(["a"]))
    before = snapshot(store_dir)
    with pytest.raises(RuntimeError), store.run("test", {}) as run:
        run.write("predictions", {"model": "m", "dataset": "d"}, preds(["a", "b", "c"]))
        raise RuntimeError("boom")
    assert snapshot(store_dir) == before


def test_a_failed_first_run_leaves_no_store(store_dir):
    with pytest.raises(RuntimeError), Store(store_dir).run("test", {}) as run:
        run.write("predictions", {"model": "m", "dataset": "d"}, preds(["a"]))
        raise RuntimeError("boom")
    assert not store_dir.exists()


def test_parts_are_invisible_until_the_run_commits(store_dir):
    store = Store(store_dir)
    with store.run("test", {}) as run:
        run.write("predictions", {"model": "m", "dataset": "d"}, preds(["a"]))
        assert count(Store(store_dir)) == 0
        assert json.loads((store_dir / "runs" / f"{run.run_id}.json").read_text())["status"] == "running"
    assert count(store) == 1


def test_run_record_has_provenance(store_dir):
    store = Store(store_dir)
    with store.run("test", {"k": 1}, model="m", dataset_fingerprint="abc") as run:
        run.write("predictions", {"model": "m", "dataset": "d"}, preds(["a"]))
    [rec] = store.runs()
    assert rec["status"] == "complete" and rec["params"] == {"k": 1}
    assert rec["dataset_fingerprint"] == "abc" and rec["ended"] >= rec["started"]
    assert {"python", "duckdb", "pyarrow"} <= set(rec["versions"])
    assert rec["parts"][0]["rows"] == 1


def test_store_of_another_schema_version_is_refused(store_dir):
    store_dir.mkdir()
    (store_dir / "ce-store.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        Store(store_dir)


def test_bad_partition_names_are_refused_before_writing(store_dir):
    with pytest.raises(CeError, match="not usable in the store"), Store(store_dir).run("test", {}) as run:
        run.write("predictions", {"model": "../evil", "dataset": "d"}, preds(["a"]))
    assert not store_dir.exists()


KILLED = """
import os, sys, pyarrow as pa
from ce.store import Store
store = Store(sys.argv[1])
with store.run("test", {}) as run:
    run.write("predictions", {"model": "m", "dataset": "d"},
              pa.table({"example_id": ["x"], "correct": [True]}))
    os._exit(9)  # killed before the commit
"""


def test_a_killed_run_is_cleaned_up_by_the_next_run(store_dir):
    store = Store(store_dir)
    with store.run("test", {}) as run:
        run.write("predictions", {"model": "m", "dataset": "d"}, preds(["a", "b"]))
    result = subprocess.run([sys.executable, "-c", KILLED, str(store_dir)])
    assert result.returncode == 9
    assert count(store) == 2  # the killed run's part is not visible
    assert len(store.runs()) == 2
    with store.run("test", {}) as run:
        run.write("predictions", {"model": "other", "dataset": "d"}, preds(["a"]))
    assert [r["status"] for r in store.runs()] == ["complete", "complete"]
    assert not [p for p in store_dir.rglob("*") if p.name.endswith(".tmp")]
    assert os.listdir(store_dir / "predictions" / "model=m" / "dataset=d") == [
        f"part-{store.runs()[0]['run_id']}.parquet"
    ]


def test_parts_of_one_series_add_up_and_a_new_series_replaces_them(store_dir):
    store = Store(store_dir)
    part = {"model": "m", "dataset": "d"}
    for ids in (["a", "b"], ["c"]):
        with store.run("test", {}) as run:
            run.write("predictions", part, preds(ids), series="resume-1")
    assert count(store) == 3
    with store.run("test", {}) as run:
        run.write("predictions", part, preds(["x"]), series="resume-2")
    assert count(store) == 1
    with store.run("test", {}) as run:  # a plain run is a series of its own
        run.write("predictions", part, preds(["y", "z"]))
    assert count(store) == 2
    assert len(list((store_dir / "predictions").rglob("*.parquet"))) == 1


def test_a_sharded_series_is_live_only_once_every_shard_is_in(store_dir):
    store = Store(store_dir)
    part = {"model": "m", "dataset": "d"}
    with store.run("test", {}) as run:  # an earlier single run stays visible meanwhile
        run.write("predictions", part, preds(["old"]))
    for i, ids in enumerate([["a", "b"], ["c"], ["d"]]):
        assert count(store, "select string_agg(example_id, '') from predictions") == "old"
        with store.run("test", {}) as run:
            run.write("predictions", part, preds(ids), series="s", shard=f"{i}/3")
    assert count(store, "select string_agg(example_id, '' order by example_id) from predictions") == "abcd"
    assert [p.shard for p in store.live_parts()["predictions"]] == ["0/3", "1/3", "2/3"]
    assert len(list((store_dir / "predictions").rglob("*.parquet"))) == 3  # the old run is gone


def test_a_rerun_shard_replaces_its_earlier_run_and_waiting_shards_survive_collection(store_dir):
    store = Store(store_dir)
    part = {"model": "m", "dataset": "d"}
    for ids in (["a"], ["a2"]):  # shard 0 twice, before shard 1 exists
        with store.run("test", {}) as run:
            run.write("predictions", part, preds(ids), series="s", shard="0/2")
    assert count(store) == 0
    with store.run("test", {}) as run:
        run.write("predictions", part, preds(["b"]), series="s", shard="1/2")
    assert count(store, "select string_agg(example_id, ',' order by example_id) from predictions") == "a2,b"
    assert len(list((store_dir / "predictions").rglob("*.parquet"))) == 2


def test_resumable_shards_add_up(store_dir):
    store = Store(store_dir)
    part = {"model": "m", "dataset": "d"}
    for shard, ids in (("0/2", ["a"]), ("0/2", ["b"]), ("1/2", ["c"])):
        with store.run("test", {}) as run:
            run.write("predictions", part, preds(ids), series="s", shard=shard, resumable=True)
    assert count(store) == 3


@pytest.mark.parametrize("shard", ["1", "2/2", "-1/2", "a/b", "0/0"])
def test_bad_shards_are_refused(store_dir, shard):
    store = Store(store_dir)
    with pytest.raises(StoreError, match="shard"), store.run("test", {}) as run:
        run.write("predictions", {"model": "m", "dataset": "d"}, preds(["a"]), series="s", shard=shard)
    assert not store_dir.exists()


# -- the parsed records a Store keeps -----------------------------------------------------
def three_runs(store_dir) -> Store:
    store = Store(store_dir)
    for model in ("m1", "m2", "m3"):
        with store.run("test", {}) as run:
            run.write("predictions", {"model": model, "dataset": "d"}, preds(["a"]))
    return store


def record_file(store: Store, model: str):
    return next(p for p in (store.root / "runs").glob("*.json") if f"model={model}/" in p.read_text())


def test_a_record_changed_on_disk_is_seen_by_the_next_read(store_dir):
    store = three_runs(store_dir)
    assert [r["params"] for r in store.runs()] == [{}, {}, {}]  # parsed and kept
    path = record_file(store, "m2")
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "params": {"edited": "in place"}}))  # same inode
    assert [r["params"] for r in store.runs()] == [{}, {"edited": "in place"}, {}]
    tmp = path.with_name(".replacement.tmp")  # as ce writes it: a new file renamed over
    tmp.write_text(json.dumps({**record, "params": {"edited": "by rename"}}))
    os.replace(tmp, path)
    assert [r["params"] for r in store.runs()] == [{}, {"edited": "by rename"}, {}]


def test_a_deleted_record_disappears_with_its_parts(store_dir):
    store = three_runs(store_dir)
    assert len(store.live_parts()["predictions"]) == 3
    record_file(store, "m2").unlink()
    assert [r["parts"][0]["partition"]["model"] for r in store.runs()] == ["m1", "m3"]
    assert [p.partition["model"] for p in store.live_parts()["predictions"]] == ["m1", "m3"]


def test_a_damaged_record_is_refused_on_every_read(store_dir):
    store = three_runs(store_dir)
    store.runs()
    path = record_file(store, "m2")
    path.write_text("{")
    for _ in range(2):  # never kept: every read refuses it with the same message
        with pytest.raises(StoreError, match=rf"^run record {path} is damaged \(.*\); remove it$"):
            store.runs()
    path.write_text(json.dumps({"run_id": "x"}))
    with pytest.raises(StoreError, match=rf"^run record {path}: has no 'command'"):
        store.runs()


def test_the_records_read_are_the_callers_own(store_dir):
    store = three_runs(store_dir)
    records = store.runs()
    records[0]["parts"][0]["partition"]["model"] = "changed"
    del records[1]["parts"][0]
    records.clear()
    parts = store.live_parts()["predictions"]
    parts[0].partition["model"], parts[1].path = "changed", "elsewhere"
    assert [r["parts"][0]["partition"]["model"] for r in store.runs()] == ["m1", "m2", "m3"]
    assert [p.partition["model"] for p in store.live_parts()["predictions"]] == ["m1", "m2", "m3"]
    assert store.live_parts()["predictions"][1].path.endswith(f"part-{store.runs()[1]['run_id']}.parquet")


def test_a_commit_parses_its_own_record_and_no_other(store_dir, monkeypatch):
    """Records are parsed once per file and change: a commit reads every record to find
    what it superseded, and would otherwise parse the whole store at every commit (before
    the cache, a run parsed it at its start and again at its commit)."""
    from ce.store import store as store_module

    parsed = []
    real = store_module.parse_record
    monkeypatch.setattr(
        store_module, "parse_record", lambda data, *a, **k: parsed.append(1) or real(data, *a, **k)
    )
    store = Store(store_dir)
    per_run = []
    for i in range(8):
        before = len(parsed)
        with store.run("test", {}) as run:
            run.write(
                "predictions", {"model": "m", "dataset": "d"}, preds([f"x{i}"]), series="s", resumable=True
            )
        per_run.append(len(parsed) - before)
    assert per_run == [1] * 8  # the run's complete record, however many runs came before
    before = len(parsed)
    store.runs(), store.live_parts(), store.series_parts("predictions", {"model": "m", "dataset": "d"}, "s")
    assert len(parsed) == before  # nothing changed: nothing parsed
    assert count(store) == 8
    assert len(Store(store_dir).runs()) == 8 and len(parsed) == before + 8  # a new Store reads them all


def test_commits_list_no_part_files_and_a_part_kept_for_a_reader_goes_at_the_next_run(store_dir, monkeypatch):
    """A commit removes what it superseded without listing the store's parts; one that a
    reader's lease kept goes with the whole sweep at the start of the Store's next run."""
    from ce.store import store as store_module

    listed = []
    real = store_module._files
    monkeypatch.setattr(store_module, "_files", lambda *a: listed.append(a) or real(*a))
    store = Store(store_dir)
    part = {"model": "m", "dataset": "d"}
    for ids in (["a"], ["b"]):
        with store.run("test", {}) as run:
            run.write("predictions", part, preds(ids))
    assert len(os.listdir(store_dir / "predictions" / "model=m" / "dataset=d")) == 1
    swept = len(listed)  # the first run's start swept the whole store, once
    lease = store.lease()
    with store.run("test", {}) as run:
        run.write("predictions", part, preds(["c"]))
    assert len(os.listdir(store_dir / "predictions" / "model=m" / "dataset=d")) == 2  # kept for the reader
    assert len(listed) == swept
    lease.close()
    with store.run("test", {}) as run:
        run.write("predictions", {"model": "other", "dataset": "d"}, preds(["a"]))
    assert len(listed) > swept
    assert os.listdir(store_dir / "predictions" / "model=m" / "dataset=d") == [
        p.path.rsplit("/", 1)[1] for p in store.live_parts()["predictions"] if p.partition == part
    ]


def test_a_remote_store_parses_its_records_once(store_dir, monkeypatch):
    from ce.store import remote

    from .test_remote import RangeHandler

    three_runs(store_dir)
    handler = functools.partial(RangeHandler, directory=str(store_dir.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    parsed = []
    real = remote.parse_record
    monkeypatch.setattr(remote, "parse_record", lambda data, *a, **k: parsed.append(1) or real(data, *a, **k))
    try:
        store = remote.RemoteStore(f"http://127.0.0.1:{server.server_address[1]}/store")
        store.runs().clear()
        assert len(store.runs()) == 3 and len(store.live_parts()["predictions"]) == 3
        assert count(store) == 3
    finally:
        server.shutdown()
    assert len(parsed) == 3
