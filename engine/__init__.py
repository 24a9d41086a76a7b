"""ce: compare the behaviour of compressed language models with their large originals.

    import ce
    s = ce.open("data/store")
    s.table2(k=10).df()

Nothing heavy is imported here: the store, DuckDB and the session load on first use, and
torch only when a job runs a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import CeError, Store

__all__ = ["CeError", "Store"]


def __getattr__(name: str) -> Any:
    if name in ("Store", "CeError"):
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module 'ce' has no attribute {name!r}")
