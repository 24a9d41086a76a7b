"""Real lm-evaluation-harness per-example sample logs, written offline for ``ce ingest lm-eval``.

``lm_eval_logs(workdir)`` builds two tiny random-init GPT-2 models (a byte-level BPE tokenizer
trained on SST-2 train sentences, different seeds), writes a local JSONL of multiple-choice
docs made from real SST-2 dev sentences (CE_DATA_DIR), local task YAMLs, and runs the real
``lm_eval.simple_evaluate`` on CPU, saving what it returns exactly as the ``lm_eval`` CLI does
with ``--output_path --log_samples`` (``EvaluationTracker.save_results_aggregated`` and
``save_results_samples``):

    <out>/<model_name_sanitized>/results_<date>.json
    <out>/<model_name_sanitized>/samples_<task>_<date>.jsonl

Runs (each into its own output folder):

- ``a`` and ``b``: both models on the multiple-choice task ``ce_sst2_mc`` (4 choices, acc and
  acc_norm) and the generation task ``ce_sst2_gen`` (generate_until, exact_match);
- ``a_variant``: model A on a second ``ce_sst2_mc`` (same task name, same docs, same choices)
  whose doc_to_text is another prompt template, so every prompt_hash differs from run ``a``.

Nothing is fetched: the Hub and datasets are offline, the dataset is a local JSON file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MC_TASK = "ce_sst2_mc"
GEN_TASK = "ce_sst2_gen"
CHOICES = ["negative", "positive", "mixed", "neutral"]  # SST-2 gold is 0 or 1; lengths differ
MC_PROMPT = "{{sentence}}\nQuestion: Is this sentence positive or negative?\nAnswer:"
MC_PROMPT_VARIANT = "Review: {{sentence}}\nSentiment:"
SEEDS = {"a": 0, "b": 1}

_OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def data_dir() -> Path:
    return Path(os.environ.get("CE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def _sst2(name: str) -> list[tuple[str, int]]:
    lines = (data_dir() / "sst2" / name).read_text(encoding="utf-8").splitlines()[1:]
    rows = []
    for line in lines:
        text, label = line.rsplit("\t", 1)
        rows.append((text.strip(), int(label)))
    return rows


def build_tokenizer(folder: Path, texts: list[str]):
    """A byte-level BPE (GPT-2 style) tokenizer trained on ``texts``, saved to ``folder``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts, vocab_size=3000, min_frequency=2, special_tokens=["<|endoftext|>"], show_progress=False
    )
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=256,
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_models(root: Path, texts: list[str]) -> dict[str, Path]:
    """Two random-init GPT-2s (2 layers, width 64, ~0.3M params) sharing one tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tok_dir = root / "tokenizer"
    tokenizer = build_tokenizer(tok_dir, texts)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=0.2,  # sharper random preferences: the two models disagree more often
    )
    folders = {}
    for name, seed in SEEDS.items():
        torch.manual_seed(seed)
        folder = root / f"model_{name}"
        GPT2LMHeadModel(config).eval().save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[name] = folder
    return folders


def write_dataset(path: Path, n_docs: int) -> Path:
    """The first ``n_docs`` SST-2 dev sentences as JSONL docs: idx, sentence, label, choices, answer."""
    rows = _sst2("sst2_dev.tsv")[:n_docs]
    with path.open("w", encoding="utf-8") as f:
        for idx, (sentence, label) in enumerate(rows):
            doc = {
                "idx": idx,
                "sentence": sentence,
                "label": label,
                "choices": CHOICES,
                "answer": CHOICES[label],
            }
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return path


def _yaml(task: str, data_file: Path, cache_dir: Path, body: dict) -> str:
    config = {
        "task": task,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}, "cache_dir": str(cache_dir)},
        "test_split": "test",
        **body,
        "metadata": {"version": 1.0},
    }
    return json.dumps(config, indent=2) + "\n"  # JSON is YAML; no quoting surprises


def write_tasks(root: Path, data_file: Path, cache_dir: Path) -> dict[str, Path]:
    """Task folders for TaskManager(include_path=...): 'main' (mc + gen) and 'variant' (mc only,
    another prompt template under the same task name)."""
    mc = {
        "output_type": "multiple_choice",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "label",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
    }
    gen = {
        "output_type": "generate_until",
        "doc_to_text": "{{sentence}}\nSentiment (negative or positive):",
        "doc_to_target": "answer",
        "target_delimiter": " ",
        "generation_kwargs": {"until": ["\n"], "max_gen_toks": 4, "do_sample": False},
        "metric_list": [
            {
                "metric": "exact_match",
                "aggregation": "mean",
                "higher_is_better": True,
                "ignore_case": True,
                "ignore_punctuation": True,
            }
        ],
    }
    folders = {"main": root / "tasks_main", "variant": root / "tasks_variant"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    (folders["main"] / f"{MC_TASK}.yaml").write_text(
        _yaml(MC_TASK, data_file, cache_dir, {**mc, "doc_to_text": MC_PROMPT})
    )
    (folders["main"] / f"{GEN_TASK}.yaml").write_text(_yaml(GEN_TASK, data_file, cache_dir, gen))
    (folders["variant"] / f"{MC_TASK}.yaml").write_text(
        _yaml(MC_TASK, data_file, cache_dir, {**mc, "doc_to_text": MC_PROMPT_VARIANT})
    )
    return folders


def run_lm_eval(model_dir: Path, tasks: list[str], include_path: Path, output_path: Path) -> dict[str, Path]:
    """What ``lm_eval run --model hf --model_args pretrained=<dir> --device cpu --tasks ...
    --include_path <dir> --output_path <out> --log_samples`` does; returns task -> samples file
    plus 'results' -> the aggregated results file."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    tracker = EvaluationTracker(output_path=str(output_path))
    results = simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype=float32",
        tasks=tasks,
        batch_size=8,
        device="cpu",
        log_samples=True,
        evaluation_tracker=tracker,
        task_manager=TaskManager(include_path=str(include_path), include_defaults=False),
    )
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    folder = output_path / tracker.general_config_tracker.model_name_sanitized
    files = {"results": folder / f"results_{tracker.date_id}.json"}
    for task_name in results["configs"]:
        files[task_name] = folder / f"samples_{task_name}_{tracker.date_id}.jsonl"
    return files


