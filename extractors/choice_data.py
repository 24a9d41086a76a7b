"""Multiple-choice records (task ``choice``) as rows of the examples kind, from a local JSONL
or Parquet file or from the Hub, every field checked before anything is written.

The shapes, told apart by their keys (one record at a time):

- MMLU-style: ``{question, choices: [str, ...], answer | label}``: the gold choice as an
  index, a letter (``"B"``) or the choice's text (cais/mmlu adds ``subject``, kept as title);
- ARC: ``{question, choices: {text: [...], label: [...]}, answerKey: "A" | "1"}`` (allenai/ai2_arc);
- HellaSwag: ``{ctx (or ctx_a, ctx_b), endings: [...], label}`` (Rowan/hellaswag: label "0".."3",
  "" where unknown; the context and endings are cleaned as lm-evaluation-harness does);
- BoolQ: ``{question, passage, answer: true | false}``: the choices are "no" and "yes", the
  passage is the context (google/boolq).

A row: ``question`` (the question, or the context to continue), ``choices``, ``label`` (the
gold choice's index, null when unknown), ``text`` (the question again: what kNN and OOD
read), ``context`` (BoolQ's passage) and ``title`` (MMLU's subject, HellaSwag's activity).
"""

from __future__ import annotations

import math
import re
import string

from ce.store.errors import CeError, shown

SHAPES = (
    "{question, choices: [...], answer|label: index} (MMLU), {question, choices: {text, label},"
    " answerKey} (ARC), {ctx, endings: [...], label} (HellaSwag) or {question, passage,"
    " answer: true|false} (BoolQ)"
)
BOOLQ_CHOICES = ["no", "yes"]
ID_KEYS = ("id", "example_id", "idx", "ind")

MAX_CHOICES = 1000  # per question: a multiple-choice task has a handful; scoring grows with them


def shape_of(record: object) -> str | None:
    """mmlu, arc, hellaswag or boolq: the shape of a record (by its keys), else None."""
    if not isinstance(record, dict):
        return None
    if "endings" in record and ("ctx" in record or "ctx_a" in record):
        return "hellaswag"
    if "question" in record and "choices" in record:
        return "arc" if isinstance(record["choices"], dict) else "mmlu"
    if "question" in record and "passage" in record and "answer" in record:
        return "boolq"
    return None


def choice_row(record: object, position: int, where: str) -> dict:
    """The examples row of one record (``position``: its row number, the id when it has
    none; ``where``: "FILE, line N" for errors)."""
    shape = shape_of(record)
    if shape is None:
        keys = ", ".join(sorted(map(str, record))[:8]) if isinstance(record, dict) else type(record).__name__
        raise CeError(f"{where}: not a multiple-choice record ({keys}); accepted shapes: {SHAPES}")
    row = {"hellaswag": _hellaswag, "arc": _arc, "mmlu": _mmlu, "boolq": _boolq}[shape](record, where)
    question = row["question"]
    return {
        "example_id": _id(record, position, where),
        "title": row.get("title"),
        "context": row.get("context"),
        "question": question,
        "text": question,
        "label": row["label"],
        "choices": row["choices"],
    }


def _mmlu(r: dict, where: str) -> dict:
    choices = _choices(r["choices"], where, "choices")
    gold = r.get("label") if r.get("label") is not None else r.get("answer")
    subject = r.get("subject")
    return {
        "question": _text(r["question"], where, "question"),
        "choices": choices,
        "label": _index(gold, choices, where, "label" if r.get("label") is not None else "answer"),
        "title": subject if isinstance(subject, str) and subject else None,
    }


def _arc(r: dict, where: str) -> dict:
    given = r["choices"]
    texts, labels = given.get("text"), given.get("label")
    choices = _choices(texts, where, "choices.text")
    if not isinstance(labels, list) or len(labels) != len(choices):
        raise CeError(
            f"{where}: choices.label must list one label per choice ({len(choices)});"
            " write choices as {text: [...], label: [...]}"
        )
    if len(set(map(repr, labels))) != len(labels):
        raise CeError(f"{where}: choices.label names a label twice; give each choice its own label")
    key = r.get("answerKey")
    if key is None or key == "":
        label = None
    elif key in labels:
        label = labels.index(key)
    else:
        raise CeError(
            f"{where}: answerKey {shown(key)} is none of the choices' labels"
            f" {', '.join(map(str, labels))}; give the gold choice's label"
        )
    return {"question": _text(r["question"], where, "question"), "choices": choices, "label": label}


