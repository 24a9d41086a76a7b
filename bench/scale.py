"""ce compare and ce sweep on a large synthetic store: time and peak memory, and how they grow.

    python bench/scale.py                                   # 10^4 and 10^5 examples, 2..20 models
    python bench/scale.py --examples 10000,100000,1000000   # the issue's full scale (~55 GB disk)

For each number of examples a store of --models-max models is written with the store's own
writers, as ce extract and ce ood would write it: per model, predictions, float16 CLS
embeddings (--dim), neighbour lists to K_max before and after fine-tuning, and OOD scores
(k-th distances to K_max) of an id-val and a test set. Models share a common structure
(correlated errors, overlapping neighbour lists) so the agreements are not trivially 0.
Stores with fewer models are the first M models of the largest store, hard-linked.

Each measurement runs the real CLI in a child process (ce compare --table 2, ce sweep) and
reports its wall time and peak resident memory (from wait4). Goals (issues 7 and 18):
Table 2 for 20 models on 10^6 examples in under a minute on two cores, peak memory under
8 GiB; the sweep k = 1, 5, 10, 20, 50, 100 over 20 models x 10^5 in under a minute; every
step linear in the number of examples. The sweep is measured on stores of at most
--sweep-examples examples (it reads lists to k = 100: ten times Table 2's).

    python bench/scale.py --examples 100000,1000000 --models 20   # the goals

--root keeps the stores for a second run (about 55 GB at 10^6 examples): remove it afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from ce.store import Store

BLOCK = 50_000
DATASET = "synthetic"
TEST = "synthetic-ood"


def fixed_lists(values: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def neighbour_block(rng, start: int, stop: int, n: int, k_max: int, model_rng) -> np.ndarray:
    """Distinct neighbour idx per row (not self): a structure shared by every model (from
    ``rng``, seeded per block) with a model-specific share of the entries replaced."""
    rows = stop - start
    gaps = rng.integers(1, max(2, (n - 1) // k_max), size=(rows, k_max))
    shared = (np.arange(start, stop)[:, None] + np.cumsum(gaps, axis=1)) % n
    other = (np.arange(start, stop)[:, None] + n - np.cumsum(gaps[:, ::-1], axis=1)) % n
    swap = model_rng.random((rows, k_max)) < 0.5
    return np.where(swap, other, shared).astype(np.int32)


def write_model(store: Store, model: int, n: int, k_max: int, dim: int, seed: int) -> None:
    """One model's artifacts, as ce extract (two stages) and ce ood would write them."""
    name = f"model-{model:02d}"
    model_rng = np.random.default_rng([seed, model])
    partitions = {
        "predictions": ("predictions", {"model": name, "dataset": DATASET}),
        "embeddings": ("embeddings", {"model": name, "stage": "finetuned", "dataset": DATASET}),
        "pretrained": ("neighbors", {"model": name, "stage": "pretrained", "dataset": DATASET}),
        "finetuned": ("neighbors", {"model": name, "stage": "finetuned", "dataset": DATASET}),
        "ood": ("ood_scores", {"model": name, "stage": "finetuned", "bank": DATASET, "dataset": TEST}),
    }
    with (
        store.run("bench-scale", {"examples": n}, model=name, dataset=DATASET) as run,
        contextlib.ExitStack() as stack,
    ):
        opened = {key: stack.enter_context(run.part_writer(*where)) for key, where in partitions.items()}
        for start in range(0, n, BLOCK):
            stop = min(n, start + BLOCK)
            block_rng = np.random.default_rng([seed, start])  # the structure all models share
            ids = pa.array([f"ex{i:07d}" for i in range(start, stop)])
            hard = block_rng.random(stop - start)
            wrong = hard + 0.3 * model_rng.random(stop - start) > 0.9 - 0.01 * model
            opened["predictions"].write(pa.table({"example_id": ids, "correct": ~wrong}))
            vectors = model_rng.standard_normal((stop - start, dim), dtype=np.float32)
            opened["embeddings"].write(
                pa.table({"example_id": ids, "vector": fixed_lists(vectors.astype(np.float16))})
            )
            for stage in ("pretrained", "finetuned"):
                lists = neighbour_block(block_rng, start, stop, n, k_max, model_rng)
                sims = np.sort(model_rng.random(lists.shape, dtype=np.float32), axis=1)[:, ::-1]
                opened[stage].write(
                    pa.table(
                        {
                            "example_id": ids,
                            "idx": pa.array(np.arange(start, stop)),
                            "neighbors": fixed_lists(lists),
                            "similarities": fixed_lists(np.ascontiguousarray(sims)),
                        }
                    )
                )
            base = 0.5 + block_rng.random((stop - start, 1), dtype=np.float32)
            steps = model_rng.random((stop - start, k_max), dtype=np.float32) * 0.01
            distances = base + np.cumsum(steps, axis=1)
            role = np.where(np.arange(start, stop) % 10 == 0, "id_val", "test")
            opened["ood"].write(
                pa.table(
                    {
                        "example_id": ids,
                        "role": pa.array(role),
                        "source": pa.array(np.where(role == "id_val", DATASET, TEST)),
                        "distances": fixed_lists(distances + (role == "test")[:, None] * 0.05),
                    }
                )
            )


def build(root: Path, n: int, models: int, k_max: int, dim: int, seed: int) -> float:
    started = time.perf_counter()
    store = Store(root)
    for m in range(models):
        write_model(store, m, n, k_max, dim, seed)
        print(f"  wrote model {m + 1}/{models} ({n:,} examples)", file=sys.stderr, flush=True)
    return time.perf_counter() - started


