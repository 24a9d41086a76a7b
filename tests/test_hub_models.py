"""The paper's checkpoints through a Hugging Face cache laid out as the Hub client writes it
(tests/hub_cache.py): every alias loads with the default flags, pickle-only repositories
through torch's weights-only unpickler, hostile pickles are refused by every command before
any code runs, revisions resolve to the commit read, and Hub failures say which they are."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from ce.cli import cli
from ce.extractors.datasets import load_dataset
from ce.extractors.extract import ExtractOptions, extract
from ce.extractors.registry import MODELS
from ce.query.sql import connect
from ce.store.store import Store

from .conftest import REPO, snapshot
from .hub_cache import PICKLE_ONLY, add_repo, malicious_pickle, model_files

EVIL = "evil-lab/bert-base-uncased-squad2"


@pytest.fixture
def hub(hub_cache, monkeypatch) -> Path:
    """The session's Hub cache, seen by huggingface_hub in this process (offline)."""
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub_cache


def repo_dir(cache: Path, repo_id: str) -> Path:
    return cache / f"models--{repo_id.replace('/', '--')}"


def commit_of(cache: Path, repo_id: str, ref: str = "main") -> str:
    return (repo_dir(cache, repo_id) / "refs" / ref).read_text()


def blob_name(cache: Path, repo_id: str, filename: str) -> str:
    """The etag the Hub client stored the file under: its sha256 for weights (LFS)."""
    snapshot_file = repo_dir(cache, repo_id) / "snapshots" / commit_of(cache, repo_id) / filename
    return Path(os.path.realpath(snapshot_file)).name


def test_every_alias_extracts_through_the_cache_with_default_flags(hub, store_dir):
    """squad2-dev fine-tuned and pretrained for every alias, imdb-1k where it has an IMDB
    checkpoint; the record names the commit, the format and the sha256 of what was read."""
    store = Store(store_dir)
    squad, imdb = load_dataset("squad2-dev"), load_dataset("imdb-1k")
    expected = {}
    for alias, spec in MODELS.items():
        steps = [("pretrained", squad, spec.pretrained)]
        if "qa" in spec.finetuned:
            steps.append(("finetuned", squad, spec.finetuned["qa"]))
        if "classification" in spec.finetuned:
            steps.append(("finetuned", imdb, spec.finetuned["classification"]))
        for stage, data, repo_id in steps:
            result = extract(
                store, alias, data, ExtractOptions(stage=stage, limit=4, k_max=2), progress=False
            )
            expected[result.run_id] = repo_id
    assert len(expected) == 15  # 7 pretrained, 6 SQuAD 2.0 and 2 IMDB checkpoints
    for record in store.runs():
        repo_id, target = expected[record["run_id"]], record["loaded"]["target"]
        assert target["source"].endswith(repo_id.split("/")[-1]) or repo_id.startswith("package:")
        if repo_id.startswith("package:"):
            continue
        assert target["revision"] == commit_of(hub, repo_id)
        weights = "pytorch_model.bin" if repo_id in PICKLE_ONLY else "model.safetensors"
        assert target["format"] == ("pickle (weights-only)" if repo_id in PICKLE_ONLY else "safetensors")
        assert target["sha256"][weights] == blob_name(hub, repo_id, weights)
        assert {"config.json", "vocab.txt"} <= set(target["sha256"])  # every file read
    con = connect(store)
    counts = dict(con.sql("select model, count(*) from predictions group by model").fetchall())
    assert counts == {
        "bert-large": 4,
        "bert-base": 8,  # squad2-dev and imdb-1k
        "distilbert": 8,
        "bert-medium": 4,
        "bert-mini": 4,
        "bert-tiny": 4,
    }


def test_the_cli_loads_a_pickle_only_checkpoint_by_default(hub, store_dir):
    result = CliRunner().invoke(
        cli, ["extract", "-m", "distilbert", "-d", "imdb-1k", "--limit", "3", "--store", str(store_dir)]
    )
    assert result.exit_code == 0, result.output
    [record] = Store(store_dir).runs()
    assert record["loaded"]["target"]["format"] == "pickle (weights-only)"
    weights = record["identity"]["weights"]["target"]
    assert weights["pytorch_model.bin"] == blob_name(
        hub, "textattack/distilbert-base-uncased-imdb", "pytorch_model.bin"
    )


