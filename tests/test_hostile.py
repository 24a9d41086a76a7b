"""Hostile input: crafted bundles, crafted records, crafted remote stores, SQL that tries to
write or read outside the store, readers racing writers, killed imports and a full disk.

Every refusal is one line on stderr with a non-zero exit, and leaves the store byte for
byte as it was.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import http.server
import io
import json
import random
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ce.cli import cli
from ce.query.sql import connect
from ce.store import Store
from ce.store.bundle import DIGEST_LEN, export_bundle, import_bundle

from .conftest import snapshot
from .test_remote import RangeHandler
from .test_sql import EXAMPLES, write_neighbors, write_store

CE = [sys.executable, "-c", "from ce.cli import main; main()"]


def ce(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def refused(result, *words: str, code: int = 1) -> str:
    """Assert a one-line refusal holding ``words``; return the line."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, (result.exit_code, result.output)
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ") and "internal error" not in lines[0], lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# -- bundles, crafted --------------------------------------------------------------------
@pytest.fixture
def lab(tmp_path) -> Path:
    """A legitimate bundle: examples, predictions of a and b, neighbour lists of a."""
    store = write_store(tmp_path / "lab", {"a": {"x1", "x2"}, "b": {"x2", "x3"}})
    write_neighbors(store, {"a": [[1, 2], [0, 2], [0, 1]]})
    path = tmp_path / "lab.cebundle"
    export_bundle(store, path)
    return path


@pytest.fixture
def target(tmp_path) -> Path:
    """A store with results of its own (model c), so 'unchanged' means something."""
    store = write_store(tmp_path / "target", {"c": {"x1"}})
    return store.root


def unpack(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist() if n != "manifest.json"}


