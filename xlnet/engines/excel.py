"""Microsoft Excel itself, driven by xlwings (Windows and macOS), and what the xlwings UDFs share
with it: finding xlwings and a running Excel, and Excel's error values as they arrive in Python
(as text such as ``#DIV/0!``)."""

from __future__ import annotations

import sys
import threading

from ..errors import EngineError, option
from .base import Engine



def xlwings():
    """Return the xlwings module, or None when it is not installed."""
    try:
        import xlwings as xw
    except ImportError:
        return None
    return xw


def app_class():
    """Return ``xlwings.App`` where Excel can be driven (Windows or macOS), else None."""
    if sys.platform not in ("win32", "darwin"):
        return None
    xw = xlwings()
    return xw.App if xw is not None else None


class _NoDecorators:
    """Stands in for xlwings where it is not installed: ``@xw.func`` and ``@xw.arg`` leave the
    functions as plain callables, which is what xlwings itself does on Linux."""

    @staticmethod
    def func(fn=None, **_):
        return fn if fn is not None else (lambda f: f)

    @staticmethod
    def arg(*_, **__):
        return lambda f: f


def udf_decorators():
    """The module providing ``func`` and ``arg`` decorators for the UDFs."""
    return xlwings() or _NoDecorators()


def convert(copies, out, timeout):
    """Recalculate copies with Excel itself, driven by xlwings; return the results."""
    app_class_found = app_class()
    if app_class_found is None:
        raise EngineError("the excel engine needs Microsoft Excel on Windows or macOS, driven by "
                          f"xlwings; none is here: use {option('engine')} libreoffice or gnumeric")
    results = []
    with app_class_found(visible=False, add_book=False) as app:
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


class Excel(Engine):
    name = "excel"

    def available(self):
        return app_class() is not None

    def recalc(self, copies, out, timeout):
        return convert(copies, out, timeout)


ENGINE = Excel()
