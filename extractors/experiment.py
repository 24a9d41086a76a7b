"""``ce run EXPERIMENT.toml``: a whole grid (models x datasets x characteristics) from one
file, skipping what the store already has.

Sections, each a list of tables, run in this order::

    [[ingest]]    file, model, dataset: a JSON list of the ids a model got wrong
    [[finetune]]  model, task, dataset, output, seeds, and any ce finetune option
    [[compress]]  model, method, output, revision, allow_pickle
    [[extract]]   models, datasets, stages (finetuned, pretrained), and any ce extract option
    [[ood]]       models, bank, id_val, datasets, and any ce ood option
    [[attack]]    models, dataset, and any ce attack option

Fine-tuning and compression steps run in the order their models need: a step whose model
is the output of another runs after it (so a model can be pruned, then fine-tuned, then
quantised).

Replicas (extractors/replicas.py): a [[finetune]] entry with ``seeds = [0, 1, 2]`` makes
one model per seed, OUTPUT-s0, OUTPUT-s1, ..., a replica group named OUTPUT, each a step of
its own. A [[compress]] entry whose model is a replica group (of the file or the store)
compresses each member, MODEL-sS into OUTPUT-sS; an extract, ood or attack ``models``
entry naming a group runs each member, stored as NAME-sS (NAME: the entry's name, else the
group's). A ``file`` is relative to the experiment file's folder; ``${CE_DATA_DIR}`` in it
is the shared data folder.

Options are the commands' own, spelled as keys (``--k-max`` is ``k_max``), including
``revision`` and ``allow_pickle``. ``models`` is a list of model references (alias, folder,
Hub id or a model the store made); an entry ``{ name = "...", model = "...", revision =
"..." }`` stores a model under another name and pins its Hub revision. A step runs unless
the store holds a run of the same identity (extractors/identity.py), and ``ce run`` says
what made it run: nothing stored, or which setting differs from the stored run. The whole
file is checked before anything runs: an unknown section or key, a value of the wrong type
(the option dataclasses' field types) or out of range is an error that names the file, the
section, the entry and the key.

Before any step runs, ``ce run`` says its plan (how many steps, how many the store holds);
then each step is announced as it starts, timed with an ETA for the rest as it ends, and
every step's time is listed at the end (extractors/plan.py). ``ce run --check`` lists the
steps and whether each runs, running nothing.
"""

from __future__ import annotations

import math
import re
import tomllib
import types
from collections.abc import Callable
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from ce.store.errors import CeError, NotFound, did_you_mean
from ce.store.schema import check_name
from ce.store.store import Store

from .attack import AttackOptions
from .attack import check_options as check_attack
from .compress import Method, parse_method
from .extract import STAGES, ExtractOptions
from .extract import check_options as check_extract
from .finetune import FinetuneOptions
from .finetune import check_options as check_finetune
from .ood import OodOptions
from .ood import _check as check_ood
from .plan import Step, describe, plan, run_steps
from .replicas import check_group_name, check_seeds, expand, is_group, member_name, store_groups

MODEL_REFS = "model references"  # the type of ``models``: strings or {name, model, revision} tables
MODEL_REF_KEYS = {"name", "model", "revision"}
NOT_KEYS = ("stage", "qa")  # extract: ``stages`` lists the stages


