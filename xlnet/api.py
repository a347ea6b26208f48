"""The Python API: build lesson workbooks, check workbooks against torch, plot their blocks."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

from . import engines, lessons
from .atomic import atomic_path
from .checking.prepare import prepare
from .errors import InputError, option
from .workbook import read

if TYPE_CHECKING:
    from .limits import Limits
    from .report import Report

DEFAULT_OUT = lessons.DEFAULT_OUT
PathLike = Union[str, "os.PathLike[str]"]  # a path given as text or as a Path
Progress = Callable[[int, str], object]  # progress(k, name): the k-th step of a run


def build(names: Iterable[str] | None = None, out: PathLike = DEFAULT_OUT, seed: int = 0,
          exercise: str | Sequence[str] | None = None, exercise_points: float | str | Mapping[str, float] | None = None,
          progress: Progress | None = None, **options: object) -> list[Path]:
    """Build lesson workbooks.

    Args:
        names: lesson names (default: every lesson).
        out: the directory to write ``<lesson>.xlsx`` into.
        seed: seed of every random constant.
        exercise: blocks to leave for the learner: ``"all"`` (each lesson's exercise set), or
            block names (a list, or one string separated by commas) of a single lesson. The
            book is then written as ``<lesson>-exercise.xlsx``.
        exercise_points: what each exercise is worth in the gradebook: a number for each, or
            ``"NAME=P,..."`` (a str or a dict); default 1 each.
        progress: called as ``progress(k, lesson name)`` before the k-th lesson is built (a
            terminal's progress line); None: nothing.
        **options: lesson options (``kernel_size=5`` …); each lesson takes those it declares.

    Returns:
        The paths written.
    """
    names = list(names or lessons.all_lessons())
    chosen = [lessons.get(n) for n in names]
    sets = lessons.exercise_sets(chosen, exercise)
    worth = lessons.exercise_points(exercise_points, sets)
    unknown = [k for k, v in options.items() if v is not None and k not in lessons.all_options()]
    if unknown:
        raise InputError(f"unknown lesson option(s): {', '.join(unknown)}")
    seed = lessons.SEED.check(seed, "every lesson")
    resolved = [lessons.resolve_options(lesson, options) for lesson in chosen]  # all refused before any is built
    out = _output_folder(out)
    paths = []
    for k, (lesson, values, blocks) in enumerate(zip(chosen, resolved, sets), start=1):
        if progress is not None:
            progress(k, lesson.NAME)
        path = out / (f"{lesson.NAME}-exercise.xlsx" if blocks else f"{lesson.NAME}.xlsx")
        try:
            lesson.build(path, seed=seed, exercises=blocks or None,
                         worth={n: p for n, p in worth.items() if blocks and n in blocks} or None, **values)
        except OSError as exc:
            raise InputError(f"{path}: cannot be written ({exc.strerror or type(exc).__name__})") from None
        paths.append(path)
    return paths


def _output_folder(out: PathLike) -> Path:
    """The output folder, created if needed; one line when it cannot be a writable folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; {option('out')} names the folder the workbooks go into")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot be created ({exc.strerror or type(exc).__name__})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"{out}: is not writable; choose another {option('out')}")
    return out


def load(path: PathLike, limits: Limits | None = None) -> read.Workbook:
    """Read a workbook as saved (cached values), validating its manifest and names.

    Args:
        path: an xlnet workbook.
        limits: a limits.Limits (default: the environment's, see ``xlnet.limits``).

    Returns:
        read.Workbook.
    """
    return read.read_workbook(path, limits=limits)


def check(paths: PathLike | Iterable[PathLike], engine: str = "libreoffice", device: str = "auto",
          timeout: float = engines.DEFAULT_TIMEOUT, spec: PathLike | None = None, reference: PathLike | None = None,
          limits: Limits | None = None, warm: object | None = None, started: str | None = None,
          perturb: bool | None = None, seed: int | None = None, progress: Progress | None = None) -> list[Report]:
    """Recalculate workbooks with a real engine and check every block against torch.

    Args:
        paths: one workbook path or a list of them. They are never modified.
        engine: libreoffice, gnumeric, formulas, excel, cached, or all.
        device: cpu, cuda or auto (cuda when torch sees a GPU).
        timeout: seconds allowed to each engine run.
        spec: a spec file naming the blocks of a workbook xlnet did not write (default: the
            ``<book>.xlnet.toml`` beside each workbook that carries no manifest).
        reference: a trusted original workbook: its manifest (ops, tolerances, layout, which
            cells must be formulas) is used, and the checked files' own manifests are ignored.
        limits: a limits.Limits (default: the environment's, see ``xlnet.limits``).
        warm: a warm.WarmLibreOffice that recalculates instead of a fresh LibreOffice.
        started: how the engine started, for the report header (default: ``warm`` when ``warm``
            is given, else ``cold start``).
        perturb: recheck each book recalculated again with its raw inputs moved, against torch
            on the moved inputs (True/False; None: for a copy checked with ``reference`` and a
            book with exercises, where a grade is given).
        seed: the seed of those moves (None: a fresh one, said in the report).
        progress: called as ``progress(k, path)`` when the k-th report is done (a terminal's
            progress line); None: nothing.

    Returns:
        A list of report.Report, one per workbook and engine.
    """
    from .checking import pipeline
    from .lessons import provenance
    return pipeline.check(paths, engine=engine, device=device, timeout=timeout, spec=spec, reference=reference,
                          limits=limits, warm=warm, started=started, perturb=perturb, seed=seed,
                          rebuild=provenance.verify, progress=progress)


def annotate(path: PathLike, spec: PathLike, out: PathLike) -> Path:
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
    if path.suffix.lower() in (".xls", ".ods"):
        raise InputError(f"{path}: annotate writes .xlsx or .xlsm copies; save the {path.suffix.lower()} as .xlsx first")
    if out.resolve() == path.resolve():
        raise InputError(f"{out}: annotate never overwrites the workbook it reads; choose another -o")
    if out.suffix.lower() != path.suffix.lower():
        raise InputError(f"{out}: should end in {path.suffix.lower()}, as {path.name} does")
    if out.is_dir():
        raise InputError(f"{out}: is a directory; -o names the copy to write")
    if out.exists() and not out.is_file():
        raise InputError(f"{out}: not a regular file (a pipe or a device); -o names the copy to write")
    with engines.workspace() as workdir:
        prep = prepare(path, workdir, "cached", spec, look_beside=False)
        prep.close()  # only its file is copied
        if prep.spec is None:
            raise InputError(f"{path}: it already carries an xlnet manifest")
        try:
            with atomic_path(out) as tmp:
                shutil.copyfile(prep.copy, tmp)
        except OSError as exc:
            raise InputError(f"{out}: cannot be written ({exc.strerror or type(exc).__name__})") from None
    return out


def plot(path: PathLike, out: PathLike = ".", engine: str = "cached", charts_only: bool = False,
         timeout: float = engines.DEFAULT_TIMEOUT, limits: Limits | None = None) -> list[Path]:
    """Draw every block of a workbook as a heat map PNG, in the sheet's colours.

    Args:
        path: an xlnet workbook.
        out: directory for the PNG files (file names are made safe, and never leave it).
        engine: where the values come from: ``cached`` (as saved) or a recalculating engine.
        charts_only: draw the workbook's charts (loss curves, probabilities) and no tensor.
        timeout: seconds allowed to the engine.
        limits: a limits.Limits (default: the environment's).

    Returns:
        The PNG paths written.
    """
    from .checking import pipeline
    from .limits import given_or_env
    from .report import plots

    path, out = Path(path), Path(out)
    engines.check_timeout(timeout)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; {option('out')} names the folder the plots go into")
    limits = given_or_env(limits)
    recalculates = engines.get(engine).recalculates
    book = read.read_workbook(path, strict_inputs=not recalculates, limits=limits)
    if recalculates:
        with engines.workspace() as workdir:
            copy = engines.recalc([path], engine, workdir, timeout)[0]
            book = read.read_workbook(copy, manifest=book.manifest, source=path, limits=limits)
            pipeline.assert_recalculated(book.sentinel, path, engine)
    return plots.plot_workbook(book, out, path.stem, charts_only)
