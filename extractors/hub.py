"""Whether the Hugging Face Hub can be reached, asked once per process before any download.

huggingface_hub and ``datasets`` retry a Hub that does not answer, with a warning per try: a
minute and a screenful of retries before their error, or no end at all where a request has
no timeout. ce asks first, with one request of a few seconds (:func:`reachable`), and when the
Hub does not answer reads the local caches only (:func:`cache_only`): a cached model or
dataset still loads, and anything else fails at once, in one line.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

PROBE_SECONDS = 3.0
# the loggers that print a line per failed try
CHATTY = ("huggingface_hub", "datasets", "urllib3", "filelock")
_REACHABLE: dict[str, bool] = {}  # endpoint -> answered, per process


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def models_offline() -> bool:
    """Whether huggingface_hub is switched off the Hub (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def datasets_offline() -> bool:
    """Whether ``datasets`` is (it also reads HF_DATASETS_OFFLINE)."""
    import datasets.config

    return bool(datasets.config.HF_HUB_OFFLINE)


def reachable(timeout: float = PROBE_SECONDS) -> bool:
    """Whether the Hub endpoint answers an HTTP request within ``timeout`` seconds (any status
    counts: the answers to a gated or missing repo come later, from the library). Asked once
    per process and endpoint, through huggingface_hub's own session (its proxies and
    certificates); callers do not ask when an offline switch is set."""
    url = endpoint()
    if url not in _REACHABLE:
        _REACHABLE[url] = _answers(url, timeout)
    return _REACHABLE[url]


def known_unreachable() -> bool:
    """Whether this process found the Hub unreachable (without asking again)."""
    return _REACHABLE.get(endpoint()) is False


def _answers(url: str, timeout: float) -> bool:
    import httpx  # the session of huggingface_hub 1.x
    import requests  # of 0.x
    from huggingface_hub.utils import get_session

    try:
        with quiet():
            get_session().head(url, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout, httpx.TransportError, OSError):
        return False
    except Exception:  # noqa: BLE001 (a probe that breaks otherwise must not stop a download)
        return True
    return True


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The Hub libraries' loggers at ERROR for the block: no line per retry or per file."""
    loggers = [logging.getLogger(name) for name in CHATTY]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def cache_only() -> Iterator[None]:
    """For the block, huggingface_hub and ``datasets`` read their caches and ask nothing of the
    Hub, as under HF_HUB_OFFLINE=1 (both read that switch at import, so their copies of it are
    set here and put back after; sessions made meanwhile refuse every request, so they go)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import reset_sessions

    modules = [constants, *(m for m in [sys.modules.get("datasets.config")] if m is not None)]
    before = [m.HF_HUB_OFFLINE for m in modules]
    for module in modules:
        module.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for module, value in zip(modules, before, strict=True):
            module.HF_HUB_OFFLINE = value
        reset_sessions()


@contextlib.contextmanager
def access() -> Iterator[None]:
    """Around ``datasets.load_dataset``: its loggers quiet, and its caches only when the Hub
    does not answer the probe (so the call fails at once, or finds its copy there)."""
    with quiet():
        if datasets_offline() or reachable():
            yield
        else:
            with cache_only():
                yield
