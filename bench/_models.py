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
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoTokenizer

    from ce.extractors.registry import _minilm_dir

    cls = AutoModelForQuestionAnswering if task == "qa" else AutoModelForSequenceClassification
    torch.manual_seed(0)
    model = (
        cls.from_pretrained(_minilm_dir(), num_labels=2)
        if task != "qa"
        else cls.from_pretrained(_minilm_dir())
    )
    folder = Path(tempfile.mkdtemp(prefix=f"minilm-{task}-"))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(_minilm_dir()).save_pretrained(folder)
    return folder
