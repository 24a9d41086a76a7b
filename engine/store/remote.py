"""A store queried where it lies: ``--store https://...``, ``s3://...`` or ``hf://...``.

Read-only. The run records and the marker are read with fsspec, and DuckDB reads the live
Parquet parts through the same fsspec file system registered with it (DuckDB's own httpfs
extension is not needed, so this works where extensions cannot be downloaded). Parquet is
read in ranges: only the footers and the columns a query uses cross the network.

An ``https://`` store must be served with directory listings of ``runs/`` (any static
server with autoindex; S3 and the Hugging Face Hub list by themselves).
"""

from __future__ import annotations

import asyncio
import json
import posixpath
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from .errors import StoreError
from .records import parse_record
from .store import MARKER, Store, check_schema_version

PROTOCOLS = ("http", "https", "s3", "gs", "hf")


def is_remote(location: str) -> bool:
    return "://" in str(location) and str(location).split("://")[0] in PROTOCOLS


def inside(url: str, prefix: str) -> bool:
    """Whether ``url``, percent-decoded and with '.' and '..' resolved as a server would,
    lies under ``prefix`` (a URL ending in '/')."""
    scheme, _, rest = unquote(url).partition("://")
    host, _, path = rest.partition("/")
    resolved = f"{scheme}://{host}{posixpath.normpath('/' + path)}"
    return resolved.startswith(prefix) and "?" not in url and "#" not in url


def filesystem(protocol: str, root: str | None = None):
    """An fsspec file system for ``protocol`` that DuckDB can use; with ``root``, an HTTP
    one answers for URLs under it only and follows no redirects (a query cannot reach the
    rest of the server, or another server, through the store's file system)."""
    import fsspec

    try:
        if protocol in ("http", "https"):
            from fsspec.implementations.http import HTTPFileSystem

            class HttpFileSystem(HTTPFileSystem):
                protocol = ("http", "https")

                def modified(self, path):  # DuckDB asks; HTTP parts never change in place
                    return datetime.fromtimestamp(0, UTC)

                def _confine(self, path) -> None:
                    if root and not inside(str(path), root + "/"):
                        raise PermissionError(f"{str(path)[:200]} lies outside the store {root}")

            for name in (
                "_info",
                "_ls",
                "_cat_file",
                "_exists",
                "_isfile",
                "_isdir",
                "_glob",
                "_size",
                "_get_file",
                "_open",
            ):
                setattr(HttpFileSystem, name, _confined(getattr(HTTPFileSystem, name)))
            return HttpFileSystem(allow_redirects=False)
        return fsspec.filesystem(protocol)
    except ImportError as e:
        package = {"s3": "s3fs", "gs": "gcsfs"}.get(protocol, str(e.name))
        raise StoreError(f"a {protocol}:// store needs {package}: pip install {package}") from None


def _confined(method):
    """``method`` of the HTTP file system, refusing paths outside its store first."""
    if asyncio.iscoroutinefunction(method):

        async def checked(self, path, *args, **kwargs):
            self._confine(path)
            return await method(self, path, *args, **kwargs)
    else:

        def checked(self, path, *args, **kwargs):
            self._confine(path)
            return method(self, path, *args, **kwargs)

    return checked


class RemoteStore(Store):
    """A store at a URL, for reading (query, compare, sweep, report)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.protocol = self.url.split("://")[0]
        self.fs = filesystem(self.protocol, self.url)
        self.root = self.url  # shown in messages
        self._listed: list[dict[str, Any]] | None = None  # parsed once, on the first read
        self._own, self._built = {}, {}  # see Store._members
        self._check_version()

    def location(self, relative: str) -> str:
        return f"{self.url}/{relative}"

    def _read_json(self, url: str) -> Any:
        try:
            with self.fs.open(url, "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            raise
        except ValueError as e:
            raise StoreError(f"cannot read {url} ({e}); the store is damaged") from None
        except Exception as e:  # network errors of any fsspec back end
            raise StoreError(f"cannot read {url}: {e}") from None

    def _check_version(self) -> None:
        try:
            marker = self._read_json(self.location(MARKER))
        except FileNotFoundError:
            raise StoreError(
                f"no ce store at {self.url} ({MARKER} not found or not reachable); pass the URL"
                " of the store's root folder"
            ) from None
        version = marker.get("schema_version") if isinstance(marker, dict) else None
        check_schema_version(version, f"store {self.url}")
        self._check_ranges()

    def _check_ranges(self) -> None:
        """DuckDB reads Parquet in ranges; a server that answers every request whole
        cannot serve it (and would send every part in full)."""
        try:
            with self.fs.open(self.location(MARKER), "rb", block_size=4) as f:
                f.seek(2)
                f.read(2)
        except ValueError:
            raise StoreError(
                f"the server of {self.url} does not answer range requests, which ce needs to read"
                " Parquet parts in pieces; serve the store with a server that does (nginx, Apache,"
                " S3, the Hub), or copy it and pass a local --store"
            ) from None
        except Exception:  # noqa: BLE001 - anything else shows when the parts are read
            pass

    def exists(self) -> bool:
        return True

    def _records(self) -> list[dict[str, Any]]:
        if self._listed is None:
            try:
                names = self.fs.glob(self.location("runs/*.json"))
            except Exception as e:
                raise StoreError(
                    f"cannot list {self.location('runs/')} ({e}); serve the store with"
                    " directory listings, or use s3:// or hf://"
                ) from None
            records = []
            for name in sorted(names):
                url = name if "://" in name else f"{self.protocol}://{name}"
                try:
                    data = self._read_json(url)
                except FileNotFoundError:
                    raise StoreError(
                        f"the store at {self.url} lists run record {url} but does not serve it;"
                        " ask its owner to fix the store, or copy it"
                    ) from None
                records.append(parse_record(data, f"run record {url}"))
            self._listed = sorted(records, key=lambda r: (r.get("started") or "", r["run_id"]))
            self._own = {rec["run_id"]: rec for rec in self._listed}
        return list(self._listed)

    def read_prefixes(self) -> list[str]:
        return [f"{self.url}/"]

    def lease(self):
        return None  # a reader elsewhere cannot hold a lock here

    def register(self, con) -> None:
        con.register_filesystem(self.fs)

    def _read_only(self, *args, **kwargs):
        raise StoreError(
            f"the store at {self.url} is read-only for ce; write to a local --store and share it"
            " with ce bundle export, or copy the folder"
        )

    run = lock = collect_garbage = save_model = model_dir = _init = _read_only