def seal(entries: dict[str, bytes], **manifest) -> bytes:
    """A bundle whose manifest and checksum are right for ``entries``."""
    runs = sorted(n[5:-5] for n in entries if n.startswith("runs/"))
    body = {
        "format": "ce-bundle",
        "bundle_version": 1,
        "schema_version": 1,
        "exported_by": "test",
        "runs": runs,
        "files": [
            {"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
            for n, d in sorted(entries.items())
        ],
    } | manifest
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", json.dumps(body))
        for name, data in entries.items():
            z.writestr(name, data)
        z.comment = b"0" * DIGEST_LEN
    raw = bytearray(buf.getvalue())
    raw[-DIGEST_LEN:] = hashlib.sha256(bytes(raw[:-DIGEST_LEN])).hexdigest().encode()
    return bytes(raw)


def records(entries) -> dict[str, dict]:
    return {n: json.loads(d) for n, d in entries.items() if n.startswith("runs/")}


def edit_record(entries, change) -> dict[str, bytes]:
    """Apply ``change(record)`` to the bundle's first record (the one with examples)."""
    name = next(n for n, r in records(entries).items() if any(p["kind"] == "examples" for p in r["parts"]))
    record = json.loads(entries[name])
    out = change(record)
    entries[name] = json.dumps(record if out is None else out).encode()
    return entries


def move_part(entries, kind: str, new_path: str) -> dict[str, bytes]:
    """Move the first part of ``kind`` to ``new_path`` (entry and record alike)."""
    for name, record in records(entries).items():
        for part in record["parts"]:
            if part["kind"] == kind:
                entries[new_path] = entries.pop(part["path"])
                part["path"] = new_path
                entries[name] = json.dumps(record).encode()
                return entries
    raise AssertionError(kind)


def replace_part(entries, kind: str, table_of) -> dict[str, bytes]:
    """Rewrite the first part of ``kind`` as ``table_of(table)``."""
    for record in records(entries).values():
        for part in record["parts"]:
            if part["kind"] == kind:
                table = pq.read_table(io.BytesIO(entries[part["path"]]))
                buf = io.BytesIO()
                pq.write_table(table_of(table), buf)
                entries[part["path"]] = buf.getvalue()
                return entries
    raise AssertionError(kind)


def edit_parts(entries, kind: str, change) -> dict[str, bytes]:
    """Apply ``change(part)`` to every record's parts of ``kind``."""
    for name, record in records(entries).items():
        for part in record["parts"]:
            if part["kind"] == kind:
                change(part)
        entries[name] = json.dumps(record).encode()
    return entries


def first_run(entries) -> str:
    return next(iter(records(entries).values()))["run_id"]


QUOTED = "predictions/model=a'\"); copy (select 1) to '/tmp/ce-pwned.csv'; --/dataset=toy/part-R.parquet"

CRAFTED = {
    "a part path that would inject SQL": (lambda e: move_part(e, "predictions", QUOTED), "part path"),
    "a part over the store marker": (lambda e: move_part(e, "predictions", "ce-store.json"), "part path"),
    "a part over another run's record": (
        lambda e: move_part(e, "predictions", "runs/20990101T000000-deadbeef.json"),
        "part path",
    ),
    "a part in the model folder": (
        lambda e: move_part(e, "predictions", "models/minilm/model.safetensors"),
        "part path",
    ),
    "a part named for another run": (
        lambda e: move_part(
            e, "predictions", "predictions/model=a/dataset=toy/part-20990101T000000-deadbeef.parquet"
        ),
        "is not 'predictions/model=a/dataset=toy/part-",
    ),
    "a stray entry beside the parts": (
        lambda e: e | {"models/minilm/config.json": b"{}"},
        "is not a part that a run record names",
    ),
    "an unknown kind": (
        lambda e: edit_record(e, lambda r: r["parts"][0].update(kind="secrets")),
        "has kind 'secrets'",
    ),
    "a missing partition key": (
        lambda e: edit_record(e, lambda r: r["parts"][1]["partition"].__delitem__("model")),
        "partitioned by exactly model, dataset",
    ),
    "a partition value with a newline": (
        lambda e: edit_record(e, lambda r: r["parts"][1]["partition"].update(model="a\n")),
        "not a usable name",
    ),
    "a record that is a list": (lambda e: edit_record(e, lambda r: [r]), "not an object"),
    "a record that is not JSON": (
        lambda e: e | {f"runs/{first_run(e)}.json": b"{not json"},
        "is not JSON",
    ),
    "a record with an unknown field": (
        lambda e: edit_record(e, lambda r: r.update(exec="import os")),
        "field 'exec' that ce does not know",
    ),
    "a record with a field of the wrong type": (
        lambda e: edit_record(e, lambda r: r.update(pid="12")),
        "field 'pid' is a str",
    ),
    "a row count that is text": (
        lambda e: edit_record(e, lambda r: r["parts"][0].update(rows="3")),
        "row count",
    ),
    "a record dated in the future": (
        lambda e: edit_record(e, lambda r: r.update(ended="2999-01-01T00:00:00+00:00")),
        "lies in the future",
    ),
    "a record of a run that did not complete": (
        lambda e: edit_record(e, lambda r: r.update(status="running")),
        "did not complete",
    ),
    "a run id with a path in it": (
        lambda e: edit_record(e, lambda r: r.update(run_id="../../x")),
        "run id '../../x' is not usable",
    ),
    "a record under another run's name": (
        lambda e: {
            (f"runs/{first_run(e)}x.json" if n == f"runs/{first_run(e)}.json" else n): d for n, d in e.items()
        },
        "holds the record of run",
    ),
    "a part column of the wrong type": (
        lambda e: replace_part(
            e,
            "predictions",
            lambda t: t.set_column(
                t.schema.get_field_index("correct"), "correct", t["correct"].cast(pa.string())
            ),
        ),
        "has column 'correct' of type string",
    ),
    "a part with a partition column inside": (
        lambda e: replace_part(
            e, "predictions", lambda t: t.append_column("model", pa.array(["zz"] * t.num_rows))
        ),
        "has a column 'model'",
    ),
    "a part with fewer rows than its record": (
        lambda e: replace_part(e, "predictions", lambda t: t.slice(0, 1)),
        "holds 1 rows, its record says 3",
    ),
    "a part with rows of another run": (
        lambda e: replace_part(
            e, "predictions", lambda t: t.set_column(0, "run_id", pa.array(["other"] * t.num_rows))
        ),
        "rows of another run",
    ),
    "a part that is not Parquet": (
        lambda e: {n: (b"PAR1 not really" if n.startswith("predictions/") else d) for n, d in e.items()},
        "not a readable Parquet file",
    ),
    "examples that are not what the run claims": (
        lambda e: edit_record(e, lambda r: r.update(dataset="toy", dataset_fingerprint="ab" * 32)),
        "claims dataset fingerprint abababababab",
    ),
    "neighbour lists longer than recorded": (
        lambda e: edit_parts(e, "neighbors", lambda p: p.update(lengths=[1, 1])),
        "has lists of 2..2 entries, its record says [1, 1]",
    ),
}


@pytest.mark.parametrize("case", list(CRAFTED), ids=list(CRAFTED))
def test_a_crafted_bundle_is_refused_before_anything_is_written(case, lab, target, tmp_path):
    craft, message = CRAFTED[case]
    crafted = tmp_path / "crafted.cebundle"
    crafted.write_bytes(seal(craft(unpack(lab))))
    before = snapshot(target)
    refused(ce("bundle", "import", crafted, "--store", target), message)
    assert snapshot(target) == before
    refused(ce("bundle", "inspect", crafted), message)
    assert not Path("/tmp/ce-pwned.csv").exists()


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"schema_version": "1"}, "schema version '1' (a str, not a number)"),
        ({"runs": []}, "list of runs differs"),
        ({"format": "zip"}, "not a ce bundle manifest"),
        ({"files": [{"path": "runs/x.json", "size": -1, "sha256": "0"}]}, "not a ce bundle manifest"),
    ],
)
def test_a_crafted_manifest_is_refused(manifest, message, lab, target, tmp_path):
    crafted = tmp_path / "crafted.cebundle"
    crafted.write_bytes(seal(unpack(lab), **manifest))
    before = snapshot(target)
    refused(ce("bundle", "import", crafted, "--store", target), message)
    assert snapshot(target) == before