@pytest.fixture
def evil(hub, tmp_path, tiny_models) -> dict:
    """A hostile QA checkpoint under a Hub id and in a local folder: unpickling it without
    torch's weights-only guard creates ``marker``."""
    marker = tmp_path / "pwned"
    files = model_files("qa")
    files.pop("model.safetensors")
    files["pytorch_model.bin"] = malicious_pickle(marker)
    add_repo(hub, EVIL, files, absent=("model.safetensors", "model.safetensors.index.json"))
    folder = tmp_path / "evil-folder"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return {"marker": marker, "folder": str(folder), "tiny": tiny_models}


def hostile_commands(evil: dict, tmp_path: Path) -> dict[str, list[str]]:
    tiny = evil["tiny"]
    grid = tmp_path / "grid.toml"
    grid.write_text(f'[[extract]]\nmodels = ["{EVIL}"]\ndatasets = ["sst2-dev"]\nlimit = 2\n')
    return {
        "extract (Hub id)": ["extract", "-m", EVIL, "-d", "squad2-dev", "--limit", "2"],
        "extract (folder)": ["extract", "-m", evil["folder"], "-d", "sst2-dev", "--limit", "2"],
        "extract pretrained": [
            "extract",
            "-m",
            EVIL,
            "-d",
            "sst2-dev",
            "--stage",
            "pretrained",
            "--limit",
            "2",
        ],
        "ood": [
            "ood",
            "-m",
            EVIL,
            "--bank",
            "squadshifts-new-wiki",
            "--id-val",
            "squad2-dev",
            "-d",
            "newsqa-sample",
            "--limit",
            "30",
        ],
        "attack target": ["attack", "-m", EVIL, "-d", "imdb-1k", "--limit", "1"],
        "attack attacker": ["attack", "-m", str(tiny["classification"]), "--attacker", EVIL, "--limit", "1"],
        "attack sentence encoder": [
            "attack",
            "-m",
            str(tiny["classification"]),
            "--attacker",
            str(tiny["mlm"]),
            "--sentence-encoder",
            evil["folder"],
            "--limit",
            "1",
        ],  # fmt: skip
        "compress": ["compress", "-m", EVIL, "--method", "layers:1", "-o", "small"],
        "distill": [
            "compress",
            "-m",
            EVIL,
            "--method",
            "distill:1",
            "-d",
            "sst2-dev",
            "--limit",
            "4",
            "-o",
            "s",
        ],
        "finetune": [
            "finetune",
            "-m",
            EVIL,
            "--task",
            "classification",
            "-d",
            "sst2-dev",
            "--limit",
            "4",
            "-o",
            "f",
        ],
        "run": ["run", str(grid)],
    }


@pytest.mark.parametrize(
    "command",
    [
        "extract (Hub id)",
        "extract (folder)",
        "extract pretrained",
        "ood",
        "attack target",
        "attack attacker",
        "attack sentence encoder",
        "compress",
        "distill",
        "finetune",
        "run",
    ],
)
def test_a_pickle_that_runs_code_is_refused_by_every_command(evil, tmp_path, store_dir, command):
    store_dir.mkdir()
    Store(store_dir).runs()
    before = snapshot(store_dir)
    args = hostile_commands(evil, tmp_path)[command]
    result = CliRunner().invoke(cli, [*args, "--store", str(store_dir)])
    assert result.exit_code != 0
    assert "--allow-pickle" in result.output and "needs getattr" in result.output, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not evil["marker"].exists()  # no code ran
    assert snapshot(store_dir) == before


