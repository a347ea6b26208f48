"""The check of workbooks against torch, in stages, each with its own type:

1. **prepared** (``prepare.Prepared``): each file opened once, its manifest or spec read and
   validated, a copy made that an engine can recalculate with proof;
2. **trusted** (``FileProof``): what the file as saved proves, worked out on another thread
   while the engine starts (a file it refuses never reaches the engine): a
   lesson book's manifest is the one its lesson and settings build, the sentinel is still
   xlnet's formula, no input reads another workbook, which output cells hold typed values or
   formulas reading none of their inputs, and (in a lesson book) no formula outside a block;
3. **recalculated**: a copy recalculated by a real engine (a warm one hands each book over as
   soon as it is done) and, for a perturbed recheck, a second copy with its raw inputs moved
   (``perturb``);
4. **read** (``read.Workbook``): every tensor of the copy, the sentinel proving the recalculation;
5. **verified** (``report.Report``): every block compared with torch on the sheet's own inputs,
   the end-to-end pass beside it.

While the engine recalculates, the other core imports torch and runs the end-to-end torch passes
from the raw inputs as saved.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .. import engines, manifest as manifest_mod
from ..engines.warm import START_TIMEOUT
from ..errors import EngineError, InputError, option
from ..limits import given_or_env
from ..workbook import formulacells, hidden_sheet, read, refs
from . import inputs, opened, perturb as perturb_mod, trust
from .prepare import prepare, workbooks_in


@dataclass
class FileProof:
    """What a prepared file proves as saved, before its recalculation is used.

    Attributes:
        formulas: sheet -> {(row, col): formula text} of the file as saved.
        saved: the file's tensors as saved (read.Workbook), the raw inputs of the run ahead.
        typed: tensor name -> flat indices of output cells holding typed values.
        unread: tensor name -> flat indices of output cells whose formula reads none of the
            op's inputs.
        problems: what fails the book outside any block (formula cells no block checks).
        notes: what the report should say of the proof (a manifest that could not be rebuilt).
        pending: the work out of which cells compute, when it runs on while the engine
            recalculates (``settle`` waits for it).
    """

    formulas: dict
    saved: object
    typed: dict
    unread: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    pending: object = None

    def settle(self):
        """Wait for the cells' analysis when it runs apart (its error raised here)."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()
        return self


def _counter(progress):
    """``progress(k, path)`` called with a running count, from whichever thread a report is
    done on (None: a function that does nothing)."""
    if progress is None:
        return lambda path: None
    lock, count = threading.Lock(), [0]

    def done(path):
        with lock:
            count[0] += 1
            progress(count[0], str(path))
    return done


def trust_file(prep, trusted=None, rebuild=None, later=None):
    """Stage 2: refuse what the file alone shows to be wrong, and find the outputs that do not
    compute.

    Args:
        prep: a prepare.Prepared.
        trusted: a trust.Reference (the teacher's original), or None.
        rebuild: ``lessons.provenance.verify``: refuses a lesson book whose manifest is not the
            one its lesson builds (None: not verified).
        later: runs a function on another thread and returns its future (None: run it now).
            What refuses a file is done first, here; which cells compute, which only the
            verdict needs, is then worked out while the engine recalculates.

    Returns:
        A FileProof (``settle`` it before reading what computes).
    """
    notes = []
    lesson_book = trusted is None and prep.spec is None and bool(prep.manifest.get("lesson"))
    why = None
    if lesson_book and rebuild is not None:
        why = rebuild(prep.manifest, prep.source)
        if why:
            notes.append(f"its manifest was not rebuilt to be compared ({why})")
    formulas = formulacells.formula_cells(prep.package, None)
    trust.verify_sentinel(formulas, prep.source)
    saved = read.read_workbook(prep.package, manifest=prep.manifest, strict_inputs=False, source=prep.source)
    trust.refuse_external_inputs(saved.manifest, saved.tensors, formulas, prep.source)
    proof = FileProof(formulas, saved, {}, notes=notes)
    exercises = any("exercise" in info for info in saved.manifest["tensors"].values())
    # a learner's own scratch cells pass only where the manifest is proved
    loose = lesson_book and (not exercises or bool(why))

    def what_computes():
        typed, unread, reach = trust.typed_values(saved.manifest, saved.tensors, formulas, trusted,
                                                  prep.package.names,
                                                  hand_made=prep.spec is not None or not prep.manifest.get("lesson"),
                                                  tables=prep.package.tables)
        proof.typed.update(typed)
        proof.unread.update(unread)
        found = trust.uncovered_formulas(saved.manifest, saved.tensors, formulas, reach) if loose else []
        if found:
            sheet, r, c = found[0]
            proof.problems.append(f"{len(found)} formula cells belong to no checked block (first "
                                  f"{refs.quote_sheet(sheet)}!{refs.a1(r, c)} ={formulas[sheet][(r, c)][:40]}): the "
                                  "manifest has lost the op that checks them")

    if later is None:
        what_computes()
    else:
        proof.pending = later(what_computes)
    return proof


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