def test_a_bundle_larger_than_the_cap_is_refused_before_it_is_expanded(lab, target):
    before = snapshot(target)
    refused(
        ce("bundle", "import", lab, "--store", target, "--max-size", "1KB"),
        "--max-size",
        "more than the limit",
    )
    refused(ce("bundle", "inspect", lab, "--max-size", "1KB"), "--max-size")
    refused(ce("bundle", "inspect", lab, "--max-size", "lots"), "not a size", code=2)
    assert snapshot(target) == before


def test_a_file_that_is_no_zip_is_refused(target, tmp_path):
    junk = b"x" * 100
    path = tmp_path / "junk.cebundle"
    path.write_bytes(junk + hashlib.sha256(junk).hexdigest().encode())
    before = snapshot(target)
    refused(ce("bundle", "import", path, "--store", target), "is not a ce bundle")
    assert snapshot(target) == before


# -- bundles against the store -----------------------------------------------------------
def other_examples_bundle(tmp_path) -> Path:
    store = Store(tmp_path / "other")
    with store.run("test", {}, dataset="toy", dataset_fingerprint=None) as run:
        run.write("examples", {"dataset": "toy"}, EXAMPLES.slice(0, 2))
        run.write(
            "predictions",
            {"model": "d", "dataset": "toy"},
            pa.table({"example_id": ["x1"], "correct": [True]}),
        )
    path = tmp_path / "other.cebundle"
    export_bundle(store, path)
    return path


def test_a_dataset_with_other_examples_is_refused_and_can_be_renamed(target, tmp_path):
    bundle = other_examples_bundle(tmp_path)
    before = snapshot(target)
    refused(ce("bundle", "import", bundle, "--store", target), "dataset 'toy'", "--rename-dataset toy=")
    assert snapshot(target) == before
    done = ce("bundle", "import", bundle, "--store", target, "--rename-dataset", "toy=toy-b")
    assert done.exit_code == 0, done.output
    con = connect(Store(target))
    assert con.sql("select dataset, count(*) from examples group by 1 order by 1").fetchall() == [
        ("toy", 3),
        ("toy-b", 2),
    ]
    assert con.sql("select model, dataset from predictions where model = 'd'").fetchall() == [("d", "toy-b")]


