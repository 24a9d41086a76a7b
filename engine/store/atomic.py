"""Atomic file writes: temporary name in the same folder, fsync, rename, fsync the folder."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def owner() -> str:
    """This process in a file name: host (hashed: a host name may hold '-' or '.') and pid."""
    return f"{hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]}-{os.getpid()}"


def owner_gone(tag: str) -> bool:
    """Whether ``tag`` (from :func:`owner`) names a process of this host that has ended."""
    host, _, pid = tag.partition("-")
    return host == owner().partition("-")[0] and pid.isdigit() and not pid_alive(int(pid))


def pid_alive(pid: int) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def temp_name(path: Path) -> Path:
    """``.NAME.OWNER.RANDOM.tmp`` beside ``path``: garbage collection removes it once its
    owner has ended."""
    return path.with_name(f".{path.name}.{owner()}.{uuid.uuid4().hex[:8]}.tmp")


def temp_owner(path: Path) -> str:
    parts = path.name.split(".")
    return parts[-3] if len(parts) >= 4 and parts[-1] == "tmp" else ""


def commit_file(tmp: Path, final: Path) -> None:
    """fsync ``tmp``, rename it to ``final`` and fsync the folder: readers see all or nothing."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``final`` atomically."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    try:
        yield tmp
        commit_file(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