def lm_eval_logs(workdir: Path, n_docs: int = 40) -> dict:
    """Build the models, dataset and tasks under ``workdir`` and write real lm-eval logs.

    Returns {
      'dataset': JSONL path, 'n_docs': int, 'choices': the MC choices,
      'tasks': {'mc': 'ce_sst2_mc', 'gen': 'ce_sst2_gen'},
      'task_dirs': {'main': folder, 'variant': folder},
      'models': {'a': folder, 'b': folder},
      'runs': {'a' | 'b' | 'a_variant': {'output_path': folder, 'model': 'a' | 'b',
               'results': results_<date>.json, 'ce_sst2_mc': samples file,
               'ce_sst2_gen': samples file (not for a_variant)}},
    }
    """
    for key, value in _OFFLINE.items():
        os.environ.setdefault(key, value)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    texts = [text for text, _ in _sst2("sst2_train.tsv")[:4000]]
    models = build_models(workdir, texts)
    dataset = write_dataset(workdir / "sst2_mc.jsonl", n_docs)
    task_dirs = write_tasks(workdir, dataset, workdir / "hf_datasets_cache")
    runs = {}
    for run, model, tasks, include in [
        ("a", "a", [MC_TASK, GEN_TASK], task_dirs["main"]),
        ("b", "b", [MC_TASK, GEN_TASK], task_dirs["main"]),
        ("a_variant", "a", [MC_TASK], task_dirs["variant"]),
    ]:
        output_path = workdir / f"out_{run}"
        files = run_lm_eval(models[model], tasks, include, output_path)
        runs[run] = {"output_path": output_path, "model": model, **files}
    return {
        "dataset": dataset,
        "n_docs": n_docs,
        "choices": CHOICES,
        "tasks": {"mc": MC_TASK, "gen": GEN_TASK},
        "task_dirs": task_dirs,
        "models": models,
        "runs": runs,
    }


if __name__ == "__main__":  # python -m tests.lmeval_logs <workdir> [n_docs]
    import sys
    import time

    start = time.perf_counter()
    out = lm_eval_logs(Path(sys.argv[1]), *(int(a) for a in sys.argv[2:3]))
    print(json.dumps(out, indent=2, default=str))
    print(f"{time.perf_counter() - start:.1f} s")
