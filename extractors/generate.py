"""Extractive QA by greedy generation, for decoders and T5-style encoder-decoders.

Each question becomes one prompt (``--prompt``, default :data:`DEFAULT_PROMPT`, fields
``{context}`` and ``{question}``). The model generates greedily (no sampling, one beam, at
most ``--max-new-tokens``) until a newline or its end-of-text token; the answer is the first
line of what it generated, stripped, and "unanswerable" (any case, quoted or not) or nothing
is no answer (""). Answers are scored as SQuAD 2.0 scores them (squad_metric); the
prediction's ``score`` is the mean log-probability of the generated tokens, the one that
stopped generation included; ``null_score`` and ``span_score`` are null (no span logits).

A prompt that would not fit cuts its context at a word boundary, never its question: a
decoder's prompt and the new tokens fit ``--max-length`` (and the model's positions); a
T5 encoder's input fits ``--max-length`` (the answer is the decoder's own sequence).

Decoders are padded on the left (each row's new tokens follow its prompt) with an attention
mask, and generate() numbers the positions from that mask, so an answer does not depend on
the batch it ran in. The embedding comes from the same single pass: the hidden states of
generation's prefill step (a decoder's prompt, or T5's encoder), pooled as the extraction
asks (families.Representation) after the left padding is moved to the right.
"""

from __future__ import annotations

import weakref

import numpy as np
import pyarrow as pa

from ce.store.errors import CeError, shown

from .datasets import Dataset
from .features import padded
from .squad_metric import score as squad_score

DEFAULT_PROMPT = (
    "Context: {context}\nQuestion: {question}\nAnswer (a span of the context, or 'unanswerable'):"
)
PROMPT_FIELDS = ("context", "question")
NO_ANSWER = "unanswerable"

_NEWLINE_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> ids


def check_prompt(template: str) -> list[tuple[str, str | None]]:
    """The template's pieces (choices.parse_prompt), once it names {question} and no field
    but {context} and {question}."""
    from .choices import parse_prompt

    pieces = parse_prompt(template)
    fields = {field for _, field in pieces if field}
    if fields - set(PROMPT_FIELDS):
        raise CeError(
            f"--prompt {shown(template)} names {{text}}, which a QA prompt does not fill; use {{context}}"
        )
    if "question" not in fields:
        raise CeError("--prompt has no {question}; a QA prompt needs {question} (and usually {context})")
    return pieces


def render(pieces: list[tuple[str, str | None]], context: str, question: str) -> str:
    from .choices import render as fill

    return fill(pieces, {"context": context, "question": question})


def newline_tokens(tokenizer) -> frozenset[int]:
    """The ids of every token whose text holds a newline: generation stops at any of them."""
    try:
        return _NEWLINE_TOKENS[tokenizer]
    except (KeyError, TypeError):
        pass
    size = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(size)], skip_special_tokens=False)
    ids = frozenset(i for i, text in enumerate(texts) if "\n" in text)
    try:
        _NEWLINE_TOKENS[tokenizer] = ids
    except TypeError:
        pass
    return ids


