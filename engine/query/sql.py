"""The SQL library: one query per file under ``sql/``, loaded into DuckDB over the store.

``sql/views/NAME.sql`` and ``sql/macros/NAME.sql`` each create the view or table macro
``NAME``; ``sql/queries/NAME.sql`` is a report query with named parameters (``$k``). The
leading ``--`` comment of a file is its help. SQL reads the views, never paths: the base
views over the Parquet parts are made here, from the store's live parts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from ce.store.errors import NotFound, QueryError, did_you_mean, error_line
from ce.store.records import folder_keys
from ce.store.schema import HEAD, HEAD_COLUMNS, KINDS, LIST_COLUMNS

if TYPE_CHECKING:
    from ce.store.store import Store

CATEGORIES = ("views", "macros", "queries")
_CREATE = re.compile(
    r"create\s+(?:or\s+replace\s+)?(?:temp\w*\s+)?(view|macro)\s+(\w+)\s*(\([^)]*\))?", re.IGNORECASE
)
_STRINGS_AND_COMMENTS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)
_PARAM = re.compile(r"\$([A-Za-z_]\w*)")

BASE_VIEW_HELP = {name: k.help for name, k in KINDS.items()} | {
    "runs": "One row per run: command, parameters, model and dataset provenance, versions, times, status.",
    "list_limits": "Per live part of neighbors and ood_scores (kind, model, stage, bank (OOD only),"
    " dataset): the shortest and longest list, i.e. the K_max queries can use.",
    "model_parts": "Per kind of rows (predictions, embeddings, ...), each model the store holds rows of.",
}


@dataclass(frozen=True)
class SqlFile:
    name: str
    category: str  # views, macros, queries, or base (made from the store, no file)
    text: str
    help: str
    params: tuple[str, ...]  # $names for queries, macro arguments for macros
    optional: tuple[str, ...] = ()  # macro arguments with a default
    defaults: tuple[str, ...] = ()  # their defaults, as the SQL writes them

    @property
    def signature(self) -> str:
        """How the file is called: ``name(k, tpr := 0.95)`` for a macro, the name otherwise."""
        if self.category != "macros":
            return self.name
        given = dict(zip(self.optional, self.defaults, strict=True))
        args = [f"{p} := {given[p]}" if p in given else p for p in self.params]
        return f"{self.name}({', '.join(args)})"


def _help_of(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return " ".join(lines).strip()


def parameters(sql: str) -> list[str]:
    """The ``$name`` parameters of ``sql``, in order of first use (strings and comments skipped)."""
    seen: dict[str, None] = {}
    for name in _PARAM.findall(_STRINGS_AND_COMMENTS.sub(" ", sql)):
        seen.setdefault(name)
    return list(seen)


def _macro_args(signature: str | None) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(all argument names, those with a default, the defaults) of a macro signature
    '(k, tpr := 0.95)'."""
    args = [a.strip() for a in (signature or "()").strip()[1:-1].split(",") if a.strip()]
    names = tuple(a.split(":=")[0].strip() for a in args)
    with_default = [a.split(":=") for a in args if ":=" in a]
    return names, tuple(n.strip() for n, _ in with_default), tuple(d.strip() for _, d in with_default)


@cache
def library() -> dict[str, SqlFile]:
    """Every SQL file shipped in ``sql/``, by name (views first, then macros, then queries),
    and the query ``table2``, generated from the table of measures."""
    found: dict[str, SqlFile] = {}
    root = resources.files("ce.sql")
    for category in CATEGORIES:
        for entry in sorted(root.joinpath(category).iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".sql"):
                continue
            name, text = entry.name[:-4], entry.read_text()
            optional: tuple[str, ...] = ()
            defaults: tuple[str, ...] = ()
            if category == "queries":
                params = tuple(parameters(text))
            else:
                m = _CREATE.search(_STRINGS_AND_COMMENTS.sub(" ", text))
                if not m or m.group(2) != name or m.group(1).lower() + "s" != category:
                    raise RuntimeError(f"sql/{category}/{entry.name} must create the {category[:-1]} {name}")
                params, optional, defaults = _macro_args(m.group(3))
            found[name] = SqlFile(name, category, text, _help_of(text), params, optional, defaults)
    from .measures import TABLE2_HELP, table2_sql  # generated from the table of measures

    text = table2_sql()
    params = tuple(parameters(text))
    found["table2"] = SqlFile("table2", "queries", text, TABLE2_HELP, params, ("reference",), ("null",))
    return found


