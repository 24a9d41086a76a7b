"""``ce ingest lm-eval`` vs reading the same samples file with ``pyarrow.json.read_json``.

    python bench/ingest.py                  # 10^6 lines (a 1.4 GB file), best of 3
    python bench/ingest.py --rows 100000    # a quick check
    python bench/ingest.py --profile        # also where the ingest's time goes (cProfile)

Writes an lm-evaluation-harness 0.4.13 ``--log_samples`` file of a 4-choice multiple-choice
task into a temporary folder: one line per document, shaped exactly as lm-eval writes it
(the doc with the sentence, label, choices and answer; the target as a string; the four
requests ``gen_args_<i>`` with the prompt and the choice's continuation; ``resps`` and
``filtered_resps`` with each choice's log-likelihood and is-greedy flag as strings; the
filter; the metric names; the sha256 doc, prompt and target hashes; acc and acc_norm as
computed from the log-likelihoods). Sentences are the SST-2 train and dev sentences of
CE_DATA_DIR, cycled, so their lengths vary as a real log's do.

Then, in one run, times (a) ``pyarrow.json.read_json(path)`` and (b)
``ingest_lmeval(Store(fresh root), path, "bench-model")``, a fresh store each time: best of
--repeat, the two sides taking turns so that both meet the same load on a shared machine,
each run in a fresh child process so that its peak resident memory is its own. Prints rows/s
of each and the ratio speed(ingest) / speed(read_json). Goal (the issue): >= 0.5 at 10^6
rows. Peak memory is the child's maxrss, which includes the parent's resident memory at
fork (printed as "base"). The file is fsynced before timing starts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("CE_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))

TASK = "ce_sst2_mc"
CHOICES = ["negative", "positive", "mixed", "neutral"]  # as tests/lmeval_logs.py's task
QUESTION = "\nQuestion: Is this sentence positive or negative?\nAnswer:"
BLOCK = 50_000
GOAL = 0.5
MIB = 2**20

# One line as lm-evaluation-harness 0.4.13 writes it (json.dumps of the sample, key order
# and separators as there); the %-fields are the per-document values, already JSON-encoded.
LINE = (
    '{"doc_id": %d, "doc": {"idx": %d, "sentence": %s, "label": %d, "choices": '
    + json.dumps(CHOICES)
    + ', "answer": "%s"}, "target": "%d", "arguments": {'
    + ", ".join(f'"gen_args_{i}": {{"arg_0": %s, "arg_1": " {c}"}}' for i, c in enumerate(CHOICES))
    + '}, "resps": ['
    + ", ".join('[["%s", "%s"]]' for _ in CHOICES)
    + '], "filtered_resps": ['
    + ", ".join('["%s", "%s"]' for _ in CHOICES)
    + '], "filter": "none", "metrics": ["acc", "acc_norm"], "doc_hash": "%s", "prompt_hash": "%s",'
    ' "target_hash": "%s", "acc": %s, "acc_norm": %s}\n'
)


def sst2_sentences() -> list[str]:
    folder = Path(os.environ["CE_DATA_DIR"]) / "sst2"
    out = []
    for name in ("sst2_dev.tsv", "sst2_train.tsv"):
        for line in (folder / name).read_text(encoding="utf-8").splitlines()[1:]:
            out.append(line.rsplit("\t", 1)[0].strip())
    return out


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_samples(folder: Path, rows: int, seed: int) -> Path:
    """The samples file of ``rows`` documents (doc_id 0..rows-1), written a block at a time."""
    path = folder / f"samples_{TASK}_2026-01-01T00-00-00.000000.jsonl"
    sentences = sst2_sentences()
    encoded = [json.dumps(s, ensure_ascii=False) for s in sentences]
    prompts = [json.dumps(s + QUESTION, ensure_ascii=False) for s in sentences]
    prompt_hashes = [sha(s + QUESTION) for s in sentences]
    target_hashes = [sha(str(label)) for label in range(len(CHOICES))]
    lengths = np.array([len(c) for c in CHOICES], dtype=np.float64)  # lm-eval's acc_norm divisor
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8") as f:
        for start in range(0, rows, BLOCK):
            stop = min(rows, start + BLOCK)
            n = stop - start
            which = np.arange(start, stop) % len(sentences)
            labels = rng.integers(0, 2, size=n)  # SST-2 gold: negative or positive
            # a log-likelihood per choice: a sentence-level base, a choice offset, noise
            base = -rng.uniform(5.0, 60.0, size=(n, 1))
            ll = base + rng.normal(0.0, 2.0, size=(n, len(CHOICES)))
            ll[np.arange(n), labels] += rng.normal(0.8, 1.0, size=n)  # better than chance
            acc = (ll.argmax(axis=1) == labels).astype(float).tolist()
            acc_norm = ((ll / lengths).argmax(axis=1) == labels).astype(float).tolist()
            greedy = np.where(rng.random((n, len(CHOICES))) < 0.02, "True", "False").tolist()
            ll = ll.tolist()
            out = []
            for j in range(n):
                i, s, label = start + j, int(which[j]), int(labels[j])
                p, lj, gj = prompts[s], ll[j], greedy[j]
                pairs = (str(lj[0]), gj[0], str(lj[1]), gj[1], str(lj[2]), gj[2], str(lj[3]), gj[3])
                out.append(
                    LINE
                    % (
                        i, i, encoded[s], label, CHOICES[label], label, p, p, p, p,
                        *pairs, *pairs,
                        sha(f"{i}\n{sentences[s]}"), prompt_hashes[s], target_hashes[label],
                        acc[j], acc_norm[j],
                    )
                )  # fmt: skip
            f.write("".join(out))
        f.flush()
        os.fsync(f.fileno())  # on disk before timing starts: no writeback competes with the reads
    return path


def maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def read_side(path: Path, scratch: Path) -> tuple[float, int, int]:
    import pyarrow.json

    start = time.perf_counter()
    table = pyarrow.json.read_json(path)
    seconds = time.perf_counter() - start
    return seconds, table.num_rows, maxrss()


def ingest_side(path: Path, scratch: Path) -> tuple[float, int, int]:
    from ce.extractors.ingest_lmeval import ingest_lmeval
    from ce.store import Store

    root = Path(tempfile.mkdtemp(prefix="store-", dir=scratch))
    try:
        start = time.perf_counter()
        out = ingest_lmeval(Store(root), path, "bench-model")
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(root)
    return seconds, sum(o["examples"] for o in out), maxrss()


def profile_side(path: Path, scratch: Path) -> tuple[float, int, int]:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    result = ingest_side(path, scratch)
    profiler.disable()
    print(f"\ncProfile of one ingest ({result[0]:.2f} s with the profiler on), by cumulative time:")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return result


def _child(function, args, conn) -> None:
    try:
        conn.send(function(*args))
    except BaseException as e:  # reported to the parent
        conn.send(e)
    finally:
        conn.close()


def call_in_child(function, *args):
    """``function(*args)`` in a forked child process: its result."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(function, args, child))
    proc.start()
    child.close()
    result = parent.recv()
    proc.join()
    if isinstance(result, BaseException):
        raise result
    return result


