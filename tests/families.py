"""Tiny random-init models of nine families, saved as safetensors with a tokenizer trained on
fixture text that keeps the quirks of its Hub original:

    bert, distilbert, electra  uncased WordPiece, [PAD]=0 [UNK] [CLS] [SEP] [MASK]; DistilBERT has
                               no token_type_ids
    roberta     byte-level BPE, <s>=0 <pad>=1 </s>=2 <unk>=3, <mask> last; <s> A </s>; 514 positions
    deberta-v2  cased Unigram with Metaspace, [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3, [MASK] last;
                [CLS] A [SEP]; config vocab larger than the tokenizer
    t5          Unigram with Metaspace, <pad>=0 </s>=1 <unk>=2, 100 sentinels (<extra_id_0> last);
                appends </s>; decoder starts with <pad>; config vocab larger than the tokenizer
    gpt2        byte-level BPE, <|endoftext|> (last id) as bos/eos/unk, adds nothing, no pad token
    llama       BPE with byte fallback over Metaspace, <unk>=0 <s>=1 </s>=2, bytes <0x00>..<0xFF>=3..258;
                prepends <s>; no pad token
    qwen2       byte-level BPE with Qwen's split regex, <|endoftext|> <|im_start|> <|im_end|> last;
                pad = eos = <|endoftext|>, no bos, nothing added; config vocab larger, no pad_token_id

``build_all(root)`` writes every family; ``build_family`` one, with any size. The heads of a
family share one seeded base model; the random classifiers predict both labels on SST-2 dev.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

FAMILIES = ("bert", "distilbert", "roberta", "electra", "deberta-v2", "t5", "gpt2", "llama", "qwen2")
DECODERS = ("gpt2", "llama", "qwen2")
ENCODERS = ("bert", "distilbert", "roberta", "electra", "deberta-v2")
VOCAB_SIZE = 1500

REPO = Path(__file__).resolve().parents[1]

# Class name = PREFIX[family] + SUFFIX[head]; "lm" depends on the family.
PREFIX = {
    "bert": "Bert",
    "distilbert": "DistilBert",
    "roberta": "Roberta",
    "electra": "Electra",
    "deberta-v2": "DebertaV2",
    "t5": "T5",
    "gpt2": "GPT2",
    "llama": "Llama",
    "qwen2": "Qwen2",
}
SUFFIX = {
    "base": "Model",
    "classification": "ForSequenceClassification",
    "qa": "ForQuestionAnswering",
    "choice": "ForMultipleChoice",
    "encoder": "EncoderModel",  # t5 only
}
LM_SUFFIX = {
    "t5": "ForConditionalGeneration",
    "gpt2": "LMHeadModel",
    "llama": "ForCausalLM",
    "qwen2": "ForCausalLM",
}


def model_class_name(family: str, head: str) -> str:
    """The transformers class of ``head`` in ``family``, e.g. ('t5', 'lm') -> T5ForConditionalGeneration."""
    suffix = LM_SUFFIX.get(family, "ForMaskedLM") if head == "lm" else SUFFIX[head]
    return PREFIX[family] + suffix


def corpus() -> list[str]:
    """The first 3000 SST-2 train sentences and 400 SQuAD 2.0 dev contexts and questions."""
    return list(_corpus())


@lru_cache
def _corpus() -> tuple[str, ...]:
    data_dir = Path(os.environ.get("CE_DATA_DIR") or REPO.parent / "shared" / "data")
    lines = (data_dir / "sst2" / "sst2_train.tsv").read_text().splitlines()[1:3001]
    texts = [line.split("\t")[0].strip() for line in lines]
    squad = []
    for article in json.loads((data_dir / "squad2" / "dev-v2.0.json").read_text())["data"]:
        for para in article["paragraphs"]:
            squad.append(para["context"])
            squad.extend(q["question"] for q in para["qas"][:3])
        if len(squad) >= 400:
            break
    return tuple(texts + squad[:400])


# ---------------------------------------------------------------- tokenizers


def build_tokenizer(family: str, folder: Path, texts: list[str]) -> PreTrainedTokenizerFast:
    """The family's tokenizer trained on ``texts``, saved to ``folder`` and returned."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = TOKENIZERS[family](folder, texts)
    tokenizer.save_pretrained(folder)
    return tokenizer


def _wordpiece(class_name: str):
    def build(folder: Path, texts: list[str]):
        """BERT's vocab.txt layout; the trainer orders equal counts at random, so the
        non-special tokens are sorted (WordPiece does not depend on ids)."""
        import transformers
        from tokenizers import BertWordPieceTokenizer

        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        trained = BertWordPieceTokenizer(lowercase=True)
        trained.train_from_iterator(texts, vocab_size=VOCAB_SIZE, special_tokens=special, show_progress=False)
        rest = sorted(set(trained.get_vocab()) - set(special))
        (folder / "vocab.txt").write_text("".join(f"{token}\n" for token in special + rest))
        cls = getattr(transformers, class_name)
        return cls(vocab_file=str(folder / "vocab.txt"), do_lower_case=True, model_max_length=512)

    return build


