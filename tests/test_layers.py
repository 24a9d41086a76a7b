"""The folders are the layers, and imports only point down (or stay in their layer).

    1 ce.store       engine/store/   files: parts, run records, bundles
    2 ce.query       engine/query/   the SQL library (sql/), measures, comparisons
    3 ce.extractors  extractors/     jobs that run models and write to the store
    4 ce.session     engine/session  one object with the comparisons and the jobs (import ce)
    5 ce.cli         engine/cli/     the command line, the report, the demo

Every import counts, also one inside a function: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"engine": "ce", "extractors": "ce.extractors", "sql": "ce.sql"}
LAYERS = ["ce.store", "ce.sql", "ce.query", "ce.extractors", "ce.session", "ce", "ce.cli"]
RANK = {"ce.store": 1, "ce.sql": 2, "ce.query": 2, "ce.extractors": 3, "ce.session": 4, "ce": 4, "ce.cli": 5}


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = [FOLDERS[relative.parts[0]], *relative.parts[1:]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    """The layer a module belongs to: the longest layer name that prefixes it."""
    return max((name for name in RANK if module == name or module.startswith(name + ".")), key=len)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every ce import in ``path``, relative ones resolved."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "ce"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ce":
                continue
            names = [f"{target}.{a.name}" for a in node.names]  # `from . import atomic`
            found += [(node.lineno, n if _is_module(n) else target) for n in names]
    return found


def _is_module(name: str) -> bool:
    parts = name.split(".")
    folder = {"ce": ROOT / "engine", "ce.extractors": ROOT / "extractors"}
    for prefix in ("ce.extractors", "ce"):
        if name.startswith(prefix + "."):
            rest = name[len(prefix) + 1 :].split(".")
            path = folder[prefix].joinpath(*rest)
            return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()
    return len(parts) == 1


def test_imports_only_point_down():
    wrong = []
    for top in ("engine", "extractors"):
        for path in sorted((ROOT / top).rglob("*.py")):
            own = layer(module_name(path))
            for line, target in imports(path):
                if RANK[layer(target)] > RANK[own]:
                    wrong.append(
                        f"{path.relative_to(ROOT)}:{line} ({own}) imports {target} ({layer(target)})"
                    )
    assert not wrong, "imports that point up a layer:\n" + "\n".join(wrong)


def test_the_rule_sees_an_upward_import(tmp_path, monkeypatch):
    """The check can fail: a store module importing the query layer is caught."""
    fake = ROOT / "engine" / "store" / "store.py"
    source = fake.read_text() + "\n\ndef _f():\n    from ce.query.sql import connect\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source if self == fake else _read(self))
    assert any(target == "ce.query.sql" for _, target in imports(fake))
    assert RANK[layer("ce.query.sql")] > RANK[layer(module_name(fake))]


_read = Path.read_text


def test_import_ce_and_a_table_load_no_model_library(store_dir):
    """``import ce; ce.open(STORE).table2()`` imports neither torch nor transformers."""
    from .test_sql import write_store

    write_store(store_dir, {"a": {"x1"}, "b": {"x2"}})
    code = (
        f"import sys, ce; s = ce.open({str(store_dir)!r}); s.table2().arrow();"
        " heavy = [m for m in ('torch', 'transformers', 'datasets', 'faiss', 'textattack')"
        " if m in sys.modules];"
        " print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