def best_of(sides, path: Path, scratch: Path, repeat: int) -> list[tuple[float, int, int]]:
    """Each side ``repeat`` times, the sides taking turns (so that both meet the same load on a
    shared machine): per side the best time, the rows and the highest peak."""
    results = [[] for _ in sides]
    for _ in range(repeat):
        for side, out in zip(sides, results, strict=True):
            out.append(call_in_child(side, path, scratch))
    best = []
    for side, out in zip(sides, results, strict=True):
        rows = {r[1] for r in out}
        if len(rows) != 1:
            raise SystemExit(f"{side.__name__} read different numbers of rows: {sorted(rows)}")
        best.append((min(r[0] for r in out), rows.pop(), max(r[2] for r in out)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also profile one ingest (cProfile)")
    args = parser.parse_args()

    # imported here, before the children fork, so that neither side's time includes them
    import pyarrow.json  # noqa: F401

    import ce.extractors.ingest_lmeval  # noqa: F401
    import ce.store  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        scratch = Path(tmp)
        start = time.perf_counter()
        path = call_in_child(write_samples, scratch, args.rows, args.seed)  # keeps this process small
        size = path.stat().st_size
        print(
            f"wrote {args.rows:,} lines, {size / MIB:,.0f} MiB ({size / args.rows:,.0f} bytes/line)"
            f" in {time.perf_counter() - start:.1f} s: {path.name}",
            flush=True,
        )
        base = maxrss()
        (read_s, read_rows, read_peak), (ingest_s, ingest_rows, ingest_peak) = best_of(
            [read_side, ingest_side], path, scratch, args.repeat
        )
        if read_rows != args.rows or ingest_rows != args.rows:
            raise SystemExit(f"rows: wrote {args.rows}, read_json {read_rows}, ingest {ingest_rows}")
        ratio = (ingest_rows / ingest_s) / (read_rows / read_s)
        cores = os.cpu_count()
        print(f"rows: {args.rows:,}  (best of {args.repeat}; {cores} cores; base rss {base / MIB:,.0f} MiB)")
        print(f"{'':<26}{'seconds':>9}{'rows/s':>13}{'MiB/s':>9}{'peak MiB':>10}")
        for name, s, peak in (
            ("pyarrow.json.read_json", read_s, read_peak),
            ("ce ingest lm-eval", ingest_s, ingest_peak),
        ):
            print(f"{name:<26}{s:>9.2f}{args.rows / s:>13,.0f}{size / MIB / s:>9.0f}{peak / MIB:>10,.0f}")
        verdict = "meets" if ratio >= GOAL else "MISSES"
        print(f"speed(ingest) / speed(read_json): {ratio:.2f}  ({verdict} the goal >= {GOAL})")
        if args.profile:
            call_in_child(profile_side, path, scratch)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
