"""Bundles: one file to share a store's results between labs.

A bundle is a plain ZIP of the selected Parquet parts, the run records that wrote them, a
``manifest.json`` (schema version, every file with its size and sha256, the exporting ce
version) and a Hugging Face dataset card (``README.md`` with a YAML header, one config per
kind). The ZIP comment holds the sha256 of every byte before it, so flipping any byte of the
file fails the import.

Every part in a bundle carries its partition keys (model, dataset, stage, bank, attack) as
string columns of its own, after the kind's columns, and lies at
``KIND/key_value/.../part-<run_id>.parquet``: unzipped, ``datasets.load_dataset``, pandas,
polars, pyarrow and DuckDB read each kind with its keys, none of them from folder names (the
Hugging Face loader reads no Hive folders, and pandas and pyarrow refuse a column that both a
file and a ``key=value`` folder hold). Partition values never hold ``_``, so the folder names
read back unambiguously. The bundle's run records name the parts at these paths; import
checks that every row's keys are its folders', and stores the part without them, in the
store's layout. Bundles of version 1 (parts at their store paths, keys only in folder names)
still import. A part may lack the nullable columns that a later release added to its kind
(``ADDED_LATER``); export fills them with nulls, so every file of a kind has one schema.

A bundle is untrusted input. Import and inspect verify every claim before anything is
written, streaming entry by entry (memory stays flat whatever the bundle's size):

- the file: its sha256, a ZIP whose entries have safe, unique names, no links or folders;
- the manifest: nothing missing or extra, each entry's size and sha256, a total size
  under ``max_size`` (a decompression bomb stops at its declared size);
- the records: each parses into the typed run-record schema (no unknown fields, no dates
  in the future, status complete), and names its parts by the bundle layout above, or by
  the store layout ``KIND/key=value/.../part-<run_id>.parquet`` (version 1), with its own
  run id;
- the parts: every entry besides the manifest, the card and the records is a part that a
  record names; each part's Arrow schema is its kind's (plus its key columns in the bundle
  layout), its row count and list lengths are the record's, every row carries the record's
  run id and its folders' keys, and an examples part's content has the fingerprint that
  its run claims.

Then, under the store lock, against the store: a dataset of the same name must hold the
same examples (else ``--rename-dataset``), a partition the store already fills from another
run is a conflict (else ``--rename-model``), and a run already in the store must be the same
run (the same rows, whatever their bytes). Parts are copied to temporary files, checked
again (and rid of their key columns), and renamed into place; records, the commit points,
come last. Any failure removes everything the import wrote. A bundle
never writes the store marker, a model folder, or a record of a run that is not its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import atomic
from .errors import CeError, NotFound, StoreError, did_you_mean
from .records import RUN_ID, parse_record, part_path
from .schema import (
    ADDED_LATER,
    HEAD,
    HEAD_COLUMNS,
    KINDS,
    LIST_COLUMNS,
    NAME_PATTERN,
    SCHEMA_VERSION,
    check_name,
    examples_fingerprint,
)
from .store import Store, _remove_empty_store, check_schema_version, commit_all, now, temp_part

FORMAT = "ce-bundle"
BUNDLE_VERSION = 2  # 2: parts carry their key columns, at KIND/key_value/.../part-RUN.parquet
READS = (1, 2)  # 1: parts at their store paths, keys only in the folder names
BATCH = 16_384  # rows per batch where a part is read to be checked
BATCH_BYTES = 8 << 20  # a part that export or import rewrites: about this much per batch (row group)
# In a bundle part, the sha256 of the store part that export made it from; in a store part
# that import rewrote, the sha256 of its bundle entry. Either says "same rows" without
# reading them: the first is the bundle's claim, but one that lies only keeps the store's
# own part (a part the store holds is never replaced).
SOURCE_SHA256 = b"ce.source_sha256"
ENTRY_SHA256 = b"ce.bundle_entry_sha256"
DIGEST_LEN = 64  # hex sha256 in the ZIP comment
CHUNK = 1 << 20
MAX_ENTRIES = 100_000
MAX_DIRECTORY = 32 << 20  # bytes of the ZIP's central directory
MAX_MANIFEST = 16 << 20
MAX_RECORD = 4 << 20  # a run record (and the card)
MAX_FOOTER = 16 << 20  # a part's Parquet footer
SLACK = 128 << 20  # a row group may expand to 2 x its part's size plus this when read
READ_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError)
DEFAULT_MAX_SIZE = 64 << 30  # total uncompressed bytes; --max-size raises it
LOCAL_ONLY = ("imported", "committed")  # record fields that say where a run landed, not what it is


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


@dataclass(frozen=True)
class Renames:
    """Names to change on import: datasets (partition keys dataset and bank) and models."""

    datasets: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)

    def apply(self, key: str, value: str) -> str:
        table = self.models if key == "model" else self.datasets if key in ("dataset", "bank") else {}
        return table.get(value, value)

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {k: v for k, v in (("datasets", self.datasets), ("models", self.models)) if v}


@dataclass
class Verified:
    """A bundle whose every claim was checked: records (renamed), and per part path in the
    store the entry it comes from, its sha256 and, for examples, the content fingerprint."""

    path: Path
    digest: str
    manifest: dict
    records: dict[str, dict]
    entry_of: dict[str, str]  # store path -> bundle entry name (the same path in version 1)
    sha256: dict[str, str]  # bundle entry name -> sha256
    size: dict[str, int]  # bundle entry name -> bytes
    fingerprints: dict[str, str]  # store path of an examples part -> fingerprint
    renames: dict[str, dict[str, str]] = field(default_factory=dict)
    keyed: frozenset[str] = frozenset()  # entries in the bundle layout: parts with key columns


# -- layout ------------------------------------------------------------------------------
def bundle_path(kind_name: str, partition: dict[str, str], run_id: str) -> str:
    """Where a bundle holds the part of ``kind_name`` for ``partition`` by ``run_id``."""
    folders = "/".join(f"{key}_{partition[key]}" for key in KINDS[kind_name].keys)
    return f"{kind_name}/{folders}/part-{run_id}.parquet"


def store_path(entry: str) -> str | None:
    """The store path of a part at ``entry`` in the bundle layout; None for any other name."""
    names = entry.split("/")
    if len(names) < 3 or names[0] not in KINDS or len(names) - 2 != len(KINDS[names[0]].keys):
        return None
    partition = {}
    for key, folder in zip(KINDS[names[0]].keys, names[1:-1], strict=True):
        name, sep, value = folder.partition("_")
        if name != key or not sep or not NAME_PATTERN.fullmatch(value):
            return None
        partition[key] = value
    run_id = names[-1].removeprefix("part-").removesuffix(".parquet")
    if names[-1] != f"part-{run_id}.parquet" or not RUN_ID.fullmatch(run_id):
        return None
    return part_path(names[0], partition, run_id)


def _conformed(batch: pa.RecordBatch, kind_name: str) -> pa.RecordBatch:
    """``batch`` (a part's rows, without key columns) with every column of its kind, in the
    kind's order: one that a later release added null, a missing head column derived from
    its list."""
    columns, fields = [], []
    for f in KINDS[kind_name].schema:
        if f.name in batch.schema.names:
            columns.append(batch[f.name])
            fields.append(batch.schema.field(f.name))
        elif f.name in ADDED_LATER.get(kind_name, ()):
            columns.append(pa.nulls(batch.num_rows, f.type))
            fields.append(f)
        elif f.name == HEAD_COLUMNS.get(kind_name) and LIST_COLUMNS[kind_name] in batch.schema.names:
            head = pc.list_slice(batch[LIST_COLUMNS[kind_name]], 0, HEAD, return_fixed_size_list=False)
            columns.append(head.cast(f.type))
            fields.append(f)
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))


def _reader(source) -> pq.ParquetFile:
    """A part to read batch by batch: column chunks streamed, not held whole."""
    return pq.ParquetFile(source, pre_buffer=False, buffer_size=CHUNK)


def _batch_rows(pf: pq.ParquetFile) -> int:
    """Rows per batch of about BATCH_BYTES (uncompressed) of the part ``pf``."""
    meta = pf.metadata
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return int(min(4 * BATCH, max(1024, BATCH_BYTES * max(meta.num_rows, 1) / max(size, 1))))


def _bundle_schema(stored: pa.Schema, kind_name: str) -> pa.Schema:
    """The schema of a bundle part made of a store part of schema ``stored``."""
    schema = _conformed(pa.RecordBatch.from_pylist([], schema=stored.remove_metadata()), kind_name).schema
    for key in KINDS[kind_name].keys:
        schema = schema.append(pa.field(key, pa.string()))
    return schema


def _keyed_part(source: Path, tmp: Path, kind_name: str, partition: dict[str, str]) -> None:
    """Write the store's part ``source`` to ``tmp`` as a bundle holds it: conformed to its
    kind, its key columns appended, the sha256 of ``source`` in its metadata."""
    pf = _reader(source)
    keys = KINDS[kind_name].keys
    schema = _bundle_schema(pf.schema_arrow, kind_name)
    schema = schema.with_metadata({SOURCE_SHA256: _file_sha256(source).encode()})
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in pf.iter_batches(batch_size=_batch_rows(pf)):
            batch = _conformed(batch, kind_name)
            for key in keys:
                batch = batch.append_column(key, pa.array([partition[key]] * batch.num_rows, pa.string()))
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))


# -- export ------------------------------------------------------------------------------
def _configs(schemas: dict[str, pa.Schema]) -> str:
    """The card's configs for the bundle parts of these schemas (by path): one per kind, or
    where a kind's parts differ (vectors of other widths or precisions), one per schema,
    named for its vectors (``embeddings-float16x384``), so that every config loads as one
    table."""
    groups: dict[str, list[tuple[pa.Schema, list[str]]]] = {}
    for path, schema in sorted(schemas.items()):
        kind_groups = groups.setdefault(path.split("/")[0], [])
        same = next((paths for seen, paths in kind_groups if seen.equals(schema)), None)
        if same is None:
            kind_groups.append((schema, [path]))
        else:
            same.append(path)
    out = []
    for kind_name, kind_groups in sorted(groups.items()):
        if len(kind_groups) == 1:
            out.append(f'- config_name: {kind_name}\n  data_files: "{kind_name}/**/*.parquet"')
            continue
        named: set[str] = set()
        for n, (schema, paths) in enumerate(kind_groups):
            name = kind_name
            if kind_name == "embeddings":
                vector = schema.field("vector").type
                size = f"x{vector.list_size}" if pa.types.is_fixed_size_list(vector) else ""
                name = f"{kind_name}-float{vector.value_type.bit_width}{size}"
            name = f"{name}-{n + 1}" if name in named or name == kind_name else name
            named.add(name)
            files = "".join(f'\n  - "{p}"' for p in paths)
            out.append(f"- config_name: {name}\n  data_files:{files}")
    return "\n".join(out)


def _card(manifest: dict, schemas: dict[str, pa.Schema]) -> str:
    configs = _configs(schemas)
    kinds = sorted({path.split("/")[0] for path in schemas})
    keys = ", ".join(f"{k} ({', '.join(KINDS[k].keys)})" for k in kinds)
    return (
        f"---\nlicense: other\npretty_name: ce comparison results\ntags:\n- ce\n"
        f"- model-compression\nconfigs:\n{configs}\n---\n\n# ce results bundle\n\n"
        f"Per-example artifacts written by ce {manifest['exported_by']} (store schema"
        f" version {manifest['schema_version']}) from {len(manifest['runs'])} run(s), one"
        f" config per kind (per kind and vector type where the vectors differ). Every Parquet"
        f" file holds its partition keys as string columns:"
        f" {keys}; the folders `key_value/` name them too, but not Hive style, so no reader"
        f" adds them twice. `runs/*.json` records how each part was produced. Load a config with"
        f" `datasets.load_dataset(FOLDER, KIND)`, read the Parquet with any reader (pandas,"
        f" polars, pyarrow, DuckDB), or import the bundle into a store with"
        f" `ce bundle import FILE`.\n"
    )


def _file_sha256(path: Path, stop: int | None = None) -> str:
    h = hashlib.sha256()
    left = path.stat().st_size if stop is None else stop
    with open(path, "rb") as f:
        while left > 0 and (chunk := f.read(min(CHUNK, left))):
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def export_bundle(store: Store, out: str | Path, selection: Selection = Selection()) -> dict:
    """Write the live parts that ``selection`` keeps, their runs and a manifest to ``out``,
    streaming every part from disk (one part at a time through a temporary file beside
    ``out``, where it gains its key columns)."""
    if not store.exists():
        raise StoreError(f"no store at {store.root}; nothing to export")
    target = Path(out)
    if not target.parent.exists():
        raise CeError(f"cannot write {out}: folder {target.parent} does not exist")
    live = [p for ps in store.live_parts().values() for p in ps]
    for key, wanted in (("model", selection.models), ("dataset", selection.datasets)):
        held = sorted({p.partition[key] for p in live if key in p.partition})
        for name in wanted:
            if name not in held:
                raise NotFound(
                    f"the store holds no results of {key} {name!r}{did_you_mean(name, held)};"
                    f" its {key}s: {', '.join(held[:10]) or 'none'}"
                )
    parts = sorted(
        (p for p in live if selection.keeps(p.partition)),
        key=lambda p: bundle_path(p.kind, p.partition, p.run_id),
    )
    if not parts:
        raise BundleError("the selection matches no stored results; check --model/--dataset")
    records = {r["run_id"]: r for r in store.runs()}
    by_run: dict[str, list[str]] = {}
    for p in parts:
        by_run.setdefault(p.run_id, []).append(p.path)
    exported = {p.partition["model"] for p in parts if "model" in p.partition}
    for run_id, r in records.items():  # runs that only say a model is a replica (--replica-of)
        if r.get("replica") and not r["parts"] and r["status"] == "complete" and r.get("model") in exported:
            by_run.setdefault(run_id, [])
    small: dict[str, bytes] = {}
    for run_id, paths in sorted(by_run.items()):
        rec = {k: v for k, v in records[run_id].items() if k not in LOCAL_ONLY}
        rec["parts"] = [
            {**q, "path": bundle_path(q["kind"], q["partition"], run_id)}
            for q in rec["parts"]
            if q["path"] in paths
        ]
        small[f"runs/{run_id}.json"] = json.dumps(rec, indent=2, default=str).encode()
    manifest = {
        "format": FORMAT,
        "bundle_version": BUNDLE_VERSION,
        "schema_version": SCHEMA_VERSION,
        "exported_by": metadata.version("ce"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": sorted(by_run),
        "files": [],
    }
    schemas = {
        bundle_path(p.kind, p.partition, p.run_id): _bundle_schema(
            pq.read_schema(store.root / p.path), p.kind
        )
        for p in parts
    }
    small["README.md"] = _card(manifest, schemas).encode()
    files: dict[str, tuple[int, str]] = {}
    with atomic.atomic_path(target) as tmp:
        keyed = atomic.temp_name(target)
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
                for name, data in small.items():
                    z.writestr(name, data)
                    files[name] = (len(data), hashlib.sha256(data).hexdigest())
                for p in parts:  # the manifest lists what the ZIP holds, so it comes last
                    name = bundle_path(p.kind, p.partition, p.run_id)
                    _keyed_part(store.root / p.path, keyed, p.kind, p.partition)
                    files[name] = (keyed.stat().st_size, _file_sha256(keyed))
                    z.write(keyed, name)
                    keyed.unlink()
                manifest["files"] = [
                    {"path": k, "size": s, "sha256": h} for k, (s, h) in sorted(files.items())
                ]
                z.writestr("manifest.json", json.dumps(manifest, indent=2))
                z.comment = b"0" * DIGEST_LEN
        finally:
            keyed.unlink(missing_ok=True)
        size = tmp.stat().st_size
        digest = _file_sha256(tmp, size - DIGEST_LEN)
        with open(tmp, "r+b") as f:
            f.seek(size - DIGEST_LEN)
            f.write(digest.encode())
    return {"runs": len(by_run), "parts": len(parts), "bytes": size, "path": str(target)}


# -- verification ------------------------------------------------------------------------
def read_bundle(path: str | Path, max_size: int = DEFAULT_MAX_SIZE, renames: Renames = Renames()) -> Verified:
    """Verify a bundle completely (see the module's help); writes nothing."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no such bundle: {path}; check the file name")
    size = path.stat().st_size
    digest = _file_sha256(path, size - DIGEST_LEN) if size > DIGEST_LEN else ""
    with open(path, "rb") as f:
        f.seek(max(0, size - DIGEST_LEN))
        stored = f.read()
    if not digest or digest.encode() != stored:
        raise BundleError(
            f"{path} is damaged or altered: its checksum does not match; ask for the file again"
        )
    _check_directory(path, size)
    try:
        z = zipfile.ZipFile(path)
    except READ_ERRORS as e:
        raise BundleError(f"{path} is not a ce bundle ({e}); ask for the file again") from None
    with z:
        return _verify(z, path, digest, max_size, renames)


def _check_directory(path: Path, size: int) -> None:
    """Refuse a central directory too large to parse, before zipfile parses it: the end
    record sits right before the 64-byte comment (its zip64 form, 20 and 56 bytes before)."""
    with open(path, "rb") as f:
        f.seek(max(0, size - DIGEST_LEN - 22 - 20 - 56))
        tail = f.read()
    end = tail[-(DIGEST_LEN + 22) :]
    if len(end) < 22 + DIGEST_LEN or end[:4] != b"PK\x05\x06":
        raise BundleError(f"{path} is not a ce bundle (no ZIP directory before its checksum)")
    entries = int.from_bytes(end[10:12], "little")
    directory = int.from_bytes(end[12:16], "little")
    zip64 = tail[: -(DIGEST_LEN + 22)][-20 - 56 :]
    if len(zip64) == 76 and zip64[:4] == b"PK\x06\x06" and zip64[56:60] == b"PK\x06\x07":
        entries = int.from_bytes(zip64[32:40], "little")
        directory = int.from_bytes(zip64[40:48], "little")
    if entries > MAX_ENTRIES or directory > MAX_DIRECTORY:
        raise BundleError(
            f"{path} lists {entries:,} entries in a directory of {directory:,} bytes, more than a ce"
            f" bundle holds ({MAX_ENTRIES:,} entries, {MAX_DIRECTORY:,} bytes); refusing the bundle"
        )


def _verify(z: zipfile.ZipFile, path: Path, digest: str, max_size: int, renames: Renames) -> Verified:
    infos = z.infolist()
    if len(infos) > MAX_ENTRIES:
        raise BundleError(f"{path} has {len(infos)} entries, more than {MAX_ENTRIES}; refusing the bundle")
    seen: set[str] = set()
    for info in infos:
        _check_name(info)
        if info.filename in seen:
            raise BundleError(f"bundle entry {info.filename!r} appears twice; refusing the bundle")
        seen.add(info.filename)
    by_name = {i.filename: i for i in infos}
    if "manifest.json" not in by_name:
        raise BundleError(f"{path} has no manifest.json; it is not a ce bundle")
    manifest = _manifest(_read_small(z, by_name["manifest.json"], MAX_MANIFEST))
    listed = {f["path"]: f for f in manifest["files"]}
    extra = sorted(set(by_name) - set(listed) - {"manifest.json"})
    missing = sorted(set(listed) - set(by_name))
    if extra:
        raise BundleError(f"bundle entry {extra[0]!r} is not in the manifest; refusing the bundle")
    if missing:
        raise BundleError(f"bundle entry {missing[0]!r} is in the manifest but missing")
    total = 0
    for name, expected in listed.items():
        if by_name[name].file_size != expected["size"]:
            raise BundleError(
                f"bundle entry {name!r} declares {by_name[name].file_size} bytes,"
                f" the manifest {expected['size']}; refusing the bundle"
            )
        total += expected["size"]
    if total > max_size:
        raise BundleError(
            f"{path} expands to {total:,} bytes, more than the limit of {max_size:,};"
            " if you trust it, pass --max-size with a larger value"
        )
    records, entry_of = _records(z, by_name, listed, manifest)
    keyed = frozenset(e for p, e in entry_of.items() if e != p)
    for name, expected in listed.items():
        if not name.startswith("runs/"):
            found = _hash_limited(z, by_name[name], expected["size"])
            if found != expected["sha256"]:
                raise BundleError(f"bundle entry {name!r} fails its sha256 check")
    named = set(entry_of.values())
    stray = sorted(set(listed) - named - {"README.md"} - {f"runs/{r}.json" for r in records})
    if stray:
        raise BundleError(
            f"bundle entry {stray[0]!r} is not a part that a run record names; refusing the bundle"
        )
    fingerprints: dict[str, str] = {}
    for run_id, record in records.items():
        for part in record["parts"]:
            entry = entry_of[part["path"]]
            fp = _check_part(z, by_name[entry], part, run_id, entry in keyed)
            if fp is not None:
                fingerprints[part["path"]] = fp
                claimed = record.get("dataset_fingerprint")
                if record.get("dataset") == part["partition"]["dataset"] and claimed and claimed != fp:
                    raise BundleError(
                        f"run {run_id} claims dataset fingerprint {claimed[:12]} but its examples"
                        f" part holds {fp[:12]}; refusing the bundle"
                    )
    return _renamed(
        Verified(
            path,
            digest,
            manifest,
            records,
            entry_of,
            {n: f["sha256"] for n, f in listed.items()},
            {n: f["size"] for n, f in listed.items()},
            fingerprints,
            keyed=keyed,
        ),
        renames,
    )


def _check_name(info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = PurePosixPath(name).parts
    if (
        name.startswith(("/", "\\"))
        or (len(name) > 1 and name[1] == ":")
        or ".." in parts
        or "\\" in name
        or not parts
        or any(ord(c) < 32 for c in name)
    ):
        raise BundleError(f"bundle entry {name[:200]!r} has an unsafe path; refusing the bundle")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise BundleError(f"bundle entry {name!r} is a link; refusing the bundle")
    if info.is_dir():
        raise BundleError(f"bundle entry {name!r} is a folder entry; refusing the bundle")


def _hash_limited(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> str:
    """sha256 of an entry's bytes, refusing it past ``limit`` bytes whatever its header says."""
    h, read, name = hashlib.sha256(), 0, info.filename
    try:
        with z.open(info) as f:
            while chunk := f.read(min(CHUNK, limit + 1 - read)):
                read += len(chunk)
                if read > limit:
                    raise BundleError(
                        f"bundle entry {name!r} expands beyond the {limit} bytes of its manifest;"
                        " refusing the bundle"
                    )
                h.update(chunk)
    except READ_ERRORS as e:
        raise BundleError(f"bundle entry {name!r} cannot be read ({e}); ask for the file again") from None
    return h.hexdigest()


def _read_small(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int = MAX_RECORD) -> bytes:
    if info.file_size > limit:
        raise BundleError(f"bundle entry {info.filename!r} is {info.file_size:,} bytes; refusing the bundle")
    out = bytearray()
    try:
        with z.open(info) as f:
            while chunk := f.read(min(CHUNK, info.file_size + 1 - len(out))):
                out += chunk
                if len(out) > info.file_size:
                    raise BundleError(
                        f"bundle entry {info.filename!r} expands beyond its size; refusing the bundle"
                    )
    except READ_ERRORS as e:
        raise BundleError(
            f"bundle entry {info.filename!r} cannot be read ({e}); ask for the file again"
        ) from None
    return bytes(out)


def _manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
        assert isinstance(manifest, dict) and manifest.get("format") == FORMAT
        assert isinstance(manifest["files"], list) and isinstance(manifest.get("runs", []), list)
        assert all(isinstance(r, str) for r in manifest.get("runs", []))
        for f in manifest["files"]:
            assert isinstance(f, dict) and isinstance(f.get("path"), str)
            assert isinstance(f.get("size"), int) and not isinstance(f["size"], bool) and f["size"] >= 0
            assert isinstance(f.get("sha256"), str)
    except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError, RecursionError):
        raise BundleError(
            "manifest.json is not a ce bundle manifest; the file was not written by ce bundle export"
        ) from None
    if manifest.get("bundle_version") not in READS or type(manifest.get("bundle_version")) is not int:
        raise BundleError(
            f"bundle version {str(manifest.get('bundle_version'))[:20]} is not one this ce reads"
            f" ({', '.join(map(str, READS))}); use a ce release that reads it"
        )
    try:
        check_schema_version(manifest.get("schema_version"), "the bundle")
    except StoreError as e:
        raise BundleError(str(e)) from None
    return manifest


def _to_store_paths(data) -> dict[str, str]:
    """Give the parts that a record (unchecked JSON) names in the bundle layout their store
    paths, for :func:`parse_record` to check; store path -> bundle entry of each."""
    moved = {}
    parts = data.get("parts") if isinstance(data, dict) else None
    for part in parts if isinstance(parts, list) else []:
        entry = part.get("path") if isinstance(part, dict) else None
        if isinstance(entry, str) and (path := store_path(entry)) is not None:
            part["path"] = path
            moved[path] = entry
    return moved


def _records(
    z: zipfile.ZipFile, by_name: dict, listed: dict, manifest: dict
) -> tuple[dict[str, dict], dict[str, str]]:
    """Every run record of the bundle, parsed strictly, matching the manifest's list, and
    the bundle entry of every part they name, by its store path."""
    records, entry_of = {}, {}
    for name in sorted(n for n in listed if n.startswith("runs/")):
        run_id = name.removeprefix("runs/").removesuffix(".json")
        if not (name.endswith(".json") and RUN_ID.fullmatch(run_id)):
            raise BundleError(f"bundle entry {name!r} is not a run record name (runs/<run id>.json)")
        data = _read_small(z, by_name[name])
        if hashlib.sha256(data).hexdigest() != listed[name]["sha256"]:
            raise BundleError(f"bundle entry {name!r} fails its sha256 check")
        try:
            record = json.loads(data)
            moved = _to_store_paths(record)
            record = parse_record(record, f"bundle entry {name!r}", strict=True)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise BundleError(f"bundle entry {name!r} is not JSON ({e}); refusing the bundle") from None
        except StoreError as e:
            raise BundleError(str(e)) from None
        if record["run_id"] != run_id:
            raise BundleError(f"bundle entry {name!r} holds the record of run {record['run_id']}")
        if record["status"] != "complete":
            raise BundleError(f"bundle entry {name!r} is a run that did not complete; refusing the bundle")
        for part in record["parts"]:
            entry = moved.get(part["path"], part["path"])
            if entry not in listed:
                raise BundleError(f"run {run_id} names part {entry!r} that the bundle does not hold")
            entry_of.setdefault(part["path"], entry)
        records[run_id] = record
    if sorted(records) != sorted(manifest.get("runs", [])):
        raise BundleError("the manifest's list of runs differs from the run records; refusing the bundle")
    owners: dict[str, str] = {}
    for run_id, record in records.items():
        for part in record["parts"]:
            if owners.setdefault(part["path"], run_id) != run_id or part["path"].count("part-") != 1:
                raise BundleError(f"part {part['path']!r} is named twice; refusing the bundle")
    return records, entry_of


def _same_type(expected: pa.DataType, found: pa.DataType, name: str) -> bool:
    if name == "vector":  # fixed size per part, float32 or float16
        return (pa.types.is_fixed_size_list(found) or pa.types.is_list(found)) and found.value_type in (
            pa.float32(),
            pa.float16(),
        )
    if pa.types.is_list(expected):
        return pa.types.is_list(found) and found.value_type == expected.value_type
    return found == expected


def _check_part(
    z: zipfile.ZipFile, info: zipfile.ZipInfo, part: dict, run_id: str, keyed: bool
) -> str | None:
    """Check a part against its kind and its record (``keyed``: and its key columns against
    its folders); the fingerprint of an examples part."""
    name, kind_name = info.filename, part["kind"]
    expected = {f.name: f.type for f in KINDS[kind_name].schema}
    keys = {k: part["partition"][k] for k in KINDS[kind_name].keys} if keyed else {}
    expected |= {k: pa.string() for k in keys}
    try:
        with z.open(info) as f:
            return _check_parquet(f, name, kind_name, part, run_id, expected, keys)
    except READ_ERRORS as e:
        raise BundleError(f"bundle entry {name!r} cannot be read ({e}); ask for the file again") from None


def _check_parquet(
    f: IO[bytes], name: str, kind_name: str, part: dict, run_id: str, expected: dict, keys: dict[str, str]
):
    """:func:`_check_part` on the open entry ``f``; ``keys``: the key columns it must hold,
    with the value each must hold in every row."""
    f.seek(0, 2)
    end = f.tell()
    f.seek(max(0, end - 8))
    tail = f.read(8)
    footer = int.from_bytes(tail[:4], "little") if len(tail) == 8 and tail[4:] == b"PAR1" else -1
    if not 0 <= footer <= min(MAX_FOOTER, end - 12):
        raise BundleError(
            f"bundle entry {name!r} is not a readable Parquet file (no footer, or one too large)"
        )
    f.seek(0)
    try:
        pf = pq.ParquetFile(f)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as e:
        raise BundleError(f"bundle entry {name!r} is not a readable Parquet file ({e})") from None
    twice = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if twice:
        raise BundleError(f"bundle entry {name!r} has a column {twice[0]!r} twice; refusing the bundle")
    found = {f.name: f.type for f in schema}
    optional = {HEAD_COLUMNS.get(kind_name), *ADDED_LATER.get(kind_name, ())}
    missing = sorted(set(expected) - set(found) - optional)
    unknown = sorted(set(found) - set(expected))
    wrong = [n for n in found if n in expected and not _same_type(expected[n], found[n], n)]
    if missing or unknown or wrong:
        problem = (
            f"lacks column {missing[0]!r}"
            if missing
            else f"has a column {unknown[0]!r} that {kind_name} parts do not have"
            if unknown
            else f"has column {wrong[0]!r} of type {found[wrong[0]]}, not {expected[wrong[0]]}"
        )
        raise BundleError(f"bundle entry {name!r} {problem}; refusing the bundle")
    if pf.metadata.num_rows != part.get("rows", 0):
        raise BundleError(
            f"bundle entry {name!r} holds {pf.metadata.num_rows} rows, its record says"
            f" {part.get('rows', 0)}; refusing the bundle"
        )
    list_column = LIST_COLUMNS.get(kind_name)
    columns = ["run_id", *([list_column] if list_column else []), *keys]
    if kind_name == "examples":
        columns = list(found)
    if kind_name == "neighbors":  # what the neighbour kernel relies on (ce.query.knn)
        columns += [c for c in ("idx", HEAD_COLUMNS["neighbors"]) if c in found]
    for group in range(pf.metadata.num_row_groups):  # a Parquet bomb stops here, unread
        row_group = pf.metadata.row_group(group)
        chunks = [row_group.column(c) for c in range(row_group.num_columns)]
        expands = sum(c.total_uncompressed_size for c in chunks if c.path_in_schema.split(".")[0] in columns)
        if expands > 2 * end + SLACK:
            raise BundleError(
                f"bundle entry {name!r} expands to {expands:,} bytes in one row group from {end:,};"
                " refusing the bundle"
            )
    span: list[int] = []

    def checked(batches):
        for batch in batches:
            if batch["run_id"].null_count or not pc.all(pc.equal(batch["run_id"], run_id)).as_py():
                raise BundleError(f"bundle entry {name!r} holds rows of another run than {run_id}")
            for key, value in keys.items():
                column = batch[key]
                if column.null_count or not pc.all(pc.equal(column, value)).as_py():
                    other = pc.filter(column, pc.invert(pc.fill_null(pc.equal(column, value), False)))[0]
                    raise BundleError(
                        f"bundle entry {name!r} holds rows of {key} {str(other.as_py())[:80]!r} in its"
                        f" folder of {key} {value!r}; refusing the bundle"
                    )
            if kind_name == "neighbors":
                _check_neighbour_rows(name, batch)
            if list_column and batch.num_rows:
                lengths = pc.min_max(pc.list_value_length(batch[list_column]))
                span.extend([lengths["min"].as_py(), lengths["max"].as_py()])
            yield batch.drop_columns(list(keys))

    try:
        batches = checked(pf.iter_batches(batch_size=BATCH, columns=columns))
        fingerprint = examples_fingerprint(batches) if kind_name == "examples" else None
        for _ in batches:
            pass
    except (pa.ArrowException, OSError, ValueError) as e:
        raise BundleError(f"bundle entry {name!r} cannot be read as Parquet ({e})") from None
    claimed = part.get("lengths")
    if claimed is not None and span and [min(span), max(span)] != claimed:
        raise BundleError(
            f"bundle entry {name!r} has lists of {min(span)}..{max(span)} entries, its record says {claimed}"
        )
    return fingerprint


def _check_neighbour_rows(name: str, batch: pa.RecordBatch) -> None:
    """A neighbour part's rows name an example by a non-negative idx and list ids, never null."""
    idx = batch["idx"] if "idx" in batch.schema.names else None
    if idx is not None and (idx.null_count or (len(idx) and pc.min(idx).as_py() < 0)):
        raise BundleError(f"bundle entry {name!r} has a null or negative example idx; refusing the bundle")
    for column in (LIST_COLUMNS["neighbors"], HEAD_COLUMNS["neighbors"]):
        if column in batch.schema.names and pc.list_flatten(batch[column]).null_count:
            raise BundleError(
                f"bundle entry {name!r} has a null id in a list of {column}; refusing the bundle"
            )


def _renamed(bundle: Verified, renames: Renames) -> Verified:
    """The bundle with datasets and models renamed in partitions, paths and records, and
    every part's path in the current layout (parts of an older one land there too)."""
    for new in [*renames.datasets.values(), *renames.models.values()]:
        check_name("new", new)
    entry_of, fingerprints = {}, {}
    for run_id, record in bundle.records.items():
        for part in record["parts"]:
            old_path = part["path"]
            part["partition"] = {k: renames.apply(k, v) for k, v in part["partition"].items()}
            part["path"] = part_path(part["kind"], part["partition"], run_id)
            entry_of[part["path"]] = bundle.entry_of[old_path]
            if old_path in bundle.fingerprints:
                fingerprints[part["path"]] = bundle.fingerprints[old_path]
        for key in ("model", "dataset"):
            if isinstance(record.get(key), str):
                record[key] = renames.apply(key, record[key])
        if record.get("replica"):  # a group is named like a model: --rename-model renames it too
            record["replica"] = {
                **record["replica"],
                "group": renames.apply("model", record["replica"]["group"]),
            }
        if len({p["path"] for p in record["parts"]}) != len(record["parts"]):
            raise BundleError(f"the renames make two parts of run {run_id} one; rename to distinct names")
    if len(entry_of) != len(bundle.entry_of):
        raise BundleError("the renames make two parts of the bundle one; rename to distinct names")
    bundle.entry_of, bundle.fingerprints, bundle.renames = entry_of, fingerprints, renames.as_dict()
    return bundle


# -- import ------------------------------------------------------------------------------
@dataclass
class _Plan:
    writes: dict[str, str] = field(default_factory=dict)  # store path -> bundle entry
    records: dict[str, dict] = field(default_factory=dict)  # run id -> record to write
    same: int = 0


def import_bundle(
    store: Store, path: str | Path, max_size: int = DEFAULT_MAX_SIZE, renames: Renames = Renames()
) -> dict:
    """Merge a verified bundle into ``store``; the same bundle twice changes nothing."""
    bundle = read_bundle(path, max_size, renames)
    existed = store.exists()
    if not existed:
        _plan(store, bundle)  # refuse before creating anything
        store._init()
    try:
        with store.lock():
            store._collect_garbage()  # what a killed import or run left behind
            plan = _plan(store, bundle)
            if plan.records:
                _write(store, bundle, plan)
    except BaseException:
        if not existed:
            _remove_empty_store(store.root)
        raise
    return {
        "imported": len(plan.records),  # new runs, and runs here that gained parts
        "already_there": plan.same,
        "parts": len(plan.writes),
    }


def _plan(store: Store, bundle: Verified) -> _Plan:
    """What to write, after checking the bundle against the store (dataset identity,
    partitions the store already fills, runs it already has)."""
    plan = _Plan()
    records = store.runs() if store.exists() else []
    local = {r["run_id"]: r for r in records}
    live = store.live_parts(records)
    owner = {}  # (kind, partition) -> run ids of the live parts there
    for parts in live.values():
        for p in parts:
            key = (p.kind, tuple(sorted(p.partition.items())))
            owner.setdefault(key, set()).add(p.run_id)
    known = _local_fingerprints(store, live, local)
    _check_replica_groups(records, bundle.records)
    mine = {_dataset_of(p): fp for p, fp in bundle.fingerprints.items()}
    for p, fp in bundle.fingerprints.items():
        dataset = _dataset_of(p)
        if dataset in known and known[dataset] != fp:
            raise BundleError(
                f"dataset {dataset!r} in the bundle holds other examples than the store's"
                f" (bundle {fp[:12]}, store {known[dataset][:12]}); import with"
                f" --rename-dataset {dataset}=NEW-NAME, or into another --store"
            )
    for run_id, record in bundle.records.items():
        dataset, claimed = record.get("dataset"), record.get("dataset_fingerprint")
        have = known.get(dataset) or mine.get(dataset)
        if claimed and have and claimed != have:
            raise BundleError(
                f"run {run_id} was computed on other examples of {dataset!r} than the store's"
                f" ({claimed[:12]}, store {have[:12]}); import with --rename-dataset"
                f" {dataset}=NEW-NAME, or into another --store"
            )
        kept, skipped = [], []
        before = local.get(run_id)
        differs = BundleError(
            f"run {run_id} exists in {store.root} with different content;"
            " remove one of them, or import into another store"
        )
        if before is not None and _core(before) != _core(record):
            raise differs
        mine_parts = {_partition_key(p): p["path"] for p in (before or {}).get("parts", [])}
        for part in record["parts"]:
            target = part["path"]
            if _partition_key(part) in mine_parts:  # stored at its path here, in any layout
                on_disk = store.root / mine_parts[_partition_key(part)]
                if not on_disk.is_file() or not _same_part(bundle, bundle.entry_of[target], on_disk, part):
                    raise differs
                continue
            key = _partition_key(part)
            if part["kind"] == "examples" and target in bundle.fingerprints and key in owner:
                skipped.append(target)  # the store has these very examples already
                continue
            if owner.get(key, set()) - {run_id}:
                keys = ", ".join(f"{k} {part['partition'][k]}" for k in KINDS[part["kind"]].keys)
                other = sorted(owner[key] - {run_id})[0]
                rename = "--rename-model" if "model" in dict(key[1]) else "--rename-dataset"
                raise BundleError(
                    f"the store already has {part['kind']} of {keys} (run {other}); import with"
                    f" {rename} OLD=NEW to keep both, or into another --store"
                )
            kept.append(part)
        if not kept and (before is not None or record["parts"]):  # the store has all of it already
            plan.same += 1  # (or the same examples); a run without parts (--replica-of) is new once
            continue
        for part in kept:
            plan.writes[part["path"]] = bundle.entry_of[part["path"]]
        if before is not None:
            plan.records[run_id] = {**before, "parts": before["parts"] + kept}
        else:
            plan.records[run_id] = {
                **record,
                "parts": kept,
                "committed": now(),
                "imported": {
                    "bundle": bundle.path.name,
                    "bundle_sha256": bundle.digest,
                    "exported_by": bundle.manifest.get("exported_by"),
                    "renamed": bundle.renames,
                    "skipped_parts": skipped,
                },
            }
    return plan


def _replica_groups(records) -> dict[str, tuple[str, int | None, bool]]:
    """model -> (group, seed, whether it came from a bundle) by each model's latest complete
    run that names a replica group (as the view replicas reads them)."""
    latest: dict[str, dict] = {}
    for r in records:
        if r.get("status") == "complete" and r.get("model") and r.get("replica"):
            if r["model"] not in latest or (r["started"], r["run_id"]) > (
                latest[r["model"]]["started"],
                latest[r["model"]]["run_id"],
            ):
                latest[r["model"]] = r
    return {
        m: (r["replica"]["group"], r["replica"]["seed"], bool(r.get("imported"))) for m, r in latest.items()
    }


def _check_replica_groups(local: list[dict], incoming: dict[str, dict]) -> None:
    """Refuse a bundle whose replicas would join a replica group this store made itself, or
    give one group two models of one seed: a floor must hold one recipe's runs only."""
    here = _replica_groups(local)
    theirs = _replica_groups(incoming.values())
    for model, (group, seed, _) in sorted(theirs.items()):
        own = sorted(m for m, (g, _, imported) in here.items() if g == group and not imported and m != model)
        if own:
            raise BundleError(
                f"the bundle's replica group {group!r} is a group this store made ({', '.join(own[:4])});"
                f" import with --rename-model {group}=NEW-NAME (its group is renamed with it)"
            )
        twins = sorted(
            m
            for m, (g, s, _) in {**here, **theirs}.items()
            if g == group and seed is not None and s == seed and m != model
        )
        if twins:
            raise BundleError(
                f"the bundle's {model!r} and {twins[0]!r} would both be seed {seed} of replica group"
                f" {group!r}; import with --rename-model {group}=NEW-NAME"
            )


def _same_part(bundle: Verified, entry: str, on_disk: Path, part: dict) -> bool:
    """Whether the store's part ``on_disk`` holds what the bundle's ``entry`` holds: the same
    bytes, a part that import made of this very entry, a bundle part that export made of
    this very part (SOURCE_SHA256), or else the same rows, read and compared."""
    mine, theirs_sha = _file_sha256(on_disk), bundle.sha256[entry]
    if mine == theirs_sha:
        return True
    keys = KINDS[part["kind"]].keys if entry in bundle.keyed else ()
    try:
        ours = _reader(on_disk)
        if (ours.schema_arrow.metadata or {}).get(ENTRY_SHA256) == theirs_sha.encode():
            return True
        with zipfile.ZipFile(bundle.path) as z, z.open(entry) as f:
            theirs = _reader(f)
            if (theirs.schema_arrow.metadata or {}).get(SOURCE_SHA256) == mine.encode():
                return True
            if ours.metadata.num_rows != theirs.metadata.num_rows:
                return False
            columns = [n for n in theirs.schema_arrow.names if n not in keys]
            rows = min(_batch_rows(ours), _batch_rows(theirs))
            return _same_rows(
                (_conformed(b, part["kind"]) for b in ours.iter_batches(batch_size=rows)),
                (_conformed(b, part["kind"]) for b in theirs.iter_batches(batch_size=rows, columns=columns)),
                rows,
            )
    except (*READ_ERRORS, pa.ArrowException):
        return False


def _same_rows(left, right, size: int = BATCH) -> bool:
    """Whether two streams of record batches hold the same rows, however they are cut:
    same columns and types, and bit for bit the same values (NaN equals NaN)."""
    for a, b in itertools.zip_longest(_windows(left, size), _windows(right, size)):
        if a is None or b is None or a.schema.names != b.schema.names or a.num_rows != b.num_rows:
            return False
        for x, y in zip(a.columns, b.columns, strict=True):
            exact = _bits(x.type)
            if exact != _bits(y.type):
                return False
            if not pa.chunked_array([c.view(exact) for c in x.chunks], exact).equals(
                pa.chunked_array([c.view(exact) for c in y.chunks], exact)
            ):
                return False
    return True


def _windows(batches, size: int = BATCH):
    """The rows of ``batches`` as tables of ``size`` rows (the last one shorter)."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        held.append(batch)
        count += batch.num_rows
        while count >= size:
            table = pa.Table.from_batches(held)
            yield table.slice(0, size)
            rest = table.slice(size)
            held, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(held)


def _bits(t: pa.DataType) -> pa.DataType:
    """``t`` with every float an integer of its width: its values compare bit for bit."""
    if pa.types.is_floating(t):
        return {16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[t.bit_width]
    if pa.types.is_fixed_size_list(t):
        return pa.list_(_bits(t.value_type), t.list_size)
    if pa.types.is_list(t):
        return pa.list_(_bits(t.value_type))
    if pa.types.is_large_list(t):
        return pa.large_list(_bits(t.value_type))
    return t


def _partition_key(part: dict) -> tuple:
    return (part["kind"], tuple(sorted(part["partition"].items())))


def _dataset_of(examples_path: str) -> str:
    return examples_path.split("/")[1].removeprefix("dataset=")


def _core(record: dict) -> str:
    core = {k: v for k, v in record.items() if k not in ("parts", *LOCAL_ONLY)}
    return json.dumps(core, sort_keys=True, default=str)


def _local_fingerprints(store: Store, live: dict, local: dict) -> dict[str, str]:
    """dataset -> fingerprint of the store's live examples (vouched by the local record
    that wrote them, else computed from the part)."""
    found = {}
    for p in live["examples"]:
        dataset = p.partition["dataset"]
        record = local.get(p.run_id, {})
        if record.get("dataset") == dataset and record.get("dataset_fingerprint"):
            found[dataset] = record["dataset_fingerprint"]
        else:
            found[dataset] = examples_fingerprint(
                pq.ParquetFile(store.root / p.path).iter_batches(batch_size=16_384)
            )
    return found


def _write(store: Store, bundle: Verified, plan: _Plan) -> None:
    """Copy, check and rename the parts, then the records; undo everything on failure."""
    needed = sum(bundle.size[e] for e in plan.writes.values())
    free = shutil.disk_usage(store.root).free
    if needed > free:
        raise BundleError(
            f"the import needs {needed:,} bytes and {store.root} has {free:,} free; nothing was"
            " written: free space, or import into another --store"
        )
    created: list[Path] = []
    staged: list[tuple[Path, Path]] = []
    try:
        with zipfile.ZipFile(bundle.path) as z:
            for target, entry in plan.writes.items():
                final = store.root / target
                created += _mkdirs(final.parent, store.root)
                tmp = temp_part(final)
                staged.append((tmp, final))
                if entry not in bundle.keyed:
                    _copy_checked(z, entry, tmp, bundle.sha256[entry])
                    continue
                raw = temp_part(final)  # the entry as the bundle holds it, checked again
                staged.append((raw, final))
                _copy_checked(z, entry, raw, bundle.sha256[entry])
                _without_keys(raw, tmp, KINDS[target.split("/")[0]].keys, bundle.sha256[entry])
                raw.unlink()
                staged.remove((raw, final))
        for run_id, record in plan.records.items():
            final = store.root / "runs" / f"{run_id}.json"
            created += _mkdirs(final.parent, store.root)
            tmp = atomic.temp_name(final)
            staged.append((tmp, final))
            tmp.write_bytes(json.dumps(record, indent=2).encode())
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    commit_all(store.root, staged)  # parts first (invisible without a record), records last


def _without_keys(raw: Path, tmp: Path, keys: tuple[str, ...], sha256: str) -> None:
    """Write the part ``raw`` (the verified entry of this ``sha256``, with key columns) to
    ``tmp`` without them, as the store holds parts: its keys in the folder names only."""
    pf = _reader(raw)
    schema = pa.schema([f for f in pf.schema_arrow if f.name not in keys])
    schema = schema.with_metadata({ENTRY_SHA256: sha256.encode()})
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in pf.iter_batches(batch_size=_batch_rows(pf), columns=schema.names):
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())


def _mkdirs(folder: Path, root: Path) -> list[Path]:
    """Make ``folder`` and its missing parents under ``root``; the ones made, outermost first."""
    missing = []
    while folder != root and not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
    return list(reversed(missing))


def _copy_checked(z: zipfile.ZipFile, entry: str, tmp: Path, sha256: str) -> None:
    h = hashlib.sha256()
    with z.open(entry) as src, open(tmp, "wb") as dst:
        while chunk := src.read(CHUNK):
            h.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    if h.hexdigest() != sha256:
        raise BundleError(f"bundle entry {entry!r} changed while it was imported; nothing was kept")


# -- inspect -----------------------------------------------------------------------------
def inspect_bundle(path: str | Path, max_size: int = DEFAULT_MAX_SIZE) -> list[dict]:
    """One row per part of a verified bundle (nothing is imported)."""
    bundle = read_bundle(path, max_size)
    rows = []
    for run_id, record in bundle.records.items():
        for part in record["parts"]:
            rows.append(
                {
                    "run_id": run_id,
                    "command": record.get("command"),
                    "kind": part["kind"],
                    **{k: part["partition"].get(k) for k in ("model", "dataset")},
                    "rows": part.get("rows"),
                    "bytes": bundle.size[bundle.entry_of[part["path"]]],
                }
            )
    return rows


def verify_bytes(raw: bytes, path: str = "the bundle") -> Verified:
    """:func:`read_bundle` on a bundle's bytes (written to a temporary file)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "bundle.cebundle"
        file.write_bytes(raw)
        return read_bundle(file)
