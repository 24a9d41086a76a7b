"""Extractive QA by greedy generation (extractors/generate.py) on tiny GPT-2, Llama and T5
models over real SQuAD 2.0 dev questions: the same answers, scores and vectors in any batch,
equal to a plain token-by-token greedy loop over each unpadded prompt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ce.extractors import extract as extract_module
from ce.extractors.datasets import Dataset, load_dataset, subset
from ce.extractors.extract import ExtractOptions, extract, model_representation
from ce.extractors.families import pool
from ce.extractors.generate import (
    DEFAULT_PROMPT,
    check_prompt,
    first_line_answer,
    generate_answers,
    prompt_budget,
    prompt_ids,
    right_aligned,
    stop_tokens,
)
from ce.extractors.loading import load_model
from ce.extractors.registry import ResolvedModel
from ce.extractors.squad_metric import score
from ce.store import Store
from ce.store.errors import CeError

from .conftest import needs_data, stored
from .families import build_family, corpus

pytestmark = [pytest.mark.usefixtures("data_dir"), needs_data("squad2/dev-v2.0.json", "sst2/sst2_train.tsv")]

QUESTIONS = 30
NEW_TOKENS = 6
MAX_LENGTH = 128


@pytest.fixture(scope="module")
def lm_folders(tmp_path_factory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("generate")
    texts = corpus()
    return {
        family: build_family(family, root, texts, heads=("lm",))["lm"] for family in ("gpt2", "llama", "t5")
    }


@pytest.fixture(scope="module")
def questions():
    return subset(load_dataset("squad2-dev"), QUESTIONS)


def loaded_lm(folder, family: str):
    loaded = load_model(ResolvedModel(family, str(folder), True), "qa", "finetuned")
    assert loaded.how == "generate"
    return loaded


def options(**kw) -> ExtractOptions:
    return ExtractOptions(**({"max_length": MAX_LENGTH, "max_new_tokens": NEW_TOKENS} | kw))


def prompts(loaded, data, opts) -> list[list[int]]:
    template = check_prompt(opts.prompt or DEFAULT_PROMPT)
    contexts, questions = data.table["context"].to_pylist(), data.table["question"].to_pylist()
    return prompt_ids(loaded.tokenizer, template, contexts, questions, prompt_budget(loaded, opts))


def stop_sooner(loaded, data, opts):
    """A forward hook that raises the stop tokens' logits by the median margin they lose by
    at the first step, so that about half the answers are empty and others stop later; the
    hook's handle."""
    stops = torch.tensor(stop_tokens(loaded))
    margins = []
    with torch.inference_mode():
        for ids in prompts(loaded, data, opts):
            logits = first_logits(loaded, ids)
            margins.append(float(logits.max() - logits[stops].max()))
    offset = float(np.median(margins)) + 1e-3

    def hook(module, args, out):
        return out.index_add(-1, stops, torch.full((*out.shape[:-1], len(stops)), offset, dtype=out.dtype))

    return loaded.model.get_output_embeddings().register_forward_hook(hook)


def first_logits(loaded, ids: list[int]):
    model = loaded.model
    inputs = torch.tensor([ids])
    if loaded.family.decoder:
        return model(input_ids=inputs).logits[0, -1]
    start = torch.tensor([[model.generation_config.decoder_start_token_id]])
    return model(input_ids=inputs, decoder_input_ids=start).logits[0, -1]


def reference(loaded, data, opts):
    """Greedy answers, mean log-probabilities and cls/last/mean vectors, one unpadded prompt at
    a time, recomputing every step from scratch (no cache, no generate())."""
    model, tokenizer = loaded.model, loaded.tokenizer
    stops = set(stop_tokens(loaded))
    rep = model_representation(loaded, opts)
    texts, scores, vectors = [], [], {p: [] for p in ("cls", "last", "mean")}
    with torch.inference_mode():
        for ids in prompts(loaded, data, opts):
            inputs = torch.tensor([ids])
            if loaded.family.decoder:
                hidden = model(input_ids=inputs, output_hidden_states=True).hidden_states
            else:
                hidden = model.get_encoder()(input_ids=inputs, output_hidden_states=True).hidden_states
            for p in vectors:
                vectors[p].append(pool(hidden[rep.position], torch.ones_like(inputs), p)[0].numpy())
            new, logprobs = [], []
            for _ in range(opts.max_new_tokens):
                if loaded.family.decoder:
                    logits = model(input_ids=torch.tensor([ids + new])).logits[0, -1]
                else:
                    start = [model.generation_config.decoder_start_token_id]
                    out = model(input_ids=inputs, decoder_input_ids=torch.tensor([start + new]))
                    logits = out.logits[0, -1]
                token = int(logits.argmax())
                logprobs.append(float(torch.log_softmax(logits.float(), -1)[token]))
                new.append(token)
                if token in stops:
                    break
            texts.append(first_line_answer(tokenizer.decode(new, skip_special_tokens=True)))
            scores.append(float(np.mean(logprobs)))
    return texts, np.array(scores), {p: np.stack(v) for p, v in vectors.items()}


