"""Per-question exact match and F1 as the official SQuAD v2.0 evaluation script defines them.

Normalisation: lowercase, drop punctuation, drop the articles a/an/the, collapse white space.
Gold answers that normalise to nothing are dropped; a question with no gold answer left
(unanswerable) has the single gold answer "". The score is the maximum over gold answers.
"""

from __future__ import annotations

import collections
import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def exact_score(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def f1_score(gold: str, prediction: str) -> float:
    gold_toks, pred_toks = _tokens(gold), _tokens(prediction)
    if not gold_toks or not pred_toks:  # either is no-answer: F1 is 1 if both are, else 0
        return float(gold_toks == pred_toks)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def gold_answers(answers: list[str] | None) -> list[str]:
    kept = [a for a in (answers or []) if normalize_answer(a)]
    return kept or [""]


def score(answers: list[str] | None, prediction: str) -> tuple[float, float]:
    """(exact match, F1) of ``prediction`` against all gold ``answers``."""
    golds = gold_answers(answers)
    return (
        float(max(exact_score(g, prediction) for g in golds)),
        max(f1_score(g, prediction) for g in golds),
    )
