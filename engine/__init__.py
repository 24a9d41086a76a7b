"""ce.engine: the store, the SQL library and the CLI. Never imports torch.

Python API::

    from ce.engine import Store
    store = Store("data/store")
    store.connect().sql("select * from error_agreement()").df()
"""

from .compare import table2
from .errors import CeError
from .store import Store

__all__ = ["CeError", "Store", "table2"]
