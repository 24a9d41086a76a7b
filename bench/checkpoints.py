"""Time per checkpoint of a long resumable attack, committed into one store.

    python bench/checkpoints.py [--checkpoints 500] [--rows 10] [--window 50]

``ce attack`` commits every ``--checkpoint-every`` examples as a run of its own: it opens a
run, writes one ``attacks`` part of a resumable series (and, the first time, the
examples) and commits. This does the same with the store's own calls and synthetic rows,
no model, into a fresh store in a temporary folder, and times each checkpoint (open,
write, commit). With N runs in the store, a commit that re-read every record or looked at
every part would cost N, and the series N^2. Goal (the issue): the last ``--window``
checkpoints within 1.5x of the first ``--window`` (medians over ``--repeat`` series);
exits 1 when missed.

Beside it, one series with the record cache emptied before every read shows what
re-reading every record costs (the other per-commit savings stay on there).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import pyarrow as pa

from ce.store.store import Store, series_id

GOAL = 1.5
MODEL, ATTACK, DATASET = "bench-model", "bert-attack", "bench-data"


class Uncached(Store):
    """A store that parses every record again on each read (as before the cache)."""

    def _records(self):
        self._parsed.clear()
        return super()._records()


def provenance(series: str) -> dict:
    """What ``ce attack`` records with every checkpoint, at its usual size."""
    files = {f"file-{i}.safetensors": "0" * 64 for i in range(4)}
    loaded = {
        role: {"source": f"hub:org/{role}", "revision": "1" * 40, "format": "safetensors", "sha256": files}
        for role in ("target", "attacker", "sentence_encoder")
    }
    return {
        "model": MODEL,
        "dataset": DATASET,
        "series": series,
        "dataset_fingerprint": "2" * 64,
        "recipe": {"name": ATTACK, "max_candidates": 8, "sentence_encoder": "minilm"},
        "model_source": "hub:org/target",
        "model_class": "BertForSequenceClassification",
        "loaded": loaded,
        "identity": {"attack": ATTACK, "seed": 0, "max_length": 128, "models": loaded},
    }


def examples(n: int) -> pa.Table:
    return pa.table(
        {
            "example_id": [f"ex-{i}" for i in range(n)],
            "idx": list(range(n)),
            "text": [f"a film that is not very good, number {i}" for i in range(n)],
            "label": [i % 2 for i in range(n)],
        }
    )


def attacks(start: int, rows: int) -> pa.Table:
    ids = range(start, start + rows)
    return pa.table(
        {
            "example_id": [f"ex-{i}" for i in ids],
            "ground_truth": [i % 2 for i in ids],
            "result": ["succeeded" if i % 3 else "failed" for i in ids],
            "original_text": [f"a film that is not very good, number {i}" for i in ids],
            "perturbed_text": [f"a movie that is not very fine, number {i}" for i in ids],
            "original_output": [i % 2 for i in ids],
            "original_score": [0.9] * rows,
            "perturbed_output": [1 - i % 2 for i in ids],
            "perturbed_score": [0.6] * rows,
            "queries": [40] * rows,
            "words_perturbed": [2] * rows,
            "words": [10] * rows,
        }
    )


def series_times(store: Store, checkpoints: int, rows: int) -> list[float]:
    """Seconds of each checkpoint, committed as extractors/attack.py commits them."""
    series = series_id("attack", {"attack": ATTACK, "seed": 0})
    params = {"attack": ATTACK, "checkpoint_every": rows, "limit": checkpoints * rows, "seed": 0}
    partition = {"model": MODEL, "attack": ATTACK, "dataset": DATASET}
    data = examples(checkpoints * rows)
    times = []
    for c in range(checkpoints):
        table = attacks(c * rows, rows)
        start = time.perf_counter()
        with store.run("attack", params, **provenance(series)) as run:  # one checkpoint
            if c == 0:
                run.write("examples", {"dataset": DATASET}, data)
            run.write("attacks", partition, table, series=series, shard=None, resumable=True)
        times.append(time.perf_counter() - start)
    live = store.live_parts()["attacks"]
    if len(live) != checkpoints or sum(p.rows for p in live) != checkpoints * rows:
        raise SystemExit(f"the series holds {len(live)} parts, expected {checkpoints}")
    return times


def measure(store_class: type[Store], args: argparse.Namespace, repeat: int) -> tuple[float, float, float]:
    """Median seconds of the first and last ``--window`` checkpoints, pooled over ``repeat``
    series (each into a fresh store: a busy machine's stalls and drift aside), and the
    seconds of one whole series."""
    first, last, total = [], [], 0.0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as root:
            times = series_times(store_class(f"{root}/store"), args.checkpoints, args.rows)
        first += times[: args.window]
        last += times[-args.window :]
        total += sum(times) / repeat
    return statistics.median(first), statistics.median(last), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=500)
    parser.add_argument("--rows", type=int, default=10, help="examples per checkpoint")
    parser.add_argument("--window", type=int, default=50, help="checkpoints compared at each end")
    parser.add_argument("--repeat", type=int, default=3, help="series of the store pooled")
    args = parser.parse_args()

    print(
        f"{args.checkpoints} checkpoints of {args.rows} attack rows into one store"
        f" ({tempfile.gettempdir()}, {os.cpu_count()} cores); median ms per checkpoint"
    )
    first, last = f"first {args.window}", f"last {args.window}"
    print(f"{'':<28}  {first:>9}  {last:>9}  {'last/first':>10}  {'series s':>8}")
    ratio = None
    for label, store_class, repeat in (
        (f"store ({args.repeat} series)", Store, args.repeat),
        ("records parsed at each read", Uncached, 1),
    ):
        first, last, total = measure(store_class, args, repeat)
        ratio = ratio or last / first
        print(f"{label:<28}  {1e3 * first:>9.2f}  {1e3 * last:>9.2f}  {last / first:>10.2f}  {total:>8.1f}")
    print(f"goal: last/first <= {GOAL} for the store: {'met' if ratio <= GOAL else 'MISSED'}")
    if ratio > GOAL:
        sys.exit(1)


if __name__ == "__main__":
    main()
