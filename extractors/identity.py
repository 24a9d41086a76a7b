"""A run's identity: everything that changes its results and nothing that does not.

Two runs with the same identity give the same rows, so ``ce run`` (and ``ce ood``, which
reads embeddings other runs made) may use a stored run in place of a new one only when the
identities are equal, and otherwise says which setting differs. The identity holds the
run's result settings, the sha256 of every file of every model it loaded (by role: target,
attacker, sentence encoder): weights, config and tokenizer; and the content fingerprint of
every dataset it read.
Devices, batch sizes, revisions (the commit counts, through the files' hashes) and the
pickle policy are left out: an option dataclass marks such a field with
``not_identity(default)`` (field metadata ``{"identity": False}``), and :func:`identity`
takes every other field.

Resumed and sharded work finds the runs it adds to by its series (:func:`series_key`), also
derived from the identity: the same identity but for the shard, and but for the fields
marked ``continues_series(default)`` (an attack's limit: a longer attack continues a shorter
one).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, field, fields
from typing import Any

from ce.store.store import Store, parse_shard, series_id


def not_identity(default: Any) -> Any:
    """An option field that changes no result (device, batch size, pickle policy, ...)."""
    return field(default=default, metadata={"identity": False})


def continues_series(default: Any) -> Any:
    """An option field by which runs continue each other's series (an attack's limit)."""
    return field(default=default, metadata={"series": False})


def settings(options: Any) -> dict[str, Any]:
    """The fields of an option dataclass that are part of its runs' identity."""
    values = asdict(options)
    return {f.name: values[f.name] for f in fields(options) if f.metadata.get("identity", True)}


LEFT_OUT = "(left out)"  # a settled value that leaves its field out of the identity


def identity(
    options: Any, loaded: dict[str, dict], datasets: dict[str, str], **settled: Any
) -> dict[str, Any]:
    """The identity of a run with ``options`` (a dataclass), the models ``loaded`` (role ->
    ModelFiles.record()), the ``datasets`` read (role -> fingerprint), and ``settled``
    values that replace an option's automatic setting (e.g. precision 'auto' as run), or
    leave it out (LEFT_OUT: a setting that changes nothing here, such as how a limit that
    keeps every example would sample, keeps the identity of runs made before it existed)."""
    values = {**settings(options), **settled}
    return {
        **{key: value for key, value in values.items() if value is not LEFT_OUT},
        "weights": {role: files["sha256"] for role, files in sorted(loaded.items())},
        "datasets": dict(sorted(datasets.items())),
    }


def series_settings(options: Any, run_identity: dict[str, Any] | None) -> dict[str, Any] | None:
    """What runs of one series share: the identity without the shard and the fields of
    ``options`` marked continues_series."""
    continuing = {f.name for f in fields(options) if not f.metadata.get("series", True)}
    return unsharded(run_identity, continuing)


def series_key(job: str, options: Any, run_identity: dict[str, Any]) -> str:
    """The series a run of ``job`` adds its parts to: runs of the same series_settings (and
    the same number of shards) add up, on any machine; anything else starts a new one."""
    shards = parse_shard(options.shard)[1] if options.shard else None
    return series_id(job, series_settings(options, run_identity), shards)


def sharding(job: str, options: Any, run_identity: dict[str, Any]) -> dict[str, str]:
    """The series and shard the parts of a sharded run are written with; {} unsharded."""
    if options.shard is None:
        return {}
    return {"series": series_key(job, options, run_identity), "shard": options.shard}


def differences(wanted: dict[str, Any], stored: dict[str, Any] | None) -> list[str]:
    """What differs, as 'limit 300 -> 1000' (stored first); [] when the identities are equal."""
    if stored is None:
        return ["the stored run predates run identities"]
    out = []
    for key in sorted(set(wanted) | set(stored)):
        old, new = stored.get(key), wanted.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            roles = sorted(r for r in set(old) | set(new) if old.get(r) != new.get(r))
            out.append(f"{key} of {', '.join(roles)}")
        else:
            out.append(f"{key} {_short(old)} -> {_short(new)}")
    return out


def _short(value: Any) -> str:
    text = "none" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def live_identities(store: Store, kind_name: str, partition: dict[str, str]) -> list[dict[str, Any] | None]:
    """The identities of the runs whose parts of ``kind_name`` are live in ``partition``
    (None for a run recorded without one); empty when the store has none."""
    return [r.get("identity") for r in store.live_records(kind_name, partition)]


def unsharded(run_identity: dict[str, Any] | None, leave_out: Collection[str] = ()) -> dict[str, Any] | None:
    """The identity without its shard (and the keys in ``leave_out``): a store shows a
    sharded series only once all its shards are in, and the whole series equals the
    unsharded run."""
    if run_identity is None:
        return None
    return {k: v for k, v in run_identity.items() if k != "shard" and k not in leave_out}


def stale_because(
    store: Store, kind_name: str, partition: dict[str, str], wanted: dict[str, Any]
) -> list[str] | None:
    """None when the store holds ``partition`` from a run of identity ``wanted`` (or the
    whole series of its shards); else why it must run: nothing stored, or what differs."""
    stored = [unsharded(s) for s in live_identities(store, kind_name, partition)]
    if not stored:
        return ["not in the store"]
    wanted = unsharded(wanted)
    if all(s == wanted for s in stored):
        return None
    return differences(wanted, next(s for s in stored if s != wanted))


def model_stale(store: Store, name: str, wanted: dict[str, Any]) -> list[str] | None:
    """None when the store's model ``name`` was made by a run of identity ``wanted`` (its
    card says); else why it must be made: absent, or what differs."""
    import json

    card = store.model_dir(name) / "ce-model.json"
    if not card.is_file():
        return ["not in the store"]
    try:
        stored = json.loads(card.read_text(encoding="utf-8")).get("identity")
    except (ValueError, UnicodeDecodeError, AttributeError):
        stored = None
    return None if stored == wanted else differences(wanted, stored)