def check(paths, engine="libreoffice", device="auto", timeout=engines.DEFAULT_TIMEOUT, spec=None,
          reference=None, limits=None, warm=None, started=None, perturb=None, seed=None, rebuild=None,
          progress=None):
    """Every file through the stages, with each engine; the arguments and the result are those of
    ``xlnet.api.check``, the public door to this function."""
    from .device import check_name

    if isinstance(paths, (str, bytes, os.PathLike)) or not hasattr(paths, "__iter__"):
        paths = [paths]
    paths = workbooks_in(paths)
    if not paths:
        raise InputError("no workbook given to check")
    if isinstance(device, str):
        check_name(device)  # an unknown device is bad input before anything runs
    engines.check_timeout(timeout)
    if reference is not None and spec is not None:
        raise InputError(f"give {option('reference')} or {option('spec')}, not both: the original's manifest says what to check")
    limits = given_or_env(limits)
    reports = []
    if perturb not in (None, True, False):
        raise InputError(f"perturb should be True, False or None (the default for the check), not {perturb!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 31):
        raise InputError(f"{option('perturb-seed')} should be a whole number from 0 to {2 ** 31 - 1}, not {seed!r}")
    trusted = trust.load_reference(reference, limits, rebuild) if reference is not None else None
    options = dict(perturb=perturb, seed=seed, rebuild=rebuild, progress=_counter(progress))
    for name in engine_names(engine):
        found = {}
        for chosen, picked in _engine_for_each(paths, name):
            with engines.workspace() as workdir:
                done = _check_with(chosen, [paths[i] for i in picked], workdir, device, timeout, spec, trusted,
                                   warm if chosen == name else None, started if chosen == name else None, limits,
                                   options)
            for i, report in zip(picked, done):
                if chosen != name:
                    report.notes.append(f"checked with {chosen}: {name} lays the pivot tables of this book out again "
                                        f"as it opens it, which moves the cells around them; {chosen} leaves them "
                                        "alone")
                found[i] = report
        reports += [found[i] for i in sorted(found)]
    return reports


def _engine_for_each(paths, engine):
    """[(engine, indices of the paths it checks)]: ``engine`` for every path, except a book with
    pivot tables, which LibreOffice lays out again as it opens them: Gnumeric, which leaves them
    alone, checks it when it is installed."""
    everyone = list(range(len(paths)))
    if engine != "libreoffice" or "gnumeric" not in engines.installed():
        return [(engine, everyone)]
    pivoted = [i for i in everyone if _has_pivot_tables(paths[i])]
    rest = [i for i in everyone if i not in pivoted]
    return [(name, picked) for name, picked in ((engine, rest), ("gnumeric", pivoted)) if picked]


def _has_pivot_tables(path):
    """True when the package holds a pivot table part (a file that cannot be read: False, and
    its check says why)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.startswith("xl/pivotTables/") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _perturbs(prep, trusted, asked):
    """Whether a file gets the perturbed recheck: as asked, else for a learner's copy checked by
    its original and for a book with exercises (a grade)."""
    if asked is not None:
        return asked
    return trusted is not None or any("exercise" in info for info in prep.manifest["tensors"].values())


def _plan(prep, proof, chosen_engine, trusted, options):
    """The perturb.Moves of a file's recheck, or None (its notes say why a recheck did not run)."""
    if not _perturbs(prep, trusted, options["perturb"]):
        return None
    if not chosen_engine.recalculates:
        proof.notes.append("not rechecked with its inputs moved: this engine does not recalculate")
        return None
    seed = options["seed"] if options["seed"] is not None else perturb_mod.new_seed()
    moves = perturb_mod.plan(proof.saved, proof.formulas, seed)
    if not moves.cells:
        proof.notes.append("not rechecked with its inputs moved: it has no number that can be moved")
        return None
    return moves


class _Proofs:
    """Stage 2 for every file, in order, on another thread: what a file alone proves is worked
    out while the engine starts and recalculates. ``get(k)`` waits for file k's (FileProof,
    perturb.Moves or None), or raises what is wrong with it."""

    def __init__(self, prepared, trusted, options, chosen_engine):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1)
        self._later = ThreadPoolExecutor(1)  # which cells compute, while the engine recalculates
        self._futures = [self._pool.submit(self._one, prep, trusted, options, chosen_engine) for prep in prepared]

    def _one(self, prep, trusted, options, chosen_engine):
        proof = trust_file(prep, trusted, options["rebuild"], later=self._later.submit)
        return proof, _plan(prep, proof, chosen_engine, trusted, options)

    def get(self, k):
        return self._futures[k].result()

    def close(self):
        """Stop: a proof under way finishes first (the files it reads are closed after)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._later.shutdown(wait=True, cancel_futures=True)


def _moved_copy(prep, moves, workdir, k):
    """A copy of the prepared file with the moved inputs written in its cells."""
    folder = Path(workdir) / f"moved-{k}"
    folder.mkdir()
    copy = folder / f"moved{prep.copy.suffix.lower()}"
    hidden_sheet.set_values(prep.copy, copy, moves.by_part(prep.package))
    return copy


def _check_with(name, paths, workdir, device, timeout, spec, trusted, warm, started, limits, options):
    """Every file through the stages with one engine."""
    from .device import pick_device

    chosen_engine = engines.get(name)
    prepared, proofs = [], None
    try:
        for p in paths:  # stage 1 for every file before any engine starts
            prepared.append(prepare(p, workdir, name, spec, timeout, trusted=trusted.manifest if trusted else None,
                                    limits=limits))
        proofs = _Proofs(prepared, trusted, options, chosen_engine)  # stage 2, while the engine starts
        # torch takes seconds to import: it does so on the other core while the engine recalculates
        threading.Thread(target=_import_torch, daemon=True).start()
        ahead = _Ahead(proofs, len(prepared), device, enabled=chosen_engine.recalculates)
        hot = warm if chosen_engine.runs_warm else None
        own = None
        try:
            if chosen_engine.runs_warm and hot is None and chosen_engine.warm_available():
                # an engine started warm for this check: it starts sooner than a batch
                # conversion and hands over each book as soon as it is recalculated
                own = hot = chosen_engine.start_warm(start_timeout=min(timeout, START_TIMEOUT))
            if hot is None:
                done = [proofs.get(k) for k in range(len(prepared))]
                moved = [m for _, m in done]
                extra = [_moved_copy(p, m, workdir, k) for k, (p, m) in enumerate(zip(prepared, moved)) if m is not None]
                copies = engines.recalc([p.copy for p in prepared] + extra, name, workdir, timeout,
                                        sources=[p.source for p in prepared] + [p.source for p, m in zip(prepared, moved)
                                                                                if m is not None])
                rest = iter(copies[len(prepared):])
                rechecks = [None if m is None else (m, next(rest)) for m in moved]
                chosen = pick_device(device)  # a GPU asked for and absent: said before any file
                found = []
                for k, (prep, copy) in enumerate(zip(prepared, copies)):
                    found.append(_check_one(prep, done[k][0], copy, name, chosen, trusted, ahead.take(k), rechecks[k],
                                            ahead.take(k, moved=True)))
                    options["progress"](prep.source)
            else:
                found = _pipelined(prepared, proofs, name, hot, workdir, timeout, device, trusted, ahead,
                                   options["progress"])
        finally:
            ahead.close()
            if own is not None:
                own.close()
    finally:
        if proofs is not None:
            proofs.close()
        for prep in prepared:
            prep.close()
    start = "" if not chosen_engine.recalculates else (started or ("warm" if warm is not None else "cold start"))
    for report in found:
        report.started = start
    return found


def _pipelined(prepared, proofs, engine, hot, workdir, timeout, device, trusted, ahead, progress):
    """Recalculate book after book with a warm engine while the book before is checked
    on the other core; returns the reports in order."""
    from concurrent.futures import ThreadPoolExecutor
    from .device import pick_device

    chosen = []

    def check(k, copy, recheck):
        if not chosen:
            chosen.append(pick_device(device))  # a GPU asked for and absent: said before any report
        report = _check_one(prepared[k], proofs.get(k)[0], copy, engine, chosen[0], trusted, ahead.take(k), recheck,
                            ahead.take(k, moved=True))
        progress(prepared[k].source)
        return report

    pool = ThreadPoolExecutor(1)
    try:
        futures = []
        for k, prep in enumerate(prepared):
            folder = Path(workdir) / f"book-{k}"
            folder.mkdir()
            _, moves = proofs.get(k)  # a file refused by what it alone shows never reaches the engine
            if moves is None:
                copy, recheck = engines.recalc([prep.copy], engine, folder, timeout, sources=[prep.source], warm=hot)[0], None
            else:  # one load: recalculated, then the inputs moved in the loaded document and recalculated again
                cells = [(sheet, r, c, v) for (sheet, r, c), v in moves.cells.items()]
                copy, again = engines.recalc_moved(prep.copy, cells, folder, hot, timeout, source=prep.source)
                recheck = (moves, again)
            futures.append(pool.submit(check, k, copy, recheck))
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _import_torch():
    with contextlib.suppress(Exception):
        importlib.import_module("torch")


class _Ahead:
    """The end-to-end torch runs, started while the engine recalculates.

    They read only a workbook's raw inputs (the cells no op computes: data, starting weights,
    hyper-parameters). When every such cell holds a constant, no recalculation can change it,
    so torch can run from the file as saved while the engine works on the other core; after
    the recalculation the inputs read back are compared with those used, and a run whose
    inputs differ in any bit is thrown away and done again.
    """

    def __init__(self, proofs, count, device, enabled=True):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1) if enabled else None
        self._futures = [self._pool.submit(_run_ahead, proofs, k, device) for k in range(count)] if enabled else []
        # the recheck's run, from the moved inputs: known before any engine recalculates them
        self._moved = [self._pool.submit(_run_ahead, proofs, k, device, True) for k in range(count)] if enabled else []

    def take(self, k, moved=False):
        """Book k's (raw inputs, end-to-end results), or None: not started yet (then it never
        will be: the check runs it), not possible, or failed (the check says why); ``moved``:
        of its recheck."""
        futures = self._moved if moved else self._futures
        if not futures or futures[k] is None or futures[k].cancel():
            return None
        try:
            return futures[k].result()
        except Exception:
            return None

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _run_ahead(proofs, k, device, moved=False):
    from . import bridge
    from .device import pick_device

    proof, moves = proofs.get(k)
    if moved and moves is None:
        return None
    book, cells = proof.saved, proof.formulas
    raw = bridge.raw_inputs(book.manifest)
    if any((r, c) in cells.get(sheet, {}) for name in raw for sheet, r, c in book.tensors[name].coords):
        return None  # an input computed by a formula: only the recalculated value counts
    values = {name: book.tensors[name].values for name in raw}
    if moved:
        values = {name: perturb_mod.moved_values(book.tensors[name], moves) for name in raw}
    return values, bridge.end_to_end(book.manifest, values, pick_device(device),
                                     {name: tensor.coords for name, tensor in book.tensors.items()})


def _same_inputs(used, book):
    import numpy as np

    for name, value in used.items():
        now = book.tensors[name].values
        if value.shape != now.shape:
            return False
        if value.dtype == object or now.dtype == object:
            if not (value == now).all():
                return False
        elif not np.array_equal(value, now, equal_nan=True):
            return False
    return True


def _check_one(prep, proof, copy, engine, device, trusted, ahead=None, recheck=None, ahead_moved=None):
    """Stages 4 and 5 for one recalculated copy: read it, verify what it must prove, and
    compare it with torch.

    ``proof``: the FileProof of the file as saved; ``ahead``: (raw inputs, end-to-end results)
    of torch's run started before the recalculation; ``recheck``: (perturb.Moves, the
    recalculated copy with those inputs moved), or None; ``ahead_moved``: torch's run from the
    moved inputs."""
    from . import bridge

    proof.settle()
    book = read.read_workbook(copy, manifest=prep.manifest, strict_inputs=False, source=prep.source,
                              limits=prep.limits)
    recalculates = engines.get(engine).recalculates
    if recalculates and prep.package.pivot_tables:
        inputs.refuse_rewritten(book, proof, prep.package.pivot_tables, prep.source, engine)
    unusable = inputs.refuse_bad(book, prep)
    if not recalculates:
        inputs.refuse_unsaved_values(book, proof.formulas, prep.source)
    if recalculates or prep.spec is None:  # a spec'd book read as saved has no sentinel of its own to prove
        assert_recalculated(book.sentinel, prep.source, engine)
    e2e = ahead[1] if ahead is not None and _same_inputs(ahead[0], book) else None
    formula_at = None
    if any("exercise" in info for info in book.manifest["tensors"].values()):
        from . import exercises
        formula_at = exercises.formula_reader(book.tensors, proof.formulas)
    report = bridge.check_workbook(book, device, engine=engine, typed=proof.typed, e2e=e2e, formula_at=formula_at,
                                   unread=proof.unread, unusable=unusable)
    report.problems += list(unusable.values()) + proof.problems
    report.notes += proof.notes
    if trusted is not None:
        report.notes += trusted.notes
    if recheck is not None:
        moves, moved_copy = recheck
        moved = read.read_workbook(moved_copy, manifest=prep.manifest, strict_inputs=False, source=prep.source,
                                   limits=prep.limits)
        assert_recalculated(moved.sentinel, prep.source, engine)
        perturb_mod.refuse_unmoved(moved, moves, prep.source)
        e2e_moved = ahead_moved[1] if ahead_moved is not None and _same_inputs(ahead_moved[0], moved) else None
        again = bridge.check_workbook(moved, device, engine=engine, typed=proof.typed, formula_at=formula_at,
                                      unread=proof.unread, e2e=e2e_moved)
        perturb_mod.merge(report, again, moves)
    report.sentinel = "ok" if recalculates else "as saved"
    if not recalculates:
        report.notes.append("engine cached: nothing was recalculated; the values are read as the file was last "
                            "saved; this proves they agree with torch, not that any engine computes them")
    if trusted is not None:
        report.notes.append(f"checked by the manifest of {trusted.path.name}; this file's own is ignored")
    if engine == "gnumeric" and prep.package.tables:
        report.notes += inputs.structured_refs_unread(book, proof.formulas, prep.package.tables)
    if prep.spec is not None:
        names = sorted({t.cells[k] for t in book.tensors.values() for k, e in t.errors.items()
                        if e == "#NAME?"})
        report.notes += opened.notes_for(prep.survey, names, engine)
        report.spec = str(prep.spec.path)
    return report


def assert_recalculated(sentinel, path, engine):
    if sentinel == manifest_mod.SENTINEL_VALUE:
        return
    hint = ("its cached values are stale: open and save it in Excel or LibreOffice first, or use "
            f"{option('engine')} libreoffice") if not engines.get(engine).recalculates else "the engine kept the cached values"
    raise EngineError(f"{path}: no recalculation happened with engine {engine} (sentinel "
                      f"{manifest_mod.SENTINEL_CELL} reads {sentinel!r}, expected "
                      f"{manifest_mod.SENTINEL_VALUE}); {hint}")
