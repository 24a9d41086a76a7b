"""A Hub out of reach costs one probe of a few seconds and one line (extractors/hub.py): no
retries, cached models and datasets still load without an offline switch, and anything else
says at once what to set. The CLI runs in a fresh interpreter, since huggingface_hub reads
HF_ENDPOINT and HF_HUB_OFFLINE at import; the Hub is a closed port or a socket that never
answers, so nothing reaches the network. Also: the model facts a run record keeps
(parameters, non-zero ones, bytes on disk), and the data folder that `make install` writes
into the venv's activate scripts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ce.extractors.extract import ExtractOptions, extract
from ce.query.sql import connect
from ce.store import Store

from .conftest import DATA_DIR, REPO, needs_data
from .hub_cache import add_repo, model_files

CE = "import sys; from ce.cli import main; sys.argv[0] = 'ce'; main()"
# set by TextAttack (imported by other tests) or by the user: each would point the child elsewhere
CLEARED = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HF_HUB_CACHE",
    "HF_DATASETS_CACHE",
    "XDG_CACHE_HOME",
    "PYTORCH_PRETRAINED_BERT_CACHE",
    "PYTORCH_TRANSFORMERS_CACHE",
    "TRANSFORMERS_CACHE",
    "CE_DATA_DIR",
)


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@contextlib.contextmanager
def silent_hub():
    """A Hub that takes connections and never answers (a firewall that drops, a hung proxy):
    the case where huggingface_hub waited ten seconds a try, or for ever."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def online(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """No offline switch and no CE_DATA_DIR, the Hub at ``endpoint``, caches under tmp_path."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    return env | {"HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": endpoint, **extra}


def run(env: dict[str, str], *args: str, code: str = CE) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    return done, time.monotonic() - started


@pytest.mark.parametrize("hub", ["closed", "silent"])
def test_a_dataset_from_an_unreachable_hub_fails_in_one_line_within_seconds(tmp_path, hub):
    with silent_hub() if hub == "silent" else contextlib.nullcontext(closed_port()) as endpoint:
        done, seconds = run(
            online(tmp_path, endpoint),
            *("extract", "--model", "minilm", "--dataset", "squad2-train", "--limit", "5"),
            *("--store", str(tmp_path / "store")),
        )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert seconds < 10, (seconds, done.stderr)
    line = lines[0]
    assert line.startswith("Error: could not load squad2-train from the Hugging Face Hub (rajpurkar/")
    assert f"the Hub at {endpoint} cannot be reached and no copy is cached" in line
    assert "CE_DATA_DIR" in line and "HF_HUB_OFFLINE=1" in line
    assert not (tmp_path / "store").exists()


# a datasets cache as `datasets` leaves it after loading a Hub dataset (here: built from a
# local Parquet file, then moved to where ce-tests/ghost-data would be cached)
CACHE_A_DATASET = """
import json, shutil, sys
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq
import datasets as hf
home = Path(sys.argv[1])
rows = {"idx": [0, 1], "sentence": ["a fine film", "a dull film"], "label": [1, 0]}
pq.write_table(pa.table(rows), home / "validation.parquet")
files = {"validation": str(home / "validation.parquet")}
ds = hf.load_dataset("parquet", data_files=files, split="validation")
built = Path(ds.cache_files[0]["filename"]).parent
cached = home / "datasets" / "ce-tests___ghost-data" / "default" / "0.0.0" / built.name
cached.mkdir(parents=True)
shutil.copy(built / "parquet-validation.arrow", cached / "ghost-data-validation.arrow")
info = json.loads((built / "dataset_info.json").read_text())
info["dataset_name"] = "ghost-data"
for split in info["splits"].values():
    split["dataset_name"] = "ghost-data"
(cached / "dataset_info.json").write_text(json.dumps(info))
"""
LOAD_GHOST = """
from ce.extractors import datasets as d
hub = ("ce-tests/ghost-data", None, "validation")
d.DATASETS["ghost"] = d.DatasetSpec("ghost", "classification", None, hub, "")
print(d.load_dataset("ghost").table.column("text").to_pylist())
"""


def test_a_cached_dataset_loads_with_the_hub_unreachable_and_no_offline_switch(tmp_path):
    env = online(tmp_path, closed_port())
    home = Path(env["HF_HOME"])
    home.mkdir()
    built, _ = run(env | {"HF_HUB_OFFLINE": "1"}, str(home), code=CACHE_A_DATASET)
    assert built.returncode == 0, built.stderr
    done, seconds = run(env, code=LOAD_GHOST)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['a fine film', 'a dull film']"
    assert done.stderr.strip() == "" and seconds < 10  # no retries, no cache warnings