def catalogue() -> list[SqlFile]:
    """Base views and every SQL file, for ``ce query --list``."""
    base = [SqlFile(n, "base", "", h, ()) for n, h in BASE_VIEW_HELP.items()]
    return base + list(library().values())


def _empty_arrow(kind_name: str) -> pa.Table:
    k = KINDS[kind_name]
    fields = [pa.field(key, pa.string()) for key in k.keys] + list(k.schema)
    return pa.schema(fields).empty_table()


def literal(text: str) -> str:
    """``text`` as a DuckDB string literal: quotes doubled, no escapes (DuckDB reads a
    backslash as itself), so no value can end the literal early."""
    if "\0" in text:
        raise QueryError(f"a path holds a NUL character: {text[:80]!r}")
    return "'" + text.replace("'", "''") + "'"


def _source(files: list[str]) -> str:
    options = "hive_partitioning = true, hive_types_autocast = false, union_by_name = true"
    return f"read_parquet([{', '.join(map(literal, files))}], {options})"


def _create_base_views(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    """The views over the store's live parts and its run records, read once."""
    store.register(con)
    con.execute(f"create or replace macro list_head_length() as {HEAD}")
    records = store.runs()
    live = store.live_parts(records)
    for name in KINDS:
        con.register(f"_empty_{name}", _empty_arrow(name))
        if not live[name]:
            con.execute(f"create or replace view {name} as select * from _empty_{name}")
            continue
        groups: dict[tuple, list[str]] = {}  # parts read alike: same folders, head column or not
        for p in live[name]:
            path = store.location(p.path)
            missing = tuple((k, v) for k, v in p.partition.items() if k not in folder_keys(p.path))
            groups.setdefault((missing, _lacks_head(con, p, path)), []).append(path)
        selects = [_select(name, *group, files) for group, files in sorted(groups.items())]
        # the empty table of the kind adds, as nulls, the columns of a later release that
        # none of the parts has (a store written before predictions kept probs)
        selects.append(f"select * from _empty_{name}")
        con.execute(f"create or replace view {name} as {' union all by name '.join(selects)}")
    _create_list_limits(con, store, live)
    held = sorted(
        {(p.kind, p.partition["model"]) for parts in live.values() for p in parts if "model" in p.partition}
    )
    con.register(
        "_model_parts",
        pa.table(
            {"kind": [k for k, _ in held], "model": [m for _, m in held]},
            schema=pa.schema([("kind", pa.string()), ("model", pa.string())]),
        ),
    )
    con.execute("create or replace view model_parts as select * from _model_parts")
    con.register("_runs", runs_table(records))
    con.execute("create or replace view runs as select * from _runs")


def _select(name: str, missing: tuple[tuple[str, str], ...], lacks_head: bool, files: list[str]) -> str:
    """The rows of ``files``, parts of kind ``name``: partition keys first, read from the
    folder names, or for parts of an older layout, ``missing`` keys given as constants
    (their run's values); a head column derived for parts written before it existed."""
    given = dict(missing)
    keys = KINDS[name].keys
    columns = ", ".join(f"{literal(given[k])} as {k}" if k in given else k for k in keys)
    exclude = ", ".join(k for k in keys if k not in given)
    head = f", {LIST_COLUMNS[name]}[1:{HEAD}] as {HEAD_COLUMNS[name]}" if lacks_head else ""
    return f"select {columns}, * exclude ({exclude}){head} from {_source(files)}"


def _lacks_head(con: duckdb.DuckDBPyConnection, part, path: str) -> bool:
    head = HEAD_COLUMNS.get(part.kind)
    if head is None or part.lengths is not None:
        return False
    names = con.execute("select name from parquet_schema(?)", [path]).fetchall()
    return (head,) not in names


def _create_list_limits(con: duckdb.DuckDBPyConnection, store: Store, live) -> None:
    """View list_limits: the shortest and longest list (K_max) of every live part of
    neighbours and OOD scores, from the run records; read from the data only for parts
    whose record does not say."""
    names = ("kind", "model", "stage", "bank", "dataset")
    rows, selects = [], []
    for name, column in LIST_COLUMNS.items():
        for p in live[name]:
            keys = {"kind": name, "bank": None, **p.partition}
            if p.lengths is not None:
                rows.append({**keys, "k_min": p.lengths[0], "k_max": p.lengths[1]})
            else:
                values = ", ".join(f"{_text(keys[n])} as {n}" for n in names)
                selects.append(
                    f"select {values}, min(len({column})) as k_min, max(len({column})) as k_max"
                    f" from read_parquet({literal(store.location(p.path))})"
                )
    fields = [(c, pa.string()) for c in names]
    recorded = pa.Table.from_pylist(rows, pa.schema(fields + [("k_min", pa.int64()), ("k_max", pa.int64())]))
    con.register("_list_limits", recorded)
    sql = " union all ".join(["select * from _list_limits", *selects])
    con.execute(f"create or replace view list_limits as {sql}")


def _text(value: str | None) -> str:
    return "null::varchar" if value is None else literal(value)


RUN_FIELDS = ("run_id", "command", "status", "model", "dataset", "started", "ended")


def runs_table(records: list[dict[str, Any]]) -> pa.Table:
    """One row per run record: its main fields, parameters and the rest as JSON, part counts."""
    rows = []
    for rec in records:
        known = set(RUN_FIELDS) | {"params", "parts", "argv"}
        rows.append(
            {
                **{f: rec.get(f) for f in RUN_FIELDS},
                "argv": " ".join(rec.get("argv") or []),
                "params": json.dumps(rec.get("params", {}), sort_keys=True),
                "provenance": json.dumps(
                    {k: v for k, v in rec.items() if k not in known}, sort_keys=True, default=str
                ),
                "parts": len(rec.get("parts", [])),
                "rows": sum(p.get("rows", 0) for p in rec.get("parts", [])),
            }
        )
    text = [*RUN_FIELDS, "argv", "params", "provenance"]
    schema = pa.schema([(c, pa.string()) for c in text] + [("parts", pa.int64()), ("rows", pa.int64())])
    return pa.Table.from_pylist(rows, schema=schema)


def duckdb_config(spill: str) -> dict[str, str]:
    """DuckDB settings: a memory limit (CE_MEMORY_LIMIT, default 4GB) past which joins and
    aggregates spill to the folder ``spill`` instead of growing, and CE_THREADS threads
    (default: every core)."""
    config = {"memory_limit": os.environ.get("CE_MEMORY_LIMIT", "4GB"), "temp_directory": spill}
    if os.environ.get("CE_THREADS"):
        config["threads"] = os.environ["CE_THREADS"]
    return config


_STORES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection -> its store


def spill_folder() -> str:
    """Where DuckDB spills joins and sorts that outgrow the memory limit (CE_TEMP_DIR)."""
    return os.environ.get("CE_TEMP_DIR") or tempfile.gettempdir()


SPILL_ROW_BYTES = 64  # a generous width of one row a join or sort carries: keys and a value


def check_spill_room(
    con: duckdb.DuckDBPyConnection, kinds: tuple[str, ...], what: str, per_pair: tuple[str, ...] = ()
) -> None:
    """Refuse, before it starts, a query whose joins and sorts may spill more than the spill
    folder has free: a disk that fills midway fails the query late. DuckDB spills only what
    outgrows the memory limit, at most the rows the query's joins carry: SPILL_ROW_BYTES for
    each row of the ``kinds`` it joins, and for each row of the ``per_pair`` kinds (joined
    pair by pair, per example) once per other model. Rows are counted from the store's
    manifest, nothing is read. Lists streamed in blocks (the neighbour kernel, CKA) are
    bounded and not counted. Remote stores (sizes unknown here) are not checked."""
    from ce.store.remote import RemoteStore

    store = _STORES.get(con)
    if store is None or isinstance(store, RemoteStore):
        return
    live = store.live_parts()
    size = 0
    for kind in (*kinds, *per_pair):
        parts = live.get(kind, ())
        fan_out = len({p.partition.get("model") for p in parts}) - 1 if kind in per_pair else 1
        size += sum(p.rows for p in parts) * SPILL_ROW_BYTES * max(fan_out, 0)
    folder = spill_folder()
    free = shutil.disk_usage(folder).free
    if size > free:
        raise QueryError(
            f"{what} may spill up to {size / 2**30:.1f} GiB (the rows its joins carry), but the"
            f" spill folder {folder} has {free / 2**30:.1f} GiB free; free some space or set"
            " CE_TEMP_DIR to a folder on a larger disk"
        )


def connect(store: Store) -> duckdb.DuckDBPyConnection:
    """A connection with the store's views and the SQL library, then locked read-only:
    no statement can write a file, attach a database, load an extension, read outside the
    store or change a setting. While the connection lives it holds a reader's lease, so a
    writer committing meanwhile keeps the parts its views read."""
    lease = store.lease()
    try:  # a spill folder of its own: DuckDB lets SQL read and write its spill folder
        spill = tempfile.mkdtemp(prefix="ce-duckdb-", dir=spill_folder())
        con = duckdb.connect(config=duckdb_config(spill))
    except (duckdb.Error, OSError) as e:
        if lease:
            lease.close()
        raise QueryError(
            f"bad DuckDB setting ({e}); check CE_MEMORY_LIMIT, CE_TEMP_DIR, CE_THREADS"
        ) from None
    weakref.finalize(con, _release, lease, spill)  # the spill folder is made in CE_TEMP_DIR
    _STORES[con] = store
    _create_base_views(con, store)
    pending = [f for f in library().values() if f.category != "queries"]
    while pending:  # a view or macro may use another one: create what binds, then retry
        failed = []
        for f in pending:
            try:
                con.execute(f.text)
            except duckdb.CatalogException:
                failed.append(f)
        if len(failed) == len(pending):
            con.execute(failed[0].text)  # raises the real error
        pending = failed
    _lock_down(con, store)
    return con


def _release(lease, spill: str) -> None:
    if lease:
        lease.close()
    shutil.rmtree(spill, ignore_errors=True)


def _lock_down(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    """Allow reads of the store's own files only, then lock the configuration."""
    allowed = ", ".join(map(literal, store.read_prefixes()))
    con.execute(f"set allowed_directories = [{allowed}]")
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")


def bind(name: str, declared, given: dict[str, str], optional=()) -> dict:
    """Check ``given`` against the declared parameters; numbers become numbers."""
    missing = [p for p in declared if p not in given and p not in optional]
    unknown = [p for p in given if p not in declared]
    expected = ", ".join(declared) or "none"
    if missing or unknown:
        problem = (
            f"missing parameter {', '.join(missing)}"
            if missing
            else f"unknown parameter {', '.join(unknown)}"
        )
        raise QueryError(
            f"{name}: {problem}; it takes: {expected} (ce query -p NAME VALUE; in Python NAME=VALUE)"
        )
    return {k: value(v) for k, v in given.items()}


def value(text: Any) -> Any:
    """A parameter given as text as SQL should see it: a number where it reads as one."""
    if not isinstance(text, str):
        return text
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def default_value(text: str) -> Any:
    """A parameter's default as the SQL writes it ('null', '0.95') as Python sees it."""
    return None if text.lower() == "null" else value(text)


def resolve(sql_or_name: str, given: dict[str, str]) -> tuple[str, dict]:
    """Turn a query name, view or macro name, or an SQL statement into (sql, bound params)."""
    text = sql_or_name.strip()
    known = {f.name: f for f in catalogue()}
    if re.fullmatch(r"\w+", text):
        f = known.get(text)
        if f is None:
            raise NotFound(
                f"no query, view or macro named {text!r}{did_you_mean(text, known)}; see ce query --list"
            )
        if f.category == "queries":
            bound = bind(text, f.params, given, f.optional)
            for p, default in zip(f.optional, f.defaults, strict=True):
                bound.setdefault(p, default_value(default))
            return f.text, bound
        if f.category == "macros":
            bound = bind(text, f.params, given, f.optional)
            args = ", ".join(f"{p} := ${p}" if p in f.optional else f"${p}" for p in f.params if p in bound)
            return f"select * from {text}({args})", bound
        return f"select * from {text}", bind(text, (), given)
    return text, bind("query", parameters(text), given)


READ_ONLY = ("SELECT",)  # not EXPLAIN: EXPLAIN ANALYZE runs its statement


def execute(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None):
    """Run ``sql``, one query, as a relation (results stream); a DuckDB error becomes a
    :class:`QueryError`. Statements other than a query are refused before they run."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(f"SQL error: {error_line(e)}") from None
    if len(statements) != 1:
        raise QueryError(
            f"the SQL holds {len(statements)} statements; ce query runs one query (select or with)"
        )
    kind = statements[0].type.name
    if kind not in READ_ONLY:
        raise QueryError(
            f"ce query is read-only and this is a {kind} statement; run a select (or with)"
            " query, and write its result with -o FILE [--format csv|json|parquet]"
        )
    try:
        relation = con.sql(sql, params=params or None)
    except duckdb.Error as e:
        first = error_line(e)
        raise QueryError(f"SQL error: {first}") from None
    if relation is None:
        raise QueryError(
            "the SQL returned no rows to show (a statement, not a query);"
            " ce query runs queries: start it with select or with"
        )
    return relation
