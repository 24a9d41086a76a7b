"""Turning model outputs into per-example predictions.

:class:`QaDecoder` follows the standard SQuAD 2.0 post-processing: in every window, the
n-best start and end positions (over all tokens), spans that lie in the context, end at or
after their start and are at most ``max_answer_length`` tokens; the best span over the
windows of an example is the answer unless the smallest null score (CLS start + CLS end)
exceeds it by more than ``null_threshold``, in which case the answer is "".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .datasets import Dataset
from .features import Features
from .squad_metric import score as squad_score


@dataclass(frozen=True)
class QaSettings:
    n_best: int = 20
    max_answer_length: int = 30
    null_threshold: float = 0.0


class QaDecoder:
    """Accumulates the best span and the null score of each example across its windows."""

    def __init__(self, features: Features, n_examples: int, settings: QaSettings):
        self.features = features
        self.settings = settings
        self.best_score = np.full(n_examples, -np.inf)
        self.best_span = np.full((n_examples, 2), -1, dtype=np.int64)  # char start, end
        self.min_null = np.full(n_examples, np.inf)

    def update(self, idx: np.ndarray, start_logits: np.ndarray, end_logits: np.ndarray) -> None:
        s = self.settings
        width = start_logits.shape[1]
        context, char_start, char_end = self._spans(idx, width)
        n = min(s.n_best, width)
        top_s = np.argsort(-start_logits, axis=1, kind="stable")[:, :n]  # (B, n)
        top_e = np.argsort(-end_logits, axis=1, kind="stable")[:, :n]
        rows = np.arange(len(idx))[:, None]
        score = (
            np.take_along_axis(start_logits, top_s, 1)[:, :, None]
            + np.take_along_axis(end_logits, top_e, 1)[:, None, :]
        )  # (B, n, n)
        ss, ee = top_s[:, :, None], top_e[:, None, :]
        valid = (
            (ee >= ss)
            & (ee - ss + 1 <= s.max_answer_length)
            & context[rows, top_s][:, :, None]
            & context[rows, top_e][:, None, :]
        )
        score = np.where(valid, score, -np.inf).reshape(len(idx), -1)
        flat = score.argmax(axis=1)
        best = score[np.arange(len(idx)), flat]
        start_tok = top_s[np.arange(len(idx)), flat // n]
        end_tok = top_e[np.arange(len(idx)), flat % n]
        examples = self.features.example_index[idx]
        null = start_logits[:, 0] + end_logits[:, 0]
        np.minimum.at(self.min_null, examples, null)
        for j, ex in enumerate(examples):  # windows of one example may share a batch
            if best[j] > self.best_score[ex]:
                self.best_score[ex] = best[j]
                self.best_span[ex] = (char_start[j, start_tok[j]], char_end[j, end_tok[j]])

    def _spans(self, idx: np.ndarray, width: int):
        """Per token of the batch: is it context, and its character span in the context."""
        context = np.zeros((len(idx), width), dtype=bool)
        char_start = np.zeros((len(idx), width), dtype=np.int64)
        char_end = np.zeros((len(idx), width), dtype=np.int64)
        for j, f in enumerate(idx):
            for t, o in enumerate(self.features.offsets[f]):
                if o is not None:
                    context[j, t] = True
                    char_start[j, t], char_end[j, t] = o
        return context, char_start, char_end

    def finish(self, dataset: Dataset) -> pa.Table:
        contexts = dataset.table["context"].to_pylist()
        answers = dataset.table["answers"].to_pylist()
        rows = []
        for ex in range(len(contexts)):
            has_span = np.isfinite(self.best_score[ex])
            diff = self.min_null[ex] - self.best_score[ex] if has_span else np.inf
            if has_span and diff <= self.settings.null_threshold:
                a, b = self.best_span[ex]
                text, value = contexts[ex][a:b], float(self.best_score[ex])
            else:
                text, value = "", float(self.min_null[ex])
            exact, f1 = squad_score(answers[ex], text)
            rows.append(
                {
                    "prediction": text,
                    "score": value,
                    "exact": exact,
                    "f1": f1,
                    "correct": exact == 1.0,
                    "null_score": float(self.min_null[ex]) if np.isfinite(self.min_null[ex]) else None,
                    "span_score": float(self.best_score[ex]) if has_span else None,
                }
            )
        return _with_ids(dataset, pa.Table.from_pylist(rows))


def softmax(scores: np.ndarray) -> np.ndarray:
    """The softmax over the last axis (logits, or choices' log-likelihoods)."""
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def classify(dataset: Dataset, logits: np.ndarray) -> pa.Table:
    """Label = argmax of the logits, score = its softmax probability, probs = the softmax over
    the labels (the answer distribution), correct = label == gold."""
    probs = softmax(logits)
    pred = probs.argmax(axis=1)
    gold = dataset.table["label"].to_numpy(zero_copy_only=False)
    gold_known = ~np.isnan(gold.astype(float))
    correct = pa.array(np.where(gold_known, pred == np.nan_to_num(gold, nan=-1), False), mask=~gold_known)
    table = pa.table(
        {
            "prediction": pa.array(pred.astype(str)),
            "pred_label": pa.array(pred, pa.int64()),
            "score": pa.array(probs[np.arange(len(pred)), pred], pa.float64()),
            "correct": correct,
            "probs": pa.array(list(probs.astype(np.float64)), pa.list_(pa.float64())),
        }
    )
    return _with_ids(dataset, table)


def _with_ids(dataset: Dataset, table: pa.Table) -> pa.Table:
    return table.add_column(0, "example_id", dataset.table["example_id"])
