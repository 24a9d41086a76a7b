"""The artifact store: Parquet parts in Hive-partitioned folders, and a record per run.

Layout::

    STORE/ce-store.json                         schema version
    STORE/runs/<run_id>.json                    one record per run (provenance, status, parts)
    STORE/<kind>/<key>=<value>/.../part-<run_id>.parquet

A run's parts become visible only when its record turns ``complete``, in one atomic rename.
For every (kind, partition) the live part is the one of the latest complete run that wrote
it, so re-running an extraction replaces its parts and never leaves duplicates; parts of
superseded or killed runs are garbage: a commit removes the parts it superseded, and a
sweep of the whole store the rest (see :meth:`Store._collect_garbage` for when).
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import functools
import hashlib
import json
import operator
import os
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import atomic
from .errors import StoreError
from .records import check_provenance, folder_keys, parse_record, part_path, storable
from .schema import HEAD, HEAD_COLUMNS, KINDS, LIST_COLUMNS, SCHEMA_VERSION, check_name, kind

MARKER = "ce-store.json"
READERS = ".readers"  # readers hold a shared lock on it; superseded parts wait for none
LIBRARIES = (
    "ce",
    "torch",
    "transformers",
    "tokenizers",
    "datasets",
    "duckdb",
    "pyarrow",
    "faiss-cpu",
    "numpy",
    "textattack",
)


def default_root() -> Path:
    return Path(os.environ.get("CE_STORE", "data/store"))


def library_versions() -> dict[str, str]:
    """Installed versions, read from package metadata (nothing heavy is imported), once per
    process: a run record of every job and shard carries them."""
    return dict(_library_versions())


@functools.cache
def _library_versions() -> tuple[tuple[str, str], ...]:
    found = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return tuple(found.items())


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def partition_dir(root: Path, kind_name: str, partition: dict[str, str]) -> Path:
    k = kind(kind_name)
    if set(partition) != set(k.keys):
        raise StoreError(f"{kind_name} parts need keys {', '.join(k.keys)}; got {sorted(partition)}")
    path = root / kind_name
    for key in k.keys:
        path = path / f"{key}={check_name(key, partition[key])}"
    return path


@dataclass
class Part:
    kind: str
    partition: dict[str, str]
    path: str  # relative to the store root
    rows: int = 0
    series: str | None = None  # parts of one series add up; None: the run is its own series
    shard: str | None = None  # "I/N": a series of shards is live once shards 0..N-1 are all in
    resumable: bool = False  # parts of a resumable shard add up; else a re-run shard replaces
    lengths: list[int] | None = None  # [min, max] length of the kind's list column (K_max)

    @property
    def run_id(self) -> str:
        """The run that wrote the part (its file is part-<run_id>.parquet)."""
        return self.path.rsplit("/", 1)[-1].removeprefix("part-").removesuffix(".parquet")


def series_id(prefix: str, *settings: Any) -> str:
    """A series name that every run with the same ``settings`` (JSON-able) derives alike,
    on any machine: how resumed and sharded runs find the series they add to."""
    blob = json.dumps(list(settings), sort_keys=True, default=str)
    return f"{prefix}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def parse_shard(text: str) -> tuple[int, int]:
    """(I, N) of a shard written "I/N" with 0 <= I < N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise StoreError(f"shard {text!r} is not I/N; write e.g. --shard 0/4 (shards 0..3 of 4)") from None
    if not 0 <= i < n:
        raise StoreError(f"shard {text!r}: I must lie in 0..N-1; write e.g. --shard 0/{max(n, 1)}")
    return i, n


def _key(part: Part) -> tuple:
    return (part.kind, tuple(sorted(part.partition.items())))


def _older_key(part: Part) -> tuple | None:
    """The key of a part stored in an older layout of its kind, as that layout named it
    (by the keys its folders hold); None for a part in the current layout."""
    folders = folder_keys(part.path)
    if folders == KINDS[part.kind].keys:
        return None
    return (part.kind, tuple((k, part.partition[k]) for k in folders))


