"""Many workbooks at once: ``xlnet check FILES --jobs N``, for a teacher grading a class.

N worker processes each keep one LibreOffice of their own warm (its own profile) and take the
files one at a time, so a large book does not hold up a batch and a broken one costs only its
own row. Where LibreOffice's Python bindings are missing, or with another engine, each worker
checks a share of the files in one engine run, the way a single ``xlnet check`` does.

Each file's result is its reports, or the one line saying why it could not be checked.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import multiprocessing
from dataclasses import dataclass, field

from ..errors import EngineError, InputError, XlnetError, option
from .prepare import workbooks_in

MAX_JOBS = 64


@dataclass
class Graded:
    """One file: its reports (one per engine), or why it could not be checked."""

    path: str
    reports: list = field(default_factory=list)
    error: str = ""

    @property
    def passed(self):
        return not self.error and all(r.passed for r in self.reports)


_WORKER = {}


def _start_worker(engine, use_warm):
    import threading

    from ..engines import process

    process.die_with_parent()  # a worker never outlives the xlnet that started it (kill -9 included)

    def import_torch():  # while LibreOffice starts
        import torch
        torch.set_num_threads(1)  # N workers on N cores: one thread each

    importing = threading.Thread(target=import_torch)
    importing.start()
    try:
        if use_warm:
            from multiprocessing import util
            from .. import engines

            warm = engines.get(engine).start_warm()
            _WORKER["warm"] = warm
            util.Finalize(None, warm.close, exitpriority=10)  # runs when the worker process ends
    finally:
        importing.join()


def _check(paths, options):
    """One file with the worker's warm LibreOffice, or a share of them in one engine run."""
    from . import pipeline

    if len(paths) > 1:
        return _check_batch(paths, options)
    try:
        return [Graded(str(paths[0]), pipeline.check(paths, warm=_WORKER.get("warm"), **options))]
    except XlnetError as exc:
        return [Graded(str(paths[0]), error=" ".join(exc.command_line().split()))]


def _check_batch(paths, options):
    from . import pipeline

    return check_each(paths, pipeline.check, isolate=True, **options)


def check_files(paths, jobs, engine="libreoffice", progress=None, **options):
    """Check every file with ``jobs`` worker processes.

    Args:
        paths: the workbooks.
        jobs: worker processes (1 to 64), each with an engine of its own.
        engine: as ``api.check``; ``**options``: the rest of ``api.check``'s options.
        progress: called as ``progress(k, path)`` as the k-th file is graded (None: nothing).

    Returns:
        A Graded per file, in the order given.
    """
    from .. import engines

    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS:
        raise InputError(f"{option('jobs')} should be a whole number from 1 to {MAX_JOBS}, not {jobs!r}")
    paths = workbooks_in(paths)
    options = dict(options, engine=engine)
    use_warm = engines.keeps_warm(engine) and engines.get(engine).warm_available()
    jobs = min(jobs, len(paths))
    if use_warm:
        tasks = [[p] for p in paths]
    else:  # cold engines: one engine run per worker, over its share
        tasks = [paths[i::jobs] for i in range(jobs)]
    context = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    results = {}
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                                                initargs=(engine, use_warm)) as pool:
        try:
            futures = {pool.submit(_check, task, options): task for task in tasks}
            for future in concurrent.futures.as_completed(futures):
                for graded in future.result():
                    results[graded.path] = graded
                    if progress is not None:
                        progress(len(results), graded.path)
        except concurrent.futures.process.BrokenProcessPool:
            raise EngineError("a grading worker stopped unexpectedly (could its LibreOffice not start?); "
                              f"try {option('jobs')} 1") from None
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [results[str(p)] for p in paths]


