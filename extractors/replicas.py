"""Replica groups: models made by one recipe with different seeds (the noise floor's models).

The replica of group G with seed S is the model named ``G-sS`` (:func:`member_name`); its
card (``ce-model.json``) and the run that made it hold ``"replica": {"group": G, "seed": S}``.
``ce finetune --seeds`` makes a group; ``ce compress``, ``ce extract``, ``ce ood`` and
``ce attack`` of a group name (one with no model folder or alias of its own) run once per
member (:func:`expand`), the results of member ``G-sS`` stored under ``N-sS`` and recorded
as replicas of group N (N = the name given, else G).

A card is data anyone could have written: a group is taken from it only when its name is
usable, its seed a whole number, and the folder is named after both.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ce.store.errors import CeError
from ce.store.schema import NAME_PATTERN, check_name
from ce.store.store import Store

from .compress import CARD

MAX_SEED = 2**32  # seeds lie in [0, 2^32), as torch and numpy take them
MAX_CARD_BYTES = 4 * 2**20  # a card is a few kB; a larger file is no card of ce's


def member_name(group: str, seed: int) -> str:
    """The model name of the replica of ``group`` with ``seed``: ``GROUP-sSEED``."""
    return f"{group}-s{seed}"


def replica_field(group: str, seed: int | None) -> dict:
    """What a replica's card and run record hold."""
    return {"group": group, "seed": seed}


def check_seeds(seeds, what: str = "--seeds") -> list[int]:
    """``seeds`` as a list of at least two distinct whole numbers in [0, 2^32); a CeError else."""
    if not isinstance(seeds, list | tuple) or not all(type(s) is int for s in seeds):
        raise CeError(f"{what} must be whole numbers, e.g. 0,1,2")
    wrong = [s for s in seeds if not 0 <= s < MAX_SEED]
    if wrong:
        raise CeError(f"{what}: seed {wrong[0]} is not a whole number in [0, 2^32)")
    if len(set(seeds)) != len(seeds):
        raise CeError(f"{what} lists a seed twice ({', '.join(map(str, seeds))}); give each seed once")
    if len(seeds) < 2:
        raise CeError(f"{what} needs at least two seeds to make replicas, e.g. 0,1,2")
    return list(seeds)


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` as [0, 1, 2] (see :func:`check_seeds`)."""
    items = [item.strip() for item in str(text).split(",")]
    if not all(re.fullmatch(r"\d{1,10}", item) for item in items):
        raise CeError(
            f"--seeds {str(text)[:40]!r} is not a comma-separated list of whole numbers, e.g. 0,1,2"
        )
    return check_seeds([int(item) for item in items])


def check_group_name(store: Store, group: str, seeds, flag: str | None = "-o") -> None:
    """A name a new replica group may take (``flag``: the option that gave it): usable, with
    usable member names, and neither a model folder of the store nor an alias (a model of
    that name would read as one of the group's replicas)."""
    from .registry import MODELS

    given = f"{flag} {group}" if flag else f"replica group {group}"
    check_name("model", group)
    if group in MODELS or _is_model_folder(store, group):
        raise CeError(
            f"{given} names a model {'alias' if group in MODELS else 'of the store'}; a group of"
            f" replicas needs a name of its own (its members are {member_name(group, seeds[0])}, ...)"
        )
    for seed in seeds:
        member = member_name(group, seed)
        check_name("model", member)
        if member in MODELS:
            raise CeError(f"{given}: its replica {member} would be a model alias; name the group otherwise")
        if _is_model_folder(store, member) and _card_replica(Path(store.root) / "models" / member) != (
            group,
            seed,
        ):
            raise CeError(
                f"{given}: the store has a model {member} that is not replica {seed} of {group}, and"
                " making the group would replace it; name the group otherwise"
            )


def _is_model_folder(store: Store, name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None and (Path(store.root) / "models" / name).is_dir()


def _card_replica(folder: Path) -> tuple[str, int] | None:
    """(group, seed) of a model folder whose card names a valid replica of its own name."""
    card = folder / CARD
    try:
        if not card.is_file() or card.stat().st_size > MAX_CARD_BYTES:
            return None
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # unreadable, not UTF-8, not JSON, nested too deep
        return None
    replica = data.get("replica") if isinstance(data, dict) else None
    if not isinstance(replica, dict):
        return None
    group, seed = replica.get("group"), replica.get("seed")
    if not isinstance(group, str) or not NAME_PATTERN.fullmatch(group):
        return None
    if type(seed) is not int or not 0 <= seed < MAX_SEED or folder.name != member_name(group, seed):
        return None
    return group, seed


def store_groups(store: Store) -> dict[str, list[tuple[str, int]]]:
    """Every replica group of the store's model folders: group -> [(member folder name,
    seed)] by seed. Hidden and temporary folders are skipped, and so is any card whose
    replica field is not a usable group name and whole seed matching its folder's name."""
    models = Path(store.root) / "models"
    groups: dict[str, list[tuple[str, int]]] = {}
    if not models.is_dir():
        return groups
    for folder in sorted(models.iterdir()):
        if folder.name.startswith(".") or not NAME_PATTERN.fullmatch(folder.name) or not folder.is_dir():
            continue
        found = _card_replica(folder)
        if found is not None:
            groups.setdefault(found[0], []).append((folder.name, found[1]))
    return {group: sorted(members, key=lambda m: m[1]) for group, members in sorted(groups.items())}


def is_group(store: Store, model: str, known: dict[str, list[int]] | None = None) -> bool:
    """Whether ``model`` names a replica group rather than one model: a group ``known`` from
    an experiment file or the store's, with no model folder or alias of that very name."""
    from .registry import MODELS

    if model in MODELS or _is_model_folder(store, model):
        return False
    return model in (known or {}) or model in store_groups(store)


def expand(
    store: Store, model: str, name: str | None = None, known: dict[str, list[int]] | None = None
) -> list[tuple[str, str | None, dict | None]]:
    """(model to load, store name, replica field or None) for each job that ``model`` asks
    for: one per member when it names a replica group (:func:`is_group`), each stored as
    ``member_name(name or model, seed)`` and recorded as a replica of group ``name or
    model``; else the one job ``(model, name, None)``."""
    if not is_group(store, model, known):
        return [(model, name, None)]
    if known and model in known:
        members = [(member_name(model, seed), seed) for seed in known[model]]
    else:
        members = store_groups(store)[model]
    group = name or model
    if name is not None and name != model:
        check_group_name(store, name, [seed for _, seed in members], None)
    return [(member, member_name(group, seed), replica_field(group, seed)) for member, seed in members]
