"""Answers chosen among given choices: by log-likelihood on decoders, by a multiple-choice
head on encoders.

Decoders (``choose-lm``, and ``verbalize``: a classification dataset's label words taken as
the choices) score each choice as a continuation of the prompt: the context is the prompt
template filled with the example's fields, each choice follows it after a space, and its
log-likelihood is the sum over the choice's tokens of log p(token | context, the choice's
earlier tokens). The model picks the choice of highest score: the summed log-likelihood, or
(``choice_score="per-token"``) that sum over the choice's token count; ``probs`` is the
softmax of those scores, ``loglikelihoods`` the sums (see design.md, "Answer distributions").

The tokens are lm-evaluation-harness's: the context is tokenised alone (with the special
tokens the tokenizer puts first, Llama's ``<s>``), and a choice's tokens are those that follow
the context's in the tokens of context + choice (whitespace at the end of the context moves
to the choice), so that a word is never cut at the boundary; where the context's tokens are
not a prefix of the whole's, the choice is tokenised alone. A context too long for
``max_length`` (or the model's positions) loses its start: every choice of an example is
scored after the same context.

The context runs once per example: its key/value cache is copied to each choice, whose
tokens then run with the right attention mask (the context's right padding masked) and
position ids. The context pass gives the example's vector and the first token of every
choice. A model whose cache cannot be shared so (another cache type, a sliding window
shorter than the input) runs one pass per (context + choice) instead, and takes the vector
from the context's positions of the first; causal attention makes both give the same
numbers. Batches are padded on the right, with attention masks everywhere.

Encoders (``choose``) score (first segment, choice) pairs with their multiple-choice head;
``probs`` is the softmax of its logits and the vector is the first segment's alone through
the base model (a different input than the pairs).
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from ce.store.errors import CeError, shown

from .choice_data import MAX_CHOICES
from .datasets import DATASETS, EXAMPLE_SCHEMA, Dataset
from .features import padded
from .heads import classify, softmax

FIELDS = ("text", "question", "context")
CHOICE_SCORES = ("sum", "per-token")
QUESTION_PROMPT = "Question: {question}\nAnswer:"
CONTEXT_PROMPT = "{context}\nQuestion: {question}\nAnswer:"
LABELS_PROMPT = "{text}\nAnswer:"
ENCODER_PROMPT = "{question}"  # the first segment of an encoder's pairs
ENCODER_CONTEXT_PROMPT = "{context} {question}"


# ---------------------------------------------------------------- the public entry points


def score_choices(
    loaded, data: Dataset, options, rep, progress: bool, label: str
) -> tuple[pa.Table, np.ndarray]:
    """A multiple-choice dataset's predictions and one vector per example: by the choices'
    log-likelihood (``loaded.how == "choose-lm"``) or a multiple-choice head ("choose")."""
    check_choice_score(options.choice_score)
    if data.task != "choice" or "choices" not in data.table.column_names:
        raise CeError(f"dataset {data.name} is {data.task}, not multiple choice; give a dataset with choices")
    choices = data.table["choices"].to_pylist()
    if loaded.how == "choose":
        return _encoder_choices(loaded, data, choices, options, rep, progress, label)
    contexts = contexts_of(data, prompt_for(options, data))
    scored = loglikelihoods(loaded, contexts, choices, options, data.task, rep, progress, label)
    table = _choice_table(data, choices, scored.scores(options.choice_score), scored.sums)
    return table, _vectors_or_empty(scored.vectors, rep)


def score_labels(
    loaded, data: Dataset, options, rep, progress: bool, label: str
) -> tuple[pa.Table, np.ndarray]:
    """A classification dataset on a decoder without a classification head: the label words
    (``options.verbalizer`` or the dataset's) scored as choices after the prompt."""
    check_choice_score(options.choice_score)
    words = label_words(options, data)
    contexts = contexts_of(data, prompt_for(options, data))
    scored = loglikelihoods(loaded, contexts, [words] * len(data), options, data.task, rep, progress, label)
    table = classify(data, np.stack(scored.scores(options.choice_score)) if len(data) else _no_scores(words))
    sums = pa.array([s.astype(np.float64) for s in scored.sums], pa.list_(pa.float64()))
    return table.append_column("loglikelihoods", sums), _vectors_or_empty(scored.vectors, rep)


def label_probs(loaded, texts: list[str], options) -> np.ndarray:
    """(n, labels) probabilities of raw texts, as score_labels gives them (``options`` name
    the label words and prompt: see with_dataset_defaults); no vectors."""
    check_choice_score(options.choice_score)
    if not options.verbalizer:
        raise CeError(
            "no label words for this decoder; pass --verbalizer with one word per label (negative,positive)"
        )
    words = parse_verbalizer(options.verbalizer)
    data = texts_dataset(texts)
    contexts = contexts_of(data, options.prompt or LABELS_PROMPT)
    scored = loglikelihoods(
        loaded, contexts, [words] * len(texts), options, "classification", None, False, ""
    )
    return softmax(np.stack(scored.scores(options.choice_score))) if texts else _no_scores(words)


def with_dataset_defaults(options, data: Dataset | str):
    """``options`` with the prompt and label words a dataset defaults to filled in (for a
    caller that scores texts of that dataset apart from it: the attack's model wrapper)."""
    name, task = (data.name, data.task) if isinstance(data, Dataset) else (data, "classification")
    prompt = options.prompt or _default_prompt(name, task, has_context=False)
    words = options.verbalizer or (default_label_words(name) if task == "classification" else None)
    return replace(options, prompt=prompt, verbalizer=words)


# ---------------------------------------------------------------- prompts and label words


def check_choice_options(options, data: Dataset, how: str | None) -> None:
    """The errors score_choices and score_labels would raise on ``options``, raised before
    anything is written: the choice score, the prompt template, the label words."""
    check_choice_score(options.choice_score)
    if how not in ("choose", "choose-lm", "verbalize"):
        return
    if how != "verbalize" and data.task != "choice":
        raise CeError(f"dataset {data.name} is {data.task}, not multiple choice; give a dataset with choices")
    parse_prompt(prompt_for(options, data))
    if how == "verbalize":
        label_words(options, data)


def check_choice_score(choice_score: str) -> None:
    if choice_score not in CHOICE_SCORES:
        raise CeError(f"unknown choice score {choice_score!r}; use {' or '.join(CHOICE_SCORES)}")


def parse_prompt(template: str) -> list[tuple[str, str | None]]:
    """(literal text, field or None) pieces of a prompt template; fields are {text},
    {question} and {context}, braces doubled for a literal brace."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise CeError(
            f"--prompt {shown(template)} is not a template ({e}); write fields as {{text}} and braces"
            " as {{ }}"
        ) from None
    pieces = []
    for literal, field, spec, conversion in parsed:
        if field is not None and (field not in FIELDS or spec or conversion):
            field_text = (
                "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            )
            raise CeError(
                f"--prompt {shown(template)}: unknown field {field_text[:40]}; use {{text}}, {{question}} or"
                " {context} (a literal brace is written twice)"
            )
        pieces.append((literal, field))
    return pieces


def render(pieces: list[tuple[str, str | None]], row: dict) -> str:
    return "".join(literal + (row.get(field) or "" if field else "") for literal, field in pieces)


def contexts_of(data: Dataset, template: str) -> list[str]:
    """The prompt of each example: ``template`` filled with its fields (a missing one empty)."""
    pieces = parse_prompt(template)
    columns = {f: data.table[f].to_pylist() for f in FIELDS if f in data.table.column_names}
    return [render(pieces, {f: values[i] for f, values in columns.items()}) for i in range(len(data))]


def prompt_for(options, data: Dataset) -> str:
    return options.prompt or _default_prompt(data.name, data.task, _has_context(data))


def _has_context(data: Dataset) -> bool:
    return "context" in data.table.column_names and data.table["context"].null_count < len(data)


def prompt_used(options, data: Dataset, how: str) -> str:
    """The prompt template a way of answering (families.route) fills for ``data``: --prompt,
    else its default (an encoder's multiple-choice head and generated answers have their own)."""
    if how == "choose":
        return options.prompt or _encoder_prompt(data)
    if how == "generate":
        from .generate import DEFAULT_PROMPT

        return options.prompt or DEFAULT_PROMPT
    return prompt_for(options, data)


def _default_prompt(name: str, task: str, has_context: bool) -> str:
    spec = DATASETS.get(name)
    if spec is not None and spec.prompt:
        return spec.prompt
    if task == "classification":
        return LABELS_PROMPT
    return CONTEXT_PROMPT if has_context else QUESTION_PROMPT


def default_label_words(name: str) -> str | None:
    spec = DATASETS.get(name)
    if spec is not None and spec.label_words:
        return spec.label_words
    return None


def parse_verbalizer(verbalizer: str) -> list[str]:
    words = [w.strip() for w in verbalizer.split(",")]
    for i, word in enumerate(words):
        if not word:
            raise CeError(
                f"--verbalizer {shown(verbalizer)}: label word {i} is empty; give one word per label,"
                " comma-separated (negative,positive)"
            )
    if len(words) < 2:
        raise CeError(
            f"--verbalizer {shown(verbalizer)} names one label word; give one per label (negative,positive)"
        )
    if len(set(words)) != len(words):
        raise CeError(
            f"--verbalizer {shown(verbalizer)} names a label word twice; each label needs its own word"
        )
    if len(words) > MAX_CHOICES:
        raise CeError(f"--verbalizer names {len(words)} label words; ce scores at most {MAX_CHOICES}")
    return words


def label_words(options, data: Dataset) -> list[str]:
    """The label words for ``data``: --verbalizer or the dataset's own, one per label."""
    given = options.verbalizer or default_label_words(data.name)
    if not given:
        raise CeError(
            f"dataset {data.name} has no default label words for a decoder without a classification"
            " head; pass --verbalizer with one word per label, in label order (negative,positive)"
        )
    words = parse_verbalizer(given)
    default = default_label_words(data.name)
    known = len(parse_verbalizer(default)) if default else None
    labels = [v for v in data.table["label"].to_pylist() if v is not None]
    needed = max(known or 0, max(labels) + 1 if labels else 0)
    if (known is not None and len(words) != known) or len(words) < needed:
        raise CeError(
            f"--verbalizer {shown(given)} names {len(words)} label words but dataset {data.name} has"
            f" {known or needed} labels; give one word per label, in label order"
        )
    if labels and min(labels) < 0:
        raise CeError(f"dataset {data.name} has a negative label ({min(labels)}); labels are 0, 1, ...")
    return words


def texts_dataset(texts: list[str]) -> Dataset:
    n = len(texts)
    columns = {
        "example_id": pa.array([str(i) for i in range(n)], pa.string()),
        "idx": pa.array(np.arange(n, dtype=np.int64)),
        "text": pa.array(texts, pa.string()),
    }
    table = pa.table(
        {f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in EXAMPLE_SCHEMA}, schema=EXAMPLE_SCHEMA
    )
    return Dataset("texts", "classification", table, "texts")


# ---------------------------------------------------------------- log-likelihoods (decoders)


@dataclass
class Scored:
    sums: list[np.ndarray]  # per example: each choice's summed log-likelihood
    counts: list[np.ndarray]  # per example: each choice's token count
    vectors: np.ndarray | None  # (examples, width), None when no representation was asked

    def scores(self, choice_score: str) -> list[np.ndarray]:
        if choice_score == "per-token":
            return [s / c for s, c in zip(self.sums, self.counts, strict=True)]
        return self.sums


@dataclass
class Encoded:
    contexts: list[list[int]]  # per example: the context's tokens (left-truncated)
    choices: list[list[list[int]]]  # per example, per choice: the choice's tokens

    def width(self, i: int) -> int:
        """The longest input of example ``i`` (its context and longest choice)."""
        return len(self.contexts[i]) + max(len(c) for c in self.choices[i])


def loglikelihoods(
    loaded,
    contexts: list[str],
    choices: list[list[str]],
    options,
    task: str,
    rep=None,
    progress: bool = False,
    label: str = "",
    share: bool | None = None,
) -> Scored:
    """Each choice's summed log-likelihood after its context, and (``rep``) the contexts'
    vectors. ``share``: None shares the context's pass where the model allows it; False
    runs one pass per (context + choice) (True insists on sharing: for tests)."""
    import torch

    from .extract import autocast_dtype
    from .progress import bar as progress_bar

    model, tokenizer = loaded.model, loaded.tokenizer
    encoded = encode(tokenizer, contexts, choices, input_limit(model, options.length_for(task)))
    layout = _cache_layout(model) if share is not False else None
    if share and layout is None:
        raise CeError(f"this {model.config.model_type} model's context pass cannot be shared across choices")
    device = next(model.parameters()).device
    amp = autocast_dtype(options.precision, device.type)
    n = len(contexts)
    sums: list[np.ndarray] = [np.zeros(len(c)) for c in choices]
    counts = [np.array([len(t) for t in per], dtype=np.float64) for per in encoded.choices]
    vectors = None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = np.argsort(-np.array([encoded.width(i) for i in range(n)], dtype=np.int64), kind="stable")
    bar = progress_bar(label, n, "example", progress=progress)
    with torch.inference_mode(), torch.autocast(device.type, amp, enabled=amp is not None), bar:
        for start in range(0, n, options.batch_size):
            rows = order[start : start + options.batch_size]
            span = max(len(encoded.contexts[i]) for i in rows) + max(
                len(c) for i in rows for c in encoded.choices[i]
            )  # the cache's slots: the padded contexts, then the longest choice
            shared = layout is not None and (layout is True or span < layout)
            run = _shared_batch if shared else _separate_batch
            found = run(model, encoded, rows, options.batch_size, pad, device, rep is not None)
            if found is None:  # the model made a cache that cannot be copied: once per choice
                found = _separate_batch(
                    model, encoded, rows, options.batch_size, pad, device, rep is not None
                )
            batch_sums, hidden, mask = found
            for i, values in zip(rows, batch_sums, strict=True):
                sums[i] = values
            if rep is not None:
                pooled = rep.vectors(hidden, mask)
                if vectors is None:
                    vectors = np.zeros((n, pooled.shape[1]), dtype=np.float32)
                vectors[rows] = pooled
            bar.update(len(rows))
    return Scored(sums, counts, vectors)


def input_limit(model, max_length: int) -> int:
    """The longest input: ``max_length``, or the model's positions where fewer."""
    config = model.config
    positions = [getattr(config, k, None) for k in ("max_position_embeddings", "n_positions", "n_ctx")]
    known = [p for p in positions if isinstance(p, int) and p > 0]
    return min([max_length, *known])


def special_prefix(tokenizer) -> list[int]:
    """The special tokens the tokenizer puts before a text (Llama's <s>; none for GPT-2)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start])
    return []


def split_pair(context: str, choice: str) -> tuple[str, str]:
    """(context, continuation): the choice after a space (none after whitespace or an empty
    context), the context's trailing whitespace moved to the continuation."""
    if not context:
        return "", choice
    sep = "" if context[-1].isspace() else " "
    stripped = context.rstrip()
    return stripped, context[len(stripped) :] + sep + choice


def encode(tokenizer, contexts: list[str], choices: list[list[str]], limit: int) -> Encoded:
    """Token ids of every context and choice (see the module's docstring), within ``limit``."""
    prefix = special_prefix(tokenizer)
    fallback = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    empty_start = [fallback] if fallback is not None else []  # before an empty context (lm-eval's)
    pairs = [[split_pair(c, choice) for choice in per] for c, per in zip(contexts, choices, strict=True)]
    stripped = [per[0][0] if per else c.rstrip() for c, per in zip(contexts, pairs, strict=True)]
    plain = tokenizer(stripped, add_special_tokens=False)["input_ids"] if stripped else []
    flat = [ctx + cont for per in pairs for ctx, cont in per]
    whole = iter(tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else [])
    out_contexts, out_choices = [], []
    for i, per in enumerate(pairs):
        body = list(plain[i])
        conts = []
        for _, cont in per:
            ids = list(next(whole))
            if len(ids) > len(body) and ids[: len(body)] == body:
                conts.append(ids[len(body) :])
            else:  # the boundary merged tokens: the choice alone
                conts.append(list(tokenizer(cont, add_special_tokens=False)["input_ids"]))
        for j, ids in enumerate(conts):
            if not ids:
                raise CeError(f"choice {shown(per[j][1])} gives no tokens; give every choice some text")
        start = prefix if (prefix or body) else empty_start
        if not start and not body:
            raise CeError(
                "an empty prompt and a tokenizer without a start or end-of-text token leave the first"
                " token of a choice nothing to follow; give a --prompt"
            )
        longest = limit - len(start) - 1  # a choice keeps its first tokens, at least one context token stays
        if longest < 1:
            raise CeError(
                f"the model reads at most {limit} tokens, too few for a question and a choice; raise"
                " --max-length, or use a model with a longer context"
            )
        conts = [ids[:longest] for ids in conts]
        room = limit - len(start) - max(len(ids) for ids in conts)
        if len(body) > room:
            body = body[len(body) - room :]
        out_contexts.append(list(start) + body)
        out_choices.append(conts)
    return Encoded(out_contexts, out_choices)


def _cache_layout(model):
    """True when the model's cache can be copied to the choices whatever the input's length;
    an int: only for inputs shorter than it (a sliding window); None: never."""
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    parameters = inspect.signature(model.forward).parameters
    if not all(k in parameters for k in ("past_key_values", "position_ids", "use_cache")):
        return None
    try:
        layers = DynamicCache(config=model.config).layers
    except Exception:  # noqa: BLE001 (a config the cache does not read: no sharing)
        return None
    windows = []
    for layer in layers:
        if type(layer) is DynamicSlidingWindowLayer:
            windows.append(layer.sliding_window)
        elif type(layer) is not DynamicLayer:
            return None
    return min(windows) - 1 if windows else True


def _forward(model, keep_from: int, width: int, **inputs):
    """The model's output with the logits of positions ``keep_from``.. only, where it can."""
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        return model(**inputs, logits_to_keep=max(width - keep_from, 1)), width - max(width - keep_from, 1)
    return model(**inputs), 0


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _shared_batch(model, encoded: Encoded, rows, chunk: int, pad: int, device, want_hidden: bool):
    """Sums for ``rows`` from one context pass and its cache copied to the choices; None
    when the model's cache cannot be copied (then nothing is kept)."""
    import torch
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    contexts = [encoded.contexts[i] for i in rows]
    ids, mask = padded(contexts, pad, device=device)
    lengths = torch.tensor([len(c) for c in contexts], device=device)
    out, offset = _forward(
        model,
        min(len(c) for c in contexts) - 1,
        ids.shape[1],
        input_ids=ids,
        attention_mask=mask,
        use_cache=True,
        output_hidden_states=want_hidden,
    )
    cache = out.past_key_values
    if not isinstance(cache, DynamicCache) or any(
        type(layer) not in (DynamicLayer, DynamicSlidingWindowLayer) for layer in cache.layers
    ):
        return None
    ends = (lengths - 1 - offset).long()
    first = out.logits[torch.arange(len(rows), device=device), ends].float().log_softmax(-1)  # (B, V)
    sums = []
    for b, i in enumerate(rows):
        heads = torch.tensor([c[0] for c in encoded.choices[i]], device=device)
        sums.append(first[b, heads].double().cpu().numpy())
    # choices of two tokens or more: the rest after the cache, a chunk of rows at a time
    rest = [(b, j) for b, i in enumerate(rows) for j, c in enumerate(encoded.choices[i]) if len(c) > 1]
    rest.sort(key=lambda bj: -len(encoded.choices[rows[bj[0]]][bj[1]]))  # chunks of like lengths
    for part in _chunks(rest, chunk):
        examples = torch.tensor([b for b, _ in part], device=device)
        tails = [encoded.choices[rows[b]][j] for b, j in part]
        feed, feed_mask = padded([t[:-1] for t in tails], pad, device=device)
        copied = DynamicCache(config=model.config)
        for k, layer in enumerate(cache.layers):
            copied.update(layer.keys[examples], layer.values[examples], k)
        positions = lengths[examples, None] + torch.arange(feed.shape[1], device=device)[None, :]
        step = model(
            input_ids=feed,
            attention_mask=torch.cat([mask[examples], feed_mask], dim=1),
            position_ids=positions,
            past_key_values=copied,
            use_cache=True,
        )
        targets, kept = padded([t[1:] for t in tails], 0, device=device)
        totals = _picked(step.logits, targets, kept)
        for (b, j), total in zip(part, totals, strict=True):
            sums[b][j] += total
    hidden = out.hidden_states if want_hidden else None
    return sums, hidden, mask


def _separate_batch(model, encoded: Encoded, rows, chunk: int, pad: int, device, want_hidden: bool):
    """Sums for ``rows`` from one pass per (context + choice); the vectors from the
    context's positions of each example's first choice."""
    import torch

    pairs = [(b, j) for b, i in enumerate(rows) for j in range(len(encoded.choices[i]))]
    pairs.sort(key=lambda bj: -len(encoded.contexts[rows[bj[0]]]) - len(encoded.choices[rows[bj[0]]][bj[1]]))
    sums = [np.zeros(len(encoded.choices[i])) for i in rows]
    hidden: list | None = None
    context_mask = None
    found: list[int] = []  # the examples whose first choice's states are in ``hidden``, in order
    for part in _chunks(pairs, chunk):
        contexts = [encoded.contexts[rows[b]] for b, _ in part]
        conts = [encoded.choices[rows[b]][j] for b, j in part]
        ids, mask = padded([c + t[:-1] for c, t in zip(contexts, conts, strict=True)], pad, device=device)
        out, offset = _forward(
            model,
            min(len(c) for c in contexts) - 1,
            ids.shape[1],
            input_ids=ids,
            attention_mask=mask,
            output_hidden_states=want_hidden,
        )
        # the logits that predict each choice token: from the context's last position on
        width = max(len(t) for t in conts)
        at = torch.tensor([len(c) - 1 - offset for c in contexts], device=device)
        at = (at[:, None] + torch.arange(width, device=device)[None, :]).clamp(max=out.logits.shape[1] - 1)
        logits = out.logits[torch.arange(len(part), device=device)[:, None], at]
        targets, kept = padded(conts, 0, device=device)
        for (b, j), total in zip(part, _picked(logits, targets, kept), strict=True):
            sums[b][j] = total
        if want_hidden:
            firsts = [r for r, (_, j) in enumerate(part) if j == 0]
            if firsts:
                keep = torch.tensor(firsts, device=device)
                ctx_mask = torch.zeros_like(mask[keep])
                for k, r in enumerate(firsts):
                    ctx_mask[k, : len(contexts[r])] = 1
                states = [h[keep] for h in out.hidden_states]
                hidden, context_mask = _stack_rows(hidden, context_mask, states, ctx_mask)
                found += [part[r][0] for r in firsts]
    if hidden is not None:  # back in the order of ``rows``
        back = torch.from_numpy(np.argsort(found)).to(device)
        hidden, context_mask = [h[back] for h in hidden], context_mask[back]
    return sums, hidden, context_mask


def _picked(logits, targets, kept) -> list[float]:
    """Per row, the summed log-probability of ``targets`` (kept where ``kept``) under ``logits``
    (rows, positions, vocabulary), in float32 log-softmax and float64 sums."""
    logp = logits.float().log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    return (logp.double() * kept).sum(dim=1).tolist()


def _stack_rows(hidden, mask, states, new_mask):
    """Hidden states and masks of rows gathered across chunks (padded to one width)."""
    import torch

    if hidden is None:
        return list(states), new_mask
    width = max(mask.shape[1], new_mask.shape[1])

    def wide(t, w):
        if t.shape[1] == w:
            return t
        pad = torch.zeros((t.shape[0], w - t.shape[1], *t.shape[2:]), dtype=t.dtype, device=t.device)
        return torch.cat([t, pad], dim=1)

    hidden = [torch.cat([wide(a, width), wide(b, width)]) for a, b in zip(hidden, states, strict=True)]
    return hidden, torch.cat([wide(mask, width), wide(new_mask, width)])


# ---------------------------------------------------------------- encoders with a multiple-choice head


def _encoder_choices(loaded, data: Dataset, choices, options, rep, progress: bool, label: str):
    import torch

    from .extract import autocast_dtype
    from .progress import bar as progress_bar

    model, tokenizer = loaded.model, loaded.tokenizer
    firsts = contexts_of(data, prompt_used(options, data, "choose"))
    limit = input_limit(model, options.length_for(data.task))
    device = next(model.parameters()).device
    amp = autocast_dtype(options.precision, device.type)
    n = len(data)
    logits: list[np.ndarray] = [np.zeros(len(c)) for c in choices]
    vectors = np.zeros((n, rep.width), dtype=np.float32)
    groups: dict[int, list[int]] = {}  # a batch holds examples of one number of choices
    for i, per in enumerate(choices):
        groups.setdefault(len(per), []).append(i)
    side = tokenizer.truncation_side
    tokenizer.truncation_side = "left"  # a long first segment keeps its end
    bar = progress_bar(label, n, "example", progress=progress)
    try:
        with torch.inference_mode(), torch.autocast(device.type, amp, enabled=amp is not None), bar:
            for count, members in sorted(groups.items()):
                for rows in _chunks(members, options.batch_size):
                    pairs = tokenizer(
                        [firsts[i] for i in rows for _ in range(count)],
                        [c for i in rows for c in choices[i]],
                        truncation="longest_first",  # the first segment, unless a choice is longer
                        max_length=limit,
                        padding=True,
                        return_tensors="pt",
                    )
                    inputs = {k: v.view(len(rows), count, -1).to(device) for k, v in pairs.items()}
                    out = model(**inputs)
                    for b, i in enumerate(rows):
                        logits[i] = out.logits[b].float().double().cpu().numpy()
                    alone = tokenizer(
                        [firsts[i] for i in rows],
                        truncation=True,
                        max_length=limit,
                        padding=True,
                        return_tensors="pt",
                    )
                    alone = {k: v.to(device) for k, v in alone.items()}
                    base = model.base_model(**alone, output_hidden_states=True)
                    vectors[rows] = rep.vectors(base.hidden_states, alone["attention_mask"])
                    bar.update(len(rows))
    finally:
        tokenizer.truncation_side = side
    return _choice_table(data, choices, logits, None), vectors


def _encoder_prompt(data: Dataset) -> str:
    return ENCODER_CONTEXT_PROMPT if _has_context(data) else ENCODER_PROMPT


# ---------------------------------------------------------------- predictions


def _choice_table(
    data: Dataset, choices, scores: list[np.ndarray], sums: list[np.ndarray] | None
) -> pa.Table:
    """One row per example: the chosen choice's text and index, its probability, whether it
    is the gold one (null when unknown), the softmax of the scores, the log-likelihoods."""
    probs = [softmax(np.asarray(s, dtype=np.float64)) for s in scores]
    pred = [int(np.argmax(p)) for p in probs]
    gold = data.table["label"].to_pylist()
    lists = pa.list_(pa.float64())
    return pa.table(
        {
            "example_id": data.table["example_id"],
            "prediction": pa.array([per[k] for per, k in zip(choices, pred, strict=True)], pa.string()),
            "pred_label": pa.array(pred, pa.int64()),
            "score": pa.array([float(p[k]) for p, k in zip(probs, pred, strict=True)], pa.float64()),
            "correct": pa.array(
                [None if g is None else g == k for g, k in zip(gold, pred, strict=True)], pa.bool_()
            ),
            "probs": pa.array([p.tolist() for p in probs], lists),
            "loglikelihoods": pa.array(
                [s.tolist() for s in sums] if sums is not None else [None] * len(pred), lists
            ),
        }
    )


def _no_scores(words: list[str]) -> np.ndarray:
    return np.zeros((0, len(words)), dtype=np.float64)


def _vectors_or_empty(vectors: np.ndarray | None, rep) -> np.ndarray:
    if vectors is None:
        return np.zeros((0, rep.width), dtype=np.float32)
    return vectors
