"""Tokenised model inputs ("features") and length-sorted batches of them.

One example may give several features (question answering over long contexts, in document
stride windows). Batches group features of similar length so that little padding is done.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .datasets import Dataset


@dataclass
class Features:
    """Tokenised inputs for a dataset, one row per feature."""

    encodings: dict[str, list[list[int]]]  # input_ids, attention_mask, (token_type_ids)
    example_index: np.ndarray  # feature -> example row
    first: np.ndarray  # True for the first feature of each example (its CLS is the embedding)
    offsets: list[list[tuple[int, int] | None]] | None = None  # context char spans (QA only)

    def __len__(self) -> int:
        return len(self.example_index)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.encodings["input_ids"]), dtype=np.int64, count=len(self))


def tokenize(dataset: Dataset, tokenizer, *, max_length: int, doc_stride: int, all_windows: bool) -> Features:
    """Tokenise every example; for QA, ``all_windows=False`` keeps only the first window."""
    names = tokenizer.model_input_names
    if dataset.task != "qa":
        texts = dataset.table["text"].to_pylist()
        enc = tokenizer(texts, truncation=True, max_length=max_length)
        n = len(texts)
        return Features({k: enc[k] for k in names if k in enc}, np.arange(n), np.ones(n, bool))
    questions = [q.lstrip() for q in dataset.table["question"].to_pylist()]
    contexts = dataset.table["context"].to_pylist()
    pad_right = tokenizer.padding_side == "right"
    enc = tokenizer(
        questions if pad_right else contexts,
        contexts if pad_right else questions,
        truncation="only_second" if pad_right else "only_first",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=all_windows,
        return_offsets_mapping=True,
    )
    mapping = np.asarray(
        enc["overflow_to_sample_mapping"] if all_windows else range(len(questions)), dtype=np.int64
    )
    context_id = 1 if pad_right else 0
    offsets = []
    for i in range(len(mapping)):
        seq_ids = enc.sequence_ids(i)
        offsets.append(
            [
                tuple(o) if s == context_id else None
                for o, s in zip(enc["offset_mapping"][i], seq_ids, strict=True)
            ]
        )
    first = np.ones(len(mapping), bool)
    first[1:] = mapping[1:] != mapping[:-1]
    return Features({k: enc[k] for k in names if k in enc}, mapping, first, offsets)


def batches(features: Features, tokenizer, batch_size: int) -> Iterator[tuple[np.ndarray, dict]]:
    """(feature indices, padded tensors) in batches of similar length, longest first."""
    import torch

    order = np.argsort(-features.lengths, kind="stable")
    pad_values = {"input_ids": tokenizer.pad_token_id or 0}
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(features.encodings["input_ids"][i]) for i in idx)
        tensors = {}
        for key, rows in features.encodings.items():
            padded = np.full((len(idx), width), pad_values.get(key, 0), dtype=np.int64)
            for j, i in enumerate(idx):
                padded[j, : len(rows[i])] = rows[i]
            tensors[key] = torch.from_numpy(padded)
        yield idx, tensors


def padded(rows: list[list[int]], pad: int, *, left: bool = False, device=None):
    """(ids, attention mask) of token rows padded with ``pad`` to the longest, on the right (or
    the left, for generation), as torch tensors on ``device``."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, row in enumerate(rows):
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        ids[j, cols] = torch.tensor(row, dtype=torch.long)
        mask[j, cols] = 1
    return ids.to(device), mask.to(device)
