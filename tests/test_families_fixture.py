"""The family_models fixture (tests/families.py): tiny models that load back with Auto classes and
tokenizers with the quirks of their Hub originals."""

from __future__ import annotations

import pytest

from .families import DECODERS, ENCODERS, FAMILIES, model_class_name

SENTENCE = "The Normans gave their name to Normandy, a region in France."

AUTO = {
    "base": "AutoModel",
    "classification": "AutoModelForSequenceClassification",
    "qa": "AutoModelForQuestionAnswering",
    "choice": "AutoModelForMultipleChoice",
}
AUTO_LM = {"t5": "AutoModelForSeq2SeqLM", **{family: "AutoModelForCausalLM" for family in DECODERS}}


def test_every_folder_loads_back(family_models):
    import torch
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    assert tuple(family_models) == FAMILIES
    for family, folders in family_models.items():
        extra = {"qa", "choice"} if family in ENCODERS else {"encoder"} if family == "t5" else set()
        assert set(folders) == {"base", "classification", "lm", *extra}
        base = transformers.AutoModel.from_pretrained(folders["base"])
        for head, folder in folders.items():
            assert folder.name == f"{family}-{head}"
            assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
            config = AutoConfig.from_pretrained(folder)
            assert config.architectures == [model_class_name(family, head)]
            assert len(AutoTokenizer.from_pretrained(folder)) <= config.vocab_size
            auto = AUTO_LM.get(family, "AutoModelForMaskedLM") if head == "lm" else AUTO.get(head)
            model = getattr(transformers, auto or config.architectures[0]).from_pretrained(folder)
            assert type(model).__name__ == config.architectures[0]
            # every head shares the seeded base model's embeddings
            shared = model.base_model.get_input_embeddings().weight
            assert torch.equal(shared, base.get_input_embeddings().weight)


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_round_trip(family_models, family):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(family_models[family]["base"])
    expected = SENTENCE.lower() if family in ("bert", "distilbert", "electra") else SENTENCE
    ids = tokenizer(SENTENCE)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == expected
    assert tokenizer.decode(tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]) == expected


def load(family_models, family):
    from transformers import AutoConfig, AutoTokenizer

    folder = family_models[family]["lm"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    plain = tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]
    return tokenizer, AutoConfig.from_pretrained(folder), tokenizer(SENTENCE)["input_ids"], plain


@pytest.mark.parametrize("family", DECODERS)
def test_decoders_pad_and_bos(family_models, family):
    tokenizer, config, ids, plain = load(family_models, family)
    assert config.pad_token_id is None
    if family == "qwen2":
        assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
        assert tokenizer.bos_token is None
    else:
        assert tokenizer.pad_token is None
    if family == "llama":
        assert ids == [tokenizer.bos_token_id, *plain]
        assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
        tokens = tokenizer.tokenize("snow ☃")
        assert "<0xE2>" in tokens  # byte fallback
        assert tokenizer.convert_tokens_to_string(tokens) == "snow ☃"
    else:
        assert ids == plain
    if family == "gpt2":
        assert tokenizer.bos_token == tokenizer.eos_token == tokenizer.unk_token == "<|endoftext|>"
        assert tokenizer.eos_token_id == len(tokenizer) - 1 == config.eos_token_id


def test_t5_appends_eos(family_models):
    tokenizer, config, ids, plain = load(family_models, "t5")
    assert ids == [*plain, 1]
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert config.decoder_start_token_id == config.pad_token_id == 0
    assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == len(tokenizer) - 1


@pytest.mark.parametrize("family", ENCODERS)
def test_encoders_wrap_in_specials(family_models, family):
    tokenizer, config, ids, plain = load(family_models, family)
    assert ids == [tokenizer.cls_token_id, *plain, tokenizer.sep_token_id]
    assert config.pad_token_id == tokenizer.pad_token_id
    pad, cls, sep = {"roberta": (1, 0, 2), "deberta-v2": (0, 1, 2)}.get(family, (0, 2, 3))
    assert (tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id) == (pad, cls, sep)
    if family in ("roberta", "deberta-v2"):
        assert tokenizer.mask_token_id == len(tokenizer) - 1


@pytest.mark.parametrize("family", FAMILIES)
def test_random_classifier_predicts_both_labels(family_models, family, data_dir):
    import torch
    import transformers
    from transformers import AutoTokenizer

    folder = family_models[family]["classification"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    lines = (data_dir / "sst2" / "sst2_dev.tsv").read_text().splitlines()[1:101]
    predicted = set()
    with torch.no_grad():
        for line in lines:
            logits = model(**tokenizer(line.split("\t")[0], return_tensors="pt")).logits
            predicted.add(int(logits.argmax(-1)))
            if predicted == {0, 1}:
                break
    assert predicted == {0, 1}