@needs_data("sst2/sst2_dev.tsv")
@pytest.mark.parametrize("hub", ["closed", "silent"])
def test_a_cached_model_loads_with_the_hub_unreachable_and_no_offline_switch(tmp_path, hub):
    add_repo(tmp_path / "hf-home" / "hub", "lab/cached", model_files("classification", seed=5))
    with silent_hub() if hub == "silent" else contextlib.nullcontext(closed_port()) as endpoint:
        env = online(tmp_path, endpoint, CE_DATA_DIR=str(DATA_DIR))
        store = tmp_path / "store"
        args = ("-d", "sst2-dev", "--limit", "3", "--store", str(store))
        done, _ = run(env, "extract", "-m", "lab/cached", *args)
        missing, seconds = run(env, "extract", "-m", "lab/not-cached", *args)
    assert done.returncode == 0, done.stderr
    assert "lab--cached on sst2-dev: 3 examples" in done.stderr + done.stdout
    [record] = [json.loads(p.read_text()) for p in (store / "runs").glob("*.json")]
    assert record["loaded"]["target"]["revision"] is not None  # the cached commit, read offline
    lines = missing.stderr.strip().splitlines()
    assert missing.returncode == 1 and len(lines) == 1 and seconds < 10, (seconds, missing.stderr)
    line = lines[0]
    assert f"the Hugging Face Hub ({endpoint}) is unreachable and lab/not-cached is not in the cache" in line
    assert "must be cached" in line and "local model folder" in line and "HF_HUB_OFFLINE=1" in line


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


@needs_data("sst2/sst2_dev.tsv")
def test_a_run_record_keeps_the_models_parameters_and_bytes(tiny_models, store_dir):
    from transformers import AutoModelForSequenceClassification

    from ce.extractors.compress import compress

    store = Store(store_dir)
    folder = tiny_models["classification"]
    compress(store, str(folder), "int8", "int8")
    compress(store, str(folder), "prune:0.5", "half")
    for model in (str(folder), "int8", "half"):
        extract(store, model, "sst2-dev", ExtractOptions(limit=4), progress=False)
    runs = {r["model"]: r for r in store.runs() if r["command"] == "extract"}
    weights = sum(p.numel() for p in AutoModelForSequenceClassification.from_pretrained(folder).parameters())
    plain, int8, half = runs["tiny-classification"], runs["int8"], runs["half"]
    assert plain["model_parameters"] == weights
    assert plain["model_bytes"] == _folder_bytes(folder)  # every file of the folder is read
    # int8 weights live packed outside parameters(); they count all the same
    assert int8["model_parameters"] == weights and int8["model_nonzero_parameters"] <= weights
    assert int8["model_bytes"] == _folder_bytes(store.model_dir("int8"))  # loaded from float files
    assert half["model_parameters"] == weights
    assert half["model_nonzero_parameters"] < plain["model_nonzero_parameters"]  # pruned zeroes
    con = connect(store)
    got = dict(con.sql("select model, json_extract(provenance, '$.model_bytes') from runs").fetchall())
    assert int(got["half"]) == half["model_bytes"]
    models = {m: (p, b) for m, p, b in con.sql("select model, parameters, bytes from models").fetchall()}
    assert models["half"] == (half["model_nonzero_parameters"], half["model_bytes"])


def test_parameter_counts_of_a_quantised_model():
    import torch

    from ce.extractors.loading import parameter_counts

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 3))
    assert parameter_counts(model) == (40 + 12 + 3, 55)
    quantised = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    assert sum(p.numel() for p in quantised.parameters()) == 40  # what parameters() alone misses
    assert parameter_counts(quantised)[0] == 55
    embedding = torch.ao.quantization.quantize_dynamic(
        model, {torch.nn.Embedding: torch.ao.quantization.float_qparams_weight_only_qconfig}
    )
    assert parameter_counts(embedding) == (None, None)  # packed weights it cannot count


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_install_teaches_the_activate_scripts_the_data_folder_once(tmp_path):
    venv, data = tmp_path / "venv", tmp_path / "data"
    (venv / "bin").mkdir(parents=True)
    data.mkdir()
    for name, text in {"activate": "hash -r\n", "activate.fish": "end\n", "activate.csh": "rehash\n"}.items():
        (venv / "bin" / name).write_text(text)
    make = ["make", "-s", "-C", str(REPO), "install", f"VENV={venv}", f"CE_DATA_DIR={data}"]
    for _ in range(2):  # -o: the venv counts as installed, so only the scripts are rewritten
        subprocess.run([*make, "-o", f"{venv}/.installed"], check=True, capture_output=True)
    for name in ("activate", "activate.fish", "activate.csh"):
        lines = (venv / "bin" / name).read_text().splitlines()
        assert len(lines) == 2 and str(data) in lines[1], lines
    env = {k: v for k, v in os.environ.items() if k != "CE_DATA_DIR"}
    shell = ["sh", "-c", f". {venv}/bin/activate; echo $CE_DATA_DIR"]
    assert subprocess.run(shell, env=env, capture_output=True, text=True).stdout.strip() == str(data)
    kept = subprocess.run(shell, env=env | {"CE_DATA_DIR": "/mine"}, capture_output=True, text=True)
    assert kept.stdout.strip() == "/mine"
    subprocess.run([*make, "-o", f"{venv}/.installed", f"CE_DATA_DIR={tmp_path}/gone"], check=True)
    assert (venv / "bin" / "activate").read_text() == "hash -r\n"  # no folder, no default
