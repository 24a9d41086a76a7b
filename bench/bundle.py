"""Peak memory of ce bundle export, inspect and import against the bundle's largest entry.

    python bench/bundle.py                          # 100,000 rows x 384 dims: a ~300 MB bundle
    python bench/bundle.py --rows 200000 --dim 768  # a ~1.2 GB bundle (~600 MB largest entry)

A source store is written with the store's own writers, as ce extract would write it: the
examples of a synthetic dataset, and for two models their predictions and CLS embeddings.
model-00's fine-tuned embeddings are float32 (--rows x --dim x 4 bytes: the bundle's
largest entry); its pretrained ones and model-01's are float16 (half that each), so the
bundle is about twice its largest entry.

Each step runs the real CLI in a child process (ce bundle export, inspect, import into an
empty store, and the same import again, which changes nothing) and reports its wall time
and peak resident memory (from wait4). A baseline child that only imports the CLI shows
the fixed cost of the interpreter and the libraries; "minus base" subtracts it. Goal (the
issue): every step's peak under 2 x the largest entry + 200 MB, whatever the bundle's size.

Linux counts the parent's resident memory at exec in a child's peak, so this process
imports nothing heavy and builds the store in a child of its own.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

CLI = "from ce.cli import main; main()"
BASELINE = "from ce.cli import main"  # the interpreter and the libraries, no data
GOAL_EXTRA = 200_000_000  # bytes: the goal is peak < 2 x largest entry + 200 MB
BLOCK = 25_000
DATASET = "synthetic"
MIB = 2**20


def build(root: Path, rows: int, dim: int, seed: int) -> None:
    """The source store (run in a child: numpy, pyarrow and the data stay out of the parent)."""
    import numpy as np
    import pyarrow as pa
    from scale import fixed_lists

    from ce.store import Store

    store = Store(root)
    rng = np.random.default_rng(seed)
    words = np.array("the a model compressed large small film good bad not very plot actor".split())
    with store.run("bench-bundle", {"rows": rows}, dataset=DATASET) as run:
        with run.part_writer("examples", {"dataset": DATASET}) as writer:
            for start in range(0, rows, BLOCK):
                stop = min(rows, start + BLOCK)
                picks = words[rng.integers(0, len(words), size=(stop - start, 12))]
                writer.write(
                    pa.table(
                        {
                            "example_id": pa.array([f"ex{i:07d}" for i in range(start, stop)]),
                            "idx": pa.array(np.arange(start, stop)),
                            "text": pa.array([" ".join(p) for p in picks]),
                            "label": pa.array(rng.integers(0, 2, size=stop - start)),
                        }
                    )
                )
    embeddings = {
        "model-00": {"finetuned": np.float32, "pretrained": np.float16},
        "model-01": {"finetuned": np.float16},
    }
    for model, stages in embeddings.items():
        with store.run("bench-bundle", {"rows": rows, "dim": dim}, model=model, dataset=DATASET) as run:
            where = {"model": model, "dataset": DATASET}
            with run.part_writer("predictions", where) as writer:
                for start in range(0, rows, BLOCK):
                    stop = min(rows, start + BLOCK)
                    writer.write(
                        pa.table(
                            {
                                "example_id": pa.array([f"ex{i:07d}" for i in range(start, stop)]),
                                "pred_label": pa.array(rng.integers(0, 2, size=stop - start)),
                                "score": pa.array(rng.random(stop - start)),
                                "correct": pa.array(rng.random(stop - start) < 0.9),
                            }
                        )
                    )
            for stage, dtype in stages.items():
                with run.part_writer("embeddings", {**where, "stage": stage}) as writer:
                    for start in range(0, rows, BLOCK):
                        stop = min(rows, start + BLOCK)
                        vectors = rng.standard_normal((stop - start, dim), dtype=np.float32).astype(dtype)
                        ids = pa.array([f"ex{i:07d}" for i in range(start, stop)])
                        writer.write(pa.table({"example_id": ids, "vector": fixed_lists(vectors)}))


def measure(name: str, argv: list[str], cwd: Path) -> dict:
    """Wall seconds and peak resident bytes of one child process; exits 1 if it fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            print(f"\n{name} failed (exit {code}): {' '.join(argv)}", flush=True)
            sys.stdout.write(err.read().decode(errors="replace"))
            raise SystemExit(1)
    return {"step": name, "seconds": seconds, "peak": usage.ru_maxrss * 1024}  # KiB on Linux


