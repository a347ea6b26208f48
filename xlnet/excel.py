"""What the ``excel`` engine and the xlwings UDFs share: finding xlwings and a running Excel,
and Excel's error values as they arrive in Python (as text such as ``#DIV/0!``)."""

from __future__ import annotations

import sys

ERROR_CODES = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA")


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
