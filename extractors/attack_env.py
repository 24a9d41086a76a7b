"""Importing TextAttack offline.

TextAttack downloads NLTK corpora on first import (unless a marker file says it already did)
and reads the NLTK English stopwords while importing. ce ships the stopword list, puts it on
NLTK's search path, points TextAttack's cache at a ce folder whose marker skips the downloads,
and only then imports it. Nothing is fetched at import or run time.
"""

from __future__ import annotations

import os
from pathlib import Path

NLTK_DATA = Path(__file__).resolve().parent / "resources" / "nltk_data"
POST_INSTALL_MARKER = "post_install_check_3"  # the name textattack 0.3.x looks for


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
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging

    import textattack

    logging.getLogger("textattack").setLevel(logging.WARNING)  # no per-attack chatter
    return textattack
