"""Loading models and tokenizers: local folders or Hub ids, safetensors only by default."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ce.engine.errors import CeError

from .registry import ResolvedModel

HEADS = {"qa": "question-answering", "classification": "sequence-classification"}


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
    return hashes


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
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(
            resolved.source, revision=revision, trust_remote_code=trust_remote_code
        )
        model, info = cls.from_pretrained(resolved.source, output_loading_info=True, **kwargs)
    except (OSError, ValueError) as e:
        where = "folder" if resolved.local else "Hub id (is the Hub reachable?)"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CeError(f"could not load model {resolved.source} from its {where}: {first}") from None
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


def _apply_card(folder: Path, model, device: str, provenance: dict):
    """Apply what a ce-made model's card asks for at load time (dynamic int8 quantisation)."""
    import json

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
