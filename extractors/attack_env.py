"""Importing TextAttack offline.

TextAttack downloads NLTK corpora on first import (unless a marker file says it already did)
and reads the NLTK English stopwords while importing. ce ships the stopword list, puts it on
NLTK's search path, points TextAttack's cache at a ce folder whose marker skips the downloads,
and only then imports it. Nothing is fetched at import or run time, and the environment
variables TextAttack rewrites on import are restored.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

NLTK_DATA = Path(__file__).resolve().parent / "resources" / "nltk_data"
POST_INSTALL_MARKER = "post_install_check_3"  # the name textattack 0.3.x looks for
TEXTATTACK_LOGGER = "textattack.shared.utils.install"  # textattack.shared.logger, every module's


def cache_dir() -> Path:
    return Path(os.environ.get("CE_CACHE_DIR", Path.home() / ".cache" / "ce")).expanduser()


def import_textattack():
    """``import textattack`` with no network: returns the module."""
    import nltk

    if str(NLTK_DATA) not in nltk.data.path:
        nltk.data.path.insert(0, str(NLTK_DATA))
    ta_cache = Path(os.environ.setdefault("TA_CACHE_DIR", str(cache_dir() / "textattack")))
    ta_cache.mkdir(parents=True, exist_ok=True)
    (ta_cache / POST_INSTALL_MARKER).touch()
    # textattack points HF_HOME, XDG_CACHE_HOME and PYTORCH_TRANSFORMERS_CACHE at its own
    # folder when imported: later loads, child processes and Ray workers would then miss the
    # user's Hugging Face cache. Its import runs offline and the environment is put back.
    saved = dict(os.environ)
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import textattack
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return textattack  # its INFO lines are silenced where ce attacks (quiet_textattack)


@contextlib.contextmanager
def quiet_textattack() -> Iterator[None]:
    """TextAttack's INFO lines ("Goal function ... compatible with model ...", logged each
    time an attack is built) off for the duration, whatever its logger was set to."""
    logger = logging.getLogger(TEXTATTACK_LOGGER)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
