"""The neighbour extractor vs a bare ``faiss.IndexFlatIP.search`` on the same matrix.

    python bench/neighbors.py [--points 30000] [--dim 384] [--k-max 100]

Each side runs in its own process on the same random matrix: time, and peak memory above
the process's size before the matrix existed (the matrix included), as a multiple of the
matrix's size. The
extractor normalises in place, searches in blocks, drops self, breaks ties and streams the
lists into a store part (zstd Parquet); the bare side adds the matrix to an IndexFlatIP and
searches all queries at once. Goals: time <= 1.25x the bare search, memory <= 1.5x the matrix.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, tempfile, time
import numpy as np
import faiss, pyarrow as pa
from ce.store import Store
from ce.extractors.neighbors import store_neighbors
side, n, dim, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
faiss.omp_set_num_threads(2)
def status(field):  # bytes, from /proc/self/status
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field + ":"))
ids = pa.array([str(i) for i in range(n)])  # inputs that exist before either side runs
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current size: imports do not count
base = status("VmRSS")
x = np.random.default_rng(0).standard_normal(size=(n, dim), dtype=np.float32)
start = time.perf_counter()
if side == "bare":
    faiss.normalize_L2(x)
    index = faiss.IndexFlatIP(dim)
    index.add(x)
    index.search(x, k + 1)
else:
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        with store.run("bench", {}) as run:
            store_neighbors(run, {"model": "m", "stage": "finetuned", "dataset": "d"}, x, ids,
                            np.arange(n), k, "exact", progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "extra": status("VmHWM") - base, "matrix": n * dim * 4}))
"""


def run(side: str, args) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, side, str(args.points), str(args.dim), str(args.k_max)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=30_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k-max", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    results = {"bare": [], "ce": []}
    for _ in range(args.repeats):  # interleaved
        for side in results:
            results[side].append(run(side, args))
    bare = min(results["bare"], key=lambda r: r["seconds"])
    ours = min(results["ce"], key=lambda r: r["seconds"])
    mb = bare["matrix"] / 2**20
    print(f"{args.points:,} x {args.dim} float32 matrix ({mb:.0f} MiB), K_max {args.k_max}")
    for name, r in (("faiss IndexFlatIP.search", bare), ("ce neighbour extractor", ours)):
        print(f"  {name:<26}{r['seconds']:7.2f}s   peak {r['extra'] / bare['matrix']:.2f}x matrix")
    print(
        f"  time ratio {ours['seconds'] / bare['seconds']:.2f}x (goal <= 1.25x);"
        f" memory {ours['extra'] / ours['matrix']:.2f}x matrix (goal <= 1.5x)"
    )


if __name__ == "__main__":
    main()
