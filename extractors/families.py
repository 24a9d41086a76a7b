"""Model families: how each one represents an input, pads a batch and answers a task.

Three families, chosen from a config's ``model_type`` (data: nothing in it is run):

- **encoders** with a classification token (BERT, DistilBERT, RoBERTa, ELECTRA, DeBERTa, ...):
  the representation is the first token's hidden state (``cls``), as in the paper;
- **T5-style encoder-decoders**: the mean over the encoder's non-padding tokens (``mean``);
- **decoders** (GPT-2, Llama, Qwen2, Mistral, Phi, Gemma, ...): the last non-padding token's
  hidden state (``last``): the only position that has read the whole input.

``--pooling cls|last|mean`` and ``--layer`` override the default; the run records both.
``--layer`` is an index into the hidden states (0 = the embedding output, -1 = the last
block), or a fraction of depth in (0, 1) (0.5 = the middle block, rounded), so that models
of different depths can be compared at the same relative depth.

Padding never changes a result: every batch carries an attention mask, batches are padded
on the right (a causal model's real tokens never see right padding; generation pads on the
left), and a tokenizer without a pad token gets one that is already in its vocabulary (the
config's pad id where it names one, else its end-of-text, unknown or start token), so that no
embedding is added and a head that finds the last token by the pad id sees the same padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ce.store.errors import CeError, shown

ENCODERS = (
    "albert",
    "bert",
    "camembert",
    "deberta",
    "deberta-v2",
    "distilbert",
    "electra",
    "ernie",
    "megatron-bert",
    "mobilebert",
    "mpnet",
    "roberta",
    "xlm-roberta",
)
SEQ2SEQ = ("t5", "mt5", "umt5")
DECODERS = (
    "falcon",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gpt2",
    "gpt_neox",
    "gptj",
    "llama",
    "mistral",
    "mixtral",
    "olmo",
    "olmo2",
    "opt",
    "phi",
    "phi3",
    "qwen2",
    "qwen3",
    "smollm3",
    "stablelm",
)
POOLINGS = ("cls", "last", "mean")
DEFAULT_POOLING = {"encoder": "cls", "seq2seq": "mean", "decoder": "last"}


@dataclass(frozen=True)
class Family:
    kind: str  # encoder, seq2seq or decoder
    model_type: str

    @property
    def pooling(self) -> str:
        return DEFAULT_POOLING[self.kind]

    @property
    def decoder(self) -> bool:
        return self.kind == "decoder"


def supported() -> str:
    """The supported model types, for an error message."""
    return (
        f"encoders ({', '.join(ENCODERS)}), T5-style models ({', '.join(SEQ2SEQ)}) and decoders"
        f" ({', '.join(DECODERS)})"
    )


# config.json fields that loading and batching read as numbers: token ids and sizes
TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")
SIZES = ("num_hidden_layers", "n_layer", "n_layers", "num_layers", "max_position_embeddings", "n_positions")


def family_of(config, source: str = "the model") -> Family:
    """The family of a transformers config (or config.json's dict, checked as data first);
    one line naming what is supported otherwise."""
    if isinstance(config, dict):
        check_config(config, source)
    model_type = config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
    if model_type is None:
        raise CeError(f'the config.json of {source} names no model_type; add it (e.g. "model_type": "bert")')
    if not isinstance(model_type, str):
        raise CeError(
            f'the config.json of {source} has model_type {shown(model_type)}, not a name such as "bert"'
        )
    for kind, types in (("encoder", ENCODERS), ("seq2seq", SEQ2SEQ), ("decoder", DECODERS)):
        if model_type in types:
            return Family(kind, model_type)
    raise CeError(
        f"{source} is a {shown(model_type)} model, which ce does not support; it supports {supported()}"
    )


def check_config(config: dict, source: str) -> None:
    """config.json's token ids are ids (or lists of them, or null) and its sizes positive
    whole numbers: a value of another type fails here, in one line, not inside a library."""

    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    for key in TOKEN_IDS:
        value = config.get(key)
        ids = value if isinstance(value, list) else [value]
        if value is not None and not all(whole(v) and v >= 0 for v in ids):
            raise CeError(
                f"the config.json of {source} has {key} {shown(value)}, not a token id; fix or remove it"
            )
    pad, vocabulary = config.get("pad_token_id"), config.get("vocab_size")
    if whole(pad) and whole(vocabulary) and pad >= vocabulary:
        raise CeError(
            f"the config.json of {source} has pad_token_id {pad}, outside its vocab_size {vocabulary};"
            " fix or remove it"
        )
    for key in SIZES:
        value = config.get(key)
        if value is not None and not (whole(value) and value >= 1):
            raise CeError(
                f"the config.json of {source} has {key} {shown(value)}, not a positive whole number"
            )


def check_pooling(pooling: str | None) -> None:
    if pooling is not None and pooling not in POOLINGS:
        raise CeError(f"unknown pooling {pooling!r}; use {', '.join(POOLINGS)}")


def parse_layer(value: str | int | float | None) -> int | float | None:
    """--layer: None (the last block), an int (negative from the top) or a fraction in (0, 1)."""
    if value is None or isinstance(value, int | float) and not isinstance(value, bool):
        layer = value
    else:
        text = str(value).strip()
        try:
            layer = int(text)
        except ValueError:
            try:
                layer = float(text)
            except ValueError:
                raise CeError(
                    f"--layer {shown(value)} is not a layer: give an index (6, or -1 for the last block)"
                    " or a fraction of depth (0.5)"
                ) from None
    if isinstance(layer, float) and not (0 < layer < 1):
        if layer.is_integer():
            return int(layer)
        given = value.strip()[:40] if isinstance(value, str) else f"{layer:g}"
        raise CeError(f"--layer {given}: a fraction of depth lies strictly between 0 and 1, e.g. 0.5")
    return layer


def layer_position(layer: int | float | None, blocks: int) -> int:
    """The index into the hidden states (0 = embedding output, ``blocks`` = the last block)."""
    if layer is None:
        return blocks
    if isinstance(layer, float):
        return int(round(layer * blocks))
    position = layer if layer >= 0 else blocks + 1 + layer
    if not 0 <= position <= blocks:
        raise CeError(
            f"--layer {shown(layer)}: the model has {blocks} blocks, so use 0..{blocks} or -{blocks + 1}..-1"
            " (or a fraction of depth such as 0.5)"
        )
    return position


@dataclass(frozen=True)
class Representation:
    """How a model's input becomes one vector: which hidden state, pooled how."""

    pooling: str
    position: int  # index into the hidden states: 0 = embeddings, blocks = last block
    blocks: int
    width: int  # the hidden size: each vector's length

    def record(self) -> dict:
        """What a run record keeps: the pooling, the hidden state's index and the depth."""
        return {"pooling": self.pooling, "layer": self.position, "blocks": self.blocks}

    def vectors(self, hidden_states, attention_mask) -> np.ndarray:
        """float32 vectors (batch, width) from a forward pass's hidden states."""
        return pool(hidden_states[self.position], attention_mask, self.pooling).float().cpu().numpy()


def representation(config, family: Family, pooling: str | None, layer) -> Representation:
    check_pooling(pooling)
    blocks = block_count(config, family)
    position = layer_position(parse_layer(layer), blocks)
    return Representation(pooling or family.pooling, position, blocks, int(config.hidden_size))


def block_count(config, family: Family) -> int:
    if family.kind == "seq2seq":
        return int(config.num_layers)  # the encoder's
    for key in ("num_hidden_layers", "n_layer", "n_layers", "num_layers"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    raise CeError(f"the config of this {family.model_type} model names no number of layers")


def last_token_index(attention_mask):
    """Per row, the index of the last token the mask keeps, whichever side was padded."""
    import torch

    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (positions * attention_mask.to(positions.dtype)).argmax(dim=1)


def pool(hidden, attention_mask, pooling: str):
    """(batch, width) from (batch, tokens, width): first token, last kept token or kept mean."""
    import torch

    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_index(attention_mask)]
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def ensure_pad_token(tokenizer, model=None) -> str | None:
    """Give a tokenizer without a pad token one from its vocabulary: the model config's pad id
    when it names one (a head that finds the last token by that id then sees the same
    padding), else its end-of-text, unknown or start token; the config learns the id used.
    Returns the token set, or None when the tokenizer had one."""
    added = None
    if tokenizer.pad_token is None:
        configured = getattr(model.config, "pad_token_id", None) if model is not None else None
        if type(configured) is int and 0 <= configured < len(tokenizer):
            added = tokenizer.convert_ids_to_tokens(configured)
        else:
            added = tokenizer.eos_token or tokenizer.unk_token or tokenizer.bos_token
        if added is None:
            raise CeError(
                "the tokenizer has no pad, end-of-text or unknown token to pad batches with;"
                " save it with a pad_token (tokenizer.pad_token = ...)"
            )
        tokenizer.pad_token = added
    tokenizer.padding_side = "right"
    if model is not None:
        rows = model.get_input_embeddings().num_embeddings
        if not 0 <= tokenizer.pad_token_id < rows:
            raise CeError(
                f"the tokenizer pads with {shown(tokenizer.pad_token)} (id {tokenizer.pad_token_id}),"
                f" which the model's {rows} embeddings do not hold; save the tokenizer with a pad token"
                " of its vocabulary"
            )
        model.config.pad_token_id = tokenizer.pad_token_id
    return added


# How a model answers each task (stage 'finetuned'); 'encode' is the bare model (pretrained):
#   classify: a sequence-classification head      span: an extractive-QA head
#   choose: a multiple-choice head (encoders)     verbalize: label words' log-likelihood
#   choose-lm: choices' log-likelihood (decoders) generate: greedy generation (QA)
ROUTES = {
    ("encoder", "classification"): "classify",
    ("encoder", "qa"): "span",
    ("encoder", "choice"): "choose",
    ("seq2seq", "classification"): "classify",
    ("seq2seq", "qa"): "generate",
    ("decoder", "classification"): "verbalize",  # "classify" where the checkpoint has a head
    ("decoder", "qa"): "generate",
    ("decoder", "choice"): "choose-lm",
}
AUTO_CLASSES = {
    "encode": "AutoModel",
    "classify": "AutoModelForSequenceClassification",
    "span": "AutoModelForQuestionAnswering",
    "choose": "AutoModelForMultipleChoice",
    "verbalize": "AutoModelForCausalLM",
    "choose-lm": "AutoModelForCausalLM",
    "generate": "AutoModelForCausalLM",
}


def route(family: Family, task: str | None, stage: str, architectures: list | None) -> tuple[str, str]:
    """(how the model runs, the transformers Auto class to load it with) for a task and stage."""
    if stage == "pretrained" or task is None:
        return "encode", ("T5EncoderModel" if family.kind == "seq2seq" else "AutoModel")
    how = ROUTES.get((family.kind, task))
    if how is None:
        raise CeError(
            f"ce cannot run {task} on {family.model_type} models; it runs {task} on"
            f" {', '.join(sorted({k for (k, t) in ROUTES if t == task}))} models"
        )
    named = [a for a in architectures if isinstance(a, str)] if isinstance(architectures, list) else []
    if how == "verbalize" and any(a.endswith("ForSequenceClassification") for a in named):
        how = "classify"
    if family.kind == "seq2seq" and how == "generate":
        return how, "AutoModelForSeq2SeqLM"
    return how, AUTO_CLASSES[how]