def _byte_level(texts: list[str], special: list[str], qwen: bool = False):
    """A byte-level BPE (GPT-2's; Qwen2's adds NFC and its split regex) trained on ``texts``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    if qwen:
        from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def _roberta(folder: Path, texts: list[str]):
    from tokenizers import AddedToken, processors
    from transformers import RobertaTokenizerFast

    tokenizer = _byte_level(texts, ["<s>", "<pad>", "</s>", "<unk>"])
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False
    )
    return RobertaTokenizerFast(tokenizer_object=tokenizer, model_max_length=512)


def _gpt2(folder: Path, texts: list[str]):
    from tokenizers import processors
    from transformers import GPT2TokenizerFast

    tokenizer = _byte_level(texts, [])
    tokenizer.add_special_tokens(["<|endoftext|>"])
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    end = "<|endoftext|>"
    return GPT2TokenizerFast(
        tokenizer_object=tokenizer, bos_token=end, eos_token=end, unk_token=end, model_max_length=1024
    )


def _qwen2(folder: Path, texts: list[str]):
    from tokenizers import processors
    from transformers import Qwen2TokenizerFast

    tokenizer = _byte_level(texts, [], qwen=True)
    tokenizer.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return Qwen2TokenizerFast(
        tokenizer_object=tokenizer,
        unk_token=None,
        bos_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=32768,
    )


def _llama(folder: Path, texts: list[str]):
    """Llama-2's tokenizer.json: BPE with byte fallback, ids <unk> <s> </s> <0x00>..<0xFF> first,
    pieces that start with ▁, the rarest characters left to the byte tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaTokenizerFast

    special = ["<unk>", "<s>", "</s>"]
    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - 256, special_tokens=special, limit_alphabet=80, show_progress=False
    )
    trained.train_from_iterator(texts, trainer)
    model = json.loads(trained.to_str())["model"]
    pieces = sorted((i, t) for t, i in model["vocab"].items() if t not in special)
    vocab = special + [f"<0x{b:02X}>" for b in range(256)] + [t for _, t in pieces]
    bpe = models.BPE(
        vocab={t: i for i, t in enumerate(vocab)},
        merges=[tuple(m) for m in model["merges"]],
        unk_token="<unk>",
        byte_fallback=True,
        fuse_unk=True,
    )
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.add_special_tokens(special)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", 1)]
    )
    return LlamaTokenizerFast(tokenizer_object=tokenizer, legacy=False, model_max_length=4096)


def _unigram(texts: list[str], special: list[str], unk: str, normalizer, pre_tokenizer):
    from tokenizers import Tokenizer, decoders, models, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=special, unk_token=unk, show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    # scores differ in the last digits from run to run, and so does the order of equal ones:
    # rounded and sorted, the model is reproducible
    trained = json.loads(tokenizer.to_str())["model"]["vocab"][len(special) :]
    pieces = sorted((-round(score, 2), piece) for piece, score in trained)
    vocab = [(piece, 0.0) for piece in special] + [(piece, -score) for score, piece in pieces]
    tokenizer.model = models.Unigram(vocab, unk_id=special.index(unk), byte_fallback=False)
    return tokenizer


def _deberta_v2(folder: Path, texts: list[str]):
    from tokenizers import Regex, normalizers, pre_tokenizers, processors
    from transformers import DebertaV2TokenizerFast

    tokenizer = _unigram(
        texts,
        ["[PAD]", "[CLS]", "[SEP]", "[UNK]"],
        "[UNK]",
        normalizers.Sequence(
            [normalizers.Replace(Regex("[\n\r\t]"), " "), normalizers.Replace(Regex(" {2,}"), " ")]
        ),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
    )
    tokenizer.add_special_tokens(["[MASK]"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)],
    )
    return DebertaV2TokenizerFast(tokenizer_object=tokenizer, model_max_length=512)


def _t5(folder: Path, texts: list[str]):
    from tokenizers import Regex, normalizers, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    tokenizer = _unigram(
        texts,
        ["<pad>", "</s>", "<unk>"],
        "<unk>",
        normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]),
        pre_tokenizers.Sequence(
            [
                pre_tokenizers.WhitespaceSplit(),
                pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
            ]
        ),
    )
    # as in t5-small, <extra_id_0> has the highest id
    tokenizer.add_special_tokens([f"<extra_id_{i}>" for i in reversed(range(100))])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A:0 </s>:0", pair="$A:0 </s>:0 $B:0 </s>:0", special_tokens=[("</s>", 1)]
    )
    return T5TokenizerFast(tokenizer_object=tokenizer, extra_ids=100, model_max_length=512)


TOKENIZERS = {
    "bert": _wordpiece("BertTokenizerFast"),
    "distilbert": _wordpiece("DistilBertTokenizerFast"),
    "electra": _wordpiece("ElectraTokenizerFast"),
    "roberta": _roberta,
    "deberta-v2": _deberta_v2,
    "t5": _t5,
    "gpt2": _gpt2,
    "llama": _llama,
    "qwen2": _qwen2,
}