def _pick(members: list[tuple[tuple, tuple[str, str], str, Part]]) -> tuple[list[Part], list[Part]]:
    """(live parts in commit order, parts of newer series still waiting for shards) among
    ``members`` (key, order, series, part): per key the latest whole series is live."""
    groups: dict[tuple, dict[str, list[tuple[tuple[str, str], Part]]]] = {}
    for key, order, series, part in members:
        groups.setdefault(key, {}).setdefault(series, []).append((order, part))
    chosen: list[tuple[tuple[str, str], list[Part]]] = []
    waiting: list[Part] = []
    for by_series in groups.values():
        newest_first = sorted(by_series.values(), key=lambda m: max(o for o, _ in m), reverse=True)
        for series_members in newest_first:
            current = _current(series_members)
            parts = [p for _, p in sorted(current, key=_part_order)]
            if _whole(parts):
                chosen.append((max(o for o, _ in series_members), parts))
                break
            waiting.extend(parts)
    return [part for _, parts in sorted(chosen, key=lambda c: c[0]) for part in parts], waiting


def _current(members: list[tuple[tuple[str, str], Part]]) -> list[tuple[tuple[str, str], Part]]:
    """A series' parts minus those of shards re-run since (the latest run of a shard wins)."""
    latest: dict[str, tuple[str, str]] = {}
    for order, part in members:
        if part.shard and not part.resumable:
            latest[part.shard] = max(latest.get(part.shard, order), order)
    return [
        (order, part)
        for order, part in members
        if not (part.shard and not part.resumable) or order == latest[part.shard]
    ]


def _whole(parts: list[Part]) -> bool:
    """Whether a series holds every shard it names (a series without shards is whole)."""
    shards = {parse_shard(p.shard) for p in parts if p.shard}
    if not shards:
        return True
    counts = {n for _, n in shards}
    return len(counts) == 1 and {i for i, _ in shards} == set(range(counts.pop()))


