"""A warm LibreOffice: started once, then recalculating workbook after workbook.

A cold ``soffice --convert-to`` pays LibreOffice's start-up (seconds) on every run; this keeps
one instance running behind ``uno_worker.py`` (driven over LibreOffice's own UNO bridge, by the
Python that has LibreOffice's ``uno`` module) with the same private profile as a cold run:
recalculation forced on load, macros never run. What comes back is proved recalculated by the
sentinel, exactly as from a cold run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from ..errors import EngineError, option
from . import libreoffice, process
from .base import DEFAULT_TIMEOUT

START_TIMEOUT = 120
_PYTHONS = ("/usr/lib/libreoffice/program/python", "/opt/libreoffice/program/python", "/usr/bin/python3")


@functools.lru_cache(maxsize=None)
def uno_python():
    """The interpreter that can import LibreOffice's ``uno`` module, or None: ``XLNET_UNO_PYTHON``
    (``none``: every LibreOffice run is then a batch conversion), else LibreOffice's own Python
    beside soffice, else the system's Python with Debian's python3-uno. Found by where ``uno.py``
    lies, without starting an interpreter (a check asks before every run)."""
    given = os.environ.get("XLNET_UNO_PYTHON", "")
    if given.lower() == "none":
        return None
    if given:
        return given if os.access(given, os.X_OK) else None
    soffice = libreoffice.soffice()
    program = Path(os.path.realpath(soffice)).parent if soffice else None
    candidates = [(program / "python", [program / "uno.py"])] if program else []
    candidates += [(Path(p), [Path(p).parent.parent / "lib" / "python3" / "dist-packages" / "uno.py",
                              Path(p).parent / "uno.py"]) for p in _PYTHONS]
    for python, modules in candidates:
        if os.access(python, os.X_OK) and any(m.is_file() for m in modules):
            return str(python)
    return None


def available():
    """True when LibreOffice and a Python with its ``uno`` module are both here."""
    return libreoffice.soffice() is not None and uno_python() is not None


class WarmLibreOffice:
    """One LibreOffice kept running; ``recalc`` has the signature of a cold engine run.

    Use as a context manager, or call ``close``: the worker and LibreOffice are one process
    group, killed and waited for, and the profile removed, on every way out.
    """

    def __init__(self, start_timeout=START_TIMEOUT):
        soffice, python = libreoffice.soffice(), uno_python()
        if soffice is None:
            raise EngineError("LibreOffice is not installed (no soffice on PATH): install it with "
                              "apt-get install libreoffice-calc")
        if python is None:
            raise EngineError("a warm LibreOffice needs LibreOffice's Python bindings: apt-get install "
                              "python3-uno (or set XLNET_UNO_PYTHON to a Python that can import uno)")
        self._soffice, self._python, self._start_timeout = soffice, python, start_timeout
        self._lock = threading.Lock()
        self._folder = tempfile.mkdtemp(prefix="xlnet-warm-")
        self._proc, self._lines, self.version = None, None, ""
        self.recalculated = 0
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self):
        profile = Path(self._folder) / f"profile-{time.monotonic_ns()}"
        (profile / "user").mkdir(parents=True)
        (profile / "user" / "registrymodifications.xcu").write_text(libreoffice.PROFILE)
        tmp = Path(self._folder) / "tmp"
        tmp.mkdir(exist_ok=True)
        env = dict(os.environ, SAL_USE_VCLPLUGIN="svp", TMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp))
        worker = Path(__file__).with_name("uno_worker.py")
        pipe = f"xlnet-{os.getpid()}-{time.monotonic_ns()}"
        self._pipe, self._started_at = pipe, time.time()
        with process.starting_a_child():
            self._guard = process.Watchdog()
            try:
                self._proc = subprocess.Popen(
                    [self._python, str(worker), self._soffice, profile.as_uri(), pipe, str(self._start_timeout)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                    start_new_session=True, env=env, preexec_fn=process.child_dies_with_parent())
            except BaseException:
                self._guard.stop()
                raise
            self._guard.watch(self._proc)
            self._proc.stdin.write("go\n")  # LibreOffice starts now, its group already guarded
            self._proc.stdin.flush()
        self._lines = queue.Queue()
        threading.Thread(target=self._read, args=(self._proc, self._lines), daemon=True).start()
        reply = self._reply(self._start_timeout + 1, "starting")
        if "ready" not in reply:
            raise EngineError(str(reply.get("error", reply)))
        self.version = reply["ready"]

    @staticmethod
    def _read(proc, lines):
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def _reply(self, timeout, what):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self._stop()
            raise EngineError(f"LibreOffice did not finish within {timeout:g} s and was stopped "
                              f"(while {what}; raise {option('timeout')} for a large workbook)") from None
        if line is None:
            code = self._proc.wait()
            self._stop()
            raise EngineError(f"LibreOffice crashed (killed by signal {-code})" if code < 0 else
                              f"LibreOffice stopped with exit code {code} while {what}")
        return json.loads(line)

    def recalc(self, copies, out, timeout=DEFAULT_TIMEOUT):
        """Recalculate workbook copies into ``out`` (as ``engines`` runners do); returns the paths."""
        with self._lock:
            return [self._one(copy, Path(out) / (Path(copy).stem + ".xlsx"), timeout) for copy in copies]

    def recalc_moved(self, copy, out, cells, timeout=DEFAULT_TIMEOUT):
        """Recalculate a copy into ``out``, then set ``cells`` ([(sheet, row, col, number)]) in the
        loaded document, recalculate it again and store that too: a perturbed recheck without a
        second load. Returns (the recalculated copy, the moved one)."""
        target, moved = Path(out) / (Path(copy).stem + ".xlsx"), Path(out) / (Path(copy).stem + "-moved.xlsx")
        with self._lock:
            self._one(copy, target, timeout, {"out": str(moved.resolve()), "cells": [list(c) for c in cells]})
        return target, moved

    def _one(self, copy, target, timeout, moved=None):
        if self._proc is None:
            self._start()  # stopped after a timeout or a crash: a fresh one
        request = {"in": str(Path(copy).resolve()), "out": str(target.resolve())}
        if moved:
            request["moved"] = moved
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        reply = self._reply(timeout, f"recalculating {Path(copy).name}")
        if "error" in reply:
            raise EngineError(f"LibreOffice could not recalculate it: {reply['error']}")
        self.recalculated += 1
        return target

    def _stop(self):
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
            process.kill_group(proc)
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)
            self._guard.stop()
            libreoffice.remove_stale_pipes(self._started_at, self._pipe)

    def close(self):
        """Stop LibreOffice and its worker, and remove the profile."""
        self._stop()
        deadline = time.monotonic() + 10
        while os.path.exists(self._folder) and time.monotonic() < deadline:
            shutil.rmtree(self._folder, ignore_errors=True)
            if os.path.exists(self._folder):
                time.sleep(0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
