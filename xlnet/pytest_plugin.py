"""pytest plugin: ``pytest --xlnet PATHS`` collects workbooks as tests, one per block.

A workbook is collected when it carries an xlnet manifest (built by ``xlnet build`` or
``xlnet annotate``) or has a spec beside it (``book.xlsx`` + ``book.xlnet.toml``). Every
collected workbook is recalculated in one engine run for the whole session; each block is a
test item that fails with its worst cell, the value there and torch's, or because its cells do
not compute (typed values, formulas reading none of its inputs); one more item per workbook,
``workbook``, fails when the check cannot run or finds what fails the book outside its blocks.
The items pass exactly when ``xlnet check`` exits 0. ``--junitxml`` then reports them like any
other test. ``--xlnet-reference ORIGINAL`` grades every workbook by the original's manifest, as
``xlnet check --reference`` does (a class's copies of an exercise book: a forged manifest in a
copy changes nothing).

The ``xlnet_open`` fixture opens workbooks as tensors for a test (``xlnet.open``), caching for
the session.

With LibreOffice (and its Python bindings), the session keeps one LibreOffice warm from the
first recalculation to the end: every later batch and every ``xlnet_open`` call skips its
start-up. ``--xlnet-cold`` starts a fresh one each time instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SUFFIXES = (".xlsx", ".xlsm")


def pytest_addoption(parser):
    group = parser.getgroup("xlnet", "check workbooks against torch")
    group.addoption("--xlnet", action="store_true", default=False,
                    help="collect workbooks with an xlnet manifest or a BOOK.xlnet.toml spec as tests, one per block")
    group.addoption("--xlnet-engine", default="libreoffice",
                    help="engine that recalculates them: libreoffice (default), gnumeric, formulas, excel, cached")
    group.addoption("--xlnet-device", default="auto", help="where torch runs: auto (default), cpu, cuda")
    group.addoption("--xlnet-reference", default=None, metavar="ORIGINAL",
                    help="grade every workbook by this trusted original's manifest (the copy handed out), as "
                         "`xlnet check --reference` does")
    group.addoption("--xlnet-cold", action="store_true", default=False,
                    help="start LibreOffice afresh for each recalculation instead of keeping one warm for the session")


def pytest_configure(config):
    reference = config.getoption("xlnet_reference")
    config._xlnet_session = _Session(config.getoption("xlnet_engine"), config.getoption("xlnet_device"),
                                     keep_warm=not config.getoption("xlnet_cold"),
                                     reference=Path(reference).resolve() if reference else None)


def pytest_unconfigure(config):
    session = getattr(config, "_xlnet_session", None)
    if session is not None:
        session.close()


def _carries_manifest(path):
    """True when the workbook carries xlnet's hidden sheet; the InputError of a file that cannot be
    opened safely (a zip bomb is refused from its zip directory, before anything inflates)."""
    from . import manifest
    from .errors import InputError
    from .workbook.package import open_package

    try:
        with open_package(path) as package:
            return manifest.SHEET in package.sheetnames
    except InputError as exc:
        return exc


def pytest_collect_file(file_path, parent):
    if not parent.config.getoption("xlnet") or file_path.suffix.lower() not in SUFFIXES + (".xls",):
        return None
    if file_path.name.startswith(("~$", ".")):  # Excel's lock files, hidden files
        return None
    reference = parent.config._xlnet_session.reference
    if reference is not None and file_path.resolve() == reference:  # the original is not a submission
        return None
    from .checking.spec import exists_beside
    carries = exists_beside(file_path) or (file_path.suffix.lower() in SUFFIXES and _carries_manifest(file_path))
    if carries is False:
        return None
    if carries is not True:  # a workbook that cannot be read safely: one failing item says why
        return WorkbookFile.from_parent(parent, path=file_path, refused=" ".join(str(carries).split()))
    parent.config._xlnet_session.pending.append(file_path)
    return WorkbookFile.from_parent(parent, path=file_path)


class _Session:
    """Checks every collected workbook in one engine run, the first time a result is asked for."""

    def __init__(self, engine, device, keep_warm=True, reference=None):
        self.engine, self.device, self.keep_warm, self.reference = engine, device, keep_warm, reference
        self.pending, self.reports, self.errors = [], {}, {}
        self.opened = {}
        self._warm = None

    def warm(self):
        """The session's warm LibreOffice, started at the first need (None: cold runs)."""
        if self._warm is None and self.keep_warm:
            from . import engines
            if engines.keeps_warm(self.engine) and engines.get(self.engine).warm_available():
                self._warm = engines.get(self.engine).start_warm()
        return self._warm

    def close(self):
        """Stop the warm LibreOffice, if one was started."""
        if self._warm is not None:
            self._warm.close()
            self._warm = None

    def report(self, path):
        from . import api
        from .errors import XlnetError

        if path not in self.reports and path not in self.errors:
            batch = [p for p in self.pending if p not in self.reports and p not in self.errors] or [path]
            warm = self.warm()
            try:
                for p, report in zip(batch, self._check(api, batch, warm)):
                    self.reports[p] = report
            except XlnetError:  # find which workbook: check them one by one
                for p in batch:
                    try:
                        self.reports[p] = self._check(api, [p], warm)[0]
                    except XlnetError as exc:
                        self.errors[p] = " ".join(str(exc).split())
        if path in self.errors:
            raise WorkbookError(self.errors[path])
        return self.reports[path]


    def _check(self, api, paths, warm):
        return api.check(paths, engine=self.engine, device=self.device, warm=warm, reference=self.reference)


