"""Multiple choice and label words by log-likelihood on decoders, and multiple-choice heads on
encoders (issue 16): tiny random-init models of tests/families.py over questions made from
real SST-2 dev sentences, every score checked against a brute-force recomputation (one full
forward of context + choice per choice, batch 1)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from ce.extractors import choices as C
from ce.extractors.datasets import load_dataset, subset
from ce.store.errors import CeError

from .conftest import DATA_DIR, needs_data
from .families import build_family, corpus

pytestmark = needs_data("sst2/sst2_dev.tsv", "sst2/sst2_train.tsv", "squad2/dev-v2.0.json")

# choices of one word and of several, so that some take one token and some many
CHOICES = ["negative", "positive", "rather mixed feelings overall", "a delight to watch twice"]


def sst2_dev(n: int, offset: int = 0) -> list[tuple[str, int]]:
    lines = (DATA_DIR / "sst2" / "sst2_dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    rows = []
    for line in lines[offset : offset + n]:
        text, label = line.rsplit("\t", 1)
        rows.append((text.strip(), int(label)))
    return rows


def write_mc(path, n: int = 40, choices=CHOICES, offset: int = 0):
    """An MMLU-style JSONL of SST-2 dev sentences (gold: the sentence's label); every fifth
    question has three choices only, so that examples differ in their number of choices."""
    with path.open("w", encoding="utf-8") as f:
        for i, (text, label) in enumerate(sst2_dev(n, offset)):
            per = choices[:3] if i % 5 == 4 else choices
            f.write(json.dumps({"id": f"q{i}", "question": text, "choices": per, "answer": label}) + "\n")
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("choice-models")
    texts = corpus()
    folders = {
        family: build_family(family, root, texts, heads=("lm",))["lm"]
        for family in ("gpt2", "llama", "qwen2")
    }
    folders["bert"] = build_family("bert", root, texts, heads=("choice",))["choice"]
    return folders


@pytest.fixture(scope="module")
def mc(tmp_path_factory):
    return load_dataset(str(write_mc(tmp_path_factory.mktemp("mc") / "sst2-mc.jsonl")))


def loaded_model(folder, task="choice"):
    from ce.extractors.loading import load_model
    from ce.extractors.registry import ResolvedModel

    return load_model(ResolvedModel(folder.name, str(folder), True), task, "finetuned")


def options(**given):
    from ce.extractors.extract import ExtractOptions

    return ExtractOptions(**given)


def scored(loaded, data, **given):
    from ce.extractors.extract import model_representation

    opts = options(**given)
    rep = model_representation(loaded, opts)
    run = C.score_choices if data.task == "choice" else C.score_labels
    return run(loaded, data, opts, rep, False, "test")


def brute_force(loaded, context: str, choice: str, max_length: int | None = None, longest: int = 0):
    """(summed log-likelihood, token count) of ``choice`` after ``context``: one forward of the
    tokens of context + " " + choice (the context's tokens first, with the tokenizer's own
    special tokens), batch 1; ``max_length`` keeps the context's last tokens (after the
    special ones) so that the longest choice (``longest`` tokens) fits."""
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    ctx = tokenizer(context)["input_ids"]
    whole = tokenizer(context + " " + choice)["input_ids"]
    assert whole[: len(ctx)] == ctx, "a token spans the boundary: pick other test texts"
    cont = whole[len(ctx) :]
    if max_length is not None:
        prefix = C.special_prefix(tokenizer)
        body = ctx[len(prefix) :]
        room = max_length - len(prefix) - longest
        ctx = prefix + body[max(len(body) - room, 0) :]
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0].float().log_softmax(-1)
    return sum(logp[len(ctx) - 1 + t, token].item() for t, token in enumerate(cont)), len(cont)


def context_vector(loaded, context: str) -> np.ndarray:
    """The last block's state of the context's last token, the context alone, batch 1."""
    import torch

    ids = torch.tensor([loaded.tokenizer(context)["input_ids"]])
    with torch.no_grad():
        out = loaded.model(input_ids=ids, output_hidden_states=True)
    return out.hidden_states[-1][0, -1].float().numpy()


def softmax(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    e = np.exp(values - values.max())
    return e / e.sum()


@pytest.mark.parametrize("family", ["gpt2", "llama", "qwen2"])
def test_choices_score_as_a_brute_force_recomputation(family, models, mc):
    loaded = loaded_model(models[family])
    assert loaded.how == "choose-lm"
    table, vectors = scored(loaded, mc, batch_size=32)
    rows = table.to_pylist()
    questions = mc.table["question"].to_pylist()
    for i, (row, question, per, gold) in enumerate(
        zip(rows, questions, mc.table["choices"].to_pylist(), mc.table["label"].to_pylist(), strict=True)
    ):
        context = f"Question: {question}\nAnswer:"
        expected = [brute_force(loaded, context, choice)[0] for choice in per]
        np.testing.assert_allclose(row["loglikelihoods"], expected, atol=1e-4, rtol=0)
        np.testing.assert_allclose(row["probs"], softmax(expected), atol=1e-6)
        assert row["pred_label"] == int(np.argmax(expected)) and row["prediction"] == per[row["pred_label"]]
        assert row["score"] == pytest.approx(max(row["probs"])) and row["correct"] == (
            row["pred_label"] == gold
        )
        if i < 8:
            np.testing.assert_allclose(vectors[i], context_vector(loaded, context), atol=1e-4)
    assert vectors.shape == (len(mc), loaded.model.config.hidden_size)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_batch_1_and_32_and_one_pass_per_choice_agree(family, models, mc, monkeypatch):
    loaded = loaded_model(models[family])
    one, one_vectors = scored(loaded, mc, batch_size=1)
    many, many_vectors = scored(loaded, mc, batch_size=32)
    monkeypatch.setattr(C, "_cache_layout", lambda model: None)  # a model whose cache is not shared
    separate, separate_vectors = scored(loaded, mc, batch_size=7)
    for other, other_vectors in ((one, one_vectors), (separate, separate_vectors)):
        assert other["pred_label"].to_pylist() == many["pred_label"].to_pylist()
        for column in ("loglikelihoods", "probs"):
            for a, b in zip(other[column].to_pylist(), many[column].to_pylist(), strict=True):
                np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
        np.testing.assert_allclose(other_vectors, many_vectors, atol=1e-4)


def test_per_token_scores_divide_by_the_choices_token_counts(models, mc):
    loaded = loaded_model(models["llama"])
    summed, _ = scored(loaded, mc)
    per_token, _ = scored(loaded, mc, choice_score="per-token")
    assert per_token["loglikelihoods"].to_pylist() == summed["loglikelihoods"].to_pylist()
    changed = 0
    for i, (row, question, per) in enumerate(
        zip(
            per_token.to_pylist(),
            mc.table["question"].to_pylist(),
            mc.table["choices"].to_pylist(),
            strict=True,
        )
    ):
        counts = [brute_force(loaded, f"Question: {question}\nAnswer:", c)[1] for c in per]
        assert len(set(counts)) > 1  # the choices differ in length
        expected = softmax(np.array(row["loglikelihoods"]) / np.array(counts))
        np.testing.assert_allclose(row["probs"], expected, atol=1e-6)
        assert row["pred_label"] == int(np.argmax(expected))
        changed += row["pred_label"] != summed["pred_label"][i].as_py()
    assert changed > 0  # normalising changes some answers: the long choices are penalised less


def test_a_long_context_loses_its_start(models, tmp_path):
    data = load_dataset(str(write_mc(tmp_path / "long.jsonl", n=12)))
    for family in ("gpt2", "llama"):
        loaded = loaded_model(models[family])
        table, vectors = scored(loaded, data, max_length=16, batch_size=5)
        for row, question, per in zip(
            table.to_pylist(),
            data.table["question"].to_pylist(),
            data.table["choices"].to_pylist(),
            strict=True,
        ):
            context = f"Question: {question}\nAnswer:"
            longest = max(brute_force(loaded, context, c)[1] for c in per)
            expected = [brute_force(loaded, context, c, max_length=16, longest=longest)[0] for c in per]
            np.testing.assert_allclose(row["loglikelihoods"], expected, atol=1e-4, rtol=0)
        assert np.isfinite(vectors).all()


def test_a_sliding_window_shares_the_context_only_within_it(models, monkeypatch):
    """A Mistral-style model: the cache is shared where the input fits its window, else one
    pass per choice; both score as the brute force."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    tokenizer = loaded_model(models["llama"]).tokenizer
    contexts = [f"Question: {text}\nAnswer:" for text, _ in sst2_dev(6)]
    for window, shared in ((4096, True), (12, False)):
        torch.manual_seed(0)
        config = MistralConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            sliding_window=window,
            initializer_range=0.2,
            pad_token_id=tokenizer.pad_token_id,
        )
        loaded = SimpleNamespace(
            model=MistralForCausalLM(config).eval(), tokenizer=tokenizer, how="choose-lm"
        )
        assert C._cache_layout(loaded.model) == window - 1
        calls = []
        monkeypatch.setattr(
            C, "_separate_batch", lambda *a, real=C._separate_batch, calls=calls: calls.append(1) or real(*a)
        )
        got = C.loglikelihoods(loaded, contexts, [CHOICES] * len(contexts), options(batch_size=4), "choice")
        monkeypatch.undo()
        assert bool(calls) != shared
        for context, sums in zip(contexts, got.sums, strict=True):
            expected = [brute_force(loaded, context, c)[0] for c in CHOICES]
            np.testing.assert_allclose(sums, expected, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def sentences():
    return subset(load_dataset("sst2-dev"), 24, sample="first")


def test_label_words_score_a_classification_dataset(models, sentences):
    loaded = loaded_model(models["gpt2"], "classification")
    assert loaded.how == "verbalize"
    table, vectors = scored(loaded, sentences, batch_size=32)
    assert table.column_names == [
        "example_id",
        "prediction",
        "pred_label",
        "score",
        "correct",
        "probs",
        "loglikelihoods",
    ]
    texts, gold = sentences.table["text"].to_pylist(), sentences.table["label"].to_pylist()
    for row, text, g in zip(table.to_pylist(), texts, gold, strict=True):
        expected = [brute_force(loaded, f"{text}\nSentiment:", w)[0] for w in ("negative", "positive")]
        np.testing.assert_allclose(row["loglikelihoods"], expected, atol=1e-4, rtol=0)
        np.testing.assert_allclose(row["probs"], softmax(expected), atol=1e-6)
        assert row["prediction"] == str(row["pred_label"]) and row["correct"] == (row["pred_label"] == g)
    assert vectors.shape == (24, 32)
    one, one_vectors = scored(loaded, sentences, batch_size=1)
    np.testing.assert_allclose(
        np.stack(one["probs"].to_pylist()), np.stack(table["probs"].to_pylist()), atol=1e-5
    )
    np.testing.assert_allclose(one_vectors, vectors, atol=1e-4)
    # raw texts (the attack's model wrapper): the same probabilities, no vectors
    probs = C.label_probs(loaded, texts, C.with_dataset_defaults(options(), sentences))
    np.testing.assert_allclose(probs, np.stack(table["probs"].to_pylist()), atol=1e-6)
    assert C.label_probs(loaded, [], C.with_dataset_defaults(options(), "sst2-dev")).shape == (0, 2)


def test_unlabelled_texts_have_no_correctness(models, tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("text,label\nfine film,\nawful,\n")
    loaded = loaded_model(models["llama"], "classification")
    table, _ = scored(loaded, load_dataset(str(path)), verbalizer="bad,good")
    assert table["correct"].null_count == 2 and len(table["probs"][0]) == 2


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"verbalizer": "bad,neutral,good"},
            "--verbalizer 'bad,neutral,good' names 3 label words but dataset sst2-dev has 2",
        ),
        ({"verbalizer": "negative,,positive"}, "label word 1 is empty; give one word per label"),
        ({"verbalizer": "positive"}, "names one label word"),
        (
            {"prompt": "{sentence}\nSentiment:"},
            "unknown field {sentence}; use {text}, {question} or {context}",
        ),
        ({"prompt": "{text!r}"}, "unknown field {text!r}"),
        ({"prompt": "{}"}, "unknown field {}"),
        ({"prompt": "{text"}, "is not a template"),
        ({"choice_score": "mean"}, "unknown choice score 'mean'; use sum or per-token"),
    ],
)
def test_bad_label_words_and_prompts_fail_in_one_line(models, sentences, given, message):
    loaded = loaded_model(models["gpt2"], "classification")
    with pytest.raises(CeError) as caught:
        scored(loaded, sentences, **given)
    assert "\n" not in str(caught.value) and message in str(caught.value), str(caught.value)


