"""Bundles: one file to share a store's results between labs.

A bundle is a plain ZIP of the selected Parquet parts, the run records that wrote them, a
``manifest.json`` (schema version, every file with its size and sha256, the exporting ce
version) and a Hugging Face dataset card (``README.md`` with a YAML header). pandas, polars,
Spark or DuckDB read the Parquet without ce once unzipped. The ZIP comment holds the sha256
of every byte before it, so flipping any byte of the file fails the import.

Import never executes anything and verifies everything before touching the store: entry
names (no absolute paths, no ``..``, no links, no duplicates), the manifest against the
entries (nothing missing, nothing extra), sizes (a decompression bomb stops at the declared
size), checksums, the schema version and run-id conflicts. Then it merges under the store
lock: parts first (invisible until their record exists), records last. Importing the same
bundle twice changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath

from . import atomic
from .errors import CeError, StoreError
from .schema import KINDS, SCHEMA_VERSION
from .store import Store

FORMAT = "ce-bundle"
BUNDLE_VERSION = 1
DIGEST_LEN = 64  # hex sha256 in the ZIP comment
CHUNK = 1 << 20


class BundleError(CeError):
    """A bundle that cannot be trusted or merged."""


@dataclass(frozen=True)
class Selection:
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()

    def keeps(self, partition: dict[str, str]) -> bool:
        if self.models and "model" in partition and partition["model"] not in self.models:
            return False
        return not (self.datasets and partition.get("dataset") not in self.datasets)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _card(manifest: dict) -> str:
    kinds = sorted({f["path"].split("/")[0] for f in manifest["files"] if f["path"].split("/")[0] in KINDS})
    configs = "\n".join(f'- config_name: {k}\n  data_files: "{k}/**/*.parquet"' for k in kinds)
    runs = len(manifest["runs"])
    return (
        f"---\nlicense: other\npretty_name: ce comparison results\ntags:\n- ce\n"
        f"- model-compression\nconfigs:\n{configs}\n---\n\n# ce results bundle\n\n"
        f"Per-example artifacts written by ce {manifest['exported_by']} (store schema"
        f" version {manifest['schema_version']}): {', '.join(kinds)}, from {runs} run(s)."
        f" Partition keys are in the folder names (Hive style); `runs/*.json` records how"
        f" each part was produced. Import with `ce bundle import FILE`, or read the Parquet"
        f" files with any Parquet reader.\n"
    )


def export_bundle(store: Store, out: str | Path, selection: Selection = Selection()) -> dict:
    """Write the live parts that ``selection`` keeps, their runs and a manifest to ``out``."""
    if not store.exists():
        raise StoreError(f"no store at {store.root}; nothing to export")
    parts = [p for ps in store.live_parts().values() for p in ps if selection.keeps(p.partition)]
    if not parts:
        raise BundleError("the selection matches no stored results; check --model/--dataset")
    records = {r["run_id"]: r for r in store.runs()}
    by_run: dict[str, list] = {}
    for p in parts:
        run_id = PurePosixPath(p.path).stem.removeprefix("part-")
        by_run.setdefault(run_id, []).append(p.path)
    entries: dict[str, bytes] = {}
    for run_id, paths in sorted(by_run.items()):
        rec = dict(records[run_id])
        rec["parts"] = [q for q in rec["parts"] if q["path"] in paths]
        entries[f"runs/{run_id}.json"] = json.dumps(rec, indent=2, default=str).encode()
        for path in sorted(paths):
            entries[path] = (store.root / path).read_bytes()
    manifest = {
        "format": FORMAT,
        "bundle_version": BUNDLE_VERSION,
        "schema_version": SCHEMA_VERSION,
        "exported_by": metadata.version("ce"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": sorted(by_run),
        "files": [{"path": k, "size": len(v), "sha256": _sha256(v)} for k, v in sorted(entries.items())],
    }
    entries["README.md"] = _card(manifest).encode()
    manifest["files"].append(
        {"path": "README.md", "size": len(entries["README.md"]), "sha256": _sha256(entries["README.md"])}
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=2))
        for name, data in sorted(entries.items()):
            z.writestr(name, data)
        z.comment = b"0" * DIGEST_LEN
    data = bytearray(buffer.getvalue())
    data[-DIGEST_LEN:] = _sha256(bytes(data[:-DIGEST_LEN])).encode()
    target = Path(out)
    if not target.parent.exists():
        raise CeError(f"cannot write {out}: folder {target.parent} does not exist")
    atomic.write_bytes(target, bytes(data))
    return {"runs": len(by_run), "parts": len(parts), "bytes": len(data), "path": str(target)}


def read_bundle(path: str | Path) -> tuple[dict, dict[str, bytes]]:
    """Verify a bundle completely and return (manifest, {entry: bytes}); writes nothing."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no such bundle: {path}")
    return verify_bytes(path.read_bytes(), str(path))