# ---------------------------------------------------------------- models


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def build_config(family: str, tokenizer, hidden: int = 32, layers: int = 2, heads_n: int = 2):
    """A tiny config of ``family`` over ``tokenizer`` with num_labels=2. Random classifiers predict
    both labels on SST-2 dev: initializer_range is 0.2 for gpt2/llama/qwen2 and 0.4 for the
    encoders (at 0.2 the post-LN BERTs give one label for every sentence), t5 keeps its own init."""
    import transformers

    n = len(tokenizer)
    ffn = 2 * hidden
    encoder = dict(
        vocab_size=n,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads_n,
        intermediate_size=ffn,
        max_position_embeddings=512,
        initializer_range=0.4,
        pad_token_id=tokenizer.pad_token_id,
    )
    decoder = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads_n,
        num_key_value_heads=heads_n,
        intermediate_size=ffn,
        max_position_embeddings=512,
        initializer_range=0.2,
        pad_token_id=None,
    )
    if family in ("bert", "electra"):
        extra = {"embedding_size": hidden} if family == "electra" else {}
        config = getattr(transformers, PREFIX[family] + "Config")(**encoder, **extra)
    elif family == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=n,
            dim=hidden,
            n_layers=layers,
            n_heads=heads_n,
            hidden_dim=ffn,
            max_position_embeddings=512,
            initializer_range=0.4,
            pad_token_id=tokenizer.pad_token_id,
        )
    elif family == "roberta":
        # positions start after the padding index: 512 tokens need 514 (as in roberta-base)
        encoder |= dict(max_position_embeddings=514, type_vocab_size=1)
        config = transformers.RobertaConfig(**encoder, bos_token_id=0, eos_token_id=2)
    elif family == "deberta-v2":
        encoder |= dict(vocab_size=_round_up(n, 128))
        config = transformers.DebertaV2Config(
            **encoder,
            relative_attention=True,
            position_buckets=256,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            max_relative_positions=-1,
            type_vocab_size=0,
            pooler_hidden_size=hidden,
        )
    elif family == "t5":
        config = transformers.T5Config(
            vocab_size=_round_up(n, 128),
            d_model=hidden,
            d_kv=hidden // heads_n,
            d_ff=ffn,
            num_layers=layers,
            num_decoder_layers=layers,
            num_heads=heads_n,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    elif family == "gpt2":
        end = tokenizer.eos_token_id
        config = transformers.GPT2Config(
            vocab_size=n,
            n_positions=1024,
            n_embd=hidden,
            n_layer=layers,
            n_head=heads_n,
            n_inner=ffn,
            initializer_range=0.2,
            bos_token_id=end,
            eos_token_id=end,
        )
    elif family == "llama":
        config = transformers.LlamaConfig(vocab_size=n, **decoder, bos_token_id=1, eos_token_id=2)
    elif family == "qwen2":
        end = tokenizer.eos_token_id
        config = transformers.Qwen2Config(
            vocab_size=_round_up(n, 64),
            **decoder,
            bos_token_id=end,
            eos_token_id=end,
            tie_word_embeddings=True,
        )
    else:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")
    config.num_labels = 2
    return config


def build_family(
    family: str,
    root: Path,
    texts: list[str] | None = None,
    *,
    heads=("base", "classification", "lm"),
    hidden=32,
    layers=2,
    heads_n=2,
    seed=0,
) -> dict[str, Path]:
    """{head: root / f"{family}-{head}"}: one model per head, each with the family's tokenizer and
    the weights of one seeded base model (T5Model for t5) where its class has them."""
    import torch
    import transformers

    root = Path(root)
    folders = {head: root / f"{family}-{head}" for head in heads}
    tokenizer = build_tokenizer(family, folders[heads[0]], corpus() if texts is None else texts)
    config = build_config(family, tokenizer, hidden, layers, heads_n)
    torch.manual_seed(seed)
    base = getattr(transformers, model_class_name(family, "base"))(config)
    for head, folder in folders.items():
        if head == "base":
            model = base
        else:
            torch.manual_seed(seed)
            model = getattr(transformers, model_class_name(family, head))(config)
            _share(model.base_model, base)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folders


def _share(target, base) -> None:
    """Copies the base model's weights into ``target`` wherever names and shapes match."""
    own = target.state_dict()
    weights = {k: v for k, v in base.state_dict().items() if k in own and own[k].shape == v.shape}
    target.load_state_dict(weights, strict=False)


def build_all(root: Path) -> dict[str, dict[str, Path]]:
    """Every family with heads base, classification and lm; encoders also qa and choice, t5 also
    encoder (T5EncoderModel)."""
    texts = corpus()
    extra = {family: ("qa", "choice") for family in ENCODERS} | {"t5": ("encoder",)}
    return {
        family: build_family(
            family, root, texts, heads=("base", "classification", "lm", *extra.get(family, ()))
        )
        for family in FAMILIES
    }