@pytest.mark.parametrize("family", ["gpt2", "llama", "t5"])
def test_answers_and_vectors_do_not_depend_on_the_batch(lm_folders, questions, family):
    loaded = loaded_lm(lm_folders[family], family)
    hook = stop_sooner(loaded, questions, options())
    try:
        texts, scores, vectors = reference(loaded, questions, options())
        runs = {}
        for batch_size, pooling in [(1, None), (8, None), (8, "cls"), (8, "mean")]:
            opts = options(batch_size=batch_size, pooling=pooling)
            runs[batch_size, pooling] = generate_answers(
                loaded, questions, opts, model_representation(loaded, opts), False, "test"
            )
    finally:
        hook.remove()
    default = loaded.family.pooling
    assert default == ("mean" if family == "t5" else "last")
    for (_, pooling), (table, got) in runs.items():
        assert table["prediction"].to_pylist() == texts
        np.testing.assert_allclose(table["score"].to_numpy(), scores, atol=1e-4)
        np.testing.assert_allclose(got, vectors[pooling or default], atol=1e-4)
        assert got.dtype == np.float32 and got.shape == (QUESTIONS, loaded.model.config.hidden_size)
    if family != "t5":  # a random T5 answers every question alike; decoders vary
        assert 0 < texts.count("") < QUESTIONS  # some stopped at once, others answered
    table = runs[1, None][0]
    answers = questions.table["answers"].to_pylist()
    assert table["example_id"].to_pylist() == questions.table["example_id"].to_pylist()
    for row, gold in zip(table.to_pylist(), answers, strict=True):
        assert (row["exact"], row["f1"]) == score(gold, row["prediction"])
        assert row["correct"] == (row["exact"] == 1.0)
        assert row["null_score"] is None and row["span_score"] is None
        assert row["score"] < 0
    if family != "t5":  # empty answers to unanswerable questions are right
        assert any(r["correct"] for r in table.to_pylist())


def test_the_models_own_generation_settings_do_not_apply(lm_folders, questions):
    """A checkpoint's generation_config.json may ask for sampling or penalties: ce decodes
    greedily whatever it says, and an empty dataset gives no rows."""
    loaded = loaded_lm(lm_folders["gpt2"], "gpt2")
    data = subset(questions, 8)
    opts = options(batch_size=4)
    rep = model_representation(loaded, opts)
    plain, vectors = generate_answers(loaded, data, opts, rep, False, "x")
    own = loaded.model.generation_config
    own.do_sample, own.top_k, own.temperature, own.repetition_penalty, own.no_repeat_ngram_size = (
        True,
        3,
        5.0,
        4.0,
        1,
    )
    torch.manual_seed(1)
    again, again_vectors = generate_answers(loaded, data, opts, rep, False, "x")
    assert again.equals(plain)
    np.testing.assert_array_equal(again_vectors, vectors)
    nothing = Dataset(questions.name, "qa", questions.table.slice(0, 0), questions.source)
    empty, none = generate_answers(loaded, nothing, opts, rep, False, "x")
    assert empty.num_rows == 0 and none.shape == (0, 32)


def test_left_padding_moves_right_for_every_pooling():
    torch.manual_seed(0)
    lengths = [5, 2, 7]
    rows = [torch.randn(n, 4) for n in lengths]
    width = max(lengths)
    hidden = torch.full((3, width, 4), float("nan"))  # padding may hold anything
    mask = torch.zeros((3, width), dtype=torch.long)
    for j, row in enumerate(rows):
        hidden[j, width - len(row) :] = row
        mask[j, width - len(row) :] = 1
    moved, moved_mask = right_aligned(hidden, mask)
    for p in ("cls", "last", "mean"):
        got = pool(moved, moved_mask, p)
        want = torch.stack([pool(row[None], torch.ones(1, len(row)), p)[0] for row in rows])
        torch.testing.assert_close(got, want)


