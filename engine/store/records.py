"""Run records as data that may come from elsewhere: a typed schema, and the part layout.

A run record is JSON that ce writes for every run (``STORE/runs/<run_id>.json``), but a
record may also arrive in a bundle or from a store at a URL, written by anyone. Nothing
in one is trusted: :func:`parse_record` checks every field against its type, every part
against the layout (a known kind, exactly that kind's partition keys with portable values,
and the path ``KIND/key=value/.../part-<run_id>.parquet`` derived from them and from the
record's own run id), and, for records from elsewhere (``strict``), that no field is
unknown and no date lies in the future. A part path that passed here is safe to show to
DuckDB or to join to a store root.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import StoreError
from .schema import KINDS, NAME_PATTERN

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
SERIES = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}")
SHARD = re.compile(r"(0|[1-9][0-9]{0,8})/([1-9][0-9]{0,8})")
STATUSES = ("running", "complete")
FUTURE_SLACK = timedelta(days=1)  # clocks of other labs may be off by this much

TEXT = (str, type(None))
NUMBER = (int, float, type(None))

# Every top-level field a run record may hold, with its JSON type. The first group is the
# store's own bookkeeping; the rest is provenance that commands pass to Store.run, which
# refuses a field missing here, so this is the one list of them.
FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "command": (str,),
    "argv": (list,),
    "params": (dict,),
    "versions": (dict,),
    "host": (str,),
    "pid": (int,),
    "started": (str,),
    "ended": TEXT,
    "committed": TEXT,  # when the run became visible in this store (local clock)
    "status": (str,),
    "parts": (list,),
    "imported": (dict, type(None)),  # set on runs that came from a bundle
    # provenance
    "model": TEXT,
    "dataset": TEXT,
    "stage": TEXT,
    "task": TEXT,
    "examples": (int, type(None)),
    "dataset_source": TEXT,
    "dataset_fingerprint": TEXT,
    "source_sha256": TEXT,
    "model_source": TEXT,
    "model_class": TEXT,
    "model_revision": TEXT,  # records before 'loaded'
    "weight_sha256": (dict, type(None)),  # records before 'loaded'
    "loaded": (dict, type(None)),  # role -> {source, revision (commit), format, sha256 per file}
    "identity": (dict, type(None)),  # what the run's results depend on (extractors/identity.py)
    "architecture": TEXT,
    "family": TEXT,  # encoder, seq2seq or decoder (extractors/families.py)
    "answered_by": TEXT,  # how the model answered its task: classify, span, verbalize, ...
    "representation": (dict, type(None)),  # pooling, layer (hidden-state index) and blocks
    "pad_token": TEXT,  # the token a tokenizer without one was given to pad batches with
    "model_parameters": (int, type(None)),  # weights of the model as loaded
    "model_nonzero_parameters": (int, type(None)),  # of those, not zero (pruning zeroes weights)
    "model_bytes": (int, type(None)),  # size on disk of the files it was loaded from
    "published_parameters": (int, type(None)),  # ingested results: the count published for the alias
    "ingested": (dict, type(None)),  # another tool's log: the tool, format, metric, what it lacked
    "derived_from": (dict, type(None)),
    "neighbors": (dict, type(None)),
    "bank_size": (int, type(None)),
    "k_max": (int, type(None)),
    "series": TEXT,
    "recipe": (dict, type(None)),
    "parent": TEXT,
    "train_loss": NUMBER,
    "kept_layers": (list, type(None)),
    "sparsity_reached": NUMBER,
    "distill": (dict, type(None)),
    "distill_steps": (int, type(None)),
    "distill_loss_first": NUMBER,
    "distill_loss_last": NUMBER,
    "replica": (dict, type(None)),  # {"group": NAME, "seed": int or null}: a replica of a group
}
REQUIRED = ("run_id", "command", "status", "started", "parts")
PART_FIELDS = {"kind", "partition", "path", "rows", "series", "shard", "resumable", "lengths"}


def part_path(
    kind_name: str, partition: dict[str, str], run_id: str, keys: tuple[str, ...] | None = None
) -> str:
    """Where a part of ``kind_name`` for ``partition`` written by ``run_id`` lives in a store
    (in the folders of ``keys``, one of the kind's older layouts, if given)."""
    folders = "/".join(f"{key}={partition[key]}" for key in keys or KINDS[kind_name].keys)
    return f"{kind_name}/{folders}/part-{run_id}.parquet"


def folder_keys(path: str) -> tuple[str, ...]:
    """The partition keys that the folders of a part's ``path`` name, in order."""
    return tuple(folder.split("=", 1)[0] for folder in path.split("/")[1:-1])


def parse_record(data: Any, where: str, strict: bool = False) -> dict[str, Any]:
    """``data`` (parsed JSON) as a run record, or a :class:`StoreError` naming ``where`` and
    the field at fault. ``strict`` (records from elsewhere) also refuses unknown fields and
    dates in the future."""

    def bad(problem: str) -> StoreError:
        return StoreError(f"{where}: {problem}; it is not a ce run record (remove it, or ask for it again)")

    if not isinstance(data, dict):
        raise bad(f"is a JSON {type(data).__name__}, not an object")
    try:  # every string must be text (a lone surrogate parses, then breaks every reader)
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError, ValueError, TypeError):
        raise bad(
            "holds text that is not valid Unicode, a number that is not finite, or nests too deeply"
        ) from None
    missing = [f for f in REQUIRED if f not in data]
    if missing:
        raise bad(f"has no {missing[0]!r}")
    for name, value in data.items():
        expected = FIELDS.get(name)
        if expected is None:
            if strict:
                raise bad(f"has a field {name!r} that ce does not know")
            continue
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            raise bad(f"field {name!r} is a {type(value).__name__}")
    if not RUN_ID.fullmatch(data["run_id"]):
        raise bad(f"run id {data['run_id'][:80]!r} is not usable (letters, digits, - and _)")
    if data["status"] not in STATUSES:
        raise bad(f"status {data['status'][:40]!r} is not {' or '.join(STATUSES)}")
    if not all(isinstance(a, str) for a in data.get("argv", [])):
        raise bad("argv holds something other than strings")
    for name in ("started", "ended", "committed"):
        if data.get(name) is not None:
            _check_date(data[name], name, strict, bad)
    if data.get("replica") is not None:
        _check_replica(data["replica"], bad)
    data["parts"] = [_parse_part(p, data, bad) for p in data["parts"]]
    paths = [p["path"] for p in data["parts"]]
    if len(set(paths)) != len(paths):
        raise bad("names one part twice")
    return data


