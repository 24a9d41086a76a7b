"""``ce attack`` vs TextAttack's own ``Attacker`` (default ``AttackArgs``): same target, same
attacker masked LM, same recipe components, same examples.

    python bench/attack.py [--examples 20] [--dataset sst2-dev] [--max-candidates 8]

Prints examples per minute of each, the ratio (goal >= 1.5x) and how many examples got the
same result and the same perturbed text. Both sides use the real-size MiniLM encoder: the
target has a seeded classification head, the attacker a MiniLM masked-LM whose head is
untrained (no trained masked LM is available offline), the similarity constraint the
packaged all-MiniLM-L6-v2. The Attacker's printing goes to /dev/null.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time

from _models import minilm_with_head

from ce.query.sql import connect


def textattack_side(target, mlm, data, options):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ce.extractors.attack import build_attack
    from ce.extractors.attack_env import import_textattack

    ta = import_textattack()
    model = AutoModelForSequenceClassification.from_pretrained(target).eval()
    wrapper = ta.models.wrappers.HuggingFaceModelWrapper(model, AutoTokenizer.from_pretrained(target))
    attack, _ = build_attack(options, wrapper, "cpu")
    dataset = ta.datasets.Dataset(
        list(zip(data.table["text"].to_pylist(), data.table["label"].to_pylist(), strict=True))
    )
    attacker = ta.Attacker(attack, dataset, ta.AttackArgs(num_examples=len(data)))
    start = time.perf_counter()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        results = attacker.attack_dataset()
    return time.perf_counter() - start, results


def ce_side(target, data_name, options):
    from ce.extractors.attack import run_attack
    from ce.store import Store

    with tempfile.TemporaryDirectory() as root:
        store = Store(f"{root}/store")
        start = time.perf_counter()
        run_attack(store, str(target), data_name, options, name="bench", progress=False)
        seconds = time.perf_counter() - start
        rows = (
            connect(store)
            .sql("select example_id, result, perturbed_text from attacks order by example_id")
            .to_arrow_table()
            .to_pylist()
        )
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--dataset", default="sst2-dev")
    parser.add_argument("--max-candidates", type=int, default=8)
    args = parser.parse_args()

    from ce.extractors.attack import AttackOptions, result_row
    from ce.extractors.datasets import load_dataset
    from ce.extractors.extract import subset

    target, mlm = minilm_with_head("classification"), minilm_with_head("mlm")
    options = AttackOptions(
        attacker=str(mlm), sentence_encoder="minilm", max_candidates=args.max_candidates, limit=args.examples
    )
    data = subset(load_dataset(args.dataset), args.examples)
    ta_s, ta_results = textattack_side(target, mlm, data, options)
    ce_s, ce_rows = ce_side(target, args.dataset, options)
    ids, labels = data.table["example_id"].to_pylist(), data.table["label"].to_pylist()
    theirs = {i: result_row(i, y, r) for i, y, r in zip(ids, labels, ta_results, strict=True)}
    same = sum(
        r["result"] == theirs[r["example_id"]]["result"]
        and r["perturbed_text"] == theirs[r["example_id"]]["perturbed_text"]
        for r in ce_rows
    )
    n = len(ids)
    print(f"{n} {args.dataset} examples, BERT-Attack, max_candidates {args.max_candidates}")
    print(f"  TextAttack Attacker  {ta_s:7.1f}s  {60 * n / ta_s:7.1f} examples/min")
    print(
        f"  ce attack            {ce_s:7.1f}s  {60 * n / ce_s:7.1f} examples/min"
        " (including loading the target and writing the store)"
    )
    print(
        f"  speed-up {ta_s / ce_s:.2f}x (goal >= 1.5x); same result and perturbed text on {same}/{n} examples"
    )


if __name__ == "__main__":
    main()
