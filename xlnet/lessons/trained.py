"""Trained weights kept, for the lessons whose sheets start from weights torch trained: the
entries that ship with xlnet (a JSON file of the default shapes' weights, so those books are the
same whatever torch is installed and build without importing it), else the user's cache folder
(``XLNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/xlnet``, else ``~/.cache/xlnet``), else trained now
and kept there, so a shape is trained once."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..atomic import atomic_path


def cache_folder():
    """Where trained weights of other shapes are kept (None: nowhere to keep them)."""
    given = os.environ.get("XLNET_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache" if Path.home() != Path("/") else None)
    return Path(base) / "xlnet" if base else None


def shipped(weights_file):
    """The entries of a shipped weights file (none when it is missing)."""
    return json.loads(Path(weights_file).read_text()) if Path(weights_file).is_file() else []


def entry_for(key, weights_file, prefix, train):
    """The entry whose ``shape`` is ``key``: the shipped file's, else the cache's, else
    ``train()``'s (then kept in the cache as ``PREFIX-DIGEST.json``)."""
    for entry in shipped(weights_file):
        if entry["shape"] == key:
            return entry
    folder = cache_folder()
    cached = None
    if folder is not None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        cached = folder / f"{prefix}-{digest}.json"
    if cached is not None and cached.is_file():
        try:
            entry = json.loads(cached.read_text())
            if entry.get("shape") == key:
                return entry
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # a damaged cache entry is trained again
    entry = train()
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cached) as tmp:
                Path(tmp).write_text(json.dumps(entry) + "\n")
        except OSError:
            pass  # no cache folder to write: the next build trains again
    return entry
