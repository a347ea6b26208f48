"""LibreOffice Calc: the real engine. A cold run converts a batch of copies in one headless
``soffice --convert-to`` (start-up is the expensive part); ``warm.WarmLibreOffice`` keeps one
running instead. Both use a private profile that forces recalculation on load and never runs a
macro: by default LibreOffice keeps the cached values of an xlsx that claims to come from Excel.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

from ..errors import EngineError, option
from .base import Engine
from .process import run

PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="FirstRun" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
</oor:items>
"""


def soffice():
    """LibreOffice's command, or None when it is not installed."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def convert(copies, out, timeout):
    """Recalculate a batch of copies into ``out`` with one headless LibreOffice; return the results."""
    soffice_path = soffice()
    if soffice_path is None:
        raise EngineError("LibreOffice is not installed (no soffice on PATH): "
                          f"install it with apt-get install libreoffice-calc, or use {option('engine')} gnumeric")
    profile = Path(tempfile.mkdtemp(prefix="lo-profile-", dir=out.parent))
    (profile / "user").mkdir()
    (profile / "user" / "registrymodifications.xcu").write_text(PROFILE)
    cmd = [soffice_path, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
           "--nolockcheck", "--nodefault", "--convert-to", "xlsx:Calc MS Excel 2007 XML",
           "--outdir", str(out), *map(str, copies)]
    env = dict(os.environ, SAL_USE_VCLPLUGIN="svp")
    started = time.time()
    # One process converts the whole batch: start-up is the expensive part.
    try:
        run(cmd, timeout, "LibreOffice", env=env, tmpdir=profile)
    finally:
        remove_stale_pipes(started)
    return [out / (c.stem + ".xlsx") for c in copies]


_PIPE_FOLDERS = ("/tmp", "/var/tmp")  # where LibreOffice's IPC sockets go, whatever TMPDIR says


def remove_stale_pipes(since, name=None):
    """Remove the IPC sockets LibreOffice leaves in the shared temporary folder
    (``OSL_PIPE_<uid>_...``) once it has stopped: those of this user made since ``since`` (a
    time.time()) that nobody listens on any more, and the one called ``name``."""
    prefix = f"OSL_PIPE_{os.getuid()}_"
    for folder in _PIPE_FOLDERS:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(prefix):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            ours = name is not None and entry.name == prefix + name  # a name only this run used
            if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.getuid():
                continue
            if ours or (info.st_mtime >= since - 1 and not _listening(entry.path, patience=1.0)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _listening(path, patience=0.0):
    """True while a process accepts connections on the socket; ``patience``: seconds to wait
    for a LibreOffice that is being stopped to let go of it."""
    deadline = time.monotonic() + patience
    while True:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1)
            probe.connect(path)
        except OSError:
            return False
        finally:
            probe.close()
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)


class LibreOffice(Engine):
    name = "libreoffice"
    converts_xls = True
    runs_warm = True

    def available(self):
        return soffice() is not None

    def recalc(self, copies, out, timeout):
        return convert(copies, out, timeout)

    def warm_available(self):
        from . import warm
        return warm.available()

    def start_warm(self, start_timeout=None):
        from . import warm
        return warm.WarmLibreOffice(**({} if start_timeout is None else {"start_timeout": start_timeout}))


ENGINE = LibreOffice()
