"""End-to-end ``ce extract`` on a decoder over the bare forward pass, same model, same batches.

    python bench/decoder.py [--limit 872] [--repeats 3]

A Llama-shaped decoder (hidden 256, 4 layers, seeded random init, the tiny Llama tokenizer of
tests/families.py trained on fixture text) on SST-2 dev sentences, two ways:

- ``classify``: with a sequence-classification head; the bare pass is ``model(**batch)`` over
  the batches ce builds (tokenised, length-sorted, padded on the right);
- ``verbalize``: without a head, the label words' log-likelihood after the prompt
  (choices.py); the bare pass is ``model(**batch)`` over the prompts alone, batched the same
  way: a lower bound (the label words' own tokens run besides), so no goal.

Prints the time of the bare passes and of the whole extract (load data, tokenise, forward,
predictions, write the store, neighbours) and their ratio. Goal (classify): >= 0.90.

Then multiple choice: 200 SST-2 dev questions x 4 choices, short ones (label words) and long
ones (other sentences), scored with the question's pass shared by its choices (its KV cache
copied) and with one pass per (question + choice): the times, the speed-up and the largest
difference between the two scores (they must agree).
Measured side by side in one run, best of --repeats.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _models import forward_seconds  # also: offline settings and CE_DATA_DIR

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.families


def build(root: Path) -> dict[str, Path]:
    from tests.families import build_family, corpus

    return build_family("llama", root, corpus(), heads=("classification", "lm"), hidden=256, layers=4)


def bare_forward_seconds(folder: Path, options) -> float:
    import numpy as np

    from ce.extractors.choices import contexts_of, prompt_for
    from ce.extractors.datasets import load_dataset, subset
    from ce.extractors.features import Features, batches, tokenize
    from ce.extractors.loading import load_model
    from ce.extractors.registry import ResolvedModel

    data = subset(load_dataset("sst2-dev"), options.limit)
    loaded = load_model(ResolvedModel("m", str(folder), True), data.task, "finetuned")
    length = options.length_for(data.task)
    if loaded.how == "classify":
        features = tokenize(
            data, loaded.tokenizer, max_length=length, doc_stride=options.doc_stride, all_windows=False
        )
    else:  # the prompts alone
        enc = loaded.tokenizer(
            contexts_of(data, prompt_for(options, data)), truncation=True, max_length=length
        )
        n = len(data)
        features = Features(
            {k: enc[k] for k in ("input_ids", "attention_mask")}, np.arange(n), np.ones(n, bool)
        )
    return forward_seconds(loaded.model, list(batches(features, loaded.tokenizer, options.batch_size)))


def end_to_end_seconds(folder: Path, options) -> float:
    from ce.extractors.extract import extract
    from ce.store import Store

    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        extract(Store(f"{root}/store"), str(folder), "sst2-dev", options, name="bench", progress=False)
        return time.perf_counter() - start


def multiple_choice(folder: Path, repeats: int) -> None:
    import numpy as np

    from ce.extractors.choices import loglikelihoods
    from ce.extractors.datasets import load_dataset
    from ce.extractors.extract import ExtractOptions
    from ce.extractors.loading import load_model
    from ce.extractors.registry import ResolvedModel

    loaded = load_model(ResolvedModel("m", str(folder), True), "choice", "finetuned")
    texts = load_dataset("sst2-dev").table["text"].to_pylist()
    questions = [f"Question: {text}\nAnswer:" for text in texts[:200]]
    cases = {
        "label words": [["negative", "positive", "rather mixed feelings", "a delight to watch twice"]] * 200,
        "sentences": [[texts[(200 + 4 * i + j) % len(texts)] for j in range(4)] for i in range(200)],
    }
    options = ExtractOptions(batch_size=32)
    print(
        f"\n{'choices':<14}{'n':>6}{'shared s':>10}{'per choice s':>14}{'speed-up':>10}  largest difference"
    )
    for name, choices in cases.items():
        times: dict[bool, list[float]] = {True: [], False: []}
        sums = {}
        for _ in range(repeats):
            for share in (True, False):  # interleaved: both see the same machine load
                start = time.perf_counter()
                sums[share] = loglikelihoods(loaded, questions, choices, options, "choice", share=share).sums
                times[share].append(time.perf_counter() - start)
        drift = max(float(np.abs(a - b).max()) for a, b in zip(sums[True], sums[False], strict=True))
        shared, separate = min(times[True]), min(times[False])
        speedup = separate / shared
        print(f"{name:<14}{len(questions):>6}{shared:>10.2f}{separate:>14.2f}{speedup:>9.2f}x  {drift:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=872)  # all of sst2-dev
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from ce.extractors.extract import ExtractOptions

    with tempfile.TemporaryDirectory() as root:
        folders = build(Path(root))
        print("model: Llama-shaped decoder, hidden 256, 4 layers, seeded random init (tests/families.py)")
        print(f"{'how':<12}{'dataset':<12}{'n':>6}{'bare s':>9}{'ce s':>9}{'ratio':>8}  goal")
        for how, head in [("classify", "classification"), ("verbalize", "lm")]:
            options = ExtractOptions(limit=args.limit)
            bare, e2e = [], []
            for _ in range(args.repeats):  # interleaved, so both see the same machine load
                bare.append(bare_forward_seconds(folders[head], options))
                e2e.append(end_to_end_seconds(folders[head], options))
            ratio = min(bare) / min(e2e)
            goal = (
                f">= 0.90 {'met' if ratio >= 0.9 else 'NOT met'}" if how == "classify" else "- (prompts only)"
            )
            print(
                f"{how:<12}{'sst2-dev':<12}{args.limit:>6}{min(bare):>9.2f}{min(e2e):>9.2f}"
                f"{ratio:>8.2f}  {goal}"
            )
        multiple_choice(folders["lm"], args.repeats)


if __name__ == "__main__":
    main()