def test_the_options_are_checked_before_anything_runs(sentences, mc):
    C.check_choice_options(options(), sentences, "verbalize")
    C.check_choice_options(options(choice_score="per-token"), mc, "choose-lm")
    C.check_choice_options(options(verbalizer="a,b,c"), sentences, "classify")  # not read by a head
    with pytest.raises(CeError, match="names 3 label words"):
        C.check_choice_options(options(verbalizer="a,b,c"), sentences, "verbalize")
    with pytest.raises(CeError, match="unknown field {sentence}"):
        C.check_choice_options(options(prompt="{sentence}"), mc, "choose-lm")
    with pytest.raises(CeError, match="not multiple choice"):
        C.check_choice_options(options(), sentences, "choose-lm")
    with pytest.raises(CeError, match="unknown choice score"):
        C.check_choice_options(options(choice_score="max"), sentences, "classify")


def test_a_dataset_without_default_label_words_asks_for_them(models, tmp_path):
    path = tmp_path / "topics.csv"
    path.write_text("text,label\nstocks fell,0\nthe team won,2\n")
    loaded = loaded_model(models["gpt2"], "classification")
    with pytest.raises(CeError, match="dataset topics has no default label words .* pass --verbalizer"):
        scored(loaded, load_dataset(str(path)))
    with pytest.raises(CeError, match="names 2 label words but dataset topics has 3 labels"):
        scored(loaded, load_dataset(str(path)), verbalizer="business,sport")
    table, _ = scored(loaded, load_dataset(str(path)), verbalizer="business,science,sport")
    assert table["probs"].to_pylist()[0].__len__() == 3
    with pytest.raises(CeError, match="pass --verbalizer"):
        C.label_probs(loaded, ["x"], options())


