"""One small tree of errors. Every message names the file, sheet, cell or block at fault,
what was expected, and what to do; the CLI prints it as one line and exits with code 2."""


class XlnetError(Exception):
    """Base of every error xlnet raises on purpose."""


class InputError(XlnetError):
    """A file, workbook, option or cell that is not what xlnet expects."""


class LayoutError(XlnetError):
    """A block that cannot be placed or named (overlap, bad name, sheet too small)."""


class ManifestError(InputError):
    """The op graph stored in a workbook is missing or does not describe the workbook."""


class EngineError(XlnetError):
    """A spreadsheet engine is missing, failed, timed out, or did not recalculate."""


class DeviceError(XlnetError):
    """The requested torch device is not available."""
