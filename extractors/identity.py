"""A run's identity: everything that changes its results and nothing that does not.

Two runs with the same identity give the same rows, so ``ce run`` (and ``ce ood``, which
reads embeddings other runs made) may use a stored run in place of a new one only when the
identities are equal, and otherwise says which setting differs. The identity holds the
run's result settings, the sha256 of every file of every model it loaded (by role: target,
attacker, sentence encoder): weights, config and tokenizer; and the content fingerprint of
every dataset it read.
Devices, batch sizes, revisions (the commit counts, through the files' hashes) and the
pickle policy are left out.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import PurePosixPath
from typing import Any

from ce.store.store import Store

NOT_RESULTS = frozenset(
    {
        "device",
        "batch_size",
        "revision",
        "attacker_revision",
        "allow_pickle",
        "trust_remote_code",
        "restart",
        "checkpoint_every",
    }
)


def identity(
    options: Any, loaded: dict[str, dict], datasets: dict[str, str], **settled: Any
) -> dict[str, Any]:
    """The identity of a run with ``options`` (a dataclass), the models ``loaded`` (role ->
    ModelFiles.record()), the ``datasets`` read (role -> fingerprint), and ``settled``
    values that replace an option's automatic setting (e.g. precision 'auto' as run)."""
    settings = {k: v for k, v in asdict(options).items() if k not in NOT_RESULTS}
    return {
        **settings,
        **settled,
        "weights": {role: files["sha256"] for role, files in sorted(loaded.items())},
        "datasets": dict(sorted(datasets.items())),
    }


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
    records = store.runs()
    live = {
        PurePosixPath(p.path).stem.removeprefix("part-")
        for p in store.live_parts(records)[kind_name]
        if p.partition == partition
    }
    return [r.get("identity") for r in records if r["run_id"] in live]


def unsharded(run_identity: dict[str, Any] | None) -> dict[str, Any] | None:
    """The identity without its shard: a store shows a sharded series only once all its
    shards are in, and the whole series equals the unsharded run."""
    return None if run_identity is None else {k: v for k, v in run_identity.items() if k != "shard"}


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