def _hellaswag(r: dict, where: str) -> dict:
    if "ctx_a" in r:
        ctx = f"{_text(r['ctx_a'], where, 'ctx_a')} {_text(r.get('ctx_b', ''), where, 'ctx_b').capitalize()}"
    else:
        ctx = _text(r["ctx"], where, "ctx")
    activity = r.get("activity_label")
    activity = activity if isinstance(activity, str) and activity else None
    question = clean_hellaswag(f"{activity}: {ctx}" if activity else ctx)
    endings = _choices(r["endings"], where, "endings")
    choices = _choices([clean_hellaswag(e) for e in endings], where, "endings")
    return {
        "question": question,
        "choices": choices,
        "label": _index(r.get("label"), choices, where, "label", names=False),
        "title": activity,
    }


def clean_hellaswag(text: str) -> str:
    """HellaSwag's WikiHow markup removed, as lm-evaluation-harness's hellaswag task does."""
    text = text.strip().replace(" [title]", ". ")
    return re.sub("\\[.*?\\]", "", text).replace("  ", " ")


def _boolq(r: dict, where: str) -> dict:
    answer = r["answer"]
    if answer is not None and not isinstance(answer, bool):
        raise CeError(f"{where}: answer {shown(answer)} is not true or false; BoolQ answers are booleans")
    return {
        "question": _text(r["question"], where, "question"),
        "context": _text(r["passage"], where, "passage"),
        "choices": list(BOOLQ_CHOICES),
        "label": None if answer is None else int(answer),
    }


def _id(record: dict, position: int, where: str) -> str:
    value = next((record[k] for k in ID_KEYS if record.get(k) is not None), position)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise CeError(
            f"{where}: id {shown(value)} is not a string or an integer; give each record a plain id"
        )
    return str(value)


def _text(value: object, where: str, field: str) -> str:
    if not isinstance(value, str):
        raise CeError(f"{where}: {field} is {_kind(value)}, not a string; write it as text")
    return value


def _choices(value: object, where: str, field: str) -> list[str]:
    if not isinstance(value, list):
        raise CeError(
            f"{where}: {field} is {_kind(value)}, not a list; write the choices as a list of strings"
        )
    if len(value) < 2:
        raise CeError(f"{where}: {field} holds {len(value)} choice(s); a question needs two or more")
    if len(value) > MAX_CHOICES:
        raise CeError(
            f"{where}: {field} holds {len(value)} choices; ce scores at most {MAX_CHOICES} per question"
        )
    for i, choice in enumerate(value):
        if not isinstance(choice, str):
            raise CeError(f"{where}: choice {i} is {_kind(choice)}, not a string; write every choice as text")
        if not choice.strip():
            raise CeError(f"{where}: choice {i} is empty; every choice needs some text")
    return list(value)


def _index(value: object, choices: list[str], where: str, field: str, names: bool = True) -> int | None:
    """The gold choice's index from an integer, an integral number, a digit string, a letter
    A.. or (``names``) a choice's text; None when missing or ""."""
    if value is None or value == "":
        return None
    index = None
    if isinstance(value, bool):
        index = None
    elif isinstance(value, int):
        index = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        index = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) < 10:
            index = int(text)
        elif names and len(text) == 1 and text in string.ascii_uppercase:
            index = string.ascii_uppercase.index(text)
        elif names and value in choices:
            index = choices.index(value)
    if index is None:
        raise CeError(
            f"{where}: {field} {shown(value)} names no choice; give the gold choice's index"
            f" (0..{len(choices) - 1})"
        )
    if not 0 <= index < len(choices):
        raise CeError(
            f"{where}: {field} {shown(value)} is out of range for {len(choices)} choices;"
            f" give an index in 0..{len(choices) - 1}"
        )
    return index


def _kind(value: object) -> str:
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} ({shown(value)})"
