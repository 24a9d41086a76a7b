"""ce extract throughput on a GPU: CPU vs CUDA float32 vs CUDA mixed precision (fp16, bf16).

    python bench/gpu.py [--limit 2000] [--batch-size 64] [--dataset squad2-dev]

Runs the real ce extract (MiniLM with a seeded QA head, or a classification head for a
classification dataset) into a temporary store with --device cuda and each --precision,
and on the CPU over the first --cpu-limit examples; prints examples per second and the
ratios, plus how many predictions mixed precision changes against float32 (they should
agree except at near-ties). On a machine without CUDA it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from _models import minilm_with_head

from ce.query.sql import connect


def run(folder, dataset: str, options) -> tuple[float, list]:
    from ce.extractors.extract import extract
    from ce.store import Store

    with tempfile.TemporaryDirectory() as root:
        store = Store(f"{root}/store")
        started = time.perf_counter()
        result = extract(store, str(folder), dataset, options, name="bench", progress=False)
        seconds = time.perf_counter() - started
        answers = connect(store).sql("select example_id, prediction from predictions order by 1").fetchall()
    return result.examples / seconds, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="squad2-dev")
    parser.add_argument("--limit", type=int, default=2000, help="Examples on the GPU.")
    parser.add_argument("--cpu-limit", type=int, default=200, help="Examples on the CPU (slower).")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA device on this machine (torch.cuda.is_available() is False);")
        print("skipped. Run it where a GPU is present: python bench/gpu.py")
        return
    from dataclasses import replace

    from ce.extractors.datasets import load_dataset
    from ce.extractors.extract import ExtractOptions

    task = load_dataset(args.dataset).task
    folder = minilm_with_head(task)
    base = ExtractOptions(limit=args.limit, batch_size=args.batch_size, k_max=None)
    print(f"# {torch.cuda.get_device_name(0)}; ce extract MiniLM on {args.dataset}", flush=True)
    cpu_rate, _ = run(
        folder, args.dataset, replace(base, limit=args.cpu_limit, device="cpu", precision="fp32")
    )
    print(f"cpu  fp32: {cpu_rate:8.1f} examples/s ({args.cpu_limit} examples)", flush=True)
    run(folder, args.dataset, replace(base, limit=64, device="cuda"))  # warm up CUDA kernels
    rates, answers = {}, {}
    for precision in ("fp32", "fp16", "bf16"):
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            continue
        options = replace(base, device="cuda", precision=precision)
        rates[precision], answers[precision] = run(folder, args.dataset, options)
        print(f"cuda {precision}: {rates[precision]:8.1f} examples/s ({args.limit} examples)", flush=True)
    print(f"cuda fp32 / cpu: {rates['fp32'] / cpu_rate:.1f}x")
    for precision in rates.keys() - {"fp32"}:
        changed = sum(a != b for a, b in zip(answers["fp32"], answers[precision], strict=True))
        print(
            f"cuda {precision} / fp32: {rates[precision] / rates['fp32']:.2f}x;"
            f" {changed} of {len(answers['fp32'])} predictions differ"
        )


if __name__ == "__main__":
    sys.exit(main())