def test_an_encoder_chooses_with_its_multiple_choice_head(models, mc):
    import torch

    loaded = loaded_model(models["bert"])
    assert loaded.how == "choose"
    table, vectors = scored(loaded, mc, batch_size=32)
    one, one_vectors = scored(loaded, mc, batch_size=1)
    assert table["loglikelihoods"].null_count == len(mc)
    counts = [len(c) for c in mc.table["choices"].to_pylist()]
    assert [len(p) for p in table["probs"].to_pylist()] == counts and set(counts) == {3, 4}
    for a, b in zip(one["probs"].to_pylist(), table["probs"].to_pylist(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(one_vectors, vectors, atol=1e-5)
    tokenizer, model = loaded.tokenizer, loaded.model
    for i in (0, 4):  # four choices, then three
        question, per = mc.table["question"][i].as_py(), mc.table["choices"][i].as_py()
        pairs = tokenizer([question] * len(per), per, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**{k: v[None] for k, v in pairs.items()}).logits[0]
            alone = model.base_model(**tokenizer(question, return_tensors="pt"), output_hidden_states=True)
        np.testing.assert_allclose(table["probs"][i].as_py(), softmax(logits.numpy()), atol=1e-5)
        np.testing.assert_allclose(vectors[i], alone.hidden_states[-1][0, 0].numpy(), atol=1e-5)
        assert table["prediction"][i].as_py() == per[int(logits.argmax())]
    short, short_vectors = scored(loaded, mc, max_length=16)  # the questions lose their start
    assert np.isfinite(np.concatenate(short["probs"].to_pylist())).all() and np.isfinite(short_vectors).all()


def test_forward_all_and_extract_store_the_choices_answers(models, mc, tmp_path):
    from ce.extractors.extract import extract, forward_all
    from ce.store.store import Store

    from .conftest import stored

    loaded = loaded_model(models["gpt2"])
    direct, direct_vectors = scored(loaded, mc)
    table, vectors = forward_all(loaded, mc, options(), progress=False)
    assert table.equals(direct) and np.array_equal(vectors, direct_vectors)
    store_dir = tmp_path / "store"
    result = extract(
        Store(store_dir), str(models["gpt2"]), mc, options(k_max=5), name="tiny-gpt2", progress=False
    )
    assert (result.examples, result.predictions, result.embeddings) == (len(mc), len(mc), len(mc))
    rows = stored(store_dir, "predictions", model="tiny-gpt2", dataset=mc.name)
    for row, expected in zip(rows, direct.to_pylist(), strict=True):
        np.testing.assert_allclose(row["loglikelihoods"], expected["loglikelihoods"], atol=1e-4)
    examples = stored(store_dir, "examples", dataset=mc.name)
    assert examples[0]["choices"] == CHOICES


def test_the_context_and_choice_split_at_the_boundary_as_lm_evaluation_harness_does(models):
    assert C.split_pair("Answer:", "yes") == ("Answer:", " yes")
    assert C.split_pair("Answer: ", "yes") == ("Answer:", " yes")  # the space moves to the choice
    assert C.split_pair("Answer:\n", "yes") == ("Answer:", "\nyes")
    assert C.split_pair("", "yes") == ("", "yes")
    gpt2, llama = loaded_model(models["gpt2"]).tokenizer, loaded_model(models["llama"]).tokenizer
    assert C.special_prefix(gpt2) == [] and C.special_prefix(llama) == [llama.bos_token_id]
    encoded = C.encode(gpt2, ["", "Answer:"], [["good film", "bad"], ["good film", "bad"]], 512)
    assert encoded.contexts[0] == [gpt2.eos_token_id]  # an empty prompt: the choice follows end-of-text
    assert encoded.choices[0][0] == gpt2("good film")["input_ids"]
    assert (
        encoded.choices[1][0] == gpt2("Answer: good film")["input_ids"][len(gpt2("Answer:")["input_ids"]) :]
    )
    encoded = C.encode(llama, ["Answer:"], [["good film"]], 512)
    whole = llama("Answer: good film")["input_ids"]
    assert encoded.contexts[0] + encoded.choices[0][0] == whole and whole[0] == llama.bos_token_id
    # too long: the context keeps <s> and its end, a choice its first tokens
    encoded = C.encode(llama, ["one two three four five six seven eight nine ten"], [["a b c d e f g h"]], 8)
    assert (
        len(encoded.contexts[0]) + len(encoded.choices[0][0]) <= 8
        and encoded.contexts[0][0] == llama.bos_token_id
    )


def test_the_dataset_defaults_fill_the_options(sentences):
    filled = C.with_dataset_defaults(options(), sentences)
    assert (filled.prompt, filled.verbalizer) == ("{text}\nSentiment:", "negative,positive")
    given = C.with_dataset_defaults(options(prompt="{text} =", verbalizer="bad,good"), "sst2-dev")
    assert (given.prompt, given.verbalizer) == ("{text} =", "bad,good")
    assert C.with_dataset_defaults(options(), "my-file").verbalizer is None
