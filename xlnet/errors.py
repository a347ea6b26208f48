"""One small tree of errors, classed by whose fault they are. Every message names the file,
sheet, cell or block at fault, what was expected, and what to do; the CLI prints it as one
line and exits with the class's ``exit_code``.

- ``InputError`` (and ``ManifestError``, ``LayoutError``): the user's file, option or cell is
  not what xlnet expects; fixing the input fixes it.
- ``EngineError``, ``DeviceError``: this machine lacks or failed something (a spreadsheet
  engine, a GPU); the input may be fine.

A message names a parameter with ``option("batch_size")``: to the Python API it reads
``batch_size``, and on the command line (``command_line()``) ``--batch-size``.
"""

import re

_OPTION = re.compile("\x1f([A-Za-z0-9_]+)\x1f")


def option(name):
    """A parameter named in a message: ``timeout`` to the API, ``--timeout`` on the command line."""
    return f"\x1f{name}\x1f"


class XlnetError(Exception):
    """Base of every error xlnet raises on purpose.

    Attributes:
        fault: ``input`` (the user's file or option) or ``environment`` (this machine).
        exit_code: what the command line exits with.
    """

    fault = "input"
    exit_code = 2

    def __str__(self):
        return _OPTION.sub(lambda m: m.group(1), super().__str__())

    def command_line(self):
        """The message as the command line says it: parameters as their flags."""
        return _OPTION.sub(lambda m: "--" + m.group(1).replace("_", "-"), super().__str__())


class InputError(XlnetError):
    """A file, workbook, option or cell that is not what xlnet expects."""


class LayoutError(InputError):
    """A block that cannot be placed or named (overlap, bad name, sheet too small)."""


class ManifestError(InputError):
    """The op graph stored in a workbook is missing or does not describe the workbook."""


class EngineError(XlnetError):
    """A spreadsheet engine is missing, failed, timed out, or did not recalculate."""

    fault = "environment"


class DeviceError(XlnetError):
    """The requested torch device is not available."""

    fault = "environment"
