"""Loading models and tokenizers: local folders or Hub ids, safetensors only by default."""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ce.engine.errors import CeError, error_line

from .registry import ResolvedModel

HEADS = {"qa": "question-answering", "classification": "sequence-classification"}
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


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    provenance: dict[str, Any] = field(default_factory=dict)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def _check_local_files(folder: Path) -> None:
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
            f"{folder} has no tokenizer (tokenizer.json or vocab.txt); save it into the folder with"
            " tokenizer.save_pretrained, or copy it from the model the weights come from"
        )


def _check_local_weights(resolved: ResolvedModel, allow_pickle: bool) -> dict[str, str]:
    folder = Path(resolved.source)
    if not (folder / "config.json").is_file():
        raise CeError(f"{folder} is not a model folder (no config.json)")
    safetensors = sorted(folder.glob("*.safetensors"))
    pickles = sorted(folder.glob("*.bin"))
    if not safetensors and not pickles:
        raise CeError(f"{folder} has no weights (model.safetensors)")
    if not safetensors and not allow_pickle:
        raise CeError(
            f"{folder} has only pickle weights ({pickles[0].name}), which can run code"
            " when loaded; convert them to safetensors, or pass --allow-pickle if you"
            " trust the folder"
        )
    hashes = {p.name: sha256_of(p) for p in safetensors}
    if resolved.sha256 is not None:
        found = hashes.get("model.safetensors")
        if found != resolved.sha256:
            raise CeError(
                f"{folder}/model.safetensors has sha256 {found}, expected"
                f" {resolved.sha256}; reinstall the package that ships it"
            )
    for path in safetensors:
        check_safetensors(path)
    _check_local_files(folder)
    return hashes


def _first_line(e: BaseException | str, limit: int = 200) -> str:
    first = error_line(e) if isinstance(e, BaseException) else (str(e).strip().splitlines() or [""])[0]
    return first if len(first) <= limit else first[: limit - 3] + "..."


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
    """The model for ``task`` (or the bare encoder for ``stage='pretrained'``), in eval mode."""
    import transformers as tf
    from safetensors import SafetensorError

    tf.logging.set_verbosity_error()  # ce reports a missing head itself, in one line
    if stage == "pretrained":
        cls = tf.AutoModel
    elif task == "qa":
        cls = tf.AutoModelForQuestionAnswering
    else:
        cls = tf.AutoModelForSequenceClassification
    provenance: dict[str, Any] = {"model_source": resolved.source, "model_class": cls.__name__}
    if resolved.local:
        provenance["weight_sha256"] = _check_local_weights(resolved, allow_pickle)
    kwargs = {
        "revision": revision,
        "trust_remote_code": trust_remote_code,
        "use_safetensors": None if allow_pickle else True,
    }
    where = "folder" if resolved.local else "Hub id"
    fix = RESAVE if resolved.local else "check the id, and that the Hub is reachable or the model is cached"
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(
            resolved.source, revision=revision, trust_remote_code=trust_remote_code
        )
    except Exception as e:  # tokenizers raises a bare Exception for a broken tokenizer.json
        raise CeError(
            f"could not load the tokenizer of {resolved.source} from its {where}: {_first_line(e)}; {fix}"
        ) from None
    try:
        model, info = cls.from_pretrained(resolved.source, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:
        if type(e) is RuntimeError and "size mismatch" not in str(e):
            raise  # not a bad checkpoint: a bug, shown as one
        raise _load_error(resolved, e, where, fix) from None
    if not getattr(tokenizer, "is_fast", False):
        raise CeError(
            f"{resolved.source} has no fast tokenizer (tokenizer.json); ce needs"
            " offsets for question answering"
        )
    if stage == "finetuned":
        _check_head(resolved, task, model, info)
    provenance["model_revision"] = getattr(model.config, "_commit_hash", None) or revision
    if resolved.local:
        model = _apply_card(Path(resolved.source), model, device, provenance)
    provenance["architecture"] = type(model).__name__
    model.eval()
    model.to(device)
    return LoadedModel(model, tokenizer, provenance)


def _load_error(resolved: ResolvedModel, e: Exception, where: str, fix: str) -> CeError:
    """The one-line error for a checkpoint that transformers could not load."""
    source = resolved.source
    mismatch = re.search(r"size mismatch for .*", str(e))
    if mismatch:
        return CeError(
            f"the weights of {source} do not fit its config.json ({_first_line(mismatch.group(0))});"
            f" they come from another model: {RESAVE}"
        )
    if type(e).__name__ == "SafetensorError":
        if not resolved.local:
            fix = "delete it from the Hugging Face cache (hf cache delete) and run again"
        return CeError(f"the weights of {source} are damaged or incomplete ({_first_line(e)}); {fix}")
    if "Unrecognized model" in str(e):
        return CeError(
            f"could not load model {source}: its config.json names no model_type; add it"
            f' (e.g. "model_type": "bert"), or {RESAVE}'
        )
    return CeError(f"could not load model {source} from its {where}: {_first_line(e)}; {fix}")


def _apply_card(folder: Path, model, device: str, provenance: dict):
    """Apply what a ce-made model's card asks for at load time (dynamic int8 quantisation)."""
    card_path = folder / "ce-model.json"
    if not card_path.is_file():
        return model
    card = json.loads(card_path.read_text())
    provenance["derived_from"] = {k: card.get(k) for k in ("parent", "method", "run_id")}
    if card.get("load", {}).get("quantize") == "dynamic-int8-linear":
        import torch

        if device != "cpu":
            raise CeError(
                f"{folder.name} is dynamically quantised to int8, which runs on the"
                " CPU only; use --device cpu"
            )
        with warnings.catch_warnings():  # torch marks its quantised tensors as deprecated
            warnings.simplefilter("ignore", UserWarning)
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model


def _check_head(resolved: ResolvedModel, task: str, model, info: dict) -> None:
    """A task head that was newly initialised means the checkpoint is not fine-tuned for it."""
    base = getattr(model, "base_model_prefix", "")
    missing = [k for k in info.get("missing_keys", []) if not k.startswith(base + ".")]
    if missing:
        raise CeError(
            f"{resolved.source} has no trained {HEADS[task]} head (missing"
            f" {missing[0]}); fine-tune it first, or use --stage pretrained"
        )