class Store:
    """A store folder. Reading never creates it; the first write does."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()
        self._parsed: dict[str, tuple[tuple, tuple, dict[str, Any]]] = {}  # name: (stat, order, record)
        self._sorted: list[dict[str, Any]] = []  # the records of _parsed, oldest first
        self._own: dict[str, dict[str, Any]] = {}  # run id: the record of _sorted
        self._built: dict[str, tuple[dict[str, Any], list[tuple]]] = {}  # see _members()
        self._swept = False  # whether this Store swept and left nothing (see _collect_garbage)
        self._strays: list[str] = []  # files in runs/ other than records, at the last read
        self._check_version()

    # -- reading -------------------------------------------------------------------------
    def _check_version(self) -> None:
        marker = self.root / MARKER
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"store {self.root} is not a folder; pass --store DIR")
        if not marker.exists():
            if self.root.exists() and any(p.name in KINDS or p.name == "runs" for p in self.root.iterdir()):
                raise StoreError(
                    f"{self.root} looks like a store but has no {MARKER};"
                    " it was not written by ce, or is damaged"
                )
            return
        try:
            version = json.loads(marker.read_text())["schema_version"]
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"cannot read {marker} ({e}); the store is damaged") from None
        check_schema_version(version, f"store {self.root}")

    def exists(self) -> bool:
        return (self.root / MARKER).exists()

    def location(self, relative: str) -> str:
        """Where DuckDB reads a file of the store (a path here, a URL for a remote store)."""
        return str(self.root / relative)

    def read_prefixes(self) -> list[str]:
        """The folders (or URL prefixes) that queries over this store may read."""
        return sorted({f"{self.root}/", f"{self.root.resolve()}/"})

    def register(self, con) -> None:
        """Make the store's files readable to the DuckDB connection ``con`` (nothing to do
        for a local folder; a remote store registers its file system)."""

    def runs(self) -> list[dict[str, Any]]:
        """Every run record, oldest first: copies, the caller's own to change."""
        return [_copied(rec) for rec in self._records()]

    def _records(self) -> list[dict[str, Any]]:
        """Every run record, oldest first, as this Store keeps them: never change one.

        Parsed records are kept per file, keyed by its stat (mtime, size, inode): a call
        parses only the files that are new or changed since the last one and forgets those
        that are gone, so a commit (which reads the records to find what it superseded)
        parses its own record and no other, however many runs the store holds. ce replaces
        a record by renaming a new file over it (a new inode); an edit in place changes its
        mtime. A running record is read every time all the same: it is the one expected to
        change (to complete), and coarse timestamps or a network file system's cached
        attributes could hide that change from a stat. Copying a record costs a fraction of
        parsing it, and the store's own bookkeeping (a commit, a sweep) needs no copy."""
        folder = self.root / "runs"
        if not folder.is_dir():
            self._parsed, self._sorted, self._own, self._strays = {}, [], {}, []
            return []
        names = sorted(os.listdir(folder))
        self._strays = [name for name in names if not name.endswith(".json")]  # journals, temp files
        parsed, changed = {}, False
        fd = os.open(folder, os.O_RDONLY)
        try:
            for name in names:
                if not name.endswith(".json"):
                    continue
                try:  # stat before reading: a file replaced meanwhile is parsed again next time
                    st = os.stat(name, dir_fd=fd)
                    stat = (st.st_mtime_ns, st.st_size, st.st_ino)
                    known = self._parsed.get(name)
                    if known is None or known[0] != stat or known[2]["status"] == "running":
                        rec = _read_record(folder / name)
                        known, changed = (stat, (rec.get("started") or "", rec["run_id"]), rec), True
                except FileNotFoundError:  # removed since the listing (a killed run's, collected)
                    continue
                parsed[name] = known
        finally:
            os.close(fd)
        if changed or parsed.keys() != self._parsed.keys():  # oldest first
            self._sorted = [rec for _, _, rec in sorted(parsed.values(), key=operator.itemgetter(1))]
            self._own = {rec["run_id"]: rec for rec in self._sorted}
        self._parsed = parsed
        return list(self._sorted)

    def lease(self):
        """A reader's lease: a shared lock that keeps superseded parts on disk while held
        (close the returned file to end it); None where the store has no lease file."""
        try:
            handle = open(self.root / READERS, "rb")
        except OSError:
            return None
        fcntl.flock(handle, fcntl.LOCK_SH)
        return handle

    def live_parts(self, records: list[dict[str, Any]] | None = None) -> dict[str, list[Part]]:
        """Per kind, the parts that readers see. A part belongs to a series (by default the
        run that wrote it; resumable and sharded runs name one they share); per partition the
        latest whole series is live, with every current part of it. A series of shards is
        whole once each of its shards is in, so readers never see part of a sharded run.
        Copies, like :meth:`runs`."""
        return {name: [_copied_part(p) for p in parts] for name, parts in self._resolve(records)[0].items()}

    def _resolve(
        self, records: list[dict[str, Any]] | None = None, members: list[tuple] | None = None
    ) -> tuple[dict[str, list[Part]], list[Part]]:
        """(live parts per kind, parts of newer sharded series still waiting for shards),
        from ``records`` or their ``members`` (:meth:`_complete_members`). Parts of an older
        layout first compete as that layout keyed them (the parts that lost there were
        superseded, and may be gone), the rest as the current one does."""
        if members is None:
            members = self._complete_members(records)
        older_live, older_waiting = _pick([(old, o, s, p) for o, s, p, old, _ in members if old])
        kept = {p.path for p in older_live + older_waiting}
        chosen, waiting = _pick(
            [(key, o, s, p) for o, s, p, old, key in members if not old or p.path in kept]
        )
        live: dict[str, list[Part]] = {name: [] for name in KINDS}
        for part in chosen:
            live[part.kind].append(part)
        return live, waiting

    def _complete_members(self, records: list[dict[str, Any]] | None = None) -> list[tuple]:
        """(order, series, part, older key, key) of every part of a complete run."""
        members = []
        for rec in self._records() if records is None else records:
            if rec.get("status") == "complete":
                members += self._members(rec)
        return members

    def _members(self, rec: dict[str, Any]) -> list[tuple]:
        """(order, series, part, older key, key) of every part of the complete run ``rec``,
        built once for a record this Store keeps (it never changes, see :meth:`_records`),
        so resolving costs little more than grouping the parts. Never change a part."""
        known = self._built.get(rec["run_id"])
        if known is not None and known[0] is rec:
            return known[1]
        order = (commit_time(rec), rec["run_id"])
        members = []
        for p in rec.get("parts", []):
            part = Part(**{k: v for k, v in p.items() if k in Part.__dataclass_fields__})
            members.append((order, part.series or rec["run_id"], part, _older_key(part), _key(part)))
        if self._own.get(rec["run_id"]) is rec:  # a caller's record may change: build it anew
            self._built[rec["run_id"]] = (rec, members)
        return members

    def series_parts(self, kind_name: str, partition: dict[str, str], series: str) -> list[Part]:
        """The parts of one series in one partition, live or still waiting for shards (to
        resume a series); empty once another series replaced it."""
        live, waiting = self._resolve()
        return [
            _copied_part(p)
            for p in live[kind_name] + waiting
            if p.kind == kind_name and p.partition == partition and p.series == series
        ]

    def live_records(self, kind_name: str, partition: dict[str, str]) -> list[dict[str, Any]]:
        """The records of the runs whose parts of ``kind_name`` are live in ``partition``
        (oldest first); empty when the store has none there."""
        records = self.runs()
        live = {p.run_id for p in self.live_parts(records)[kind_name] if p.partition == partition}
        return [r for r in records if r["run_id"] in live]

    def has(self, kind_name: str, **partition: str) -> bool:
        return any(p.partition == partition for p in self._resolve()[0][kind_name])

    # -- writing -------------------------------------------------------------------------
    def _init(self) -> None:
        if self.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        marker = {"schema_version": SCHEMA_VERSION, "created": now(), "format": "ce store"}
        (self.root / READERS).touch()
        atomic.write_bytes(self.root / MARKER, json.dumps(marker, indent=2).encode())

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive store-wide lock, held only while a run commits."""
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def run(self, command: str, params: dict[str, Any], **provenance: Any) -> Iterator[Run]:
        """Open a run; its parts are committed together on success, removed on any error."""
        existed = self.root.exists()
        self._init()
        if not self._swept:
            self.collect_garbage()
        run = Run(self, command, params, dict(provenance))
        run._write_record("running")
        try:
            yield run
        except BaseException:
            run._abort()
            if not existed:  # leave no trace of a store this failed run created
                _remove_empty_store(self.root)
            raise
        run._commit()

    def model_dir(self, name: str) -> Path:
        return self.root / "models" / check_name("model", name)

    def save_model(self, name: str, write) -> Path:
        """Write a model folder with ``write(tmp_folder)`` and move it into place atomically."""
        final = self.model_dir(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        owner = f"{atomic.owner()}-{uuid.uuid4().hex[:8]}"
        tmp = final.parent / f".tmp-{owner}-{name}"
        old = final.parent / f".old-{owner}-{name}"
        try:
            tmp.mkdir()
            write(tmp)
            for f in tmp.iterdir():
                with open(f, "rb+") as handle:
                    os.fsync(handle.fileno())
            if final.exists():
                final.rename(old)
            tmp.rename(final)
            atomic.fsync_dir(final.parent)
        finally:
            for leftover in (tmp, old):
                if leftover.exists():
                    shutil.rmtree(leftover)
        return final

    def collect_garbage(self) -> None:
        """Remove records and parts of runs killed on this host, and parts no record keeps."""
        with self.lock():  # a run committing meanwhile must not lose its parts
            self._collect_garbage()

    def _collect_garbage(self) -> None:
        """Runs killed on this host go with their parts; temporary files of processes that
        are gone go too. Parts that a newer run superseded go only while no reader holds a
        lease (a query that started before the commit may still read them); otherwise a
        later collection removes them.

        This sweep lists every part of every kind, so it runs only where garbage may be:
        at a Store's first run (once per command), an import, :meth:`collect_garbage`, a
        run's start after a sweep or commit left parts for readers, and a commit that finds
        a run of this host killed or a journal or temporary file in runs/. Other commits
        remove just what they superseded (:meth:`_collect_superseded`), so an attack, which
        commits a run every few examples, does not pay for every part at every commit.
        What a process killed before writing its record leaves (an import killed while
        staging, a model half saved) waits for the next command's sweep."""
        finish_journals(self.root)
        records = []
        for rec in self._records():
            if _killed(rec):
                _remove_run_files(self.root, rec["run_id"])
                (self.root / "runs" / f"{rec['run_id']}.json").unlink(missing_ok=True)
            else:
                records.append(rec)
        running = {r["run_id"] for r in records if r.get("status") == "running"}
        live = _live_paths(*self._resolve(records))
        kept = {p["path"] for r in records if r.get("status") == "complete" for p in r["parts"]}
        left = False  # superseded parts kept for readers
        with self._no_readers() as unread:
            for name in KINDS:
                for rel, file_name in _files(self.root, name):
                    if fnmatch.fnmatchcase(file_name, "part-*.parquet"):
                        run_id = file_name.removeprefix("part-").split(".")[0]
                        if rel in live or run_id in running or (rel in kept and not unread):
                            left = left or (rel not in live and run_id not in running)
                            continue
                    elif fnmatch.fnmatchcase(file_name, ".part-*.tmp"):  # killed writers' files
                        if temp_part_run(Path(file_name)) in running:
                            continue
                    else:
                        continue
                    (self.root / rel).unlink(missing_ok=True)
        for path in (self.root / "models").glob(".*-*"):  # save_model's .tmp-* and .old-* folders
            prefix, host, pid, *_ = path.name.split("-", 3) + ["", ""]
            if prefix in (".tmp", ".old") and atomic.owner_gone(f"{host}-{pid}"):
                shutil.rmtree(path, ignore_errors=True)
        for path in [*self.root.glob(".*.tmp"), *(self.root / "runs").glob(".*.tmp")]:
            if atomic.owner_gone(atomic.temp_owner(path)):  # a record or marker half written
                path.unlink(missing_ok=True)
        self._swept = not left

    def _collect_superseded(self, run: Run) -> None:
        """After ``run`` committed (the lock held): remove the parts it superseded, in the
        partitions it wrote (nothing else can have lost to it); or sweep the whole store
        where runs/ shows garbage: a run of this host killed, or a journal or half-written
        record of a process of this host that has ended."""
        records = self._records()
        if any(_killed(rec) for rec in records) or any(_ended(name) for name in self._strays):
            self._collect_garbage()
            return
        touched = {_key(part) for _, _, part in run._pending}
        members = self._complete_members(records)
        live = _live_paths(*self._resolve(members=members))
        superseded = {p.path for _, _, p, _, key in members if key in touched and p.path not in live}
        if superseded:
            with self._no_readers() as unread:
                for rel in sorted(superseded) if unread else []:
                    (self.root / rel).unlink(missing_ok=True)
            self._swept = self._swept and unread  # else the next run's start sweeps again

    @contextlib.contextmanager
    def _no_readers(self) -> Iterator[bool]:
        """Yield True while no reader holds a lease (and none can take one), else False."""
        path = self.root / READERS
        path.touch()
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class Run:
    """One run writing parts into the store (use :meth:`Store.run`)."""

    def __init__(self, store: Store, command: str, params: dict[str, Any], provenance: dict[str, Any]):
        check_provenance(provenance)
        self.store = store
        self.run_id = new_run_id()
        self.record: dict[str, Any] = {
            "run_id": self.run_id,
            "command": command,
            "argv": sys.argv[1:],
            "params": params,
            **provenance,
            "versions": library_versions(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": now(),
            "ended": None,
            "status": "running",
            "parts": [],
        }
        self._pending: list[tuple[Path, Path, Part]] = []  # (tmp, final, part)

    def annotate(self, **provenance: Any) -> None:
        """Add provenance learnt during the run (weight hash, recall, ...)."""
        check_provenance(provenance)
        self.record.update(provenance)

    def write(self, kind_name: str, partition: dict[str, str], table: pa.Table, **series: Any) -> None:
        with self.part_writer(kind_name, partition, **series) as writer:
            writer.write(table)

    @contextlib.contextmanager
    def part_writer(
        self,
        kind_name: str,
        partition: dict[str, str],
        series: str | None = None,
        shard: str | None = None,
        resumable: bool = False,
    ) -> Iterator[PartWriter]:
        """Stream record batches into one part of ``kind_name`` for ``partition``. Parts
        naming the same ``series`` add up instead of replacing each other; a ``shard``
        ("I/N") of a series replaces an earlier run of that shard unless ``resumable``."""
        if shard is not None:
            parse_shard(shard)
            if series is None:
                raise StoreError("a shard needs a series shared by all shards of the run")
        folder = partition_dir(self.store.root, kind_name, partition)
        final = self.store.root / part_path(kind_name, partition, self.run_id)  # folder checked the names
        if any(f == final for _, f, _ in self._pending):
            raise StoreError(f"run {self.run_id} already wrote {final}")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = temp_part(final)
        writer = PartWriter(tmp, self.run_id, kind_name)
        try:
            yield writer
        finally:
            writer.close()
        rel = final.relative_to(self.store.root).as_posix()
        part = Part(kind_name, dict(partition), rel, writer.rows, series, shard, resumable, writer.lengths)
        self._pending.append((tmp, final, part))

    def _record_path(self) -> Path:
        return self.store.root / "runs" / f"{self.run_id}.json"

    def _write_record(self, status: str) -> None:
        self.record["status"] = status
        self.record = storable(self.record)
        data = json.dumps(self.record, indent=2, sort_keys=False, default=str, allow_nan=False).encode()
        atomic.write_bytes(self._record_path(), data)

    def _commit(self) -> None:
        with self.store.lock():
            for tmp, final, part in self._pending:
                atomic.commit_file(tmp, final)
                self.record["parts"].append(part.__dict__)
            self.record["ended"] = self.record["committed"] = now()
            self._write_record("complete")  # the commit point
            self.store._collect_superseded(self)  # the lock is already held

    def _abort(self) -> None:
        _remove_run_files(self.store.root, self.run_id)
        self._record_path().unlink(missing_ok=True)


@dataclass
class PartWriter:
    """Writes batches of one kind to a temporary Parquet file, adding the run id column."""

    path: Path
    run_id: str
    kind_name: str
    rows: int = 0
    lengths: list[int] | None = None  # [min, max] length of the kind's list column
    _writer: pq.ParquetWriter | None = field(default=None, repr=False)

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        table = self._conform(table)
        self._measure(table)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._writer.write_table(table, row_group_size=128 * 1024)
        self.rows += table.num_rows

    def _measure(self, table: pa.Table) -> None:
        """Track the shortest and longest list (the K_max queries may ask for)."""
        column = LIST_COLUMNS.get(self.kind_name)
        if column is None or table.num_rows == 0:
            return
        span = pc.min_max(pc.list_value_length(table[column]))
        low, high = span["min"].as_py(), span["max"].as_py()
        if self.lengths is not None:
            low, high = min(low, self.lengths[0]), max(high, self.lengths[1])
        self.lengths = [low, high]

    def _conform(self, table: pa.Table) -> pa.Table:
        schema = kind(self.kind_name).schema
        head = HEAD_COLUMNS.get(self.kind_name)
        if head and head not in table.column_names and table.num_rows:
            column = table[LIST_COLUMNS[self.kind_name]]
            table = table.append_column(head, pc.list_slice(column, 0, HEAD, return_fixed_size_list=False))
        run_ids = pa.array([self.run_id] * table.num_rows, pa.string())
        columns, fields = [], []
        for f in schema:
            if f.name == "run_id":
                col = run_ids
            elif f.name in table.column_names:
                col = table[f.name]
                if f.name == "vector":  # keep the fixed size of the vectors
                    fields.append(pa.field(f.name, col.type))
                    columns.append(col)
                    continue
                col = col.cast(f.type)
            else:
                col = pa.nulls(table.num_rows, f.type)
            fields.append(f)
            columns.append(col)
        return pa.Table.from_arrays(columns, schema=pa.schema(fields))

    def close(self) -> None:
        if self._writer is None:  # an empty part still has a schema
            self.write(kind(self.kind_name).schema.empty_table())
        self._writer.close()


def temp_part(final: Path) -> Path:
    """Where a part is written before it is renamed to ``final`` (part-<run_id>.parquet)."""
    return final.with_name(f".{final.stem}.{uuid.uuid4().hex[:6]}.parquet.tmp")


def temp_part_run(path: Path) -> str:
    """The run id of a :func:`temp_part` file."""
    return path.name.removeprefix(".part-").split(".")[0]


def _killed(rec: dict[str, Any]) -> bool:
    """Whether ``rec`` is the record of a run of this host whose process has ended."""
    return (
        rec.get("status") == "running"
        and rec.get("host") == socket.gethostname()
        and not rec.get("imported")
        and not atomic.pid_alive(rec.get("pid", -1))
    )


def _ended(name: str) -> bool:
    """Whether the file ``name`` in runs/ is a journal or a half-written record of a
    process of this host that has ended (a sweep finishes or removes it)."""
    if name.startswith(".commit-") and name.endswith(".journal"):
        return atomic.owner_gone(name.removeprefix(".commit-").removesuffix(".journal"))
    return atomic.owner_gone(atomic.temp_owner(Path(name)))


def _files(root: Path, folder: str) -> Iterator[tuple[str, str]]:
    """(path relative to ``root``, name) of every file under ``root/folder``, in one walk
    (symbolic links to folders are not followed, as glob's ``**`` does not)."""
    for where, _, names in os.walk(root / folder):
        rel = Path(os.path.relpath(where, root)).as_posix()
        for name in names:
            yield f"{rel}/{name}", name


def _live_paths(live: dict[str, list[Part]], waiting: list[Part]) -> set[str]:
    """The paths of :meth:`Store._resolve`'s parts: those that collection keeps."""
    return {p.path for parts in [*live.values(), waiting] for p in parts}


def _copied(value: Any) -> Any:
    """A copy of JSON data (a record) that shares nothing with it."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


def _copied_part(part: Part) -> Part:
    return replace(part, partition=dict(part.partition), lengths=_copied(part.lengths))


def _read_record(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise StoreError(f"run record {path} is damaged ({e}); remove it") from None
    return parse_record(data, f"run record {path}")


def check_schema_version(version: Any, where: str) -> None:
    if version == SCHEMA_VERSION and type(version) is int:
        return
    shown = version if isinstance(version, int) else f"{version!r} (a {type(version).__name__}, not a number)"
    raise StoreError(
        f"{where} has schema version {shown}, this ce reads version {SCHEMA_VERSION};"
        " use a ce release that matches, or another --store"
    )


def commit_time(record: dict[str, Any]) -> str:
    """When a run became visible here: on this store's clock (an imported run's dates are
    another lab's and never decide what is newest)."""
    return record.get("committed") or record.get("ended") or ""


def _part_order(member: tuple[tuple[str, str], Part]) -> tuple:
    """Shards in shard order, then parts in the order their runs ended."""
    order, part = member
    return (parse_shard(part.shard)[0] if part.shard else -1, order)


JOURNAL = ".commit-{owner}.journal"  # in runs/: renames that a multi-record commit still owes


def commit_all(root: Path, renames: list[tuple[Path, Path]]) -> None:
    """Rename every staged ``(tmp, final)`` pair, all or (after a kill) none visible for
    long: the list is journaled first, and :func:`finish_journals` completes it if this
    process dies midway."""
    journal = root / "runs" / JOURNAL.format(owner=atomic.owner())
    listed = [[t.relative_to(root).as_posix(), f.relative_to(root).as_posix()] for t, f in renames]
    atomic.write_bytes(journal, json.dumps(listed).encode())
    for tmp, final in renames:
        atomic.commit_file(tmp, final)
    journal.unlink()
    atomic.fsync_dir(journal.parent)


def finish_journals(root: Path) -> None:
    """Complete the renames of journals whose process has ended (every file they name was
    checked before the journal was written)."""
    for journal in (root / "runs").glob(JOURNAL.format(owner="*")):
        if not atomic.owner_gone(journal.name.removeprefix(".commit-").removesuffix(".journal")):
            continue
        try:
            listed = json.loads(journal.read_text())
        except ValueError:
            listed = []
        for tmp, final in listed:
            source, target = (root / tmp).resolve(), (root / final).resolve()
            inside = root.resolve() in source.parents and root.resolve() in target.parents
            if inside and source.is_file():
                atomic.commit_file(source, target)
        journal.unlink(missing_ok=True)


def _remove_run_files(root: Path, run_id: str) -> None:
    for name in KINDS:
        for pattern in (f"**/part-{run_id}.parquet", f"**/.part-{run_id}.*.tmp"):
            for path in (root / name).glob(pattern):
                path.unlink(missing_ok=True)


def _remove_empty_store(root: Path) -> None:
    """Undo the creation of a store that holds no run (a first write that failed)."""
    runs = root / "runs"
    if runs.is_dir() and any(runs.iterdir()):
        return
    for path in sorted(root.glob("**/*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()
        elif path.name in (MARKER, ".lock", READERS):
            path.unlink()
    with contextlib.suppress(OSError):
        root.rmdir()