def test_allow_pickle_is_the_users_word_that_the_source_is_trusted(evil, store_dir):
    """With --allow-pickle the full unpickler runs (which is why it is not the default):
    the marker appears, and the record says the pickle was trusted."""
    result = CliRunner().invoke(
        cli,
        [
            "extract",
            "-m",
            EVIL,
            "-d",
            "squad2-dev",
            "--limit",
            "2",
            "--allow-pickle",
            "--store",
            str(store_dir),
        ],
    )
    assert evil["marker"].exists()
    assert result.exit_code != 0  # its weights are not a model: the payload took a tensor's place
    assert "Traceback" not in result.output


def test_revision_picks_the_commit_that_is_read_and_recorded(hub, store_dir, tmp_path):
    """A second commit on main; --revision with the first commit reads the first snapshot
    (in an experiment file too) and records that commit, the default records the second."""
    repo_id = "lab/tiny-sst2"
    first = add_repo(hub, repo_id, model_files("classification", seed=1))
    second = add_repo(hub, repo_id, model_files("classification", seed=2))
    assert first != second and commit_of(hub, repo_id) == second
    store = Store(store_dir)
    data = load_dataset("sst2-dev")
    extract(store, repo_id, data, ExtractOptions(limit=3, k_max=None), name="new", progress=False)
    extract(
        store, repo_id, data, ExtractOptions(limit=3, k_max=None, revision=first), name="old", progress=False
    )
    loaded = {r["model"]: r["loaded"]["target"] for r in store.runs()}
    assert loaded["old"]["revision"] == first and loaded["new"]["revision"] == second
    assert loaded["old"]["sha256"] != loaded["new"]["sha256"]
    grid = tmp_path / "grid.toml"
    grid.write_text(
        f'[[extract]]\nmodels = [{{ name = "pinned", model = "{repo_id}", revision = "{first}" }}]\n'
        'datasets = ["sst2-dev"]\nlimit = 3\nk_max = 2\n'
    )
    result = CliRunner().invoke(cli, ["run", str(grid), "--store", str(store_dir)])
    assert result.exit_code == 0, result.output
    pinned = [r for r in Store(store_dir).runs() if r["model"] == "pinned"]
    assert pinned[0]["loaded"]["target"]["revision"] == first
    missing = CliRunner().invoke(
        cli, ["extract", "-m", repo_id, "-d", "sst2-dev", "--revision", "v9", "--store", str(store_dir)]
    )
    assert missing.exit_code != 0 and "not in the Hugging Face cache" in missing.output
    assert "revision 'v9'" in missing.output


def test_a_damaged_blob_and_a_partial_cache_are_named(hub, store_dir):
    repo_id = "lab/damaged"
    add_repo(hub, repo_id, model_files("classification", seed=3))
    blob = Path(
        os.path.realpath(repo_dir(hub, repo_id) / "snapshots" / commit_of(hub, repo_id) / "model.safetensors")
    )
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1  # same size, one bit off: only the hash tells
    blob.write_bytes(bytes(data))
    runner = CliRunner()
    result = runner.invoke(cli, ["extract", "-m", repo_id, "-d", "sst2-dev", "--store", str(store_dir)])
    assert result.exit_code != 0 and "not the" in result.output and "hf cache delete" in result.output
    partial = "lab/partial"
    add_repo(hub, partial, {"config.json": model_files("qa")["config.json"]})
    result = runner.invoke(cli, ["extract", "-m", partial, "-d", "sst2-dev", "--store", str(store_dir)])
    assert result.exit_code != 0 and "holds only part of lab/partial" in result.output, result.output
    result = runner.invoke(
        cli, ["extract", "-m", "lab/never-seen", "-d", "sst2-dev", "--store", str(store_dir)]
    )
    assert result.exit_code != 0 and "not in the Hugging Face cache" in result.output
    assert "HF_HUB_OFFLINE" in result.output
    assert not store_dir.exists()