class WorkbookError(Exception):
    """A workbook or spec that cannot be checked (the message is the CLI's one line)."""


class BlockMismatch(Exception):
    """A block that differs from torch."""


class WorkbookFile(pytest.File):
    """A workbook: one item per block its manifest or spec names (one failing item when it
    cannot be read)."""

    def __init__(self, *, refused=None, **kwargs):
        super().__init__(**kwargs)
        self.refused = refused

    def collect(self):
        from . import engines
        from .checking.prepare import prepare
        from .errors import XlnetError

        if self.refused:
            yield BlockItem.from_parent(self, name="workbook", index=None, error=self.refused)
            return
        session = self.config._xlnet_session
        try:
            with engines.workspace() as workdir:  # the blocks a check names: the original's, with a reference
                prep = prepare(session.reference or Path(self.path), workdir, session.engine)
                prep.close()
                titles = _titles(prep.manifest)
        except XlnetError as exc:
            yield BlockItem.from_parent(self, name="workbook", index=None, error=" ".join(str(exc).split()))
            return
        # the book as a whole: what fails it outside any block, and a check that cannot run (a
        # manifest naming no block yields this failing item, never silence)
        yield BlockItem.from_parent(self, name="workbook", index=None, error=None)
        seen = {}
        for k, title in enumerate(titles):
            seen[title] = seen.get(title, 0) + 1
            name = title if seen[title] == 1 else f"{title} #{seen[title]}"
            yield BlockItem.from_parent(self, name=name, index=k, error=None)


def _titles(manifest):
    """The block titles in the order the check reports them (as bridge.check_workbook does)."""
    titles = []
    for entry in manifest["ops"]:
        for key, name in entry["outputs"].items():
            titles.append(entry.get("title", name) + (f" [{key}]" if len(entry["outputs"]) > 1 else ""))
    return titles


class BlockItem(pytest.Item):
    """One block of a workbook, checked against torch."""

    def __init__(self, *, index, error, **kwargs):
        super().__init__(**kwargs)
        self.index, self.error = index, error

    def runtest(self):
        if self.error:
            raise WorkbookError(self.error)
        report = self.config._xlnet_session.report(Path(self.path))
        if self.index is None:
            if report.problems:
                raise BlockMismatch("; ".join(report.problems))
            return
        block = report.blocks[self.index]
        if block.status == "fail":
            raise BlockMismatch(f"{block.title} ({block.op}): worst cell {block.worst_cell} {block.message} "
                                f"(max abs {block.max_abs:.3g}, engine {report.engine})")
        if block.status == "values":
            raise BlockMismatch(f"{block.title} ({block.op}): does not compute: {block.message}")
        if block.status == "skip":
            raise BlockMismatch(f"{block.title} ({block.op}): not checked: {block.message}")
        if block.status not in ("pass", "e2e"):
            raise BlockMismatch(f"{block.title} ({block.op}): status {block.status}")
        if not block.e2e_pass:
            raise BlockMismatch(f"{block.title} ({block.op}): differs from torch run end to end from the sheet's "
                                f"inputs (max abs {block.e2e_max_abs:.3g}, engine {report.engine})")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (BlockMismatch, WorkbookError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, self.name


@pytest.fixture(scope="session")
def xlnet_open(request):
    """Open workbooks as tensors: ``book = xlnet_open("book.xlsx")``, or several at once with one
    engine run: ``a, b = xlnet_open("a.xlsx", "b.xlsx")``. Books are cached for the session."""
    from .checking.opened import open_workbooks

    session = request.config._xlnet_session

    def opener(*paths):
        wanted = [Path(p).resolve() for p in paths]
        missing = [p for p in wanted if p not in session.opened]
        if missing:
            engine = session.engine
            for p, book in zip(missing, open_workbooks(missing, engine=engine, warm=session.warm())):
                session.opened[p] = book
        books = [session.opened[p] for p in wanted]
        return books[0] if len(books) == 1 else books

    return opener
