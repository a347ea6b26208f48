"""xlnet: deep learning in Excel, cell by cell, proven right against PyTorch.

Build lesson workbooks whose every cell is a live formula, recalculate them in a real
spreadsheet engine, and check each block against the same computation in torch.

The names below are imported when first used: ``import xlnet`` stays light (no numpy, no
torch), so a command that only talks to ``xlnet serve`` starts in a fraction of a second.
"""

import importlib
from typing import TYPE_CHECKING

from .errors import DeviceError, EngineError, InputError, LayoutError, ManifestError, XlnetError

if TYPE_CHECKING:  # what a type checker sees of the names imported on first use
    from .api import annotate, build, check, load, plot
    from .checking.opened import OpenedBook, open_workbook as open, open_workbooks
    from .lessons import all_lessons
    from .report import Report, exit_code

__version__ = "0.1.0"

_LAZY = {
    "build": ("api", "build"), "check": ("api", "check"), "load": ("api", "load"), "plot": ("api", "plot"),
    "annotate": ("api", "annotate"), "open": ("checking.opened", "open_workbook"), "open_workbooks": ("checking.opened", "open_workbooks"),
    "OpenedBook": ("checking.opened", "OpenedBook"), "all_lessons": ("lessons", "all_lessons"), "Report": ("report", "Report"),
    "exit_code": ("report", "exit_code"),
}

__all__ = [
    "build", "check", "load", "plot", "annotate", "open", "open_workbooks", "OpenedBook", "all_lessons", "Report", "exit_code",
    "XlnetError", "InputError", "ManifestError", "LayoutError", "EngineError", "DeviceError",
]


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
