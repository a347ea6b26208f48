"""What a workbook may make xlnet allocate, checked before anything is expanded or handed to
an engine.

A file is small on disk and can declare or inflate to anything: a zip entry that inflates a
thousand-fold, a defined name covering a whole column, a manifest claiming a billion cells.
Each bound below has a default generous for teaching workbooks (the committed ones use under
1 % of each) and can be raised for one run: ``xlnet check --max-unzipped-mb 2000 …`` or the
``XLNET_MAX_UNZIPPED_MB``, ``XLNET_MAX_RATIO`` and ``XLNET_MAX_CELLS`` environment variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from .errors import InputError

# Excel's grid: no sheet, and so no range, is taller.
MAX_ROWS = 1_048_576


@dataclass(frozen=True)
class Limits:
    """The bounds in force.

    Attributes:
        unzipped_mb: total uncompressed size of the package, in MB.
        ratio: largest compression ratio of one entry of over 1 MB.
        cells: largest number of cells in one named range or tensor, and in all tensors together.
    """

    unzipped_mb: float = 500.0
    ratio: float = 100.0
    cells: int = 10_000_000

    @classmethod
    def from_env(cls):
        """The defaults, overridden by XLNET_MAX_UNZIPPED_MB, XLNET_MAX_RATIO, XLNET_MAX_CELLS."""
        limits = cls()
        for field_name, variable, kind in (("unzipped_mb", "XLNET_MAX_UNZIPPED_MB", float),
                                           ("ratio", "XLNET_MAX_RATIO", float),
                                           ("cells", "XLNET_MAX_CELLS", int)):
            text = os.environ.get(variable)
            if text:
                limits = limits.with_values(**{field_name: _parse(text, kind, variable)})
        return limits

    def with_values(self, **values):
        """A copy with some bounds changed (None keeps one); each must be a positive finite number."""
        changes = {}
        for key, value in values.items():
            if value is None:
                continue
            if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
                raise InputError(f"limit {key} should be a positive number, not {value!r}")
            changes[key] = value
        return replace(self, **changes)

    def guard_cells(self, count, what):
        """Refuse to read more than the cell limit at once.

        Args:
            count: the number of cells.
            what: what holds them, for the message (``tensor w1 of book.xlsx``).
        """
        if count > self.cells:
            raise InputError(f"{what} covers {count:,} cells; at most {self.cells:,} are read "
                             "(raise the cells limit: --max-cells, XLNET_MAX_CELLS or limits.Limits(cells=...))")


def given_or_env(limits):
    """``limits``, or the environment's when None."""
    return limits if limits is not None else Limits.from_env()


def _parse(text, kind, variable):
    try:
        return kind(text)
    except ValueError:
        raise InputError(f"environment variable {variable}={text!r} should be a positive number") from None