def test_results_the_store_has_are_not_replaced_unless_renamed(target, tmp_path):
    source = write_store(tmp_path / "src", {"c": {"x2", "x3"}})  # the same examples, another c
    bundle = tmp_path / "c.cebundle"
    export_bundle(source, bundle)
    before = snapshot(target)
    refused(
        ce("bundle", "import", bundle, "--store", target),
        "already has predictions of model c",
        "--rename-model",
    )
    assert snapshot(target) == before
    done = ce("bundle", "import", bundle, "--store", target, "--rename-model", "c=c-lab-b")
    assert done.exit_code == 0, done.output
    got = connect(Store(target)).sql("select model, count(*) from errors group by 1 order by 1").fetchall()
    assert got == [("c", 1), ("c-lab-b", 2)]


def test_bundles_of_one_store_import_in_any_order(tmp_path):
    source = write_store(tmp_path / "src", {"a": {"x1"}, "b": {"x2"}})
    for order in (("a", "b"), ("b", "a")):
        paths = []
        for model in order:
            path = tmp_path / f"{model}.cebundle"
            export_bundle(source, path, __import__("ce.store.bundle").store.bundle.Selection(models=(model,)))
            paths.append(path)
        target = Store(tmp_path / f"t-{''.join(order)}")
        for path in paths:
            import_bundle(target, path)
        again = snapshot(target.root)
        for path in paths:
            import_bundle(target, path)
        assert snapshot(target.root) == again
        got = connect(target).sql("select model, count(*) from predictions group by 1 order by 1").fetchall()
        assert got == [("a", 3), ("b", 3)]


def test_an_imported_run_dated_ahead_never_outlives_a_later_local_run(lab, tmp_path):
    entries = unpack(lab)
    for name, record in records(entries).items():
        record["ended"] = (record["started"][:4].replace(record["started"][:4], "2026")) + record["ended"][4:]
        entries[name] = json.dumps(
            record | {"ended": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 80_000))}
        ).encode()
    bundle = tmp_path / "ahead.cebundle"
    bundle.write_bytes(seal(entries))
    store = Store(tmp_path / "fresh")
    import_bundle(store, bundle)
    with store.run("test", {}) as run:  # a local re-run of a's predictions, after the import
        run.write(
            "predictions",
            {"model": "a", "dataset": "toy"},
            pa.table({"example_id": ["x9"], "correct": [True]}),
        )
    assert connect(store).sql("select example_id from predictions where model = 'a'").fetchall() == [("x9",)]


# -- records in a store, and stores at a URL ---------------------------------------------
def plant_record(store_dir: Path, change) -> None:
    path = next((store_dir / "runs").glob("*.json"))
    record = json.loads(path.read_text())
    out = change(record)
    path.write_text(json.dumps(record if out is None else out))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["parts"][1].update(path=QUOTED), "part path"),
        (lambda r: [r], "not an object"),
        (lambda r: r.update(status=3), "field 'status' is a int"),
        (lambda r: r["parts"][1].update(path="../../../etc/passwd"), "part path"),
    ],
    ids=["injection", "not-an-object", "wrong-type", "outside-the-store"],
)
def test_a_crafted_record_in_a_local_store_is_refused_by_every_reader(change, message, target):
    plant_record(target, change)
    before = snapshot(target)
    for command in (["query", "select count(*) from predictions"], ["compare"], ["sweep", "--k", "1"]):
        refused(ce(*command, "--store", target), message)
    assert snapshot(target) == before
    assert not Path("/tmp/ce-pwned.csv").exists()


def test_a_store_under_a_folder_with_both_quotes_works(tmp_path):
    store = write_store(tmp_path / 'it\'s "here"', {"a": {"x1", "x2"}, "b": {"x2", "x3"}})
    done = ce("query", "select count(*) as n from predictions", "--store", store.root, "--format", "csv")
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == ['"n"', "6"]
    assert ce("compare", "--store", store.root).exit_code == 0


