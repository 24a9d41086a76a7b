"""Extractive QA: ``ce extract`` vs ``transformers.pipeline("question-answering")``.

    python bench/qa_pipeline.py [--limit 300] [--device cpu]

Same model, same settings (384-token windows, stride 128, answers of at most 30 tokens,
impossible answers allowed, threshold 0; the pipeline's snapping of spans to whole words
is off, since the standard SQuAD post-processing answers with token offsets): prints both
times, the speed-up (goal >= 1.5x on CPU) and the share of questions with the same answer
(goal >= 99 %).

Remaining differences are by design: the pipeline searches every span of a window, the
standard post-processing only pairs of the 20 best starts and ends; across windows it
compares per-window probabilities, the standard compares logits. Both matter only where
scores nearly tie, which a random head makes common.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _models import minilm_with_head

from ce.query.sql import connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from transformers import pipeline

    from ce.extractors.datasets import load_dataset
    from ce.extractors.extract import ExtractOptions, extract, subset
    from ce.store import Store

    folder = minilm_with_head("qa")
    data = subset(load_dataset("squad2-dev"), args.limit)
    qa = pipeline("question-answering", model=str(folder), tokenizer=str(folder), device=args.device)
    inputs = [
        {"question": q, "context": c}
        for q, c in zip(data.table["question"].to_pylist(), data.table["context"].to_pylist(), strict=True)
    ]
    start = time.perf_counter()
    outputs = qa(
        inputs,
        max_seq_len=384,
        doc_stride=128,
        max_answer_len=30,
        handle_impossible_answer=True,
        batch_size=args.batch_size,
        align_to_words=False,
    )  # the SQuAD post-processing keeps token offsets
    pipeline_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as root:
        store = Store(f"{root}/store")
        start = time.perf_counter()
        extract(
            store,
            str(folder),
            "squad2-dev",
            ExtractOptions(limit=args.limit, batch_size=args.batch_size, device=args.device),
            name="bench",
            progress=False,
        )
        ce_s = time.perf_counter() - start
        ours = dict(connect(store).sql("select example_id, prediction from predictions").fetchall())
    ids = data.table["example_id"].to_pylist()
    same = sum(ours[i].strip() == o["answer"].strip() for i, o in zip(ids, outputs, strict=True))
    print(
        "model: all-MiniLM-L6-v2 encoder + seeded random QA head; squad2-dev questions:",
        len(ids),
        "device:",
        args.device,
    )
    print(
        f"pipeline {pipeline_s:.2f}s  ce extract {ce_s:.2f}s (incl. writing the store)"
        f"  speed-up {pipeline_s / ce_s:.2f}x (goal >= 1.5x)"
    )
    print(f"same answer: {same}/{len(ids)} = {same / len(ids):.1%} (goal >= 99 %)")


if __name__ == "__main__":
    main()
