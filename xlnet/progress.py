"""How far a long run is, on one line of a terminal: ``checking 3/20: student3.xlsx``, written
over itself and cleared at the end. Nothing is written when standard error is not a terminal
(a pipe, a file, CI) or when ``--quiet`` is given, so what a script reads never changes."""

from __future__ import annotations

import sys


class Progress:
    """A callable ``progress(done, name)`` for a run of ``total`` steps.

    Args:
        what: the verb shown (``checking``, ``building``).
        total: how many steps the run has.
        stream: where to write (default: standard error).
        enabled: write at all (default: when ``stream`` is a terminal).
    """

    def __init__(self, what, total, stream=None, enabled=None):
        self.what, self.total = what, total
        self.stream = stream if stream is not None else sys.stderr
        is_tty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = bool(is_tty()) if enabled is None else enabled
        self._shown = False

    def __call__(self, done, name=""):
        if not self.enabled:
            return
        self.stream.write(f"\r\x1b[K{self.what} {done}/{self.total}" + (f": {name}" if name else ""))
        self.stream.flush()
        self._shown = True

    def close(self):
        """Clear the line, so that what is printed next starts on a clean one."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