def verify_bytes(raw: bytes, path: str = "the bundle") -> tuple[dict, dict[str, bytes]]:
    """What :func:`read_bundle` does, on the bundle's bytes."""
    if len(raw) <= DIGEST_LEN or _sha256(raw[:-DIGEST_LEN]).encode() != raw[-DIGEST_LEN:]:
        raise BundleError(
            f"{path} is damaged or altered: its checksum does not match; ask for the file again"
        )
    try:
        z = zipfile.ZipFile(io.BytesIO(raw))
        infos = z.infolist()
    except (zipfile.BadZipFile, ValueError) as e:
        raise BundleError(f"{path} is not a ce bundle ({e})") from None
    names = [i.filename for i in infos]
    for info in infos:
        _check_name(info)
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise BundleError(f"bundle entry {duplicate!r} appears twice; refusing the bundle")
    if "manifest.json" not in names:
        raise BundleError(f"{path} has no manifest.json; it is not a ce bundle")
    manifest = _manifest(z.read("manifest.json"))
    listed = {f["path"]: f for f in manifest["files"]}
    extra = sorted(set(names) - set(listed) - {"manifest.json"})
    missing = sorted(set(listed) - set(names))
    if extra:
        raise BundleError(f"bundle entry {extra[0]!r} is not in the manifest; refusing the bundle")
    if missing:
        raise BundleError(f"bundle entry {missing[0]!r} is in the manifest but missing")
    contents = {}
    for info in infos:
        if info.filename == "manifest.json":
            continue
        expected = listed[info.filename]
        if info.file_size != expected["size"]:
            raise BundleError(
                f"bundle entry {info.filename!r} declares {info.file_size} bytes,"
                f" the manifest {expected['size']}; refusing the bundle"
            )
        data = _read_limited(z, info, expected["size"])
        if _sha256(data) != expected["sha256"]:
            raise BundleError(f"bundle entry {info.filename!r} fails its sha256 check")
        contents[info.filename] = data
    return manifest, contents


def _check_name(info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = PurePosixPath(name).parts
    if (
        name.startswith(("/", "\\"))
        or (len(name) > 1 and name[1] == ":")
        or ".." in parts
        or "\\" in name
        or not parts
    ):
        raise BundleError(f"bundle entry {name!r} has an unsafe path; refusing the bundle")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise BundleError(f"bundle entry {name!r} is a link; refusing the bundle")
    if info.is_dir():
        raise BundleError(f"bundle entry {name!r} is a folder entry; refusing the bundle")


def _read_limited(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """Read an entry, stopping at ``limit`` bytes whatever its header says."""
    out = bytearray()
    try:
        with z.open(info) as f:
            while chunk := f.read(min(CHUNK, limit + 1 - len(out))):
                out += chunk
                if len(out) > limit:
                    raise BundleError(
                        f"bundle entry {info.filename!r} expands beyond the"
                        f" {limit} bytes of its manifest; refusing the bundle"
                    )
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise BundleError(f"bundle entry {info.filename!r} cannot be read ({e})") from None
    return bytes(out)


def _manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
        assert manifest["format"] == FORMAT and isinstance(manifest["files"], list)
        assert all({"path", "size", "sha256"} <= set(f) for f in manifest["files"])
    except (ValueError, KeyError, TypeError, AssertionError):
        raise BundleError("manifest.json is not a ce bundle manifest") from None
    if manifest.get("bundle_version") != BUNDLE_VERSION:
        raise BundleError(
            f"bundle version {manifest.get('bundle_version')} is not"
            f" {BUNDLE_VERSION}; use a ce release that reads it"
        )
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(
            f"the bundle holds store schema version {manifest.get('schema_version')},"
            f" this ce reads {SCHEMA_VERSION}; use a matching ce release"
        )
    return manifest


def import_bundle(store: Store, path: str | Path) -> dict:
    """Merge a verified bundle into ``store``; the same bundle twice changes nothing."""
    manifest, contents = read_bundle(path)
    existing = {r["run_id"]: r for r in store.runs()}
    new_runs, same = {}, 0
    for run_id in manifest["runs"]:
        record_bytes = contents.get(f"runs/{run_id}.json")
        if record_bytes is None:
            raise BundleError(f"the bundle lists run {run_id} but holds no record of it")
        record = json.loads(record_bytes)
        for part in record.get("parts", []):
            if part["path"] not in contents or part["kind"] not in KINDS:
                raise BundleError(f"run {run_id} names part {part['path']!r} that the bundle does not hold")
        if run_id in existing:
            if _same_run(existing[run_id], record, store, contents):
                same += 1
                continue
            raise BundleError(
                f"run {run_id} exists in {store.root} with different content;"
                " remove one of them, or import into another store"
            )
        new_runs[run_id] = record
    if new_runs:
        store._init()
        with store.lock():
            for record in new_runs.values():
                for part in record["parts"]:
                    target = store.root / part["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    atomic.write_bytes(target, contents[part["path"]])
            for run_id, record in new_runs.items():  # the commit points, last
                atomic.write_bytes(
                    store.root / "runs" / f"{run_id}.json", json.dumps(record, indent=2).encode()
                )
    return {
        "imported": len(new_runs),
        "already_there": same,
        "parts": sum(len(r["parts"]) for r in new_runs.values()),
    }


def _same_run(local: dict, incoming: dict, store: Store, contents: dict[str, bytes]) -> bool:
    def without_parts(record: dict) -> dict:
        return {k: v for k, v in record.items() if k != "parts"}

    if json.dumps(without_parts(local), sort_keys=True, default=str) != json.dumps(
        without_parts(incoming), sort_keys=True, default=str
    ):
        return False
    local_parts = {p["path"] for p in local.get("parts", [])}
    for part in incoming.get("parts", []):
        mine = store.root / part["path"]
        if (
            part["path"] not in local_parts
            or not mine.is_file()
            or _sha256(mine.read_bytes()) != _sha256(contents[part["path"]])
        ):
            return False
    return True


def inspect_bundle(path: str | Path) -> list[dict]:
    """One row per part of a verified bundle (nothing is imported)."""
    manifest, contents = read_bundle(path)
    rows = []
    for run_id in manifest["runs"]:
        record = json.loads(contents[f"runs/{run_id}.json"])
        for part in record["parts"]:
            rows.append(
                {
                    "run_id": run_id,
                    "command": record.get("command"),
                    "kind": part["kind"],
                    **{k: part["partition"].get(k) for k in ("model", "dataset")},
                    "rows": part.get("rows"),
                    "bytes": len(contents[part["path"]]),
                }
            )
    return rows
