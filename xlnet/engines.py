"""Recalculation backends behind one function: ``recalc(paths, engine, workdir) -> paths``.

Each engine writes recalculated copies into ``workdir``; the user's files are never touched.
Whether a recalculation really happened is proved afterwards by the sentinel cell (see
``manifest.SENTINEL_CELL``), never assumed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from . import excel
from .errors import EngineError

ENGINES = ("libreoffice", "gnumeric", "formulas", "excel", "cached")
DEFAULT_TIMEOUT = 600

# Gnumeric evaluates with a wider exponent range: EXP(800) is a number there, so the cells where
# Excel and LibreOffice overflow to #NUM! hold finite values (saved as inf, or as the true result).
_OVERFLOW_MAY_BE_FINITE = {"gnumeric"}

# LibreOffice keeps the cached values of an xlsx that claims to come from Excel unless told to
# recalculate on load; this private profile tells it to, always, and never to run a macro.
_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="FirstRun" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
</oor:items>
"""


def available(engine):
    """Return True when ``engine`` can run on this machine."""
    if engine == "libreoffice":
        return _soffice() is not None
    if engine == "gnumeric":
        return shutil.which("ssconvert") is not None
    if engine == "formulas":
        try:
            import formulas  # noqa: F401
        except ImportError:
            return False
        return True
    if engine == "excel":
        return excel.app_class() is not None
    return engine == "cached"


def overflow_may_be_finite(engine):
    """True when ``engine`` may hold a number where Excel shows an overflow error (#NUM!)."""
    return engine in _OVERFLOW_MAY_BE_FINITE


def installed():
    """The recalculating engines that can run here (never ``cached``), in order of preference."""
    return [e for e in ENGINES if e != "cached" and available(e)]


def recalc(paths, engine, workdir, timeout=DEFAULT_TIMEOUT):
    """Recalculate workbooks with a spreadsheet engine, into copies.

    Args:
        paths: workbook files (.xlsx or .xlsm).
        engine: one of ENGINES.
        workdir: an existing directory for the copies (the caller removes it).
        timeout: seconds before the engine is stopped and an EngineError raised.

    Returns:
        The recalculated copies, in the order of ``paths``.
    """
    paths = [Path(p) for p in paths]
    workdir = Path(workdir)
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)} or all")
    # Copy first, under unique names, so two files called book.xlsx do not collide.
    inputs = workdir / f"{engine}-in"
    inputs.mkdir()
    copies = []
    for i, path in enumerate(paths):
        copy = inputs / f"{i}_{path.stem}{path.suffix.lower()}"
        shutil.copyfile(path, copy)
        copies.append(copy)
    if engine == "cached":
        return copies
    out = workdir / f"{engine}-out"
    out.mkdir()
    runner = {"libreoffice": _libreoffice, "gnumeric": _gnumeric, "formulas": _formulas,
              "excel": _excel}[engine]
    results = runner(copies, out, timeout)
    for src, result in zip(paths, results):
        if not result.is_file() or result.stat().st_size == 0:
            raise EngineError(f"{src}: {engine} wrote no recalculated copy")
    return results


def _soffice():
    return shutil.which("soffice") or shutil.which("libreoffice")


