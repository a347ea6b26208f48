"""The Python API: build lesson workbooks, check workbooks against torch, plot their blocks."""

from __future__ import annotations

import importlib
import shutil
import tempfile
import threading
from pathlib import Path

from . import engines, foreign, lessons, manifest as manifest_mod, opened, read
from .atomic import atomic_path
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


def check(paths, engine="libreoffice", device="auto", timeout=engines.DEFAULT_TIMEOUT, spec=None):
    """Recalculate workbooks with a real engine and check every block against torch.

    Args:
        paths: one workbook path or a list of them. They are never modified.
        engine: libreoffice, gnumeric, formulas, excel, cached, or all.
        device: cpu, cuda or auto (cuda when torch sees a GPU).
        timeout: seconds allowed to each engine run.
        spec: a spec file naming the blocks of a workbook xlnet did not write (default: the
            ``<book>.xlnet.toml`` beside each workbook that carries no manifest).

    Returns:
        A list of report.Report, one per workbook and engine.
    """
    from .device import check_name, pick_device

    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no workbook given to check")
    if isinstance(device, str):
        check_name(device)  # an unknown device is bad input before anything runs
    # torch takes seconds to import: it loads on the other core while the engine recalculates
    torch_loading = threading.Thread(target=importlib.import_module, args=("torch",), daemon=True)
    torch_loading.start()
    reports = []
    for name in engine_names(engine):
        with tempfile.TemporaryDirectory(prefix="xlnet-") as workdir:
            # every file is read, and every spec checked, before any engine runs
            prepared = [foreign.prepare(p, workdir, name, spec, timeout) for p in paths]
            copies = engines.recalc([p.copy for p in prepared], name, workdir, timeout)
            torch_loading.join()
            from . import bridge
            device = pick_device(device)
            for prep, copy in zip(prepared, copies):
                book = read.read_workbook(copy, manifest=prep.manifest, strict_inputs=False)
                book.path = prep.source
                _refuse_bad_inputs(book, prep)
                _assert_recalculated(book.sentinel, prep.source, name)
                report = bridge.check_workbook(book, device, engine=name)
                if prep.spec is not None:
                    names = sorted({t.cells[k] for t in book.tensors.values() for k, e in t.errors.items()
                                    if e == "#NAME?"})
                    report.notes = opened.notes_for(prep.survey, names, name)
                    report.spec = str(prep.spec.path)
                reports.append(report)
    return reports


def _refuse_bad_inputs(book, prep):
    """An input cell holding no number is bad input (exit 2), named by the spec's line if any."""
    for name, tensor in book.tensors.items():
        info = book.manifest["tensors"][name]
        if info["role"] == "output" or info.get("text") or not tensor.errors:
            continue
        k, problem = next(iter(tensor.errors.items()))
        address = tensor.address(k)
        more = f" (and {len(tensor.errors) - 1} more)" if len(tensor.errors) > 1 else ""
        if prep.spec is None:
            raise InputError(f"{prep.source}: input cell {address} of {name} holds {problem}{more}; expected a number")
        why = ""
        if problem == "#NAME?":
            unknown = prep.survey.unknown_functions(address)
            why = f" (the engine does not know {', '.join(unknown) or 'a function or name it uses'})"
        raise InputError(f"{prep.spec.path}:{prep.spec.tensor_lines.get(name, 1)}: input range "
                         f"{info.get('title', name)} of {prep.source.name}: cell {address} holds {problem}{more}{why}; "
                         "expected numbers")


def annotate(path, spec, out):
    """Write a copy of a workbook that carries its spec as an xlnet manifest, so that
    ``xlnet check`` needs no spec afterwards.

    Args:
        path: the workbook (.xlsx or .xlsm); never modified.
        spec: the spec file.
        out: the copy to write (never the workbook itself; an .xlsm stays an .xlsm).

    Returns:
        The path written.
    """
    path, out = Path(path), Path(out)
    if path.suffix.lower() == ".xls":
        raise InputError(f"{path}: annotate writes .xlsx or .xlsm copies; save the .xls as .xlsx first")
    if out.resolve() == path.resolve():
        raise InputError(f"{out}: annotate never overwrites the workbook it reads; choose another -o")
    if out.suffix.lower() != path.suffix.lower():
        raise InputError(f"{out}: should end in {path.suffix.lower()}, as {path.name} does")
    if out.exists() and not out.is_file():
        raise InputError(f"{out}: is a directory; -o names the copy to write")
    with tempfile.TemporaryDirectory(prefix="xlnet-") as workdir:
        prep = foreign.prepare(path, workdir, "cached", spec, look_beside=False)
        if prep.spec is None:
            raise InputError(f"{path}: it already carries an xlnet manifest")
        try:
            with atomic_path(out) as tmp:
                shutil.copyfile(prep.copy, tmp)
        except OSError as exc:
            raise InputError(f"{out}: cannot be written ({exc.strerror or type(exc).__name__})") from None
    return out


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
