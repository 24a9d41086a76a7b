"""End-to-end ``ce extract`` throughput over the bare forward pass, same model, same batches.

    python bench/extract.py [--qa-limit 300] [--repeats 2]

Prints, per task, the time of the bare forward passes (the batches ce builds, nothing
else) and of the whole extract (load data, tokenise, forward, post-process, write the
store), and their ratio: the share of the end-to-end time spent in the forward pass.
Goal: >= 0.90. Measured side by side in one run, best of --repeats.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _models import forward_seconds, minilm_with_head


def bare_forward_seconds(folder, dataset, options) -> float:

    from ce.extractors.datasets import load_dataset
    from ce.extractors.extract import subset
    from ce.extractors.features import batches, tokenize
    from ce.extractors.loading import load_model
    from ce.extractors.registry import ResolvedModel

    data = subset(load_dataset(dataset), options.limit)
    loaded = load_model(ResolvedModel("m", str(folder), True), data.task, "finetuned")
    qa = data.task == "qa"
    features = tokenize(
        data,
        loaded.tokenizer,
        max_length=options.length_for(data.task),
        doc_stride=options.doc_stride,
        all_windows=qa,
    )
    return forward_seconds(loaded.model, list(batches(features, loaded.tokenizer, options.batch_size)))


def end_to_end_seconds(folder, dataset, options) -> float:
    from ce.extractors.extract import extract
    from ce.store import Store

    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        extract(Store(f"{root}/store"), str(folder), dataset, options, name="bench", progress=False)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qa-limit", type=int, default=300)
    parser.add_argument("--cls-limit", type=int, default=872)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from ce.extractors.extract import ExtractOptions

    print("model: all-MiniLM-L6-v2 encoder + seeded random head (real size, 22M parameters)")
    print(f"{'task':<16}{'dataset':<12}{'n':>6}{'bare s':>9}{'ce s':>9}{'ratio':>8}  goal")
    for task, dataset, limit in [
        ("classification", "sst2-dev", args.cls_limit),
        ("qa", "squad2-dev", args.qa_limit),
    ]:
        folder = minilm_with_head(task)
        options = ExtractOptions(limit=limit)
        bare, e2e = [], []
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            bare.append(bare_forward_seconds(folder, dataset, options))
            e2e.append(end_to_end_seconds(folder, dataset, options))
        ratio = min(bare) / min(e2e)
        print(
            f"{task:<16}{dataset:<12}{limit:>6}{min(bare):>9.2f}{min(e2e):>9.2f}"
            f"{ratio:>8.2f}  >= 0.90 {'met' if ratio >= 0.9 else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
