"""Bundles: round trip, idempotent import, conflicts, and a hostile bundle never lands."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile

import pytest
from click.testing import CliRunner

from ce.cli import cli
from ce.query.sql import connect
from ce.store import Store
from ce.store.bundle import DIGEST_LEN, BundleError, Selection, export_bundle, import_bundle, verify_bytes

from .conftest import snapshot
from .test_sql import write_attacks, write_neighbors, write_store


@pytest.fixture
def source(tmp_path) -> Store:
    store = write_store(tmp_path / "a", {"a": {"x1", "x2"}, "b": {"x2", "x3"}})
    write_neighbors(store, {"a": [[1, 2], [0, 2], [0, 1]], "b": [[2, 1], [0, 2], [1, 0]]})
    write_attacks(store, {"a": ["succeeded", "failed", "skipped"]})
    return store


def compare_output(store: Store) -> str:
    runner = CliRunner()
    out = [
        runner.invoke(
            cli, ["compare", "--table", t, "--k", "1", "--format", "csv", "--store", str(store.root)]
        )
        for t in ("2", "3")
    ]
    assert all(r.exit_code == 0 for r in out), [r.output for r in out]
    return "".join(r.stdout for r in out)


def test_round_trip_gives_identical_compare_output(source, tmp_path):
    bundle = tmp_path / "lab.cebundle"
    export_bundle(source, bundle)
    target = Store(tmp_path / "b")
    assert import_bundle(target, bundle)["imported"] == len(source.runs())
    assert compare_output(target) == compare_output(source)
    before = snapshot(target.root)
    assert import_bundle(target, bundle) == {"imported": 0, "already_there": 3, "parts": 0}
    assert snapshot(target.root) == before


def test_the_bundle_is_plain_parquet_and_json(source, tmp_path):
    import pyarrow.parquet as pq

    bundle = tmp_path / "lab.cebundle"
    export_bundle(source, bundle, Selection(models=("a",)))
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        manifest = json.loads(z.read("manifest.json"))
        part = next(n for n in names if n.startswith("predictions/"))
        assert pq.read_table(io.BytesIO(z.read(part))).num_rows == 3
        assert z.read("README.md").startswith(b"---\nlicense:")
    assert all("model=b" not in n for n in names)
    assert {f["path"] for f in manifest["files"]} == set(names) - {"manifest.json"}


def test_a_run_with_other_content_is_a_named_conflict(source, tmp_path):
    bundle = tmp_path / "lab.cebundle"
    export_bundle(source, bundle)
    target = Store(tmp_path / "b")
    import_bundle(target, bundle)
    run_id = source.runs()[0]["run_id"]
    record = target.root / "runs" / f"{run_id}.json"
    changed = json.loads(record.read_text()) | {"command": "edited"}
    record.write_text(json.dumps(changed))
    before = snapshot(target.root)
    with pytest.raises(BundleError, match=f"run {run_id} exists .* with different content"):
        import_bundle(target, bundle)
    assert snapshot(target.root) == before


def test_flipping_any_byte_fails_before_anything_is_written(source, tmp_path):
    bundle = tmp_path / "lab.cebundle"
    export_bundle(source, bundle, Selection(models=("b",)))
    raw = bundle.read_bytes()
    verify_bytes(raw)
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0xFF
        with pytest.raises(BundleError):
            verify_bytes(bytes(flipped))
    bad = tmp_path / "bad.cebundle"
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 1
    bad.write_bytes(bytes(flipped))
    target = tmp_path / "c"
    result = CliRunner().invoke(cli, ["bundle", "import", str(bad), "--store", str(target)])
    assert result.exit_code == 1 and "checksum does not match" in result.stderr
    assert not target.exists()


def seal(
    entries: list[tuple[zipfile.ZipInfo | str, bytes]], manifest_files=None, compress=zipfile.ZIP_STORED
) -> bytes:
    """A bundle whose checksum is right, holding exactly ``entries``."""
    files = (
        manifest_files
        if manifest_files is not None
        else [
            {
                "path": (e.filename if isinstance(e, zipfile.ZipInfo) else e),
                "size": len(d),
                "sha256": hashlib.sha256(d).hexdigest(),
            }
            for e, d in entries
        ]
    )
    manifest = {
        "format": "ce-bundle",
        "bundle_version": 1,
        "schema_version": 1,
        "exported_by": "test",
        "runs": [],
        "files": files,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as z:
        z.writestr("manifest.json", json.dumps(manifest))
        for entry, data in entries:
            z.writestr(entry, data)
        z.comment = b"0" * DIGEST_LEN
    raw = bytearray(buf.getvalue())
    raw[-DIGEST_LEN:] = hashlib.sha256(bytes(raw[:-DIGEST_LEN])).hexdigest().encode()
    return bytes(raw)


def link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: seal([("/etc/evil", b"x")]), "'/etc/evil' has an unsafe path"),
        (lambda: seal([("runs/../../evil", b"x")]), "'runs/../../evil' has an unsafe path"),
        (lambda: seal([(link("runs/link"), b"/etc/passwd")]), "'runs/link' is a link"),
        (lambda: seal([("runs/a.json", b"{}"), ("runs/a.json", b"{}")]), "appears twice"),
        (
            lambda: seal(
                [("runs/a.json", b"{}"), ("extra.bin", b"x")],
                [{"path": "runs/a.json", "size": 2, "sha256": hashlib.sha256(b"{}").hexdigest()}],
            ),
            "'extra.bin' is not in the manifest",
        ),
        (
            lambda: seal([], [{"path": "runs/a.json", "size": 2, "sha256": "0" * 64}]),
            "'runs/a.json' is in the manifest but missing",
        ),
        (
            lambda: seal([("runs/a.json", b"{}")], [{"path": "runs/a.json", "size": 2, "sha256": "0" * 64}]),
            "'runs/a.json' fails its sha256 check",
        ),
        (
            lambda: seal(
                [("p.parquet", b"\0" * 5_000_000)],
                [{"path": "p.parquet", "size": 10, "sha256": "0" * 64}],
                compress=zipfile.ZIP_DEFLATED,
            ),
            "'p.parquet' declares 5000000 bytes, the manifest 10",
        ),
    ],
)
def test_hostile_bundles_are_refused_naming_the_entry(tmp_path, make, message):
    path = tmp_path / "hostile.cebundle"
    path.write_bytes(make())
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["bundle", "import", str(path), "--store", str(store)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not store.exists()


def test_inspect_lists_the_parts_without_importing(source, tmp_path):
    bundle = tmp_path / "lab.cebundle"
    export_bundle(source, bundle)
    result = CliRunner().invoke(cli, ["bundle", "inspect", str(bundle)])
    assert result.exit_code == 0
    assert "predictions" in result.stdout and "attacks" in result.stdout


def test_two_labs_extracts_of_one_dataset_merge(tiny_models, data_dir, tmp_path):
    """Lab A and lab B extract different models on the same real dataset: B imports A's
    bundle, keeps its own examples (the same ones, checked by fingerprint) and gains A's
    model; a second lab's model of the same name needs --rename-model."""
    from ce.extractors.extract import ExtractOptions, extract

    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    options = ExtractOptions(stage="pretrained", limit=12)
    extract(a, str(tiny_models["base"]), "sst2-dev", options, name="model-a")
    extract(b, str(tiny_models["classification"]), "sst2-dev", options, name="model-b")
    bundle = tmp_path / "a.cebundle"
    export_bundle(a, bundle)
    examples_before = [p.path for p in b.live_parts()["examples"]]
    assert import_bundle(b, bundle)["parts"] == 2  # embeddings and neighbours; not the examples
    assert [p.path for p in b.live_parts()["examples"]] == examples_before
    record = next(r for r in b.runs() if r.get("imported"))
    assert record["imported"]["skipped_parts"] == [p.path for p in a.live_parts()["examples"]]
    got = connect(b).sql("select model_i, model_j, n from knn_agreement(3)").fetchall()
    assert got == [("model-a", "model-b", 12)]
    again = snapshot(b.root)
    assert import_bundle(b, bundle)["imported"] == 0 and snapshot(b.root) == again
    c = Store(tmp_path / "c")
    extract(c, str(tiny_models["classification"]), "sst2-dev", options, name="model-a")
    with pytest.raises(BundleError, match="already has embeddings of model model-a.*--rename-model"):
        import_bundle(c, bundle)


@pytest.mark.parametrize("option", ["--model", "--dataset"])
def test_exporting_a_name_the_store_lacks_is_an_error_not_a_bundle_of_examples(source, tmp_path, option):
    out = tmp_path / "typo.cebundle"
    result = CliRunner().invoke(
        cli, ["bundle", "export", str(out), option, "typo", "--store", str(source.root)]
    )
    assert result.exit_code == 1 and not out.exists()
    assert result.stderr.count("\n") == 1 and "no results of" in result.stderr and "'typo'" in result.stderr
