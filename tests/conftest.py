"""Shared fixtures: workbooks built into temporary folders, and helpers to edit them."""

import os
import re
import shutil
import tempfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import settings

import xlnet
import xlnet.lessons
from xlnet import engines
from xlnet.workbook import read
from xlnet.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
LESSONS = tuple(xlnet.lessons.all_lessons())  # every lesson, in the order they are taught

# A check goes to `xlnet serve` when one is running: the tests start their own, or none.
# Weights trained for a conv shape are kept in a cache folder: the suite's own, new each session.
os.environ["XLNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="xlnet-tests-cache-")
os.environ["XLNET_SOCKET"] = str(Path(tempfile.gettempdir()) / f"xlnet-tests-{os.getpid()}" / "no-server.sock")

# In CI (or with XLNET_REQUIRE_ENGINES=1) a test whose engine is missing fails: a suite that
# skips every recalculation must not come out green. Elsewhere it is skipped, and says so.
ENGINES_REQUIRED = bool(os.environ.get("CI") or os.environ.get("XLNET_REQUIRE_ENGINES"))


def require_engine(engine):
    """Go on when ``engine`` is installed; else fail (engines required) or skip the test.
    ``libreoffice-uno``: LibreOffice with its Python bindings (a warm LibreOffice)."""
    from xlnet.engines import warm
    if warm.available() if engine == "libreoffice-uno" else engines.available(engine):
        return
    message = f"{engine} is not installed"
    if ENGINES_REQUIRED:
        pytest.fail(f"{message}, and CI / XLNET_REQUIRE_ENGINES requires every engine: run scripts/setup.sh",
                    pytrace=False)
    pytest.skip(message)


# Property tests: 25 examples each in CI, fewer on a developer's machine.
settings.register_profile("ci", max_examples=25, derandomize=True)  # the same examples on every run: a verdict does not change with the draw
settings.register_profile("dev", max_examples=5)
settings.load_profile("ci" if ENGINES_REQUIRED else "dev")

needs_libreoffice = pytest.mark.engine("libreoffice")
needs_gnumeric = pytest.mark.engine("gnumeric")
needs_warm_libreoffice = pytest.mark.engine("libreoffice-uno")


def pytest_runtest_setup(item):
    for mark in item.iter_markers("engine"):
        require_engine(mark.args[0])


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """Build every lesson once, with default settings; return {lesson: path}."""
    out = tmp_path_factory.mktemp("built")
    return {p.stem: p for p in xlnet.build(out=out)}


@pytest.fixture
def copy_of(built, tmp_path):
    """Return a function giving a private copy of a built lesson workbook."""
    def make(lesson):
        target = tmp_path / f"{lesson}.xlsx"
        shutil.copyfile(built[lesson], target)
        return target
    return make


def tensor_cell(path, name, index=0):
    """Return (sheet, cell) of element ``index`` (flat) of a tensor, via the workbook itself."""
    book = xlnet.load(path)
    address = book.tensors[name].address(index)
    sheet, cell = address.split("!")
    return sheet.strip("'"), cell


def edit(path, changes):
    """Set cells with openpyxl, as a user's script would: {(sheet, cell): value or formula}."""
    book = openpyxl.load_workbook(path)
    for (sheet, cell), value in changes.items():
        book[sheet][cell].value = value
    book.save(path)


class _SessionEngine:
    """One warm LibreOffice for every in-process check of the session, started at the first
    need and stopped when the session ends (tests about starting and stopping an engine start
    their own, in child processes). A recalculation through it is proved by the sentinel like
    any other: only LibreOffice's start-up is saved."""

    warm = None

    @classmethod
    def get(cls):
        if cls.warm is None:
            require_engine("libreoffice-uno")
            cls.warm = engines.get("libreoffice").start_warm()
        return cls.warm

    @classmethod
    def close(cls):
        if cls.warm is not None:
            cls.warm.close()
            cls.warm = None


def pytest_sessionfinish(session):
    _SessionEngine.close()
    shutil.rmtree(os.environ["XLNET_CACHE_DIR"], ignore_errors=True)


def session_warm(engine="libreoffice"):
    """The session's warm engine for ``engine`` (None for an engine that is not kept warm)."""
    return _SessionEngine.get() if engines.get(engine).runs_warm else None


def check(paths, engine="libreoffice", **options):
    """``xlnet.check`` through the session's warm LibreOffice (the same checks, no start-up each time)."""
    if "warm" not in options and engine != "all":
        options["warm"] = session_warm(engine)
    return xlnet.check(paths, engine=engine, **options)


def recalculated(path, engine="libreoffice"):
    """Recalculate a copy of a workbook with a real engine and read every tensor back."""
    with tempfile.TemporaryDirectory() as tmp:
        return read.read_workbook(engines.recalc([path], engine, tmp, warm=session_warm(engine))[0])


def assert_every_block_checked(report, path):
    """The report passes, and it has one row for every output of every op in the manifest (a
    report of zero blocks, or one that skipped ops, cannot pass this)."""
    manifest = xlnet.load(path).manifest
    outputs = sum(len(entry["outputs"]) for entry in manifest["ops"])
    computed = sum(len(entry["outputs"]) for entry in manifest["ops"] if not entry.get("composite"))
    assert len(report.blocks) == outputs and computed > 0, report.text()
    assert sum(b.status == "pass" for b in report.blocks) == computed, report.text()
    assert report.passed, report.text()


def statuses(report):
    return {b.tensor: b.status for b in report.blocks if b.status != "e2e"}


def break_formula(path, tensor, index, old, new):
    """Rewrite one cell's formula (its first ``old`` becomes ``new``), check the workbook with
    LibreOffice, and assert that exactly that block fails, at that cell."""
    sheet, cell = tensor_cell(path, tensor, index)
    book = openpyxl.load_workbook(path)
    formula = book[sheet][cell].value
    assert old in formula, formula
    book[sheet][cell] = formula.replace(old, new, 1)
    book.save(path)
    [report] = check(path, engine="libreoffice")
    failed = [b for b in report.blocks if b.status == "fail"]
    assert [b.tensor for b in failed] == [tensor], report.text()
    assert failed[0].worst_cell == f"{sheet}!{cell}"
    assert not report.passed


def assert_edited_cell_refused(path, tensor, value, rebuild):
    """Edit a cell that sets the layout and expect the check to refuse it, naming the cell and
    the ``rebuild`` command."""
    sheet, cell = tensor_cell(path, tensor)
    edit(path, {(sheet, cell): value})
    with pytest.raises(InputError, match=rf"{sheet}!{cell}.*{re.escape(rebuild)}"):
        check(path, engine="libreoffice")


def pytest_terminal_summary(terminalreporter):
    """The hostile-input tally, when those tests ran."""
    import sys
    tally = getattr(sys.modules.get("test_hostile"), "TALLY", None)
    if not tally:
        return
    if "cli" in tally:
        cases, held, peak = tally["cli"]
        terminalreporter.write_line(f"hostile-input corpus: {cases} command-line cases, {held} held "
                                    f"(peak memory {peak} MB)")
    if "api" in tally:
        terminalreporter.write_line(f"hostile-input corpus: {tally['api'][0]} API cases, {tally['api'][1]} held")
    if "udf" in tally:
        terminalreporter.write_line(f"hostile-input corpus: {len(tally['udf'])} UDF cases held")