class NoRanges(http.server.SimpleHTTPRequestHandler):
    """Python's own file server: it answers every request whole, Range or not."""

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(folder: Path, handler=RangeHandler) -> str:
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/store"

    yield start
    for server in servers:
        server.shutdown()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["parts"][1].update(path=QUOTED), "part path"),
        (lambda r: r.update(run_id="x/../../y"), "run id"),
        (lambda r: "a string", "not an object"),
    ],
    ids=["injection", "run-id-path", "not-an-object"],
)
def test_a_crafted_remote_store_is_refused(change, message, tmp_path, serve):
    store = write_store(tmp_path / "site" / "store", {"a": {"x1"}})
    plant_record(store.root, change)
    url = serve(tmp_path / "site")
    refused(ce("query", "select count(*) from predictions", "--store", url), message)
    assert not Path("/tmp/ce-pwned.csv").exists()


def test_a_remote_store_marker_of_another_type_is_named(tmp_path, serve):
    store = write_store(tmp_path / "site" / "store", {"a": {"x1"}})
    (store.root / "ce-store.json").write_text(json.dumps({"schema_version": "1"}))
    refused(ce("query", "select 1", "--store", serve(tmp_path / "site")), "schema version '1' (a str")


def test_a_server_without_range_requests_is_named(tmp_path, serve):
    write_store(tmp_path / "site" / "store", {"a": {"x1"}})
    url = serve(tmp_path / "site", NoRanges)
    refused(ce("compare", "--store", url), "does not answer range requests", "local --store")


def test_remote_sql_cannot_read_outside_the_store(tmp_path, serve):
    store = write_store(tmp_path / "site" / "store", {"a": {"x1"}})
    (tmp_path / "site" / "secret.csv").write_text("a\n1\n")
    url = serve(tmp_path / "site")
    assert ce("query", "select count(*) from predictions", "--store", url).exit_code == 0
    refused(ce("query", f"select * from read_csv('{url[:-6]}/secret.csv')", "--store", url), "SQL error")
    assert store.root.is_dir()


# -- SQL that tries to write or read ----------------------------------------------------
@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("copy (select 1) to '{out}'", "read-only and this is a COPY statement"),
        ("copy predictions to '{store}/predictions/model=a/dataset=toy/x.parquet'", "COPY statement"),
        ("attach '{out}' as x", "ATTACH statement"),
        ("create table t as select 1", "CREATE statement"),
        ("install httpfs", "statement"),
        ("set enable_external_access = true", "statement"),
        ("select 1; copy (select 1) to '{out}'", "holds 2 statements"),
        ("select * from read_csv('/etc/passwd')", "Permission Error"),
        ("select * from read_text('{store}/../outside.txt')", "Permission Error"),
        ("select * from glob('/etc/*')", "Permission Error"),
        ("select * from read_parquet('{out}')", "Permission Error"),
        ("with x as (select 1) select * from x; drop view predictions", "holds 2 statements"),
    ],
)
def test_ce_query_is_read_only(sql, message, target, tmp_path):
    out = tmp_path / "written"
    (tmp_path / "outside.txt").write_text("secret")
    before = snapshot(target)
    refused(ce("query", sql.format(out=out, store=target), "--store", target), message)
    assert snapshot(target) == before and not out.exists()


def test_exports_go_through_the_output_option(target, tmp_path):
    out = tmp_path / "errors.parquet"
    done = ce("query", "select * from errors", "--store", target, "--format", "parquet", "-o", out)
    assert done.exit_code == 0 and pq.read_table(out).num_rows == 1


# -- concurrency, kills, a full disk, leftovers -------------------------------------------
RERUN = """
import sys, pyarrow as pa
from ce.store import Store
store = Store(sys.argv[1])
for i in range(int(sys.argv[2])):
    with store.run("test", {}) as run:
        run.write("predictions", {"model": "c", "dataset": "toy"},
                  pa.table({"example_id": ["x1", "x2", "x3"], "correct": [True, False, True]}))
"""


