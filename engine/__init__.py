"""ce: compare the behaviour of compressed language models with their large originals.

    import ce
    s = ce.open("data/store")
    s.table2(k=10).df()

Nothing heavy is imported here: the session, DuckDB and the store load on first use, and
torch only when a job runs a model. The layers, bottom up: ce.store (files), ce.query (SQL),
ce.extractors (jobs), ce.session (this API), ce.cli (the command line and the report).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .query.compare import Result
    from .query.measures import MEASURES, Measure
    from .session import Session, open
    from .store import CeError, Store

__all__ = ["MEASURES", "CeError", "Measure", "Result", "Session", "Store", "open"]

_WHERE = {
    "open": "session",
    "Session": "session",
    "Result": "query.compare",
    "MEASURES": "query.measures",
    "Measure": "query.measures",
    "Store": "store",
    "CeError": "store",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'ce' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
