"""Bundles: round trip, idempotent import, conflicts, and a hostile bundle never lands."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ce.cli import cli
from ce.query.sql import connect
from ce.store import Store
from ce.store.bundle import (
    ADDED_LATER,
    DIGEST_LEN,
    BundleError,
    Selection,
    export_bundle,
    import_bundle,
    verify_bytes,
)
from ce.store.schema import KINDS

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
    assert all("model_b" not in n for n in names) and any("model_a" in n for n in names)
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


# -- every reader sees the key columns ------------------------------------------------------
KEYS = {
    "examples": ("dataset",),
    "predictions": ("model", "dataset"),
    "neighbors": ("model", "stage", "dataset"),
    "attacks": ("model", "attack", "dataset"),
    "ood_scores": ("model", "stage", "bank", "dataset"),
}


def write_ood(store: Store) -> None:
    with store.run("test", {}) as run:
        run.write(
            "ood_scores",
            {"model": "a", "stage": "pretrained", "bank": "bank1", "dataset": "toy"},
            pa.table(
                {
                    "example_id": ["x1", "x2"],
                    "role": ["id_val", "test"],
                    "source": ["toy", "toy"],
                    "distances": [[0.1, 0.2], [0.3, 0.4]],
                }
            ),
        )


def expected_keys(store: Store, kind: str) -> list[tuple]:
    """(key values..., example_id) of every row of ``kind`` in the store, sorted."""
    keys = ", ".join(KEYS[kind])
    return sorted(connect(store).sql(f"select {keys}, example_id from {kind}").fetchall())


def unzipped(source: Store, tmp_path) -> Path:
    bundle = tmp_path / "lab.cebundle"
    export_bundle(source, bundle)
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(bundle) as z:
        z.extractall(folder)
    return folder


@pytest.fixture
def folder(source, tmp_path) -> Path:
    write_ood(source)
    return unzipped(source, tmp_path)


def rows_of(table, kind: str) -> list[tuple]:
    """(key values..., example_id) of a pyarrow table, sorted."""
    columns = [table.column(k).to_pylist() for k in (*KEYS[kind], "example_id")]
    return sorted(zip(*columns, strict=True))


def test_datasets_loads_each_config_of_the_card_with_its_keys(source, folder, tmp_path):
    import datasets

    card = (folder / "README.md").read_text()
    for kind in KEYS:
        assert f"config_name: {kind}" in card
        loaded = datasets.load_dataset(str(folder), kind, split="train", cache_dir=str(tmp_path / "hf"))
        assert set(KEYS[kind]) <= set(loaded.column_names), (kind, loaded.column_names)
        assert rows_of(loaded.data.table, kind) == expected_keys(source, kind)
        plain = datasets.load_dataset(
            "parquet",
            data_files=str(folder / kind / "**" / "*.parquet"),
            split="train",
            cache_dir=str(tmp_path / "hf-plain"),
        )
        assert rows_of(plain.data.table, kind) == expected_keys(source, kind)


def test_pandas_polars_pyarrow_and_duckdb_read_the_keys(source, folder):
    import duckdb
    import pandas as pd
    import pyarrow.dataset as ds

    polars = pytest.importorskip("polars")
    for kind in KEYS:
        want = expected_keys(source, kind)
        path = folder / kind
        assert rows_of(pa.Table.from_pandas(pd.read_parquet(path)), kind) == want, kind
        assert rows_of(ds.dataset(path, format="parquet").to_table(), kind) == want, kind
        assert rows_of(ds.dataset(path, format="parquet", partitioning="hive").to_table(), kind) == want
        assert rows_of(polars.read_parquet(path).to_arrow(), kind) == want, kind
        assert rows_of(polars.read_parquet(f"{path}/**/*.parquet").to_arrow(), kind) == want, kind
        for hive in ("true", "false"):
            got = duckdb.sql(
                f"select * from read_parquet('{path}/**/*.parquet', hive_partitioning = {hive})"
            ).to_arrow_table()
            assert rows_of(got, kind) == want, (kind, hive)
        # the store's own folders (key=value) and the bundle's never hold a column twice
        assert all("=" not in p for p in map(str, path.rglob("*")))


def test_the_card_and_the_layout_name_the_keys(folder):
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.parquet"))
    assert any(
        n.startswith("ood_scores/model_a/stage_pretrained/bank_bank1/dataset_toy/part-") for n in names
    )
    assert "as string columns" in (folder / "README.md").read_text()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["bundle_version"] == 2
    for name in (folder / "runs").iterdir():
        assert all(p["path"] in names for p in json.loads(name.read_text())["parts"])


def test_a_bundle_goes_back_into_its_own_store_unchanged(source, tmp_path):
    bundle = tmp_path / "lab.cebundle"
    export_bundle(source, bundle)
    before = snapshot(source.root)
    assert import_bundle(source, bundle) == {"imported": 0, "already_there": 3, "parts": 0}
    assert snapshot(source.root) == before
    target = Store(tmp_path / "b")
    import_bundle(target, bundle)
    again = tmp_path / "again.cebundle"
    export_bundle(target, again)  # a bundle of the imported (rewritten) parts
    assert import_bundle(source, again)["parts"] == 0
    assert snapshot(source.root) == before
    assert all(
        set(KEYS[p.kind]).isdisjoint(pq.ParquetFile(target.root / p.path).schema_arrow.names)
        for ps in target.live_parts().values()
        for p in ps
    )  # the store holds its keys in the folder names only


# -- bundles of version 1, and parts of an earlier release ------------------------------
def legacy_bundle(store: Store, path: Path) -> None:
    """``store`` as ce bundle export wrote it at bundle version 1: parts at their store
    paths, without key columns, as stored."""
    parts = [p for ps in store.live_parts().values() for p in ps]
    runs = {p.run_id for p in parts}
    entries = {}
    for record in store.runs():
        if record["run_id"] in runs:
            record = {k: v for k, v in record.items() if k not in ("imported", "committed")}
            entries[f"runs/{record['run_id']}.json"] = json.dumps(record).encode()
    for p in parts:
        entries[p.path] = (store.root / p.path).read_bytes()
    files = [
        {"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for n, d in sorted(entries.items())
    ]
    manifest = {"format": "ce-bundle", "bundle_version": 1, "schema_version": 1, "exported_by": "0.1"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest | {"runs": sorted(runs), "files": files}))
        for name, data in entries.items():
            z.writestr(name, data)
        z.comment = b"0" * DIGEST_LEN
    raw = bytearray(buf.getvalue())
    raw[-DIGEST_LEN:] = hashlib.sha256(bytes(raw[:-DIGEST_LEN])).hexdigest().encode()
    path.write_bytes(bytes(raw))


def as_earlier_release(store: Store) -> None:
    """Rewrite the store's first predictions part as a release before ADDED_LATER wrote it:
    without those columns (and a NaN score, which must compare equal to itself)."""
    for p in store.live_parts()["predictions"][:1]:
        table = pq.read_table(store.root / p.path)
        table = table.drop_columns([c for c in ADDED_LATER["predictions"] if c in table.column_names])
        score = pa.array([float("nan")] + [0.5] * (table.num_rows - 1), pa.float64())
        table = table.set_column(table.schema.get_field_index("score"), "score", score)
        pq.write_table(table, store.root / p.path)


def predictions(store: Store) -> list[tuple]:
    sql = "select model, dataset, example_id, correct, exact, score::varchar from predictions order by all"
    return connect(store).sql(sql).fetchall()


def test_a_bundle_of_version_1_imports_and_meets_version_2(source, tmp_path):
    as_earlier_release(source)
    old = tmp_path / "old.cebundle"
    legacy_bundle(source, old)
    target = Store(tmp_path / "b")
    assert import_bundle(target, old)["imported"] == len(source.runs())
    assert predictions(target) == predictions(source)
    new = tmp_path / "new.cebundle"
    export_bundle(source, new)
    before = snapshot(target.root)
    assert import_bundle(target, new)["parts"] == 0  # the same runs, in the other layout
    assert import_bundle(target, old)["parts"] == 0
    assert snapshot(target.root) == before
    fresh = Store(tmp_path / "c")
    import_bundle(fresh, new)
    assert import_bundle(fresh, old)["parts"] == 0
    got = connect(fresh).sql("select count(*), count(probs), count(score) from predictions").fetchall()
    assert got == [(6, 0, 3)]  # the columns an earlier release lacked are there, null


def test_exported_parts_of_an_earlier_release_have_every_column(source, tmp_path):
    as_earlier_release(source)
    folder = unzipped(source, tmp_path)
    schemas = {str(p): pq.read_schema(p).names for p in (folder / "predictions").rglob("*.parquet")}
    assert len(schemas) == 2
    for names in schemas.values():
        assert names == [f.name for f in KINDS["predictions"].schema] + ["model", "dataset"]
    assert "config_name: predictions\n" in (folder / "README.md").read_text()  # one table
    import datasets

    loaded = datasets.load_dataset(str(folder), "predictions", split="train", cache_dir=str(tmp_path / "hf"))
    assert loaded.num_rows == 6 and sum(p is None for p in loaded["probs"]) == 6


def bundle_entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist() if n != "manifest.json"}


def reseal(entries: dict[str, bytes]) -> bytes:
    runs = sorted(n[5:-5] for n in entries if n.startswith("runs/"))
    files = [
        {"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for n, d in sorted(entries.items())
    ]
    manifest = {"format": "ce-bundle", "bundle_version": 2, "schema_version": 1, "exported_by": "test"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest | {"runs": runs, "files": files}))
        for name, data in entries.items():
            z.writestr(name, data)
        z.comment = b"0" * DIGEST_LEN
    raw = bytearray(buf.getvalue())
    raw[-DIGEST_LEN:] = hashlib.sha256(bytes(raw[:-DIGEST_LEN])).hexdigest().encode()
    return bytes(raw)


def rewrite_part(entries, prefix: str, change) -> dict[str, bytes]:
    name = next(n for n in sorted(entries) if n.startswith(prefix))
    buf = io.BytesIO()
    pq.write_table(change(pq.read_table(io.BytesIO(entries[name]))), buf)
    entries[name] = buf.getvalue()
    return entries


def set_column(name: str, value):
    def change(t):
        return t.set_column(t.schema.get_field_index(name), name, pa.array([value] * t.num_rows, pa.string()))

    return change


@pytest.mark.parametrize(
    ("prefix", "change", "message"),
    [
        (
            "predictions/model_a/",
            set_column("model", "b"),
            "holds rows of model 'b' in its folder of model 'a'",
        ),
        (
            "examples/",
            set_column("dataset", "other"),
            "holds rows of dataset 'other' in its folder of dataset 'toy'",
        ),
        ("predictions/model_a/", lambda t: t.drop_columns(["dataset"]), "lacks column 'dataset'"),
        (
            "neighbors/model_a/",
            lambda t: t.append_column("bank", pa.array(["x"] * t.num_rows)),
            "has a column 'bank' that neighbors parts do not have",
        ),
        (
            "predictions/model_a/",
            lambda t: t.set_column(
                t.schema.get_field_index("model"), "model", t["model"].cast(pa.large_string())
            ),
            "has column 'model' of type large_string, not string",
        ),
        (
            "predictions/model_a/",
            lambda t: t.set_column(
                t.schema.get_field_index("probs"), "probs", pa.array([["x"]] * t.num_rows)
            ),
            "has column 'probs' of type list<element: string>",
        ),
        (  # a null id: SQL would read the list as a shorter set, the kernel cannot
            "neighbors/model_a/",
            lambda t: t.set_column(
                t.schema.get_field_index("neighbors"),
                "neighbors",
                pa.array([[None, *x[1:]] for x in t["neighbors"].to_pylist()], pa.list_(pa.int32())),
            ),
            "has a null id in a list of neighbors",
        ),
        (
            "neighbors/model_a/",
            lambda t: t.set_column(
                t.schema.get_field_index("idx"), "idx", pa.array([-i - 1 for i in t["idx"].to_pylist()])
            ),
            "has a null or negative example idx",
        ),
    ],
)
def test_a_part_whose_key_columns_lie_is_refused(source, tmp_path, prefix, change, message):
    bundle = tmp_path / "lab.cebundle"
    export_bundle(source, bundle)
    crafted = tmp_path / "crafted.cebundle"
    crafted.write_bytes(reseal(rewrite_part(bundle_entries(bundle), prefix, change)))
    target = tmp_path / "store"
    result = CliRunner().invoke(cli, ["bundle", "import", str(crafted), "--store", str(target)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not target.exists()


def test_a_part_without_the_columns_added_later_imports(source, tmp_path):
    bundle = tmp_path / "lab.cebundle"
    export_bundle(source, bundle)
    entries = rewrite_part(
        bundle_entries(bundle),
        "predictions/model_a/",
        lambda t: t.drop_columns(list(ADDED_LATER["predictions"])),
    )
    crafted = tmp_path / "crafted.cebundle"
    crafted.write_bytes(reseal(entries))
    target = Store(tmp_path / "b")
    import_bundle(target, crafted)
    assert compare_output(target) == compare_output(source)


def test_a_part_with_other_rows_under_the_same_run_is_a_conflict(source, tmp_path):
    bundle = tmp_path / "lab.cebundle"
    export_bundle(source, bundle)
    target = Store(tmp_path / "b")
    import_bundle(target, bundle)
    part = next(p for p in target.live_parts()["predictions"] if p.partition["model"] == "a")
    table = pq.read_table(target.root / part.path)
    flipped = pa.array([not v for v in table["correct"].to_pylist()])
    table = table.set_column(table.schema.get_field_index("correct"), "correct", flipped)
    pq.write_table(table.replace_schema_metadata(None), target.root / part.path)
    before = snapshot(target.root)
    with pytest.raises(BundleError, match=f"run {part.run_id} exists .* with different content"):
        import_bundle(target, bundle)
    assert snapshot(target.root) == before


def test_embeddings_of_other_widths_and_precisions_load_as_configs_of_their_own(source, tmp_path):
    import datasets
    import numpy as np

    with source.run("test", {}) as run:
        for model, dim, dtype in (("a", 4, "float32"), ("b", 4, "float16"), ("c", 8, "float32")):
            vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.ones(3 * dim, dtype=dtype)), dim)
            run.write(
                "embeddings",
                {"model": model, "stage": "pretrained", "dataset": "toy"},
                pa.table({"example_id": ["x1", "x2", "x3"], "vector": vectors}),
            )
    folder = unzipped(source, tmp_path)
    card = (folder / "README.md").read_text()
    assert "config_name: predictions\n" in card and "config_name: embeddings\n" not in card
    for config, model in (
        ("embeddings-float32x4", "a"),
        ("embeddings-float16x4", "b"),
        ("embeddings-float32x8", "c"),
    ):
        loaded = datasets.load_dataset(str(folder), config, split="train", cache_dir=str(tmp_path / "hf"))
        assert sorted(set(zip(loaded["model"], loaded["stage"], loaded["dataset"], strict=True))) == [
            (model, "pretrained", "toy")
        ]
        assert loaded.num_rows == 3
    target = Store(tmp_path / "b")
    import_bundle(target, tmp_path / "lab.cebundle")
    got = connect(target).sql("select model, vector from embeddings order by model, example_id").fetchall()
    assert [(m, len(v)) for m, v in got] == [("a", 4)] * 3 + [("b", 4)] * 3 + [("c", 8)] * 3
    types = {
        p.partition["model"]: pq.read_schema(target.root / p.path).field("vector").type
        for p in target.live_parts()["embeddings"]
    }
    assert types == {
        "a": pa.list_(pa.float32(), 4),
        "b": pa.list_(pa.float16(), 4),
        "c": pa.list_(pa.float32(), 8),
    }
