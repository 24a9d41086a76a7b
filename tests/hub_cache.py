"""A Hugging Face Hub cache on disk with tiny models under the real repo ids of ce's registry.

ce resolves its aliases to Hub ids (``extractors/registry.py``) and loads them through
``transformers``/``huggingface_hub``. The tests have no network, so this module writes the cache
those libraries would have left behind after downloading the real repos, laid out exactly as
huggingface_hub 0.36 writes it (``file_download.py``):

    models--{org}--{name}/
        blobs/{etag}                        file content; the etag of an LFS file (weights) is its
                                            sha256, of a regular git file its git blob sha1
        snapshots/{commit}/{filename}       relative symlink to ../../blobs/{etag}
        refs/main                           the 40-hex commit, no newline
        .no_exist/{commit}/{filename}       empty: the Hub answered 404 for this file

Each repo keeps the Hub's quirks that matter to loading code: five repos are pickle-only
(``pytorch_model.bin``, no ``model.safetensors``), the mrm8488/* and textattack/* repos have no
``tokenizer.json`` (transformers converts ``vocab.txt`` to a fast tokenizer), DistilBERT repos
use DistilBert classes. Every model is a seeded BERT of hidden size 32 over one WordPiece
vocabulary trained on the fixture text, so two builds give the same bytes.

How a test makes the libraries see the cache (both read their settings at import time):

* in a subprocess: set the environment variables ``HF_HUB_CACHE=<cache>`` (or
  ``HF_HOME=<home>`` with the cache at ``<home>/hub``) and ``HF_HUB_OFFLINE=1``;
* in the pytest process, where huggingface_hub and transformers are already imported, setting
  the environment variables does nothing. Monkeypatch ``huggingface_hub.constants.HF_HUB_CACHE``
  (read at call time by ``hf_hub_download``, ``snapshot_download``, ``try_to_load_from_cache``)
  *and* ``transformers.utils.hub.TRANSFORMERS_CACHE`` (transformers copies the cache path there
  at import and ``from_pretrained`` uses that copy); or pass ``cache_dir=`` explicitly. Offline
  mode comes from conftest, which sets ``HF_HUB_OFFLINE=1`` before anything imports them;
* for code that starts its own workers, set the environment too: ce's Ray engine forwards
  ``HF_HOME`` but not ``HF_HUB_CACHE`` (``extractors/distributed.py``), which is why the
  ``hub_cache`` fixture puts the cache at ``<home>/hub``: ``HF_HOME=hub_cache.parent``.

Beware TextAttack: importing it sets ``os.environ`` ``HF_HOME``, ``PYTORCH_TRANSFORMERS_CACHE``
and ``XDG_CACHE_HOME`` to its own folder for the rest of the process. transformers imported
after that looks up Hub ids in TextAttack's folder even when ``HF_HUB_CACHE`` is set, and so do
subprocesses that inherit the environment: once any test has imported TextAttack, a child
process needs ``PYTORCH_TRANSFORMERS_CACHE`` (and ``TRANSFORMERS_CACHE``) removed and
``HF_HUB_CACHE`` or ``HF_HOME`` set explicitly.

Offline, ``.no_exist`` is read only by ``try_to_load_from_cache`` (``_CACHED_NO_EXIST``), which
transformers calls first; ``hf_hub_download`` ignores it and raises ``LocalEntryNotFoundError``
("check your connection") for any file not in the snapshot. A file in neither place costs
transformers one such failed call and is then treated as a missing optional file, so loading
still works; refs/main is what picks the snapshot, with no fall-back to another commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zlib
from functools import lru_cache
from pathlib import Path

FIXTURE_TEXT = [
    "The Normans were the people who in the 10th and 11th centuries gave their name to"
    " Normandy, a region in France.",
    "What is the capital of France? Paris is the capital and most populous city of France.",
    "This movie was wonderful, a great story with fine acting.",
    "A dull, boring film with a terrible plot and bad jokes.",
]

# Repos that publish only pytorch_model.bin on the Hub; every other one has model.safetensors.
PICKLE_ONLY = frozenset(
    {
        "twmkn9/distilbert-base-uncased-squad2",
        "mrm8488/bert-medium-finetuned-squadv2",
        "mrm8488/bert-mini-finetuned-squadv2",
        "textattack/bert-base-uncased-imdb",
        "textattack/distilbert-base-uncased-imdb",
    }
)
# Organisations whose repos have vocab.txt but no tokenizer.json.
NO_TOKENIZER_JSON = ("mrm8488/", "textattack/")
# The Hub's default .gitattributes stores these in LFS; their etag is the sha256 of the content.
LFS_SUFFIXES = (".bin", ".safetensors", ".h5", ".msgpack", ".ckpt", ".pt", ".pth", ".onnx", ".pkl", ".model")
# Files transformers asks for that none of these repos has: a real download records them as absent.
ALWAYS_ABSENT = ("added_tokens.json", "chat_template.jinja")
COMMIT = re.compile(r"[0-9a-f]{40}")

HEADS = {
    "bert": {
        "mlm": "BertForMaskedLM",
        "qa": "BertForQuestionAnswering",
        "classification": "BertForSequenceClassification",
    },
    "distilbert": {
        "mlm": "DistilBertForMaskedLM",
        "qa": "DistilBertForQuestionAnswering",
        "classification": "DistilBertForSequenceClassification",
    },
}


def fixture_corpus() -> list[str]:
    """The fixture sentences plus SQuAD and SST-2 text under CE_DATA_DIR where present: enough
    words for the attack and QA tests to tokenize real examples into more than [UNK]."""
    texts = list(FIXTURE_TEXT)
    if "CE_DATA_DIR" not in os.environ:
        return texts
    data_dir = Path(os.environ["CE_DATA_DIR"])
    squad = data_dir / "squad2" / "dev-v2.0.json"
    if squad.exists():
        for article in json.loads(squad.read_text())["data"][:10]:
            for para in article["paragraphs"]:
                texts.append(para["context"])
                texts.extend(q["question"] for q in para["qas"])
    sst = data_dir / "sst2" / "sst2_dev.tsv"
    if sst.exists():
        texts.extend(line.split("\t")[0] for line in sst.read_text().splitlines()[1:])
    return texts


def wordpiece_vocab(texts: list[str] | None = None) -> bytes:
    """vocab.txt of an uncased WordPiece tokenizer trained on ``texts`` (default: the fixture
    corpus); trained once per corpus and process."""
    return _trained_vocab(tuple(fixture_corpus() if texts is None else texts))


@lru_cache
def _trained_vocab(texts: tuple[str, ...]) -> bytes:
    """The trainer orders tokens of equal frequency differently from run to run; WordPiece
    matching does not depend on token ids, so sorting all but the special tokens makes the
    vocabulary, and every model built on it, reproducible."""
    from tokenizers import BertWordPieceTokenizer

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] first: BERT's pad_token_id is 0
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(
        texts, vocab_size=3000, min_frequency=1, special_tokens=special, show_progress=False
    )
    rest = sorted(set(wordpiece.get_vocab()) - set(special))
    return "".join(f"{token}\n" for token in special + rest).encode()


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a file: what the Hub sends as the etag of a non-LFS file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def etag(filename: str, content: bytes) -> str:
    """The blob name huggingface_hub stores a file under (the Hub's ETag header)."""
    if filename.endswith(LFS_SUFFIXES):
        return hashlib.sha256(content).hexdigest()
    return git_blob_sha1(content)


def add_repo(
    cache: Path, repo_id: str, files: dict[str, bytes], revision: str = "main", absent: tuple[str, ...] = ()
) -> str:
    """One repo (or one more commit of it): writes blobs/snapshots/refs/.no_exist; returns the commit.

    The commit is ``revision`` when that is a 40-hex commit id (no ref is written then, as
    huggingface_hub does), else a hash of the repo id and files, and ``refs/{revision}`` points to it.
    """
    repo = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    commit = revision if COMMIT.fullmatch(revision) else _commit_id(repo_id, files)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for filename, content in files.items():
        _link_blob(repo, snapshot / filename, etag(filename, content), content)
    for filename in absent:
        marker = repo / ".no_exist" / commit / filename
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    if revision != commit:
        ref = repo / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return commit


def _commit_id(repo_id: str, files: dict[str, bytes]) -> str:
    """Deterministic: the same files in the same repo always get the same commit."""
    digest = hashlib.sha1(repo_id.encode())
    for filename in sorted(files):
        digest.update(b"\0%s\0%s" % (filename.encode(), hashlib.sha256(files[filename]).digest()))
    return digest.hexdigest()


def _link_blob(repo: Path, pointer: Path, blob_name: str, content: bytes) -> None:
    """Writes the blob once and points the snapshot file at it with a relative link, as
    ``_create_symlink`` does (the cache stays valid when moved)."""
    blob = repo / "blobs" / blob_name
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        blob.write_bytes(content)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.unlink(missing_ok=True)
    pointer.symlink_to(os.path.relpath(blob, pointer.parent))


def model_files(
    kind: str, arch: str = "bert", fmt: str = "safetensors", tokenizer_json: bool = True, seed: int = 0
) -> dict[str, bytes]:
    """The files of one tiny model repo over the fixture vocabulary.

    kind: 'mlm', 'qa', 'classification'; arch 'bert' or 'distilbert'; fmt 'safetensors' or 'pickle'.
    """
    return _repo_files(kind, arch, fmt, tokenizer_json, seed, wordpiece_vocab())


def _repo_files(
    kind: str, arch: str, fmt: str, tokenizer_json: bool, seed: int, vocab: bytes
) -> dict[str, bytes]:
    if fmt not in ("safetensors", "pickle"):
        raise ValueError(f"fmt must be 'safetensors' or 'pickle', not {fmt!r}")
    files = _weights(kind, arch, fmt, seed, vocab.count(b"\n")) | _tokenizer_files(arch, vocab)
    if not tokenizer_json:
        del files["tokenizer.json"]
    return files


def _model(kind: str, arch: str, seed: int, vocab_size: int):
    """A seeded random-init model: small enough to build the fourteen repos in about a second, with 512
    positions because classification runs at 512 tokens."""
    import torch
    import transformers

    if arch == "bert":
        config = transformers.BertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=512,
        )
    else:
        config = transformers.DistilBertConfig(
            vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=512
        )
    torch.manual_seed(seed)
    return getattr(transformers, HEADS[arch][kind])(config).eval()


