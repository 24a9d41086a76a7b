"""Real-size models for the benchmarks: the packaged all-MiniLM-L6-v2 encoder with a task
head (seeded random init, since no fine-tuned head is available offline)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CE_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))


def minilm_with_head(task: str) -> Path:
    """task: 'qa', 'classification' or 'mlm' (a masked-LM head whose transform is untrained
    and whose decoder is tied to the real word embeddings: no trained MLM is available
    offline). Saved with the MiniLM tokenizer to a temporary folder."""
    import torch
    from transformers import (
        AutoModelForMaskedLM,
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    from ce.extractors.registry import _minilm_dir

    torch.manual_seed(0)
    if task == "qa":
        model = AutoModelForQuestionAnswering.from_pretrained(_minilm_dir())
    elif task == "mlm":
        model = AutoModelForMaskedLM.from_pretrained(_minilm_dir())
    else:
        model = AutoModelForSequenceClassification.from_pretrained(_minilm_dir(), num_labels=2)
    folder = Path(tempfile.mkdtemp(prefix=f"minilm-{task}-"))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(_minilm_dir()).save_pretrained(folder)
    return folder


def forward_seconds(model, prepared) -> float:
    """The time of the bare forward passes over ``prepared`` (features.batches' output): the
    model called on each padded batch, nothing else."""
    import time

    import torch

    start = time.perf_counter()
    with torch.inference_mode():
        for _, batch in prepared:
            model(**batch)
    return time.perf_counter() - start
