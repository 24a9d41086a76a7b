"""Exact match and F1 against the official SQuAD v2 definitions."""

from __future__ import annotations

import collections
import json
import random
import re
import string

import pytest

from ce.extractors.squad_metric import normalize_answer, score

from .conftest import DATA_DIR, needs_data


def test_normalisation_lowercases_and_drops_punctuation_articles_and_spaces():
    assert normalize_answer("The  Quick, brown FOX!") == "quick brown fox"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert normalize_answer("...") == ""


@pytest.mark.parametrize(
    ("answers", "prediction", "exact", "f1"),
    [
        (["France"], "france.", 1.0, 1.0),
        (["the Normans"], "Normans", 1.0, 1.0),
        (["Denmark, Iceland and Norway"], "Iceland and Norway", 0.0, 6 / 7),  # p = 1, r = 3/4
        (
            ["10th and 11th centuries", "in the 10th and 11th centuries"],
            "10th century",
            0.0,
            1 / 3,
        ),  # best gold: p = 1/2, r = 1/4
        ([], "", 1.0, 1.0),  # unanswerable, abstained
        ([], "Paris", 0.0, 0.0),  # unanswerable, answered
        (["Paris"], "", 0.0, 0.0),  # answerable, abstained
        (["a", "Paris"], "", 0.0, 0.0),  # 'a' normalises to nothing and is dropped
        (["a"], "", 1.0, 1.0),  # ... and then the gold is ""
    ],
)
def test_hand_computed_cases(answers, prediction, exact, f1):
    assert score(answers, prediction) == pytest.approx((exact, f1))


# An independent transcription of the official evaluate-v2.0.py definitions, for comparison.
def _ref_norm(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _ref_f1(gold, pred):
    g = _ref_norm(gold).split() if gold else []
    p = _ref_norm(pred).split() if pred else []
    if len(g) == 0 or len(p) == 0:
        return int(g == p)
    common = collections.Counter(g) & collections.Counter(p)
    same = sum(common.values())
    if same == 0:
        return 0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def _reference(answers, pred):
    golds = [a for a in answers if _ref_norm(a)] or [""]
    return (max(int(_ref_norm(a) == _ref_norm(pred)) for a in golds), max(_ref_f1(a, pred) for a in golds))


@needs_data("squad2/dev-v2.0.json")
def test_every_squad2_dev_question_matches_the_official_definitions():
    data = json.loads((DATA_DIR / "squad2/dev-v2.0.json").read_text())
    rng = random.Random(0)
    checked = several = impossible = 0
    for article in data["data"]:
        for para in article["paragraphs"]:
            ctx = para["context"]
            for qa in para["qas"]:
                answers = [a["text"] for a in qa["answers"]]
                start = rng.randrange(len(ctx))
                candidates = (
                    ["", ctx[start : start + rng.randrange(1, 40)]]
                    + answers[:1]
                    + [a.upper() + "." for a in answers[1:2]]
                )
                for pred in candidates:
                    assert score(answers, pred) == pytest.approx(_reference(answers, pred))
                checked += 1
                several += len(set(answers)) > 1
                impossible += qa["is_impossible"]
    assert checked == 11873 and impossible == 5945 and several > 1000