def _weights(kind: str, arch: str, fmt: str, seed: int, vocab_size: int) -> dict[str, bytes]:
    """config.json plus model.safetensors or pytorch_model.bin, written by save_pretrained as
    the repo owners did (config.architectures names the head class)."""
    model = _model(kind, arch, seed, vocab_size)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, safe_serialization=fmt == "safetensors")
        return _read_folder(Path(folder))


@lru_cache
def _tokenizer_files(arch: str, vocab: bytes) -> dict[str, bytes]:
    """vocab.txt, tokenizer.json, tokenizer_config.json and special_tokens_map.json as the
    arch's fast tokenizer saves them (DistilBERT's gives no token_type_ids)."""
    import transformers

    cls = transformers.DistilBertTokenizerFast if arch == "distilbert" else transformers.BertTokenizerFast
    with tempfile.TemporaryDirectory() as folder:
        vocab_file = Path(folder) / "vocab.txt"
        vocab_file.write_bytes(vocab)
        cls(vocab_file=str(vocab_file), do_lower_case=True, model_max_length=512).save_pretrained(folder)
        return _read_folder(Path(folder))


def _read_folder(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def registry_repos() -> dict[str, tuple[str, str]]:
    """Every Hub id of ce's registry -> (kind, arch); packaged models are not on the Hub."""
    from ce.extractors.registry import MODELS

    repos = {}
    for spec in MODELS.values():
        for kind, repo_id in [("mlm", spec.pretrained), *spec.finetuned.items()]:
            if not repo_id.startswith("package:"):
                repos[repo_id] = (kind, "distilbert" if "distilbert" in repo_id else "bert")
    return repos


def build_hub_cache(cache: Path, corpus_texts: list[str] | None = None) -> dict[str, str]:
    """Every Hub id of ce's registry laid out under `cache`; returns repo id -> commit."""
    vocab = wordpiece_vocab(corpus_texts)
    commits = {}
    for repo_id, (kind, arch) in registry_repos().items():
        fmt = "pickle" if repo_id in PICKLE_ONLY else "safetensors"
        files = _repo_files(kind, arch, fmt, not repo_id.startswith(NO_TOKENIZER_JSON), _seed(repo_id), vocab)
        commits[repo_id] = add_repo(cache, repo_id, files, absent=recorded_absent(files))
    return commits


def _seed(repo_id: str) -> int:
    """Distinct, reproducible weights per repo, so no two models answer alike by construction."""
    return zlib.crc32(repo_id.encode())


def recorded_absent(files: dict[str, bytes]) -> tuple[str, ...]:
    """The files transformers looked for and the Hub answered 404 when these repos were
    downloaded: what huggingface_hub wrote under .no_exist."""
    absent = list(ALWAYS_ABSENT)
    if "model.safetensors" not in files:
        absent += ["model.safetensors", "model.safetensors.index.json"]
    if "tokenizer.json" not in files:
        absent.append("tokenizer.json")
    return tuple(absent)


class _TouchOnLoad:
    """Pickles as the call ``Path.touch(marker)``: the code a hostile checkpoint runs when
    unpickled without torch's weights_only guard."""

    def __init__(self, marker: Path):
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def malicious_pickle(marker: Path) -> bytes:
    """A real torch-zip-format pytorch_model.bin holding a valid-looking state dict whose
    unpickling, if allowed to run code, creates the file `marker` (e.g. via os/pathlib in
    __reduce__). torch.load(weights_only=True) must refuse it; torch.load(weights_only=False)
    must create the marker (test both in test_hub_cache.py, the latter in a subprocess).

    The payload sits under ``bert.embeddings.position_ids``, a buffer old BERT checkpoints
    carry and transformers ignores, among the real weights of the tiny QA model."""
    import torch

    state = _model("qa", "bert", 0, wordpiece_vocab().count(b"\n")).state_dict()
    state["bert.embeddings.position_ids"] = _TouchOnLoad(marker)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pytorch_model.bin"
        torch.save(state, path)
        return path.read_bytes()