def ce(*args: str) -> list[str]:
    return [sys.executable, "-c", CLI, *args]


def parquet_files(root: Path) -> dict[str, str]:
    """sha256 of the rows of every Parquet part under ``root``, by relative path: bundles
    rewrite parts (their key columns travel inside), so the bytes differ, the rows do not.
    Called after the measured steps, so pyarrow's import does not count in them."""
    import pyarrow.parquet as pq

    digests = {}
    for path in sorted(root.rglob("*.parquet")):
        h = hashlib.sha256()
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=8192):
            for column in batch.columns:
                h.update(str(column.to_pylist()).encode())
        digests[path.relative_to(root).as_posix()] = h.hexdigest()
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="Examples (rows of every part).")
    parser.add_argument("--dim", type=int, default=384, help="Embedding size.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", help="Work folder (default: a temporary one, removed).")
    parser.add_argument("--build-store", help=argparse.SUPPRESS)  # the child that writes the store
    args = parser.parse_args()
    if args.build_store:
        build(Path(args.build_store), args.rows, args.dim, args.seed)
        return
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="ce-bundle-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        run(root.resolve(), args)
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)


def run(root: Path, args: argparse.Namespace) -> None:
    print(f"# ce bundle benchmark: work folder {root}, {os.cpu_count()} cores", flush=True)
    src = root / f"src-r{args.rows}-d{args.dim}"
    out = root / f"r{args.rows}-d{args.dim}.cebundle"
    dst = root / f"dst-r{args.rows}-d{args.dim}"
    shutil.rmtree(dst, ignore_errors=True)  # left by an earlier run with the same --root
    out.unlink(missing_ok=True)
    if not src.exists():
        started = time.perf_counter()
        build_argv = [sys.executable, str(Path(__file__).resolve()), "--build-store", str(src)]
        measure("build", [*build_argv, "--rows", str(args.rows), "--dim", str(args.dim)], root)
        print(f"built the source store in {time.perf_counter() - started:.0f} s", flush=True)

    steps = [measure("baseline", [sys.executable, "-c", BASELINE], root)]
    steps.append(measure("export", ce("bundle", "export", str(out), "--store", str(src)), root))
    steps.append(measure("inspect", ce("bundle", "inspect", str(out)), root))
    steps.append(measure("import", ce("bundle", "import", str(out), "--store", str(dst)), root))
    steps.append(measure("import (again)", ce("bundle", "import", str(out), "--store", str(dst)), root))

    with zipfile.ZipFile(out) as z:
        infos = z.infolist()
    largest = max(infos, key=lambda i: i.file_size)
    size = out.stat().st_size
    same = parquet_files(src) == parquet_files(dst)
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"bundle: {size / MIB:,.1f} MiB, {len(infos)} entries; largest entry"
        f" {largest.file_size / MIB:,.1f} MiB ({largest.filename.split('/')[0]}), bundle / largest"
        f" {size / largest.file_size:.2f}\nimported store holds the source's rows, part by part:"
        f" {'yes' if same else 'NO'}; this process peaked at {parent:.0f} MiB"
    )
    report(steps, largest.file_size)
    if not same:
        raise SystemExit(1)


def report(steps: list[dict], largest: int) -> None:
    limit = 2 * largest + GOAL_EXTRA
    base = steps[0]["peak"]
    print(f"\ngoal: peak < 2 x largest entry + 200 MB = {limit / MIB:,.0f} MiB")
    print(f"{'step':<20}  {'wall s':>7}  {'peak MiB':>9}  {'peak/largest':>12}  {'minus base':>10}  goal")
    for s in steps:
        verdict = "-" if s["step"] == "baseline" else "met" if s["peak"] < limit else "MISSED"
        print(
            f"{s['step']:<20}  {s['seconds']:>7.1f}  {s['peak'] / MIB:>9,.0f}  {s['peak'] / largest:>12.2f}"
            f"  {(s['peak'] - base) / MIB:>10,.0f}  {verdict}"
        )


if __name__ == "__main__":
    main()