def _option_types(cls: type, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """Key -> type annotation of the fields of an option dataclass."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if f.name not in leave_out}


OPTIONS = {  # section -> its option dataclass and the fields a file may not set
    "finetune": (FinetuneOptions, ()),
    "extract": (ExtractOptions, NOT_KEYS),
    "ood": (OodOptions, ()),
    "attack": (AttackOptions, ()),
}
OPTION_TYPES = {section: _option_types(cls, leave_out) for section, (cls, leave_out) in OPTIONS.items()}
KEY_TYPES: dict[str, dict[str, Any]] = {
    "ingest": {"file": str, "model": str, "dataset": str},
    "finetune": {"model": str, "dataset": str, "output": str, "seeds": list[int], **OPTION_TYPES["finetune"]},
    "compress": {"model": str, "method": str, "output": str, "revision": str, "allow_pickle": bool},
    "extract": {"models": MODEL_REFS, "datasets": list[str], "stages": list[str], **OPTION_TYPES["extract"]},
    "ood": {"models": MODEL_REFS, "bank": str, "id_val": str, "datasets": list[str], **OPTION_TYPES["ood"]},
    "attack": {"models": MODEL_REFS, "dataset": str, **OPTION_TYPES["attack"]},
}
SECTIONS = {section: set(types_) for section, types_ in KEY_TYPES.items()}
REQUIRED = {
    "ingest": {"file", "model", "dataset"},
    "finetune": {"model", "task", "dataset", "output"},
    "compress": {"model", "method", "output"},
    "extract": {"models", "datasets"},
    "ood": {"models", "bank", "datasets"},
    "attack": {"models"},
}
DEFAULTS = {
    f.name: f.default
    for cls, _ in OPTIONS.values()
    for f in fields(cls)
    if f.default is not MISSING and f.default is not None
}
EXAMPLES = {
    "datasets": '["sst2-dev"]',
    "stages": '["finetuned", "pretrained"]',
    "model": '"minilm"',
    "dataset": '"sst2-dev"',
    "bank": '"sst2-dev"',
    "id_val": '"sst2-dev"',
    "output": '"my-model"',
    "method": '"layers:3"',
    "shard": '"0/4"',
    "seeds": "[0, 1, 2]",
}
MINIMUM = {"seed": 0, "sample_seed": 0}  # every other integer counts something, so it is at least 1
FLAGS = {"--lr": "learning_rate", "--warmup": "warmup_ratio"}  # CLI flags not named after their key
MODELS_EXAMPLE = 'models = ["minilm", { name = "small", model = "FOLDER" }]'


def load_experiment(path: str | Path) -> dict[str, list[dict]]:
    """The parsed file, every section, entry, key and value checked; raises a CeError."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"no such experiment file: {path}")
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CeError(f"{path} is not valid TOML: {e}") from None
    for section, entries in spec.items():
        if section not in SECTIONS:
            raise CeError(
                f"{path}: unknown section [[{section}]]{did_you_mean(section, SECTIONS)};"
                f" known: {', '.join(SECTIONS)}"
            )
        if isinstance(entries, dict):
            raise CeError(
                f"{path}: [{section}] is a single table; write [[{section}]] (a list of tables, one per step)"
            )
        if not isinstance(entries, list):
            raise CeError(
                f"{path}: {section} must be a list of tables, written [[{section}]] (found {_found(entries)})"
            )
        for i, entry in enumerate(entries, 1):
            _check_entry(path, section, i, entry)
            if section == "ingest" and not _file(path, entry["file"]).is_file():
                raise NotFound(
                    f"{path}: [[ingest]] number {i}: no such error list: {_file(path, entry['file'])}"
                )
    _model_steps(path, spec)  # no circle of models made from each other
    return spec


def _model_steps(path: Path, spec: dict[str, list[dict]]) -> list[tuple[str, dict]]:
    """The finetune and compress steps in an order where each runs after the step that
    makes its model; a CeError if some make each other's models in a circle."""
    pending = [(s, e) for s in ("finetune", "compress") for e in spec.get(s, [])]
    made_later = {e["output"] for _, e in pending}
    ordered = []
    while pending:
        ready = [(s, e) for s, e in pending if e["model"] not in made_later]
        if not ready:
            circle = ", ".join(f"{e['model']} -> {e['output']}" for _, e in pending)
            raise CeError(f"{path}: these steps make each other's models in a circle: {circle}")
        for step in ready:
            pending.remove(step)
        ordered += ready
        made_later = {e["output"] for _, e in pending}
    return ordered


def _check_entry(path: Path, section: str, i: int, entry: Any) -> None:
    where = f"{path}: [[{section}]] number {i}"
    if not isinstance(entry, dict):
        raise CeError(f"{where} is {_found(entry)}, not a table; write each step as a [[{section}]] table")
    unknown = sorted(set(entry) - SECTIONS[section])
    if unknown:
        raise CeError(
            f"{path}: unknown key {unknown[0]!r} in [[{section}]] number {i}"
            f"{did_you_mean(unknown[0], SECTIONS[section])}"
        )
    missing = sorted(REQUIRED[section] - set(entry))
    if missing:
        raise CeError(f"{where} needs {', '.join(missing)}")
    for key, value in entry.items():
        if KEY_TYPES[section][key] == MODEL_REFS:
            _check_models(where, value)
        else:
            _check_value(where, key, value, KEY_TYPES[section][key])
    if section == "compress" and _method(where, entry["method"]).name == "distill":
        raise CeError(
            f"{where}: method {entry['method']} needs a dataset to learn from, which [[compress]]"
            f" cannot give; run ce compress --method {entry['method']} --dataset DATASET -o NAME instead"
        )
    try:
        _check_options(section, entry)
    except CeError as e:
        raise type(e)(f"{where}: {_as_keys(str(e), SECTIONS[section])}") from None
    if "seeds" in entry:
        try:
            for seed in check_seeds(entry["seeds"], "seeds"):
                check_name("model", member_name(entry["output"], seed))
        except CeError as e:
            raise type(e)(f"{where}: {e}") from None


def _check_value(where: str, key: str, value: Any, annotation: Any) -> None:
    example = f"{key} = {_example(key, annotation)}"
    if not _fits(value, annotation):
        raise CeError(
            f"{where}: {key} must be {_describe(annotation)}, e.g. {example} (found {_found(value)})"
        )
    if _base(annotation) is int and value < MINIMUM.get(key, 1):
        raise CeError(
            f"{where}: {key} must be at least {MINIMUM.get(key, 1)}, e.g. {example} (found {value})"
        )
    if isinstance(value, list) and not value:
        raise CeError(f"{where}: {key} is empty; list at least one, e.g. {example}")


def _check_models(where: str, value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise CeError(
            f"{where}: models must be a non-empty list of model references, e.g. {MODELS_EXAMPLE}"
            f" (found {_found(value)})"
        )
    for j, ref in enumerate(value, 1):
        if isinstance(ref, str):
            continue
        named = isinstance(ref, dict) and set(ref) <= MODEL_REF_KEYS and "model" in ref
        if not named or not all(isinstance(v, str) for v in ref.values()):
            raise CeError(
                f'{where}: models entry {j} must be a model reference ("minilm", a folder or a Hub id)'
                f' or a table {{ name = "NAME", model = "MODEL", revision = "COMMIT" }} of strings'
                f" (name and revision optional; found {_found(ref)})"
            )
        if "name" in ref:
            try:
                check_name("model", ref["name"])
            except CeError as e:
                raise CeError(f"{where}: models entry {j}: {e}") from None


def _method(where: str, method: str) -> Method:
    try:
        return parse_method(method)
    except CeError as e:
        raise type(e)(f"{where}: {e}") from None


def _option_values(section: str, entry: dict) -> dict[str, Any]:
    """The entry's values that are fields of the section's option dataclass."""
    return {k: v for k, v in entry.items() if k in OPTION_TYPES.get(section, {})}


def _check_options(section: str, entry: dict) -> None:
    """The checks each command makes of its options, made before anything runs."""
    opts = _option_values(section, entry)
    if section == "extract":
        for stage in entry.get("stages", ["finetuned"]):
            check_extract(ExtractOptions(stage=stage, **opts))
    elif section == "ood":
        options = OodOptions(**opts)
        if options.stage not in STAGES:
            raise CeError(f"unknown stage {options.stage!r}; use {' or '.join(STAGES)}")
        check_ood(options)
    elif section == "attack":
        check_attack(AttackOptions(**opts))
    elif section == "finetune":
        check_finetune(FinetuneOptions(**opts))
    named = "model" if section == "ingest" else "output"  # the name a step gives a model
    if named in entry:
        try:
            check_name("model", entry[named])
        except CeError as e:
            raise CeError(f"{named}: {e}") from None


def _as_keys(message: str, keys: set[str]) -> str:
    """A command's message with its flags (--k-max) written as the file's keys (k_max)."""

    def key(match: re.Match) -> str:
        name = FLAGS.get(match.group(0), match.group(0)[2:].replace("-", "_"))
        return name if name in keys else match.group(0)

    return re.sub(r"--[a-z][a-z-]*", key, message)


def _base(annotation: Any) -> Any:
    """``X`` of ``X | None``; the annotation itself otherwise."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _fits(value: Any, annotation: Any) -> bool:
    """Whether a TOML value fits a field annotation (TOML has no null, so ``X | None`` is X)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_fits(value, a) for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if annotation is str:
        return isinstance(value, str)
    return False  # a field a file cannot set


def _describe(annotation: Any) -> str:
    base = _base(annotation)
    if get_origin(base) is list:
        return f"a list of {_describe(get_args(base)[0])[2:]}s"
    return {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}.get(
        base, str(base)
    )


def _example(key: str, annotation: Any) -> str:
    base = _base(annotation)
    default = DEFAULTS.get(key)
    if key in EXAMPLES:
        return EXAMPLES[key]
    if base is bool:
        return "true"
    if base is int:
        return str(default if type(default) is int and default >= MINIMUM.get(key, 1) else 10)
    if base is float:
        return str(float(default) if isinstance(default, int | float) else 0.5)
    return f'"{default}"' if isinstance(default, str) else '"..."'


def _found(value: Any) -> str:
    """A TOML value as the file shows it, shortly: 'the string "ten"', 'an array', 'true'."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"the {'integer' if isinstance(value, int) else 'number'} {value}"
    if isinstance(value, str):
        return f'the string "{value if len(value) <= 40 else value[:37] + "..."}"'
    if isinstance(value, list):
        return f"an array of {len(value)}" if value else "an empty array"
    if isinstance(value, dict):
        return f"a table with keys {', '.join(value)}" if value else "an empty table"
    return f"the date/time {value}"


def _models(entry: dict) -> list[tuple[str, str | None, dict[str, str]]]:
    """(model reference, store name or None, the ref's own options) for each of ``models``."""
    out = []
    for m in entry["models"]:
        ref = m if isinstance(m, dict) else {"model": m}
        out.append(
            (ref["model"], ref.get("name"), {"revision": ref["revision"]} if "revision" in ref else {})
        )
    return out


def _file(experiment: str | Path, given: str) -> Path:
    """An entry's file: ``${CE_DATA_DIR}`` expanded, relative to the experiment's folder."""
    from .datasets import data_dir

    if "${CE_DATA_DIR}" in given:
        root = data_dir()
        if root is None:
            raise CeError(
                f"{experiment}: {given} names the shared data folder; set CE_DATA_DIR to it"
                " (e.g. CE_DATA_DIR=../shared/data)"
            )
        given = given.replace("${CE_DATA_DIR}", str(root))
    return Path(experiment).parent / given


def _ingest_stale(store: Store, file: Path, model: str, data) -> list[str] | None:
    """None when the store's live predictions of ``model`` on ``data`` were ingested from
    this very file (same sha256) for the same examples; else why the step runs."""
    from .loading import sha256_of

    records = store.live_records("predictions", {"model": model, "dataset": data.name})
    if not records:
        return ["not in the store"]
    digest = sha256_of(file) if file.is_file() else None
    same = all(
        r.get("command") == "ingest-errors"
        and r.get("source_sha256") == digest
        and r.get("dataset_fingerprint") == data.fingerprint
        for r in records
    )
    return None if same else ["a different error list or dataset"]


def _examples(data, options) -> int:
    """How many examples of ``data`` a step with ``options.limit`` reads."""
    return min(options.limit or len(data), len(data))


def _label(store: Store, model: str, name: str | None, task: str | None, stage: str) -> str:
    """The name a step's model goes by in the store: its given name, else the resolved
    reference's (a model an earlier step makes is not there yet: the reference itself)."""
    from .registry import resolve_model

    if name is not None:
        return name
    try:
        return resolve_model(model, task, stage, store=store).name
    except CeError:
        return model


def _known_groups(store: Store, path: Path, spec: dict) -> dict[str, list[int]]:
    """The replica groups the file makes, group -> seeds: each [[finetune]] with seeds, and
    each [[compress]] of a group (the file's or the store's), in the order they are made."""
    known: dict[str, list[int]] = {}
    for section, entry in _model_steps(path, spec):
        if section == "finetune" and "seeds" in entry:
            known[entry["output"]] = list(entry["seeds"])
        elif section == "compress" and is_group(store, entry["model"], known):
            model = entry["model"]
            known[entry["output"]] = known.get(model) or [seed for _, seed in store_groups(store)[model]]
    return known


def _steps(store: Store, path: str | Path, spec: dict, capped, dataset) -> list[Step]:
    """Every step of the file, in the order they run (none run yet); a replica group gives
    one step per member."""
    known = _known_groups(store, Path(path), spec)
    steps = [_ingest_step(store, path, entry, dataset) for entry in spec.get("ingest", [])]
    for section, entry in _model_steps(Path(path), spec):
        if section == "finetune":
            steps += _finetune_steps(store, entry, capped, dataset)
            continue
        for model, output, replica in expand(store, entry["model"], entry["output"], known):
            steps.append(_compress_step(store, entry, model, output, replica))
    for entry in spec.get("extract", []):
        opts = _option_values("extract", entry) | capped(entry)
        for model, name, own, replica in _members(store, entry, known):
            for data in map(dataset, entry["datasets"]):
                for stage in entry.get("stages", ["finetuned"]):
                    options = ExtractOptions(**{**opts, **own, "stage": stage})
                    steps.append(_extract_step(store, model, name, data, options, replica))
    for entry in spec.get("ood", []):
        opts = _option_values("ood", entry) | capped(entry)
        for model, name, own, replica in _members(store, entry, known):
            for test in entry["datasets"]:
                options = OodOptions(**{**opts, **own})
                steps.append(_ood_step(store, entry, model, name, test, options, dataset, replica))
    for entry in spec.get("attack", []):
        opts = _option_values("attack", entry) | capped(entry)
        for model, name, own, replica in _members(store, entry, known):
            options = AttackOptions(**{**opts, **own})
            data = dataset(entry.get("dataset", "imdb-1k"))
            steps.append(_attack_step(store, model, name, data, options, replica))
    return steps


def _members(store: Store, entry: dict, known: dict[str, list[int]]):
    """(model, store name, own options, replica field) of each model an entry's ``models``
    names, a replica group giving one per member."""
    return [
        (member, stored, own, replica)
        for model, name, own in _models(entry)
        for member, stored, replica in expand(store, model, name, known)
    ]


def _ingest_step(store: Store, path: str | Path, entry: dict, dataset):
    from .ingest import ingest_errors

    file, model = _file(path, entry["file"]), entry["model"]

    def run() -> str:
        info = ingest_errors(store, file, model, dataset(entry["dataset"]))
        return f"{info['errors']} errors of {info['examples']}"

    return Step(
        "ingest",
        f"ingest {model} {entry['dataset']}",
        1,
        stale=lambda: _ingest_stale(store, file, model, dataset(entry["dataset"])),
        run=run,
    )


def _finetune_steps(store: Store, entry: dict, capped, dataset) -> list[Step]:
    """One step, or one per seed of an entry with ``seeds`` (a replica group: the sample
    drawn with the entry's seed, each replica trained with its own)."""
    options = FinetuneOptions(**(_option_values("finetune", entry) | capped(entry)))
    if "seeds" not in entry:
        return [_finetune_step(store, entry, entry["output"], options, None, dataset)]
    check_group_name(store, entry["output"], entry["seeds"], "output")
    return [
        _finetune_step(
            store,
            entry,
            member_name(entry["output"], seed),
            replace(options, seed=seed, sample_seed=options.data_seed()),
            {"group": entry["output"], "seed": seed},
            dataset,
        )
        for seed in entry["seeds"]
    ]


def _finetune_step(store: Store, entry: dict, output: str, options: FinetuneOptions, replica, dataset):
    from .finetune import finetune, finetune_stale

    args = (store, entry["model"], entry["dataset"], output, options)

    def run() -> str:
        made = finetune(*args, replica=replica)
        return f"{made.steps} steps, train loss {made.train_loss:.3f}"

    return Step(
        "finetune",
        f"finetune {output}",
        _examples(dataset(entry["dataset"]), options) * options.epochs,
        stale=lambda: finetune_stale(*args),
        run=run,
        needs=(entry["model"],),
        makes=output,
    )


def _compress_step(store: Store, entry: dict, model: str, output: str, replica: dict | None):
    from .compress import compress, compress_stale

    args = (store, model, entry["method"], output, entry.get("allow_pickle", False))
    revision = entry.get("revision")

    def run() -> bool:
        compress(*args, revision=revision, replica=replica)
        return True

    return Step(
        "compress",
        f"compress {output}",
        1,
        stale=lambda: compress_stale(*args, revision=revision),
        run=run,
        needs=(model,),
        makes=output,
    )


def _extract_step(store: Store, model: str, name: str | None, data, options: ExtractOptions, replica=None):
    from .extract import extract, extract_stale

    def run() -> bool:
        extract(store, model, data, options, name=name, replica=replica)
        return True

    return Step(
        "extract",
        f"extract {_label(store, model, name, data.task, options.stage)} {options.stage} {data.name}",
        _examples(data, options),
        stale=lambda: extract_stale(store, model, data, options, name),
        run=run,
        needs=(model,),
    )


def _ood_step(
    store: Store,
    entry: dict,
    model: str,
    name: str | None,
    test: str,
    options: OodOptions,
    dataset,
    replica: dict | None = None,
):
    from .ood import ood_stale, run_ood

    bank, test_data = dataset(entry["bank"]), dataset(test)
    id_val = dataset(entry["id_val"]) if entry.get("id_val") else None
    args = (store, model, bank, id_val, test_data, options)

    def run() -> bool:
        return run_ood(*args, name=name, reuse=True, replica=replica).ran

    read = [bank, test_data] + ([id_val] if id_val is not None and id_val.name != bank.name else [])
    return Step(
        "ood",
        f"ood {_label(store, model, name, bank.task, options.stage)} {test_data.name}",
        sum(_examples(d, options) for d in read),
        stale=lambda: ood_stale(*args, name=name),
        run=run,
        needs=(model,),
    )


def _attack_step(
    store: Store, model: str, name: str | None, data, options: AttackOptions, replica: dict | None = None
):
    from .attack import attack_stale, run_attack

    def run() -> bool | str:
        info = run_attack(store, model, data, options, name=name, replica=replica)
        if info.resumed_from == info.examples:
            return False
        return f"{info.succeeded} succeeded, {info.failed} failed, {info.skipped} skipped"

    return Step(
        "attack",
        f"attack {_label(store, model, name, 'classification', 'finetuned')} {options.attack}",
        _examples(data, options),
        stale=lambda: attack_stale(store, model, data, options, name=name),
        run=run,
        needs=(model,),
    )


def run_experiment(
    store: Store,
    path: str | Path,
    say: Callable[[str], None] = print,
    limit: int | None = None,
    sample: str | None = None,
    seed: int | None = None,
    check: bool = False,
) -> int:
    """Run every step the store does not hold with the same identity; returns how many ran.
    ``say`` gets the plan, each step as it starts and ends, and every step's time at the end;
    with ``check``, only the plan, step by step, and nothing runs (how many would run).
    ``limit`` caps the examples of every finetune, extract, ood and attack step (a smoke
    test); the limit is part of a run's identity, so a later full run recomputes those steps.
    With ``limit``, a ``sample`` or ``seed`` given replaces the steps' own (a step's seed
    also seeds its training or attacks)."""
    from .datasets import load_dataset

    spec = load_experiment(path)

    def capped(entry: dict) -> dict:  # at most ``limit`` examples, fewer where the file says so
        if limit is None:
            return {}
        given = {k: v for k, v in {"sample": sample, "seed": seed}.items() if v is not None}
        return {"limit": min(limit, entry.get("limit") or limit), **given}

    datasets: dict[str, Any] = {}

    def dataset(name: str):  # each dataset read once per experiment
        if name not in datasets:
            datasets[name] = load_dataset(name)
        return datasets[name]

    steps = _steps(store, path, spec, capped, dataset)
    if not check:
        return run_steps(steps, say)
    planned = plan(steps)
    for line in describe(planned):
        say(line)
    return sum(p.why is not None for p in planned)