def test_long_contexts_are_cut_and_questions_kept(lm_folders, questions):
    loaded = loaded_lm(lm_folders["llama"], "llama")
    opts = options(max_length=112, max_new_tokens=8)
    ids = prompts(loaded, questions, opts)
    assert max(len(r) for r in ids) <= 112 - 8
    contexts = questions.table["context"].to_pylist()
    cut = 0
    for row, context, question in zip(ids, contexts, questions.table["question"].to_pylist(), strict=True):
        text = loaded.tokenizer.decode(row, skip_special_tokens=True)
        assert text.endswith(f"Question: {question.strip()}\n" + DEFAULT_PROMPT.split("\n")[-1])
        kept = text.split("\nQuestion: ")[0].removeprefix("Context: ")
        assert context.startswith(kept)  # the start of the context, cut between words
        cut += len(kept) < len(context)
    assert cut >= QUESTIONS // 2  # most contexts were too long
    with pytest.raises(CeError, match="without its context.*raise --max-length"):
        prompts(loaded, questions, options(max_length=16, max_new_tokens=8))


def test_prompt_templates_and_answers():
    assert check_prompt("Q: {question}\nC: {context}\nA:")
    assert check_prompt("{{literal}} {question}")
    with pytest.raises(CeError, match=r"names \{text\}, which a QA prompt does not fill; use \{context\}"):
        check_prompt("{text} {question}")
    with pytest.raises(CeError, match=r"unknown field \{answer\}"):
        check_prompt("{answer} {question}")
    with pytest.raises(CeError, match=r"no \{question\}"):
        check_prompt("{context}")
    with pytest.raises(CeError, match="not a template"):
        check_prompt("{question")
    assert first_line_answer(" Denver Broncos\nQuestion: why") == "Denver Broncos"
    assert first_line_answer("\nDenver") == ""
    for none in ("unanswerable", " Unanswerable.", "'UNANSWERABLE'", "", "  "):
        assert first_line_answer(none) == ""
    assert first_line_answer("unanswerable question") == "unanswerable question"


def test_a_prompt_naming_an_unknown_field_fails_in_one_line(lm_folders, questions):
    loaded = loaded_lm(lm_folders["gpt2"], "gpt2")
    opts = options(prompt="{passage}: {question}")
    with pytest.raises(CeError) as e:
        generate_answers(loaded, questions, opts, model_representation(loaded, opts), False, "x")
    assert "\n" not in str(e.value) and "{passage}" in str(e.value)


def test_extract_generates_once_per_batch(lm_folders, store_dir, monkeypatch):
    """ce extract on a decoder: predictions and vectors in the store, and the prompt of every
    question read once (one prefill per batch; the other calls read one new token each)."""
    prefills = []
    real = extract_module.load_model

    def load_and_count(*args, **kwargs):
        loaded = real(*args, **kwargs)

        def hook(module, args, kwargs):
            ids = kwargs["input_ids"]
            if ids.shape[1] > 1:
                prefills.append(ids.shape[0])

        loaded.model.register_forward_pre_hook(hook, with_kwargs=True)
        return loaded

    monkeypatch.setattr(extract_module, "load_model", load_and_count)
    store = Store(store_dir)
    opts = options(limit=12, batch_size=5, k_max=3, doc_stride=32)  # (stride: spans only)
    result = extract(store, str(lm_folders["gpt2"]), "squad2-dev", opts, name="tiny-gpt2", progress=False)
    assert (result.examples, result.predictions, result.embeddings) == (12, 12, 12)
    assert prefills == [5, 5, 2]
    rows = stored(store_dir, "predictions", model="tiny-gpt2", dataset="squad2-dev")
    assert len(rows) == 12 and all(r["null_score"] is None and r["score"] < 0 for r in rows)
    [vectors] = [stored(store_dir, "embeddings", model="tiny-gpt2", stage="finetuned", dataset="squad2-dev")]
    assert {len(r["vector"]) for r in vectors} == {32}
