"""The ``formulas`` library: a pure-Python engine, slow but needing no spreadsheet program. It runs
in a child process of its own (``formulas_child``) so that a timeout can stop it."""

from __future__ import annotations

import importlib.util
import sys

from ..errors import EngineError
from .base import Engine
from .process import run


def convert(copies, out, timeout):
    """Recalculate each copy with the formulas library in a child process; return the results."""
    if importlib.util.find_spec("formulas") is None:
        raise EngineError("the formulas engine needs the Python package formulas: "
                          "pip install 'xlnet[formulas]'")
    results = []
    for copy in copies:
        target = out / (copy.stem + ".xlsx")
        run([sys.executable, "-m", "xlnet.engines.formulas_child", str(copy), str(target)], timeout,
            "the formulas engine", tmpdir=out)
        results.append(target)
    return results


class Formulas(Engine):
    name = "formulas"

    def available(self):
        return importlib.util.find_spec("formulas") is not None

    def recalc(self, copies, out, timeout):
        return convert(copies, out, timeout)


ENGINE = Formulas()
