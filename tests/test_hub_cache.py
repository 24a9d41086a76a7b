"""The Hub cache fixture, checked through the libraries that read it: huggingface_hub and
transformers run offline in a fresh interpreter, since both read HF_HUB_CACHE at import."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from .hub_cache import (
    PICKLE_ONLY,
    add_repo,
    build_hub_cache,
    git_blob_sha1,
    malicious_pickle,
    model_files,
    registry_repos,
)

PICKLE_QA = "twmkn9/distilbert-base-uncased-squad2"
NO_TOKENIZER_JSON = "mrm8488/bert-mini-finetuned-squadv2"
SAFETENSORS_MLM = "google-bert/bert-base-uncased"
LEGACY_CACHE_VARIABLES = ("PYTORCH_PRETRAINED_BERT_CACHE", "PYTORCH_TRANSFORMERS_CACHE", "TRANSFORMERS_CACHE")


def offline(cache: Path, code: str) -> dict:
    """Runs ``code`` in a fresh interpreter that sees only ``cache``, offline; returns the JSON
    it prints last. The legacy cache variables go: once a test has imported TextAttack, this
    process's environment names TextAttack's folder in them, and transformers would look there."""
    env = {k: v for k, v in os.environ.items() if k not in LEGACY_CACHE_VARIABLES}
    env |= {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def repo_dir(cache: Path, repo_id: str) -> Path:
    return cache / f"models--{repo_id.replace('/', '--')}"


def commit_of(cache: Path, repo_id: str) -> str:
    return (repo_dir(cache, repo_id) / "refs" / "main").read_text()


def snapshot_of(cache: Path, repo_id: str) -> Path:
    return repo_dir(cache, repo_id) / "snapshots" / commit_of(cache, repo_id)


def test_every_registry_hub_id_is_cached(hub_cache):
    cached = {p.name for p in hub_cache.iterdir()}
    assert cached == {repo_dir(hub_cache, r).name for r in registry_repos()}
    assert len(cached) == 14


def test_build_is_reproducible(hub_cache, tmp_path):
    commits = build_hub_cache(tmp_path)
    assert commits == {repo_id: commit_of(hub_cache, repo_id) for repo_id in registry_repos()}
    for repo_id, commit in commits.items():
        ours, theirs = (repo_dir(c, repo_id) / "snapshots" / commit for c in (tmp_path, hub_cache))
        assert {p.name: p.read_bytes() for p in ours.iterdir()} == {
            p.name: p.read_bytes() for p in theirs.iterdir()
        }


def test_layout_matches_huggingface_hub(hub_cache):
    repo = repo_dir(hub_cache, PICKLE_QA)
    commit = (repo / "refs" / "main").read_text()
    assert len(commit) == 40 and int(commit, 16) >= 0  # 40 hex digits, no newline
    snapshot = repo / "snapshots" / commit
    assert sorted(p.name for p in snapshot.iterdir()) == [
        "config.json",
        "pytorch_model.bin",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    for link in snapshot.iterdir():
        content = link.read_bytes()
        blob = os.readlink(link)
        assert blob.startswith("../../blobs/")
        lfs = link.name == "pytorch_model.bin"
        expected = hashlib.sha256(content).hexdigest() if lfs else git_blob_sha1(content)
        assert Path(blob).name == expected
    absent = sorted(p.name for p in (repo / ".no_exist" / commit).iterdir())
    assert absent == sorted(
        ["added_tokens.json", "chat_template.jinja", "model.safetensors", "model.safetensors.index.json"]
    )


def test_git_blob_sha1_is_gits_object_id(hub_cache):
    content = (snapshot_of(hub_cache, SAFETENSORS_MLM) / "config.json").read_bytes()
    git = subprocess.run(["git", "hash-object", "--stdin"], input=content, capture_output=True, check=True)
    assert git.stdout.decode().strip() == git_blob_sha1(content)


HEAD_SUFFIX = {
    "mlm": "ForMaskedLM",
    "qa": "ForQuestionAnswering",
    "classification": "ForSequenceClassification",
}


def test_weight_formats_and_tokenizer_files_follow_the_hub(hub_cache):
    for repo_id, (kind, arch) in registry_repos().items():
        snapshot = snapshot_of(hub_cache, repo_id)
        files = {p.name for p in snapshot.iterdir()}
        weights = "pytorch_model.bin" if repo_id in PICKLE_ONLY else "model.safetensors"
        assert files & {"pytorch_model.bin", "model.safetensors"} == {weights}
        assert ("tokenizer.json" in files) != repo_id.startswith(("mrm8488/", "textattack/"))
        config = json.loads((snapshot / "config.json").read_text())
        assert config["model_type"] == arch
        assert config["architectures"][0].endswith(HEAD_SUFFIX[kind])


HUB_CLIENT = """
import json
from huggingface_hub import hf_hub_download, snapshot_download, try_to_load_from_cache
from huggingface_hub.file_download import _CACHED_NO_EXIST
ids = json.loads({ids!r})
print(json.dumps({{
    "config": {{r: hf_hub_download(r, "config.json") for r in ids}},
    "snapshot": {{r: snapshot_download(r) for r in ids}},
    "no_exist": try_to_load_from_cache({pickle_qa!r}, "model.safetensors") is _CACHED_NO_EXIST,
}}))
"""


def test_hub_client_resolves_each_snapshot(hub_cache):
    commits = {repo_id: commit_of(hub_cache, repo_id) for repo_id in registry_repos()}
    found = offline(hub_cache, HUB_CLIENT.format(ids=json.dumps(list(commits)), pickle_qa=PICKLE_QA))
    for repo_id, commit in commits.items():
        snapshot = repo_dir(hub_cache, repo_id) / "snapshots" / commit
        assert found["config"][repo_id] == str(snapshot / "config.json")
        assert found["snapshot"][repo_id] == str(snapshot)
    assert found["no_exist"]


def test_add_repo_adds_a_revision(tmp_path):
    files = model_files("qa", tokenizer_json=False, seed=3)
    main = add_repo(tmp_path, "someone/tiny-qa", files)
    tagged = add_repo(tmp_path, "someone/tiny-qa", {**files, "README.md": b"v2\n"}, revision="v2")
    code = (
        "import json; from huggingface_hub import hf_hub_download as get;"
        " print(json.dumps([get('someone/tiny-qa', 'README.md', revision='v2'),"
        f" get('someone/tiny-qa', 'config.json', revision={main!r})]))"
    )
    readme, config = offline(tmp_path, code)
    assert Path(readme).parent.name == tagged != main
    assert Path(config).parent.name == main
    assert not (repo_dir(tmp_path, "someone/tiny-qa") / "refs" / main).exists()


TRANSFORMERS = """
import json
from transformers import AutoModelForMaskedLM, AutoModelForQuestionAnswering, AutoTokenizer
qa = AutoModelForQuestionAnswering.from_pretrained({pickle_qa!r})
tokenizer = AutoTokenizer.from_pretrained({no_tokenizer_json!r})
mlm, info = AutoModelForMaskedLM.from_pretrained({mlm!r}, output_loading_info=True)
print(json.dumps({{
    "qa": type(qa).__name__,
    "tokenizer": [type(tokenizer).__name__, tokenizer.is_fast, tokenizer("Paris is in France")["input_ids"]],
    "vocab": tokenizer.vocab_size,
    "mlm": [type(mlm).__name__, info["missing_keys"], info["unexpected_keys"]],
}}))
"""


@pytest.fixture(scope="module")
def loaded(hub_cache) -> dict:
    """One transformers session (its import dominates the time) loading three kinds of repo."""
    code = TRANSFORMERS.format(pickle_qa=PICKLE_QA, no_tokenizer_json=NO_TOKENIZER_JSON, mlm=SAFETENSORS_MLM)
    return offline(hub_cache, code)


def test_transformers_loads_a_pickle_only_repo(loaded):
    assert loaded["qa"] == "DistilBertForQuestionAnswering"


def test_tokenizer_without_tokenizer_json_is_converted_to_fast(loaded):
    name, fast, ids = loaded["tokenizer"]
    assert (name, fast) == ("BertTokenizerFast", True)
    assert ids[0] == 2 and ids[-1] == 3 and 1 not in ids  # [CLS] ... [SEP], every word known
    assert loaded["vocab"] > 1000


def test_masked_lm_loads_without_missing_keys(loaded):
    assert loaded["mlm"] == ["BertForMaskedLM", [], []]


def test_in_process_recipe_from_the_module_docstring(hub_cache, monkeypatch):
    import huggingface_hub
    import transformers

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(transformers.utils.hub, "TRANSFORMERS_CACHE", str(hub_cache))
    config = transformers.AutoConfig.from_pretrained("mrm8488/bert-tiny-finetuned-squadv2")
    assert config.architectures == ["BertForQuestionAnswering"]
    assert huggingface_hub.snapshot_download("mrm8488/bert-tiny-finetuned-squadv2").startswith(str(hub_cache))


def test_weights_only_load_refuses_the_malicious_pickle(tmp_path):
    import torch

    marker = tmp_path / "pwned"
    payload = malicious_pickle(marker)
    with pytest.raises(pickle.UnpicklingError, match="getattr"):
        torch.load(io.BytesIO(payload), weights_only=True)
    assert not marker.exists()


def test_unguarded_load_of_the_malicious_pickle_runs_its_code(tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "pytorch_model.bin"
    checkpoint.write_bytes(malicious_pickle(marker))
    code = (
        f"import json, torch; state = torch.load({str(checkpoint)!r}, weights_only=False);"
        " print(json.dumps(sorted(state)[:2]))"
    )
    keys = offline(tmp_path, code)
    assert marker.exists()
    assert keys == ["bert.embeddings.LayerNorm.bias", "bert.embeddings.LayerNorm.weight"]
