"""What an engine is: a name, what it can do, and a way to recalculate copies of workbooks."""

from __future__ import annotations

DEFAULT_TIMEOUT = 600  # seconds an engine run may take before it is stopped


class Engine:
    """One recalculation backend. A subclass sets the capabilities that differ from these and
    implements ``available`` and ``recalc``; the registry in ``xlnet.engines`` lists it.

    Attributes:
        name: what users type after ``--engine``.
        recalculates: it computes the formulas (``cached`` only reads the saved values).
        runs_warm: it can be kept running between workbooks (``warm_available`` says whether
            what that needs is installed here).
        converts_xls: it can turn a legacy ``.xls`` or an OpenDocument ``.ods`` into ``.xlsx``.
        overflow_may_be_finite: it may hold a number where Excel shows an overflow (``#NUM!``).
    """

    name = ""
    recalculates = True
    runs_warm = False
    converts_xls = False
    overflow_may_be_finite = False

    def available(self):
        """True when the engine can run on this machine."""
        raise NotImplementedError

    def recalc(self, copies, out, timeout):
        """Recalculate ``copies`` into the folder ``out``; return the recalculated files in order."""
        raise NotImplementedError

    def warm_available(self):
        """True when a warm instance of this engine can be started here."""
        return False

    def start_warm(self, start_timeout=None):
        """Start a warm instance (its ``recalc`` takes the place of this engine's); close it when done."""
        raise NotImplementedError(f"{self.name} cannot be kept warm")

    def __repr__(self):
        return f"<engine {self.name}>"