def check_each(paths, check, engine="libreoffice", isolate=False, **options):
    """Check files in this process: in one engine run, or, when that fails on a file (or
    ``isolate`` is set), one at a time with one warm engine, so that a file that cannot be
    checked is its own row and the others are still graded.

    Args:
        paths: the workbooks (folders are searched).
        check: ``api.check`` (or a function with its signature).
        engine, **options: as ``api.check``.
        isolate: a lone file that cannot be checked is a Graded with its error, not an
            exception (a gradebook always has a row).

    Returns:
        A Graded per file, in order.
    """
    from .. import engines

    paths = workbooks_in(paths)
    try:
        reports = check(paths, engine=engine, **options)
    except XlnetError as exc:
        if len(paths) == 1:
            if not isolate:
                raise
            return [Graded(str(paths[0]), error=" ".join(exc.command_line().split()))]
    else:
        per_engine = len(reports) // len(paths)
        return [Graded(str(p), reports[i::len(paths)][:per_engine]) for i, p in enumerate(paths)]
    warm = None
    if engines.keeps_warm(engine) and engines.get(engine).warm_available() and options.get("warm") is None:
        warm = engines.get(engine).start_warm()
    try:
        out = []
        progress = options.pop("progress", None)
        for k, path in enumerate(paths, start=1):
            try:
                out.append(Graded(str(path), check([path], engine=engine, **dict(options, **({"warm": warm} if warm else {})))))
            except XlnetError as exc:
                out.append(Graded(str(path), error=" ".join(exc.command_line().split())))
            if progress is not None:
                progress(k, str(path))
        return out
    finally:
        if warm is not None:
            warm.close()


def summary(graded):
    """A table: file, blocks passed (and exercises done, for exercise books), first failing
    cell (or the error), and a total line."""
    exercises = any(r.exercises for g in graded for r in g.reports)
    rows = [("file", "blocks passed") + (("exercises done",) if exercises else ()) + ("result", "first failing cell")]
    for g in graded:
        if g.error:
            rows.append((g.path, "-") + (("-",) if exercises else ()) + ("ERROR", g.error))
            continue
        for r in g.reports:
            blocks = [b for b in r.blocks if b.status != "e2e"]
            good = sum(b.status == "pass" for b in blocks)
            first = next((b for b in r.blocks if b.status in ("fail", "values", "skip") or not b.e2e_pass), None)
            where = "" if first is None else f"{first.worst_cell or first.tensor} ({first.title[:40]})"
            todo = next((e for e in r.exercises if not e["done"]), None)
            if todo is not None:  # the cell the learner is told to fix, not a block it feeds
                where = f"{todo['first_cell'] or todo['tensor']} (exercise {todo['tensor']})"
            name = g.path if len(g.reports) == 1 else f"{g.path} [{r.engine}]"
            done = (f"{sum(e['done'] for e in r.exercises)}/{len(r.exercises)}",) if exercises else ()
            rows.append((name, f"{good}/{len(blocks)}") + done + ("OK" if r.passed else "MISMATCH", where))
    columns = len(rows[0]) - 1
    widths = [max(len(row[i]) for row in rows) for i in range(columns)]
    lines = ["  ".join(row[i].ljust(widths[i]) for i in range(columns)) + "  " + row[-1] for row in rows]
    passed = sum(g.passed for g in graded)
    errors = sum(bool(g.error) for g in graded)
    lines.append(f"{len(graded)} workbooks: {passed} pass, {len(graded) - passed - errors} mismatch, "
                 f"{errors} could not be checked")
    return "\n".join(line.rstrip() for line in lines)


def to_json(graded):
    """Every file's reports (as ``--json`` prints them) or its error, as a JSON list."""
    import json

    from ..report import Report

    out = []
    for g in graded:
        if g.error:
            out.append(Report.error_record(g.path, g.error))
        else:
            out += [r.to_dict() for r in g.reports]
    return json.dumps(out, indent=2)


def exit_code(graded):
    """2 when a file could not be checked, else 1 when one mismatches, else 0."""
    if any(g.error for g in graded):
        return 2
    return 0 if all(g.passed for g in graded) else 1