def _run(cmd, timeout, what, env=None):
    """Run a command in its own process group; kill the whole group on timeout or exit."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        raise EngineError(f"{what} did not finish within {timeout} s and was stopped") from None
    finally:
        _kill_group(proc)
    if proc.returncode != 0:
        tail = (stderr or stdout).decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise EngineError(f"{what} failed with exit code {proc.returncode}: {tail[0]}")
    return stdout.decode(errors="replace")


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _libreoffice(copies, out, timeout):
    soffice = _soffice()
    if soffice is None:
        raise EngineError("LibreOffice is not installed (no soffice on PATH): "
                          "install it with apt-get install libreoffice-calc, or use --engine gnumeric")
    profile = Path(tempfile.mkdtemp(prefix="lo-profile-", dir=out.parent))
    (profile / "user").mkdir()
    (profile / "user" / "registrymodifications.xcu").write_text(_PROFILE)
    cmd = [soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
           "--nolockcheck", "--nodefault", "--convert-to", "xlsx:Calc MS Excel 2007 XML",
           "--outdir", str(out), *map(str, copies)]
    env = dict(os.environ, SAL_USE_VCLPLUGIN="svp")
    # One process converts the whole batch: start-up is the expensive part.
    _run(cmd, timeout, "LibreOffice", env=env)
    return [out / (c.stem + ".xlsx") for c in copies]


def convert_to_xlsx(path, workdir, engine, timeout=DEFAULT_TIMEOUT):
    """Convert a legacy .xls workbook to .xlsx with LibreOffice or Gnumeric.

    Args:
        path: the .xls file (never modified).
        workdir: an existing directory for the conversion.
        engine: libreoffice or gnumeric.
        timeout: seconds allowed.

    Returns:
        The .xlsx path.
    """
    path, workdir = Path(path), Path(workdir)
    folder = Path(tempfile.mkdtemp(prefix="xls-", dir=workdir))
    source = folder / "legacy.xls"
    shutil.copyfile(path, source)
    converted = (_libreoffice if engine == "libreoffice" else _gnumeric)([source], folder, timeout)[0]
    if not converted.is_file() or converted.stat().st_size == 0:
        raise EngineError(f"{path}: {engine} could not convert this .xls workbook; save it as .xlsx")
    return converted


def _gnumeric(copies, out, timeout):
    ssconvert = shutil.which("ssconvert")
    if ssconvert is None:
        raise EngineError("Gnumeric is not installed (no ssconvert on PATH): "
                          "install it with apt-get install gnumeric, or use --engine libreoffice")
    results = []
    for copy in copies:
        target = out / (copy.stem + ".xlsx")
        _run([ssconvert, "--recalc", "--export-type=Gnumeric_Excel:xlsx2", str(copy), str(target)],
             timeout, "Gnumeric (ssconvert)")
        results.append(target)
    return results


def _formulas(copies, out, timeout):
    try:
        import formulas
        import schedula  # formulas' own dependency: its EMPTY marks a blank cell
    except ImportError:
        raise EngineError("the formulas engine needs the Python package formulas: "
                          "pip install 'xlnet[formulas]'") from None
    import openpyxl

    results = []
    for copy in copies:
        try:
            with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):  # progress bars
                model = formulas.ExcelModel().loads(str(copy)).finish()
                solution = model.calculate()
        except Exception as exc:  # formulas raises many kinds on what it does not support
            raise EngineError(f"{copy.name.split('_', 1)[1]}: the formulas engine cannot compute "
                              f"this workbook ({type(exc).__name__}: {exc})") from None
        book = openpyxl.load_workbook(copy)
        by_upper = {name.upper(): name for name in book.sheetnames}
        for key, value in solution.items():
            ref = str(key)
            if ":" in ref.split("!")[-1] or "!" not in ref:
                continue
            sheet_part, cell = ref.rsplit("!", 1)
            sheet = by_upper.get(sheet_part.split("]")[-1].strip("'").upper())
            if sheet is None:
                continue
            raw = getattr(value, "value", value)
            try:
                raw = raw.ravel()[0]
            except AttributeError:
                pass
            book[sheet][cell].value = None if raw is schedula.EMPTY else _plain(raw)
        target = out / (copy.stem + ".xlsx")
        book.save(target)
        results.append(target)
    return results


def _plain(value):
    """A value the formulas library computed, as openpyxl should store it."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    text = str(value)
    if text.startswith("#"):
        return text  # openpyxl stores Excel error codes as error cells
    try:
        return float(value)
    except (TypeError, ValueError):
        return text


def _excel(copies, out, timeout):
    app_class = excel.app_class()
    if app_class is None:
        raise EngineError("the excel engine needs Microsoft Excel on Windows or macOS, driven by "
                          "xlwings; none is here: use --engine libreoffice or gnumeric")
    results = []
    with app_class(visible=False, add_book=False) as app:
        for copy in copies:
            target = out / (copy.stem + ".xlsx")
            book = app.books.open(str(copy))
            try:
                app.calculate()
                book.save(str(target))
            finally:
                book.close()
            results.append(target)
    return results