def first_models(source: Path, target: Path, models: int) -> None:
    """A store holding the first ``models`` models of ``source``: its run records copied,
    its Parquet parts hard-linked (no data is copied)."""
    target.mkdir(parents=True)
    shutil.copy(source / "ce-store.json", target / "ce-store.json")
    (target / "runs").mkdir()
    keep = sorted(Store(source).runs(), key=lambda r: r["model"])[:models]
    for rec in keep:
        shutil.copy(source / "runs" / f"{rec['run_id']}.json", target / "runs")
        for part in rec["parts"]:
            (target / part["path"]).parent.mkdir(parents=True, exist_ok=True)
            os.link(source / part["path"], target / part["path"])


def measure(store: Path, *args: str) -> tuple[float, float]:
    """(seconds, peak resident GiB) of one ce command in a child process."""
    ce = [str(Path(sys.executable).with_name("ce"))]
    started = time.perf_counter()
    child = subprocess.Popen(
        [*ce, *args, "--store", str(store), "--format", "csv", "-o", os.devnull],
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{' '.join(args)} failed: {child.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 2**20  # KiB on Linux


def size_gib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet")) / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", default="10000,100000", help="Comma-separated store sizes.")
    parser.add_argument("--models", default="2,5,10,20", help="Comma-separated model counts.")
    parser.add_argument("--k-max", type=int, default=100)
    parser.add_argument("--dim", type=int, default=384, help="Embedding size (stored as float16).")
    parser.add_argument("--sweep-k", default="1,5,10,20,50,100", help="k values for ce sweep.")
    parser.add_argument(
        "--sweep-examples", type=int, default=100_000, help="Measure the sweep on stores up to this size."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", help="Folder for the stores (default: a temporary one, removed).")
    args = parser.parse_args()
    sizes = sorted(int(x) for x in args.examples.split(","))
    counts = sorted(int(x) for x in args.models.split(","))
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="ce-scale-"))
    print(f"# ce scale benchmark: stores under {root}, {os.cpu_count()} cores", flush=True)
    rows = []
    try:
        for n in sizes:
            full = root / f"n{n}-m{counts[-1]}"
            if not full.exists():
                seconds = build(full, n, counts[-1], args.k_max, args.dim, args.seed)
                print(f"built {full.name}: {size_gib(full):.2f} GiB in {seconds:.0f} s", flush=True)
            for m in counts if n == sizes[-1] else counts[-1:]:
                store = full if m == counts[-1] else root / f"n{n}-m{m}"
                if not store.exists():
                    first_models(full, store, m)
                t2, mem2 = measure(store, "compare", "--table", "2")
                ts, mems = (
                    measure(store, "sweep", "--k", args.sweep_k) if n <= args.sweep_examples else (None, None)
                )
                rows.append(
                    {
                        "examples": n,
                        "models": m,
                        "pairs": m * (m - 1) // 2,
                        "compare_s": t2,
                        "compare_gib": mem2,
                        "sweep_s": ts,
                        "sweep_gib": mems,
                    }
                )
                print(
                    json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()}),
                    flush=True,
                )
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)
    report(rows, sizes, counts)


def report(rows: list[dict], sizes: list[int], counts: list[int]) -> None:
    print("\nexamples  models  pairs  compare s  peak GiB  sweep s  peak GiB")
    for r in rows:
        sweep = f"{r['sweep_s']:>7.1f}  {r['sweep_gib']:>8.2f}" if r["sweep_s"] else "      -         -"
        print(
            f"{r['examples']:>8,}  {r['models']:>6}  {r['pairs']:>5}  {r['compare_s']:>9.1f}"
            f"  {r['compare_gib']:>8.2f}  {sweep}"
        )
    by_size = [r for r in rows if r["models"] == counts[-1]]
    for a, b in zip(by_size, by_size[1:], strict=False):
        growth = b["examples"] / a["examples"]
        swept = "" if b["sweep_s"] is None else f", sweep time x{b['sweep_s'] / a['sweep_s']:.1f}"
        print(
            f"examples x{growth:g} ({a['examples']:,} -> {b['examples']:,}), {counts[-1]} models:"
            f" compare time x{b['compare_s'] / a['compare_s']:.1f}{swept}"
        )
    by_models = [r for r in rows if r["examples"] == sizes[-1]]
    if len(by_models) > 1:
        a, b = by_models[0], by_models[-1]
        swept = "" if b["sweep_s"] is None else f", sweep time x{b['sweep_s'] / a['sweep_s']:.1f}"
        print(
            f"models {a['models']} -> {b['models']} (pairs x{b['pairs'] / a['pairs']:g}),"
            f" {sizes[-1]:,} examples: compare time x{b['compare_s'] / a['compare_s']:.1f}{swept}"
        )
    head = next((r for r in rows if r["models"] == 20 and r["examples"] == 1_000_000), None)
    if head:
        print(
            f"goal, Table 2 for 20 models on 10^6 examples: {head['compare_s']:.0f} s (goal < 60 s),"
            f" peak {head['compare_gib']:.1f} GiB (goal < 8 GiB)"
        )
    swept = next((r for r in rows if r["models"] == 20 and r["examples"] == 100_000 and r["sweep_s"]), None)
    if swept:
        print(
            f"goal, the sweep k = 1..100 over 20 models x 10^5: {swept['sweep_s']:.0f} s (goal < 60 s),"
            f" peak {swept['sweep_gib']:.1f} GiB"
        )


if __name__ == "__main__":
    main()
