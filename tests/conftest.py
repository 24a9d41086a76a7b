"""Shared fixtures: offline settings, the real data folder, and tiny BERTs built in-process."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .hub_cache import build_hub_cache, wordpiece_vocab

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("CE_DATA_DIR") or REPO.parent / "shared" / "data")
os.environ["CE_DATA_DIR"] = str(DATA_DIR)


def needs_data(*relative: str):
    missing = [r for r in relative if not (DATA_DIR / r).exists()]
    return pytest.mark.skipif(bool(missing), reason=f"needs {missing} under CE_DATA_DIR")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"no data folder at {DATA_DIR} (set CE_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Random-init BERTs (hidden 32, 2 layers) with a WordPiece tokenizer trained on fixture
    text, saved as safetensors: {'qa', 'classification', 'base', 'mlm'} -> folder."""
    import torch
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertForQuestionAnswering,
        BertForSequenceClassification,
        BertModel,
        BertTokenizerFast,
    )

    root = tmp_path_factory.mktemp("tiny")
    (root / "vocab.txt").write_bytes(wordpiece_vocab())
    tokenizer = BertTokenizerFast(vocab_file=str(root / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=512,
        num_labels=2,
    )
    folders = {}
    for name, cls in [
        ("qa", BertForQuestionAnswering),
        ("classification", BertForSequenceClassification),
        ("base", BertModel),
        ("mlm", BertForMaskedLM),
    ]:
        torch.manual_seed(0)
        folder = root / f"tiny-{name}"
        cls(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[name] = folder
    return folders


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory) -> Path:
    """The HF_HUB_CACHE folder (at HF_HOME/hub) with every Hub id of ce's registry as a tiny model.
    Nothing points the libraries at it: tests/hub_cache.py says what a test must set."""
    cache = tmp_path_factory.mktemp("hf_home") / "hub"
    build_hub_cache(cache)
    return cache


@pytest.fixture(scope="session")
def family_models(tmp_path_factory, data_dir) -> dict[str, dict[str, Path]]:
    """Tiny random-init models of nine families, each with a tokenizer trained on SST-2 and SQuAD
    text that keeps its Hub original's quirks (tests/families.py): {family: {head: folder}}."""
    from .families import build_all

    for relative in ("sst2/sst2_train.tsv", "squad2/dev-v2.0.json"):
        if not (data_dir / relative).exists():
            pytest.skip(f"needs {relative} under CE_DATA_DIR")
    return build_all(tmp_path_factory.mktemp("families"))


@pytest.fixture
def store_dir(tmp_path) -> Path:
    return tmp_path / "store"


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its sha256: equal snapshots mean an unchanged store."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def copy_model(tmp_path):
    def copy(src: Path, name: str | None = None) -> Path:
        dst = tmp_path / (name or src.name)
        shutil.copytree(src, dst)
        return dst

    return copy


@pytest.fixture(scope="session")
def sharp_classifier(tiny_models, tmp_path_factory):
    """A tiny classifier whose random weights are large enough for word swaps to flip it."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("sharp") / "tiny-sharp"
    config = BertConfig.from_pretrained(tiny_models["classification"], initializer_range=0.6)
    torch.manual_seed(1)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_models["classification"]).save_pretrained(folder)
    return folder


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)``: a folder on a size-limited tmpfs (a disk that fills), unmounted after."""
    mounts = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk-{len(mounts)}"
        folder.mkdir()
        made = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
        )
        if made.returncode != 0:
            pytest.skip("cannot mount a size-limited tmpfs here (needs root)")
        mounts.append(folder)
        return folder

    yield mount
    for folder in mounts:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture(scope="session")
def lm_eval_runs(tmp_path_factory):
    """Real lm-evaluation-harness sample logs of two tiny local causal models (and one run
    with another prompt template), written offline once per session (tests/lmeval_logs.py)."""
    pytest.importorskip("lm_eval")
    from .lmeval_logs import lm_eval_logs

    return lm_eval_logs(tmp_path_factory.mktemp("lmeval"), n_docs=40)


def stored(store_dir: Path, kind: str, **partition: str) -> list[dict]:
    """The rows (without run_id) of the one part of ``kind`` in ``partition`` of a store."""
    import pyarrow.parquet as pq

    folder = store_dir / kind
    for key, value in partition.items():
        folder = folder / f"{key}={value}"
    parts = sorted(folder.glob("*.parquet"))
    assert len(parts) == 1, parts
    rows = pq.read_table(parts[0]).to_pylist()
    for row in rows:
        row.pop("run_id")
    return rows
