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
import threading
import time
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


MAX_TIMEOUT = 24 * 3600


def check_timeout(timeout):
    """Refuse a timeout that is not a number of seconds from 1 to a day."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 1 <= timeout <= MAX_TIMEOUT:
        raise EngineError(f"--timeout should be a number of seconds from 1 to {MAX_TIMEOUT}, not {timeout!r}")


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
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)} or all")
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
    if engine == "cached":
        return copies
    out = workdir / f"{engine}-out"
    out.mkdir()
    runner = {"libreoffice": _libreoffice if warm is None else warm.recalc, "gnumeric": _gnumeric,
              "formulas": _formulas, "excel": _excel}[engine]
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


def _soffice():
    return shutil.which("soffice") or shutil.which("libreoffice")


def _run(cmd, timeout, what, env=None, tmpdir=None):
    """Run a command in its own process group; kill the whole group on timeout or exit.

    ``tmpdir`` becomes the command's TMPDIR, so whatever temporary files it leaves behind
    when it is killed go with the caller's workspace."""
    env = dict(env if env is not None else os.environ)
    if tmpdir is not None:
        env.update(TMPDIR=str(tmpdir), TMP=str(tmpdir), TEMP=str(tmpdir))
    proc = None
    try:
        with _starting_a_child():
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        raise EngineError(f"{what} did not finish within {timeout} s and was stopped "
                          "(raise --timeout for a large workbook)") from None
    finally:
        if proc is not None:
            _kill_group(proc)
            if proc.returncode is None:
                with contextlib.suppress(Exception):
                    proc.wait(timeout=5)
    if proc.returncode != 0:
        text = (stderr or stdout).decode(errors="replace").strip().splitlines()
        tail = next((line for line in reversed(text) if line.strip()), "")
        if proc.returncode < 0:
            raise EngineError(f"{what} crashed (killed by signal {-proc.returncode})" + (f": {tail[:200]}" if tail else ""))
        raise EngineError(f"{what} failed with exit code {proc.returncode}" + (f": {tail[:200]}" if tail else ""))
    return stdout.decode(errors="replace")


class _Starting:
    """Signals that arrive while the main thread starts a child: an exception raised inside
    ``Popen`` would leave the child running with nobody holding its pid, so a signal handler
    asks ``defer_signal`` first and the signal is raised again once the pid is known."""

    active = False
    pending = []


def defer_signal(signum):
    """For a signal handler: True when the signal must wait (a child is being started); it is
    raised again as soon as the child's pid is known."""
    if _Starting.active:
        _Starting.pending.append(signum)
        return True
    return False


@contextlib.contextmanager
def _starting_a_child():
    main = threading.current_thread() is threading.main_thread()
    if main:
        _Starting.active = True
    try:
        yield
    finally:
        if main:
            _Starting.active = False
            pending, _Starting.pending = _Starting.pending, []
            for signum in pending[:1]:
                signal.raise_signal(signum)


def _kill_group(proc):
    """Kill the command's whole process group, and wait (a few seconds at most) until it is gone:
    every member dead (a zombie waiting for init to reap it holds nothing any more)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        proc.poll()  # reaps the leader, so only live members keep the group
        if not _group_alive(proc.pid):
            return
        time.sleep(0.02)


def _group_alive(pgid):
    """True while a process of the group is alive; on Linux, zombies do not count."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not os.path.isdir("/proc/self"):
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


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
    _run(cmd, timeout, "LibreOffice", env=env, tmpdir=profile)
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
             timeout, "Gnumeric (ssconvert)", tmpdir=out)
        results.append(target)
    return results


def _formulas(copies, out, timeout):
    """The formulas library, in a child process of its own so that --timeout can stop it."""
    import importlib.util
    import sys

    if importlib.util.find_spec("formulas") is None:
        raise EngineError("the formulas engine needs the Python package formulas: "
                          "pip install 'xlnet[formulas]'")
    results = []
    for copy in copies:
        target = out / (copy.stem + ".xlsx")
        _run([sys.executable, "-m", "xlnet.formulas_engine", str(copy), str(target)], timeout,
             "the formulas engine", tmpdir=out)
        results.append(target)
    return results


def _excel(copies, out, timeout):
    app_class = excel.app_class()
    if app_class is None:
        raise EngineError("the excel engine needs Microsoft Excel on Windows or macOS, driven by "
                          "xlwings; none is here: use --engine libreoffice or gnumeric")
    import threading

    results = []
    with app_class(visible=False, add_book=False) as app:
        watchdog = threading.Timer(timeout, app.kill)  # Excel runs out of process: stop it whole
        watchdog.start()
        try:
            for copy in copies:
                target = out / (copy.stem + ".xlsx")
                book = app.books.open(str(copy))
                try:
                    app.calculate()
                    book.save(str(target))
                finally:
                    book.close()
                results.append(target)
        except Exception as exc:
            if not watchdog.is_alive():
                raise EngineError(f"Excel did not finish within {timeout} s and was stopped") from None
            raise EngineError(f"Excel failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
        finally:
            watchdog.cancel()
    return results