def test_readers_never_fail_while_the_same_partition_is_rerun(target):
    writer = subprocess.Popen([sys.executable, "-c", RERUN, str(target), "40"])
    store, failures, queries = Store(target), [], 0
    try:
        while writer.poll() is None or queries < 20:
            con = connect(store)
            time.sleep(random.uniform(0, 0.02))  # the snapshot ages while a writer commits
            try:
                assert con.sql("select count(*) from predictions where model = 'c'").fetchall() == [(3,)]
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                failures.append(str(e))
            queries += 1
            del con
    finally:
        writer.wait()
    assert writer.returncode == 0 and not failures, failures[:3]
    store.collect_garbage()  # no reader now: superseded parts go
    assert len(list((target / "predictions" / "model=c").rglob("*.parquet"))) == 1


def test_a_killed_import_leaves_nothing_after_the_next_command(tmp_path):
    source = Store(tmp_path / "big")
    with source.run("test", {}) as run:
        run.write("examples", {"dataset": "toy"}, EXAMPLES)
        for m in range(30):
            run.write(
                "predictions",
                {"model": f"m{m}", "dataset": "toy"},
                pa.table({"example_id": [f"x{i}" for i in range(200_000)], "correct": [True] * 200_000}),
            )
    bundle = tmp_path / "big.cebundle"
    export_bundle(source, bundle)
    target = write_store(tmp_path / "t", {"c": {"x1"}}).root
    before = snapshot(target)
    rng = random.Random(1)
    for _ in range(4):
        proc = subprocess.Popen(CE + ["bundle", "import", str(bundle), "--store", str(target)])
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = Store(target)
        assert {p.partition["model"] for p in store.live_parts()["predictions"]} in (
            {"c"},
            {"c", *(f"m{m}" for m in range(30))},
        )
    done = subprocess.run(
        CE + ["bundle", "import", str(bundle), "--store", str(target)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert not list(target.rglob("*.tmp"))
    assert len(Store(target).live_parts()["predictions"]) == 31
    assert before.keys() <= snapshot(target).keys()


@pytest.fixture
def small_disk(tmpfs):
    return tmpfs("600k")


def test_an_import_that_fills_the_disk_keeps_nothing(small_disk, tmp_path):
    source = Store(tmp_path / "src")
    with source.run("test", {}) as run:
        run.write("examples", {"dataset": "toy"}, EXAMPLES)
        for m in range(6):
            ids = [f"{m}-{i}-{random.random()}" for i in range(12_000)]
            run.write("predictions", {"model": f"m{m}", "dataset": "toy"}, pa.table({"example_id": ids}))
    bundle = tmp_path / "src.cebundle"
    export_bundle(source, bundle)
    target = write_store(small_disk / "store", {"c": {"x1"}}).root
    before = snapshot(target)
    full = subprocess.run(
        CE + ["bundle", "import", str(bundle), "--store", str(target)], capture_output=True, text=True
    )
    assert full.returncode == 1
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and ("no space left" in lines[0] or "free" in lines[0]), full.stderr
    assert snapshot(target) == before


def test_leftovers_of_dead_processes_are_collected(target):
    from ce.store import atomic

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = f"{atomic.owner().split('-')[0]}-{int(dead.stdout)}"
    leftover = target / "models" / f".tmp-{gone}-abcd1234-m"
    leftover.mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"half")
    mine = target / "models" / f".tmp-{atomic.owner()}-abcd1234-m"  # alive: kept
    mine.mkdir()
    half_record = target / "runs" / f".20990101T000000-deadbeef.json.{gone}.abcd1234.tmp"
    half_record.write_text("{")
    Store(target).collect_garbage()
    assert not leftover.exists() and mine.exists() and not half_record.exists()


def test_a_commit_killed_between_two_records_is_finished_by_the_next_command(lab, tmp_path):
    """Import stages every file, journals the renames, then renames; a kill after the
    first rename leaves a journal that the next command completes."""
    from ce.store import atomic
    from ce.store.store import JOURNAL

    store = Store(tmp_path / "fresh")
    import_bundle(store, lab)
    expected = snapshot(store.root)
    records = sorted((store.root / "runs").glob("*.json"))
    assert len(records) == 2
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = f"{atomic.owner().split('-')[0]}-{int(dead.stdout)}"
    second = records[1]
    staged = second.with_name(f".{second.name}.{gone}.abcd1234.tmp")
    second.rename(staged)  # as if killed after renaming the first record
    journal = store.root / "runs" / JOURNAL.format(owner=gone)
    journal.write_text(json.dumps([[staged.relative_to(store.root).as_posix(), f"runs/{second.name}"]]))
    assert len(store.runs()) == 1
    store.collect_garbage()
    assert snapshot(store.root) == expected


def test_remote_sql_cannot_climb_out_of_the_store_url(tmp_path, serve):
    write_store(tmp_path / "site" / "store", {"a": {"x1"}})
    (tmp_path / "site" / "secret.csv").write_text("a\n1\n")
    url = serve(tmp_path / "site")
    for trick in ("../secret.csv", "%2e%2e/secret.csv", "runs/../../secret.csv", "%2E%2E%2Fsecret.csv"):
        refused(ce("query", f"select * from read_csv('{url}/{trick}')", "--store", url), "SQL error")


@pytest.mark.parametrize(
    "sql",
    [
        "explain analyze copy (select 1 as hacked) to '{store}/ce-store.json' (format json)",
        "explain copy (select 1) to '{store}/x.csv'",
        "explain analyze drop view predictions",
    ],
)
def test_explain_cannot_smuggle_a_write(sql, target):
    before = snapshot(target)
    refused(ce("query", sql.format(store=target), "--store", target), "read-only")
    assert snapshot(target) == before


def test_the_spill_folder_is_private_to_each_query(target, tmp_path, monkeypatch):
    spill = tmp_path / "spill"
    spill.mkdir()
    (spill / "secret.txt").write_text("topsecret")
    monkeypatch.setenv("CE_TEMP_DIR", str(spill))
    refused(
        ce("query", f"select content from read_text('{spill}/secret.txt')", "--store", target), "Permission"
    )
    gc.collect()  # the connection is gone: so is its own spill folder
    assert sorted(p.name for p in spill.iterdir()) == ["secret.txt"]


def test_renames_that_merge_two_parts_are_refused(lab, target):
    before = snapshot(target)
    refused(
        ce("bundle", "import", lab, "--store", target, "--rename-model", "a=b"),
        "renames make two parts",
    )
    assert snapshot(target) == before


def test_two_datasets_with_the_same_examples_are_each_checked_against_the_store(tmp_path):
    source = Store(tmp_path / "src")
    with source.run("test", {}) as run:
        for name in ("toy-copy", "toy"):  # the same examples under two names
            run.write("examples", {"dataset": name}, EXAMPLES)
    bundle = tmp_path / "two.cebundle"
    export_bundle(source, bundle)
    target = Store(tmp_path / "t")
    with target.run("test", {}) as run:
        run.write("examples", {"dataset": "toy-copy"}, EXAMPLES.slice(0, 2))
    before = snapshot(target.root)
    refused(ce("bundle", "import", bundle, "--store", target.root), "dataset 'toy-copy'", "--rename-dataset")
    assert snapshot(target.root) == before


def test_provenance_a_record_cannot_hold_is_stored_as_it_can(store_dir, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["ce", "extract", "--dataset", "caf\udce9.csv"])  # not UTF-8
    store = Store(store_dir)
    with store.run("test", {"lr": float("inf")}, train_loss=float("nan")) as run:
        run.write("predictions", {"model": "m", "dataset": "d"}, pa.table({"example_id": ["a"]}))
    [record] = store.runs()
    assert record["train_loss"] is None and record["params"] == {"lr": None}
    assert record["argv"][-1] == "caf\ufffd.csv"
    assert ce("query", "select count(*) from runs", "--store", store_dir).exit_code == 0