def _check_replica(replica: dict, bad) -> None:
    """A replica field: exactly a group (a usable name) and a seed (a whole number or null)."""
    if set(replica) != {"group", "seed"}:
        raise bad("field 'replica' must hold exactly 'group' and 'seed'")
    group, seed = replica["group"], replica["seed"]
    if not isinstance(group, str) or not NAME_PATTERN.fullmatch(group):
        raise bad(f"replica group {str(group)[:80]!r} is not a usable name")
    if seed is not None and (type(seed) is not int or not 0 <= seed < 2**32):
        raise bad(f"replica seed {str(seed)[:40]!r} is not a whole number in [0, 2^32)")


def _check_date(text: str, name: str, strict: bool, bad) -> None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise bad(f"{name} {text[:40]!r} is not an ISO date") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if strict and when > datetime.now(UTC) + FUTURE_SLACK:
        raise bad(f"{name} {text[:40]} lies in the future")


def _parse_part(part: Any, record: dict[str, Any], bad) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise bad("a part is not an object")
    unknown = sorted(set(part) - PART_FIELDS)
    if unknown:
        raise bad(f"a part has a field {unknown[0]!r} that ce does not know")
    kind_name = part.get("kind")
    if kind_name not in KINDS:
        raise bad(f"a part has kind {str(kind_name)[:40]!r}; known: {', '.join(KINDS)}")
    keys, layout = _layout(kind_name, part)
    partition = part.get("partition")
    if not isinstance(partition, dict) or sorted(partition) not in (sorted(keys), sorted(layout)):
        raise bad(f"a {kind_name} part must be partitioned by exactly {', '.join(keys)}")
    for key in (k for k in keys if k not in layout):  # an older layout: the run names the key
        value = record.get(key)
        if value is None:
            raise bad(
                f"a {kind_name} part without a {key}= folder needs its run's {key}; the record has none"
            )
        if partition.setdefault(key, value) != value:
            shown = str(partition[key])[:80]
            raise bad(f"a {kind_name} part without a {key}= folder has {key} {shown!r}, not its run's")
    for key, value in partition.items():
        if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
            raise bad(f"a {kind_name} part has {key} {str(value)[:80]!r}, not a usable name")
    part["partition"] = {key: partition[key] for key in keys}
    expected = part_path(kind_name, partition, record["run_id"], layout)
    if part.get("path") != expected:
        raise bad(f"part path {str(part.get('path'))[:120]!r} is not {expected!r}")
    rows = part.get("rows", 0)
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise bad(f"part {expected} has a row count that is not a whole number >= 0")
    series = part.get("series")
    if series is not None and not (isinstance(series, str) and SERIES.fullmatch(series)):
        raise bad(f"part {expected} names a series that is not a usable name")
    shard = part.get("shard")
    if shard is not None:
        match = SHARD.fullmatch(shard) if isinstance(shard, str) else None
        if not match or int(match.group(1)) >= int(match.group(2)):
            raise bad(f"part {expected} has shard {str(shard)[:20]!r}, not I/N with I < N")
    if not isinstance(part.get("resumable", False), bool):
        raise bad(f"part {expected} has a resumable flag that is not true or false")
    lengths = part.get("lengths")
    if lengths is not None and not (
        isinstance(lengths, list)
        and len(lengths) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in lengths)
        and lengths[0] <= lengths[1]
    ):
        raise bad(f"part {expected} has list lengths that are not [min, max]")
    return part


def _layout(kind_name: str, part: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the kind's partition keys, the keys the part's folders name): the same tuple, or
    for a part that an earlier release wrote, one of the kind's older layouts."""
    k = KINDS[kind_name]
    path = part.get("path")
    found = folder_keys(path) if isinstance(path, str) else ()
    return k.keys, found if found in k.older_keys else k.keys


def storable(value: Any) -> Any:
    """``value`` as a record may hold it: non-finite numbers become null, text that is not
    valid Unicode (a surrogate-escaped file name in argv) gets replacement characters."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def check_provenance(fields: dict[str, Any]) -> None:
    """Refuse provenance a record may not hold (a programming error: add it to FIELDS)."""
    for name, value in fields.items():
        expected = FIELDS.get(name)
        if expected is None or not isinstance(value, expected):
            raise StoreError(f"run provenance {name!r} is not a known record field of its type")
    if fields.get("replica") is not None:  # checked before the record is written, as on reading
        _check_replica(fields["replica"], lambda problem: StoreError(f"run provenance: {problem}"))
