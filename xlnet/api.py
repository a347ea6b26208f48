"""The Python API: build lesson workbooks, check workbooks against torch, plot their blocks."""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import engines, lessons, manifest as manifest_mod, read
from .errors import EngineError, InputError

DEFAULT_OUT = "workbooks"


def build(names=None, out=DEFAULT_OUT, seed=0, **options):
    """Build lesson workbooks.

    Args:
        names: lesson names (default: every lesson).
        out: the directory to write ``<lesson>.xlsx`` into.
        seed: seed of every random constant.
        **options: lesson options (``kernel_size=5`` …); each lesson takes those it declares.

    Returns:
        The paths written.
    """
    names = list(names or lessons.all_lessons())
    chosen = [lessons.get(n) for n in names]
    unknown = [k for k, v in options.items() if v is not None and k not in lessons.all_options()]
    if unknown:
        raise InputError(f"unknown lesson option(s): {', '.join(unknown)}")
    paths = []
    for lesson in chosen:
        path = Path(out) / f"{lesson.NAME}.xlsx"
        lesson.build(path, seed=seed, **lessons.resolve_options(lesson, options))
        paths.append(path)
    return paths


def load(path):
    """Read a workbook as saved (cached values), validating its manifest and names.

    Args:
        path: an xlnet workbook.

    Returns:
        read.Workbook.
    """
    return read.read_workbook(path)


def engine_names(engine):
    """Expand ``all`` into the engines installed here (never ``cached``).

    Args:
        engine: an engine name, or ``all``.

    Returns:
        A list of engine names.
    """
    if engine != "all":
        return [engine]
    names = engines.installed()
    if not names:
        raise EngineError("no spreadsheet engine is installed: install LibreOffice or Gnumeric")
    return names


def check(paths, engine="libreoffice", device="auto", timeout=engines.DEFAULT_TIMEOUT):
    """Recalculate workbooks with a real engine and check every block against torch.

    Args:
        paths: one workbook path or a list of them. They are never modified.
        engine: libreoffice, gnumeric, formulas, excel, cached, or all.
        device: cpu, cuda or auto (cuda when torch sees a GPU).
        timeout: seconds allowed to each engine run.

    Returns:
        A list of report.Report, one per workbook and engine.
    """
    from . import bridge  # torch is imported only when a check runs
    from .device import pick_device

    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no workbook given to check")
    device = pick_device(device)
    originals = {}
    for path in paths:  # reject bad files (and unsound manifests) before any engine runs
        originals[path] = read.read_workbook(path, strict_inputs=False).manifest
    reports = []
    for name in engine_names(engine):
        with tempfile.TemporaryDirectory(prefix="xlnet-") as workdir:
            copies = engines.recalc(paths, name, workdir, timeout)
            for path, copy in zip(paths, copies):
                book = read.read_workbook(copy, manifest=originals[path])
                _assert_recalculated(book.sentinel, path, name)
                book.path = path
                reports.append(bridge.check_workbook(book, device, engine=name))
    return reports


def _assert_recalculated(sentinel, path, engine):
    if sentinel == manifest_mod.SENTINEL_VALUE:
        return
    hint = ("its cached values are stale: open and save it in Excel or LibreOffice first, or use "
            "--engine libreoffice") if engine == "cached" else "the engine kept the cached values"
    raise EngineError(f"{path}: no recalculation happened with engine {engine} (sentinel "
                      f"{manifest_mod.SENTINEL_CELL} reads {sentinel!r}, expected "
                      f"{manifest_mod.SENTINEL_VALUE}); {hint}")


def plot(path, out=".", engine="cached", charts_only=False):
    """Draw every block of a workbook as a heat map PNG, in the sheet's colours.

    Args:
        path: an xlnet workbook.
        out: directory for the PNG files.
        engine: where the values come from: ``cached`` (as saved) or a recalculating engine.
        charts_only: draw the workbook's charts (loss curves, probabilities) and no tensor.

    Returns:
        The PNG paths written.
    """
    from . import plots

    path = Path(path)
    book = read.read_workbook(path, strict_inputs=engine == "cached")
    if engine != "cached":
        with tempfile.TemporaryDirectory(prefix="xlnet-") as workdir:
            copy = engines.recalc([path], engine, workdir)[0]
            book = read.read_workbook(copy, manifest=book.manifest)
            _assert_recalculated(book.sentinel, path, engine)
    return plots.plot_workbook(book, Path(out), path.stem, charts_only)
