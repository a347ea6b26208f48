"""Recalculation engines, each a module with its capabilities (``base.Engine``), behind one
function: ``recalc(paths, engine, workdir) -> paths``.

Each engine writes recalculated copies into ``workdir``; the user's files are never touched.
Whether a recalculation really happened is proved afterwards by the sentinel cell (see
``manifest.SENTINEL_CELL``), never assumed. Adding an engine is one module defining an
``Engine`` and one line in ``_REGISTRY``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..errors import EngineError, option
from . import cached, excel, formulas, gnumeric, libreoffice
from .base import DEFAULT_TIMEOUT, Engine  # noqa: F401 (part of this package's interface)
from .process import defer_signal  # noqa: F401 (the CLI's signal handlers ask it)

_REGISTRY = {e.name: e for e in (libreoffice.ENGINE, gnumeric.ENGINE, formulas.ENGINE, excel.ENGINE, cached.ENGINE)}
ENGINES = tuple(_REGISTRY)


def get(name):
    """The engine called ``name``.

    Raises:
        EngineError for a name no engine has.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)} or all") from None


def keeps_warm(name):
    """True when the engine called ``name`` can be kept running between workbooks (``all``, which
    names every installed engine, cannot)."""
    return name != "all" and get(name).runs_warm


def available(engine):
    """Return True when ``engine`` (a name) can run on this machine."""
    return get(engine).available()


def installed():
    """The recalculating engines that can run here (never ``cached``), in order of preference."""
    return [e.name for e in _REGISTRY.values() if e.recalculates and e.available()]


MAX_TIMEOUT = 24 * 3600


def check_timeout(timeout):
    """Refuse a timeout that is not a number of seconds from 1 to a day."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 1 <= timeout <= MAX_TIMEOUT:
        raise EngineError(f"{option('timeout')} should be a number of seconds from 1 to {MAX_TIMEOUT}, not {timeout!r}")


@contextlib.contextmanager
def workspace():
    """A private temporary folder for copies, profiles and the engines' own temporary files,
    removed on every way out (an exception, Ctrl-C, SIGTERM or SIGHUP turned into one by the CLI)."""
    folder = tempfile.mkdtemp(prefix="xlnet-")
    try:
        yield folder
    finally:
        deadline = time.monotonic() + 10
        while True:  # an engine killed a moment ago may still be closing its files
            shutil.rmtree(folder, ignore_errors=True)
            if not os.path.exists(folder) or time.monotonic() > deadline:
                break
            time.sleep(0.05)


def recalc(paths, engine, workdir, timeout=DEFAULT_TIMEOUT, sources=None, warm=None):
    """Recalculate workbooks with a spreadsheet engine, into copies.

    Args:
        paths: workbook files (.xlsx or .xlsm).
        engine: one of ENGINES.
        workdir: an existing directory for the copies (the caller removes it).
        timeout: seconds before the engine is stopped and an EngineError raised.
        sources: the user's files the paths stand for, named in messages (default: paths).
        warm: a warm.WarmLibreOffice to recalculate with instead of starting LibreOffice.

    Returns:
        The recalculated copies, in the order of ``paths``.
    """
    paths = [Path(p) for p in paths]
    sources = [Path(p) for p in sources] if sources is not None else paths
    workdir = Path(workdir)
    chosen = get(engine)
    check_timeout(timeout)
    # Copy first, under short unique names: two files called book.xlsx do not collide, and a
    # long file name does not grow past what the file system allows.
    inputs = workdir / f"{engine}-in"
    inputs.mkdir()
    copies = []
    for i, path in enumerate(paths):
        copy = inputs / f"{i}{path.suffix.lower()}"
        shutil.copyfile(path, copy)
        copies.append(copy)
    if not chosen.recalculates:
        return chosen.recalc(copies, workdir, timeout)
    out = workdir / f"{engine}-out"
    out.mkdir()
    runner = warm.recalc if warm is not None else chosen.recalc
    try:
        results = runner(copies, out, timeout)
    except EngineError as exc:
        if len(sources) == 1 and str(sources[0]) not in str(exc):
            raise EngineError(f"{sources[0]}: {exc}") from None  # the user's file, not the copy
        raise
    for src, result in zip(sources, results):
        if not result.is_file() or result.stat().st_size == 0:
            raise EngineError(f"{src}: {engine} wrote no recalculated copy (it could not open or compute it)")
    return results


def recalc_moved(path, cells, workdir, warm, timeout=DEFAULT_TIMEOUT, source=None):
    """Recalculate a workbook with a warm LibreOffice, then again in the same loaded document
    with some constant cells set to other numbers.

    Args:
        path: the workbook.
        cells: [(sheet, row, col from 1, number)].
        workdir: an existing directory for the copies.
        warm: the warm.WarmLibreOffice.
        timeout: seconds before it is stopped.
        source: the user's file ``path`` stands for, named in messages.

    Returns:
        (the recalculated copy, the copy recalculated with the cells moved).
    """
    path, workdir = Path(path), Path(workdir)
    check_timeout(timeout)
    (workdir / "in").mkdir()
    copy = workdir / "in" / f"book{path.suffix.lower()}"
    shutil.copyfile(path, copy)
    try:
        results = warm.recalc_moved(copy, workdir, cells, timeout)
    except EngineError as exc:
        raise EngineError(f"{source or path}: {exc}") from None
    for result in results:
        if not result.is_file() or result.stat().st_size == 0:
            raise EngineError(f"{source or path}: LibreOffice wrote no recalculated copy")
    return results


def convert_to_xlsx(path, workdir, engine, timeout=DEFAULT_TIMEOUT):
    """Convert a legacy .xls workbook or an OpenDocument .ods spreadsheet to .xlsx with
    LibreOffice or Gnumeric.

    Args:
        path: the .xls or .ods file (never modified).
        workdir: an existing directory for the conversion.
        engine: libreoffice or gnumeric.
        timeout: seconds allowed.

    Returns:
        The .xlsx path.
    """
    path, workdir = Path(path), Path(workdir)
    suffix = path.suffix.lower()
    folder = Path(tempfile.mkdtemp(prefix="convert-", dir=workdir))
    source = folder / f"source{suffix}"
    shutil.copyfile(path, source)
    converter = get(engine)
    if not converter.converts_xls:
        raise EngineError(f"{path}: {engine} cannot convert a {suffix} workbook")
    converted = converter.recalc([source], folder, timeout)[0]
    if not converted.is_file() or converted.stat().st_size == 0:
        raise EngineError(f"{path}: {engine} could not convert this {suffix} workbook; save it as .xlsx")
    return converted
