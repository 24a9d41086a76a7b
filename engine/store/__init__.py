"""Layer 1, the store: Parquet parts, run records, bundles. Knows files only: no SQL, no models."""

from .errors import CeError
from .store import Store

__all__ = ["CeError", "Store"]
