"""xlnet: deep learning in Excel, cell by cell, proven right against PyTorch.

Build lesson workbooks whose every cell is a live formula, recalculate them in a real
spreadsheet engine, and check each block against the same computation in torch.
"""

from .api import annotate, build, check, load, plot
from .opened import OpenedBook, open_workbook as open, open_workbooks
from .errors import (DeviceError, EngineError, InputError, LayoutError, ManifestError,
                     XlnetError)
from .lessons import all_lessons
from .report import Report, exit_code

__version__ = "0.1.0"

__all__ = [
    "build", "check", "load", "plot", "annotate", "open", "open_workbooks", "OpenedBook", "all_lessons", "Report", "exit_code",
    "XlnetError", "InputError", "ManifestError", "LayoutError", "EngineError", "DeviceError",
]
