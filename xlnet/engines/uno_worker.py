"""A LibreOffice kept running, driven over UNO: run by the Python that has LibreOffice's ``uno``
module (Debian's python3-uno, or LibreOffice's own program/python), never imported by xlnet.

    python3 uno_worker.py SOFFICE PROFILE_URL PIPE_NAME START_TIMEOUT

On the line ``go`` (sent once the caller guards its process group) it starts ``soffice``
headless with the given profile (the one that forces recalculation on load and disables
macros) listening on a named pipe, connects to it, prints one JSON line
``{"ready": "<LibreOffice version>"}``, then answers one JSON line per request read on stdin:
``{"in": PATH, "out": PATH}`` -> the workbook loaded (and so recalculated) and stored as .xlsx,
``{"ok": true}`` or ``{"error": "..."}``; with ``"moved": {"out": PATH, "cells": [[SHEET, ROW,
COL, NUMBER], ...]}`` the loaded document then gets those numbers, is recalculated again and
stored there too (no second load). It ends when stdin closes; its caller stops the whole
process group (this script and soffice) on any way out.

Only the standard library and ``uno``: this file runs under another interpreter than xlnet's.
"""

import json
import os
import signal
import subprocess
import sys
import time


def _prop(name, value):
    from com.sun.star.beans import PropertyValue

    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


def _say(data):
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _version(ctx):
    try:
        provider = ctx.ServiceManager.createInstanceWithContext("com.sun.star.configuration.ConfigurationProvider", ctx)
        access = provider.createInstanceWithArguments(
            "com.sun.star.configuration.ConfigurationAccess", (_prop("nodepath", "/org.openoffice.Setup/Product"),))
        return f"{access.ooName} {access.ooSetupVersionAboutBox}"
    except Exception:
        return "LibreOffice"


def main():
    soffice, profile_url, pipe_name, start_timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    # LibreOffice starts only once the caller says "go": by then the caller's watchdog guards this
    # process group, so a kill -9 of the caller at any moment leaves no LibreOffice behind
    if sys.stdin.readline().strip() != "go":
        return 1
    office = subprocess.Popen(
        [soffice, f"-env:UserInstallation={profile_url}", "--headless", "--invisible", "--norestore",
         "--nolockcheck", "--nodefault", "--nologo", f"--accept=pipe,name={pipe_name};urp;StarOffice.ComponentContext"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    try:
        return _serve(office, pipe_name, start_timeout)
    finally:
        # LibreOffice never outlives this worker: soffice.bin is oosplash's child, so the whole
        # process group (this worker leads it) goes, this worker last
        sys.stdout.flush()
        if os.getpgid(0) == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        office.kill()


def _runs(cells):
    """[(sheet, row, first col, [numbers])]: the cells grouped into runs of neighbours along a row."""
    runs = []
    for sheet, row, col, value in sorted(cells, key=lambda c: (c[0], c[1], c[2])):
        last = runs[-1] if runs else None
        if last and last[0] == sheet and last[1] == row and last[2] + len(last[3]) == col:
            last[3].append(float(value))
        else:
            runs.append((sheet, row, col, [float(value)]))
    return runs


def _die_with_parent():
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _serve(office, pipe_name, start_timeout):
    import uno

    url = f"uno:pipe,name={pipe_name};urp;StarOffice.ComponentContext"
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    deadline = time.monotonic() + start_timeout
    while True:
        try:
            ctx = resolver.resolve(url)
            break
        except Exception:
            if office.poll() is not None:  # in the words of a cold run's messages
                code = office.returncode
                _say({"error": f"LibreOffice crashed (killed by signal {-code})" if code < 0 else
                      f"LibreOffice failed with exit code {code}"})
                return 1
            if time.monotonic() > deadline:
                _say({"error": f"LibreOffice did not finish within {start_timeout:g} s and was stopped "
                      "(raise --timeout for a large workbook)"})
                return 1
            time.sleep(0.05)
    desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
    _say({"ready": _version(ctx)})
    load = (_prop("Hidden", True), _prop("MacroExecutionMode", 0), _prop("UpdateDocMode", 0),
            _prop("ReadOnly", True))
    editable = load[:-1]
    store = (_prop("FilterName", "Calc MS Excel 2007 XML"), _prop("Overwrite", True))
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        document = None
        try:
            # a document whose cells are set afterwards is opened editable (its file is a private copy)
            document = desktop.loadComponentFromURL(uno.systemPathToFileUrl(request["in"]), "_blank", 0,
                                                    editable if request.get("moved") else load)
            if document is None or not hasattr(document, "getSheets"):
                _say({"error": "LibreOffice could not open it as a spreadsheet"})
                continue
            document.storeToURL(uno.systemPathToFileUrl(request["out"]), store)
            moved = request.get("moved")
            if moved:  # the same document again, some constant cells set to other numbers
                sheets = document.getSheets()
                document.enableAutomaticCalculation(False)  # one recalculation for all of them, not one each
                document.addActionLock()
                try:
                    for sheet, row, col, values in _runs(moved["cells"]):  # a call per run of a row, not per cell
                        sheets.getByName(sheet).getCellRangeByPosition(
                            col - 1, row - 1, col + len(values) - 2, row - 1).setDataArray((tuple(values),))
                finally:
                    document.removeActionLock()
                document.calculateAll()
                document.storeToURL(uno.systemPathToFileUrl(moved["out"]), store)
            _say({"ok": True})
        except Exception as exc:
            message = getattr(exc, "Message", "") or str(exc)
            _say({"error": f"{type(exc).__name__}: {' '.join(message.split())[:200]}"})
        finally:
            if document is not None:
                try:
                    document.close(True)
                except Exception:
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
