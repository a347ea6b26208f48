"""Gnumeric: a fast second engine (``ssconvert --recalc``), one process per workbook."""

from __future__ import annotations

import shutil

from ..errors import EngineError, option
from .base import Engine
from .process import run


def convert(copies, out, timeout):
    """Recalculate each copy with ``ssconvert --recalc`` into ``out``; return the results."""
    ssconvert = shutil.which("ssconvert")
    if ssconvert is None:
        raise EngineError("Gnumeric is not installed (no ssconvert on PATH): "
                          f"install it with apt-get install gnumeric, or use {option('engine')} libreoffice")
    results = []
    for copy in copies:
        target = out / (copy.stem + ".xlsx")
        run([ssconvert, "--recalc", "--export-type=Gnumeric_Excel:xlsx2", str(copy), str(target)],
            timeout, "Gnumeric (ssconvert)", tmpdir=out)
        results.append(target)
    return results


class Gnumeric(Engine):
    name = "gnumeric"
    converts_xls = True
    # Gnumeric evaluates with a wider exponent range: EXP(800) is a number there, so the cells where
    # Excel and LibreOffice overflow to #NUM! hold finite values (saved as inf, or as the true result).
    overflow_may_be_finite = True

    def available(self):
        return shutil.which("ssconvert") is not None

    def recalc(self, copies, out, timeout):
        return convert(copies, out, timeout)


ENGINE = Gnumeric()