class HubDouble(BaseHTTPRequestHandler):
    """The Hub's answers for a gated, a missing and a broken repository, as headers and
    status codes (huggingface_hub reads X-Error-Code to raise its typed errors)."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        if "/gated-lab/" in self.path:
            self._answer(403, "GatedRepo", "Access to model gated-lab/x is restricted.")
        elif "/missing-lab/" in self.path:
            self._answer(404, "RepoNotFound", "Repository not found")
        else:
            self._answer(503, None, "Service Unavailable")

    do_HEAD = do_GET

    def _answer(self, status: int, code: str | None, message: str):
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def log_message(self, *args):
        pass


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hub_message(endpoint: str, repo_id: str, cache: Path) -> str:
    """The error line ce gives for ``repo_id`` with the Hub at ``endpoint`` (online mode, in a
    subprocess, since huggingface_hub reads its endpoint at import)."""
    code = (
        "from ce.extractors.loading import hub_snapshot\n"
        "from ce.store.errors import CeError\n"
        f"try:\n    hub_snapshot({repo_id!r}, None)\nexcept CeError as e:\n    print(e)\n"
    )
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_ETAG_TIMEOUT": "3",
        "HF_HUB_DOWNLOAD_TIMEOUT": "3",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_hub_failures_say_which_they_are(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubDouble)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hub = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        gated = _hub_message(hub, "gated-lab/x", tmp_path)
        missing = _hub_message(hub, "missing-lab/x", tmp_path)
        down = _hub_message(hub, "busy-lab/x", tmp_path)
    finally:
        server.shutdown()
    unreachable = _hub_message(f"http://127.0.0.1:{_closed_port()}", "any-lab/x", tmp_path)
    assert "is gated" in gated and "hf auth login" in gated
    assert "no model missing-lab/x on the Hugging Face Hub" in missing
    assert "unreachable" in down or "answered 503" in down, down
    assert "unreachable" in unreachable and "any-lab/x is not in the cache" in unreachable, unreachable


def test_paper_grid_runs_offline_through_the_cache_and_reruns_only_what_changed(hub, store_dir, tmp_path):
    """data/experiments/paper.toml as shipped, on 60 examples a step (2 for the attacks, 30
    model queries each: a full BERT-Attack of an IMDB review takes minutes here), through the
    cache. SQuAD 2.0 train and the full NewsQA are not here, so the OOD section scores
    newsqa-sample against a SQuADShifts (new Wikipedia) bank; every other line of the file
    is the shipped one."""
    text = (REPO / "data" / "experiments" / "paper.toml").read_text()
    assert 'bank = "squad2-train"' in text and 'datasets = ["newsqa"]' in text
    grid = tmp_path / "paper.toml"
    grid.write_text(
        text.replace('bank = "squad2-train"', 'bank = "squadshifts-new-wiki"')
        .replace('datasets = ["newsqa"]', 'datasets = ["newsqa-sample"]')
        .replace("max_candidates = 48", "max_candidates = 48\nlimit = 2\nquery_budget = 30")
    )
    runner = CliRunner()

    def run(*extra: str) -> list[str]:
        result = runner.invoke(cli, ["run", str(grid), "--store", str(store_dir), *extra])
        assert result.exit_code == 0, result.output
        return [line for line in result.output.splitlines() if re.fullmatch(r"\[\d+/\d+\] .+\)", line)]

    first = run("--limit", "60")
    assert len(first) == 6 * 2 + 6 + 2  # extract x stages, ood, attack
    assert all("(not in the store)" in line for line in first), first
    assert run("--limit", "60") == []  # an unchanged file computes nothing
    grid.write_text(grid.read_text().replace("max_candidates = 48", "max_candidates = 8"))
    changed = run("--limit", "60")
    assert len(changed) == 2 and all("max_candidates 48 -> 8" in line for line in changed), changed
    more = run("--limit", "61")  # the extract and ood limits change; the attacks' stay at 2
    assert len(more) == 6 * 2 + 6 and all("limit 60 -> 61" in line for line in more), more
    grid.write_text(grid.read_text().replace("limit = 2", "limit = 3"))
    attacks = run("--limit", "61")  # the attacks continue their series by one example
    assert len(attacks) == 2 and all("2 examples done before" in line for line in attacks), attacks
