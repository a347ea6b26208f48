"""``xlnet watch FILE``: the learner's loop. Edit, save, and the check runs again.

The file is looked at every ``interval`` seconds; when it has changed and stays unchanged for a
moment (a save is finished), it is checked and one line is printed, then a line for each block
that disagrees with torch. LibreOffice comes from ``xlnet serve`` when it is running, else this
command keeps one warm of its own (a cold start each time where LibreOffice's Python bindings
are missing, or with another engine). A file that cannot be checked prints its one line and
the watch goes on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .errors import InputError, XlnetError, option

SETTLE = 0.3


def _stamp(path):
    try:
        st = path.stat()
    except OSError:
        return None  # being replaced by the program saving it
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def watch(path, engine="libreoffice", device="auto", timeout=600, interval=0.5, count=None, out=None):
    """Check ``path`` now and every time it is saved; returns 0 once ``count`` saves have been
    checked (never when None: Ctrl-C stops it)."""
    from . import engines, serve
    from .workbook import package

    out = out or sys.stdout
    path = Path(path)
    package.readable(path)
    engines.check_timeout(timeout)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise InputError(f"{option('count')} should be a whole number of saves, 1 or more, not {count!r}")
    if not 0.05 <= interval <= 3600:
        raise InputError(f"{option('interval')} should be from 0.05 to 3600 seconds, not {interval!r}")
    own = None
    how = "cold start each time"
    chosen = engines.get(engine)
    if chosen.runs_warm:
        if serve.ping() is not None:
            how = "warm: xlnet serve"
        elif chosen.warm_available():
            own = chosen.start_warm()
            how = "warm: its own LibreOffice"
    print(f"xlnet watch: checking {path} now and each time it is saved (engine {engine}, {how}); Ctrl-C stops",
          file=out, flush=True)
    try:
        done, last = 0, None
        while count is None or done < count:
            stamp = _stamp(path)
            if stamp is not None and stamp != last:
                time.sleep(SETTLE if last is not None else 0)
                if _stamp(path) != stamp:
                    continue  # still being written
                saved, last = last is not None, stamp
                print(_check_once(path, engine, device, timeout, own), file=out, flush=True)
                done += saved  # the check at the start is not a save
                continue
            time.sleep(interval)
    finally:
        if own is not None:
            own.close()
    return 0


def _check_once(path, engine, device, timeout, own):
    from . import engines, serve

    started = time.monotonic()
    stamp = time.strftime("%H:%M:%S")
    try:
        reports = None
        if engines.get(engine).runs_warm and own is None:
            reports = serve.request_check([path], engine, device, timeout, None, None, None)
        if reports is None:
            from . import api
            reports = api.check([path], engine=engine, device=device, timeout=timeout, warm=own,
                                started="warm: its own LibreOffice" if own is not None else None)
    except XlnetError as exc:
        return f"{stamp}  {path.name}: error: {' '.join(exc.command_line().split())}"
    seconds = time.monotonic() - started
    lines = []
    for report in reports:
        summary = report.text().splitlines()[-1].strip()
        lines.append(f"{stamp}  {path.name}: {summary}  ({seconds:.2f} s, {report.started or report.engine})")
        from .report import exercise_text
        graded = {e["tensor"] for e in report.exercises}  # an exercise says how far the learner is, and a hint
        for e in report.exercises:
            lines += ["    " + line.strip() for line in exercise_text(e).splitlines()]
        wrong = [b for b in report.blocks if b.status in ("fail", "values", "skip") and b.tensor not in graded]
        for b in wrong:
            lines.append(f"    {b.status.upper()}  {b.title[:60]}  {f'{b.worst_cell}  {b.message}'.strip()}")
        if not wrong:  # every block agrees with torch on the sheet's values, but not end to end
            for b in [b for b in report.blocks if not b.e2e_pass][:5]:
                lines.append(f"    E2E   {b.title[:60]}  differs from torch run from the sheet's inputs "
                             f"(max abs {b.e2e_max_abs:.3g})")
    return "\n".join(lines)
