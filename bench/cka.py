"""Linear CKA of two models' embeddings read from the store (ce's streamed feature-space
pass) against numpy on the two matrices in memory (the same formulas, centred Grams in
feature space), each in a process of its own so that their peak memory is their own.

    python bench/cka.py [--examples 1000000] [--dim 384]

Goals (issue 18): the store's pass within 1.5x numpy's time, and its peak resident memory
under 1 GiB above numpy's (numpy's includes the two matrices; the store's streams blocks).
Both estimators must agree to 1e-6. Times are measured side by side in one run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time

import numpy as np
import pyarrow as pa


def vectors(examples: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((examples, dim), dtype=np.float32)
    return (
        base
        if seed == 0
        else base * 0.5 + np.random.default_rng(0).standard_normal((examples, dim), dtype=np.float32)
    )


def write_store(root: str, examples: int, dim: int) -> None:
    from ce.store import Store

    store = Store(root)
    for seed, model in enumerate(("a", "b")):
        v = vectors(examples, dim, seed)
        with (
            store.run("bench", {}) as run,
            run.part_writer("embeddings", {"model": model, "stage": "finetuned", "dataset": "d"}) as w,
        ):
            for start in range(0, examples, 65536):
                block = v[start : start + 65536]
                w.write(
                    pa.table(
                        {
                            "example_id": pa.array([str(i) for i in range(start, start + len(block))]),
                            "vector": pa.FixedSizeListArray.from_arrays(
                                pa.array(block.reshape(-1)), dim
                            ).cast(pa.list_(pa.float32())),
                        }
                    )
                )


def numpy_side(examples: int, dim: int, out) -> None:
    from ce.query.cka import Sums, biased, unbiased

    x, y = vectors(examples, dim, 0), vectors(examples, dim, 1)
    start = time.perf_counter()
    s = Sums()
    s.add(x.astype(np.float64), y.astype(np.float64))  # the whole matrices at once
    result = (biased(s), unbiased(s))
    out.put((time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, result))


def store_side(root: str, out) -> None:
    import ce

    s = ce.open(root)
    _ = s.con  # the connection made before the clock starts, as numpy's matrices are
    start = time.perf_counter()
    [row] = s.cka().rows()
    elapsed = time.perf_counter() - start
    out.put((elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, (row["cka"], row["cka_unbiased"])))


def run(target, *args):
    out = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(target=target, args=(*args, out))
    p.start()
    got = out.get()
    p.join()
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_store(tmp, a.examples, a.dim)
        t_np, rss_np, want = run(numpy_side, a.examples, a.dim)
        t_st, rss_st, got = run(store_side, tmp)
    assert np.allclose(got, want, atol=1e-6), (got, want)
    extra = (rss_st - rss_np) / 2**20  # ru_maxrss is in KiB: GiB
    print(
        f"linear CKA, 2 x {a.examples} x {a.dim}: store {t_st:.1f}s, numpy {t_np:.1f}s:"
        f" {t_st / t_np:.2f}x (goal <= 1.5x); peak {rss_st / 2**20:.2f} GiB vs numpy's"
        f" {rss_np / 2**20:.2f} GiB: {extra:+.2f} GiB (goal < +1 GiB); cka {got[0]:.4f},"
        f" unbiased {got[1]:.4f}"
    )


if __name__ == "__main__":
    main()