def stop_tokens(loaded) -> list[int]:
    """End-of-text ids (model and tokenizer) and the newline tokens."""
    ids: set[int] = set()
    for value in (loaded.model.generation_config.eos_token_id, loaded.tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    ids |= newline_tokens(loaded.tokenizer)
    if not ids:
        raise CeError(
            "the tokenizer has no end-of-text token and no newline token, so generation cannot"
            " stop; save the tokenizer with an eos_token"
        )
    return sorted(ids)


def prompt_budget(loaded, options) -> int:
    """The most tokens a prompt may take."""
    length = options.length_for("qa")
    if not loaded.family.decoder:
        return length
    from .choices import input_limit

    return input_limit(loaded.model, length) - options.max_new_tokens


def prompt_ids(
    tokenizer, template: list[tuple[str, str | None]], contexts: list[str], questions: list[str], budget: int
) -> list[list[int]]:
    """Token ids of every prompt (question and context stripped); one that does not fit
    ``budget`` keeps the longest start of its context (cut at a word boundary) that does."""
    if not questions:
        return []
    contexts, questions = [c.strip() for c in contexts], [q.strip() for q in questions]
    ids = tokenizer([render(template, c, q) for c, q in zip(contexts, questions, strict=True)])["input_ids"]
    for i, row in enumerate(ids):
        if len(row) > budget:
            ids[i] = _cut(tokenizer, template, contexts[i], questions[i], budget)
    return ids


def _cut(tokenizer, template: list, context: str, question: str, budget: int) -> list[int]:
    def encoded(end: int) -> list[int]:
        return tokenizer(render(template, context[:end].rstrip(), question))["input_ids"]

    shortest = encoded(0)
    if len(shortest) > budget:
        raise CeError(
            f"a question's prompt takes {len(shortest)} tokens without its context, more than the"
            f" {budget} that --max-length leaves after --max-new-tokens; raise --max-length or"
            " shorten --prompt"
        )
    ends = [i for i, ch in enumerate(context) if ch.isspace()]  # cut before a space
    lo, hi, best = 0, len(ends) - 1, shortest  # the longest cut that fits (lengths grow with it)
    while lo <= hi:
        mid = (lo + hi) // 2
        row = encoded(ends[mid])
        if len(row) <= budget:
            best, lo = row, mid + 1
        else:
            hi = mid - 1
    return best


def first_line_answer(generated: str) -> str:
    """The first line, stripped; 'unanswerable' (any case, quoted, with a full stop) is ""."""
    line = generated.split("\n", 1)[0].strip()
    return "" if line.strip(" '\"`.").lower() == NO_ANSWER else line


def right_aligned(hidden, attention_mask):
    """A left-padded batch's hidden states and mask moved so each row starts at 0 (padding
    on the right, zeros there): 'cls', 'last' and 'mean' pool it as a right-padded batch."""
    import torch

    width = attention_mask.shape[1]
    lengths = attention_mask.sum(dim=1)
    positions = torch.arange(width, device=attention_mask.device)
    index = (positions[None, :] + (width - lengths)[:, None]) % width
    moved = hidden.gather(1, index[:, :, None].expand(-1, -1, hidden.shape[2]))
    mask = (positions[None, :] < lengths[:, None]).to(attention_mask.dtype)
    return moved.masked_fill(~mask.bool()[:, :, None], 0), mask


def generation_config(loaded, options, stops: list[int]):
    """Plain greedy decoding: nothing from the model's own generation config but its start
    ids (generate() must be told not to fill in the rest: use_model_defaults=False)."""
    from transformers import GenerationConfig

    own = loaded.model.generation_config
    return GenerationConfig(
        do_sample=False,
        num_beams=1,
        max_new_tokens=options.max_new_tokens,
        eos_token_id=stops,
        pad_token_id=loaded.tokenizer.pad_token_id,
        bos_token_id=own.bos_token_id,
        decoder_start_token_id=own.decoder_start_token_id,
        output_hidden_states=True,
        output_logits=True,
        return_dict_in_generate=True,
    )


def generate_answers(
    loaded, data: Dataset, options, rep, progress: bool, label: str
) -> tuple[pa.Table, np.ndarray]:
    """Greedy answers to every question of ``data`` (QA) and one vector per question from the
    prefill pass: (predictions as heads.QaDecoder.finish writes them, vectors)."""
    import torch

    from .extract import autocast_dtype
    from .progress import bar as progress_bar

    if loaded.how != "generate":
        raise CeError(f"generate_answers runs generating models, not {loaded.how!r} ones")
    if data.task != "qa":
        raise CeError(f"dataset {data.name} is a {data.task} dataset; generated answers need a QA dataset")
    template = check_prompt(options.prompt or DEFAULT_PROMPT)
    tokenizer, model = loaded.tokenizer, loaded.model
    decoder = loaded.family.decoder
    budget = prompt_budget(loaded, options)
    if budget < 1:
        raise CeError(
            f"--max-new-tokens {options.max_new_tokens} leaves no room for the prompt in"
            f" {options.length_for('qa')} tokens; raise --max-length or lower --max-new-tokens"
        )
    contexts, questions = data.table["context"].to_pylist(), data.table["question"].to_pylist()
    ids = prompt_ids(tokenizer, template, contexts, questions, budget)
    stops = stop_tokens(loaded)
    config = generation_config(loaded, options, stops)
    stop_set = torch.tensor(stops, dtype=torch.long)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    n = len(data)
    texts = [""] * n
    scores = np.zeros(n, dtype=np.float64)
    vectors = None
    device = next(model.parameters()).device
    amp = autocast_dtype(options.precision, device.type)
    order = np.argsort(-np.fromiter((len(r) for r in ids), dtype=np.int64, count=n), kind="stable")
    bar = progress_bar(label, n, "question", progress=progress)
    with torch.inference_mode(), torch.autocast(device.type, amp, enabled=amp is not None), bar:
        for start in range(0, n, options.batch_size):
            idx = order[start : start + options.batch_size]
            input_ids, mask = padded([ids[i] for i in idx], pad_id, left=decoder, device=device)
            out = model.generate(
                input_ids=input_ids, attention_mask=mask, generation_config=config, use_model_defaults=False
            )
            if decoder:
                prefill = list(out.hidden_states[0])
                prefill[rep.position], pooled_mask = right_aligned(prefill[rep.position], mask)
            else:
                prefill, pooled_mask = out.encoder_hidden_states, mask
            pooled = rep.vectors(prefill, pooled_mask)
            if vectors is None:
                vectors = np.zeros((n, pooled.shape[1]), dtype=np.float32)
            vectors[idx] = pooled
            steps = len(out.logits)
            new = out.sequences[:, -steps:].cpu()
            chosen = [  # (batch,) per step: log p of the token chosen
                torch.log_softmax(step.float(), dim=-1).gather(1, new[:, k, None].to(step.device))[:, 0]
                for k, step in enumerate(out.logits)
            ]
            logprobs = torch.stack(chosen, dim=1).cpu()  # (batch, steps)
            stopped = torch.isin(new, stop_set)
            first_stop = torch.where(stopped.any(dim=1), stopped.int().argmax(dim=1), steps - 1)
            for j, i in enumerate(idx):
                end = int(first_stop[j]) + 1  # the stopping token counts, what follows is padding
                texts[i] = first_line_answer(tokenizer.decode(new[j, :end], skip_special_tokens=True))
                scores[i] = float(logprobs[j, :end].mean())
            bar.update(len(idx))
    if vectors is None:  # no questions
        vectors = np.zeros((0, rep.width), dtype=np.float32)
    return answers_table(data, texts, scores), vectors


def answers_table(data: Dataset, texts: list[str], scores: np.ndarray) -> pa.Table:
    """Prediction rows as heads.QaDecoder.finish writes them, scored by SQuAD's exact and F1."""
    exact, f1 = [], []
    for gold, text in zip(data.table["answers"].to_pylist(), texts, strict=True):
        e, f = squad_score(gold, text)
        exact.append(e)
        f1.append(f)
    nulls = pa.nulls(len(texts), pa.float64())
    return pa.table(
        {
            "example_id": data.table["example_id"],
            "prediction": pa.array(texts, pa.string()),
            "score": pa.array(scores, pa.float64()),
            "exact": pa.array(exact, pa.float64()),
            "f1": pa.array(f1, pa.float64()),
            "correct": pa.array([e == 1.0 for e in exact], pa.bool_()),
            "null_score": nulls,
            "span_score": nulls,
        }
    )
