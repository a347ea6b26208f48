"""A lesson's settings: each a typed ``Option`` with a range, refused with one line outside it."""

import math
from dataclasses import dataclass

from ..errors import InputError, option


@dataclass(frozen=True)
class Option:
    """A lesson setting, exposed on the command line as ``--name-with-dashes``.

    Numbers have a range: ``low``/``high`` bounds (None: none), ``high`` excluded when
    ``high_open``, ``low`` excluded when ``low_open``. Upper bounds come from what a sheet
    holds and an engine recalculates in minutes."""

    name: str
    type: type
    default: object
    help: str
    low: float = None
    high: float = None
    low_open: bool = False
    high_open: bool = False
    shown_default: str = None  # how to say a default the lesson works out (None: ``default`` itself)
    data_file: bool = False  # names a file the book's data is read from

    @property
    def default_text(self):
        """The default as ``--help`` and ``xlnet list`` say it."""
        return self.shown_default if self.shown_default is not None else str(self.default)

    @property
    def flag(self):
        """The command-line flag, ``--kernel-size``."""
        return "--" + self.name.replace("_", "-")

    @property
    def range_text(self):
        """The documented range, ``1 <= x <= 9`` (empty for text options)."""
        if self.type in (str, bool):
            return ""
        low = "" if self.low is None else f"{_number(self.low)} {'<' if self.low_open else '<='} "
        high = "" if self.high is None else f" {'<' if self.high_open else '<='} {_number(self.high)}"
        return f"{low}{self.name}{high}" + ("" if low or high else " (any finite number)")

    def check(self, value, lesson):
        """Raise InputError unless ``value`` is of the option's type and within its range."""
        if value is None or self.type is str:
            return value
        if self.type is bool:
            if not isinstance(value, bool):
                raise InputError(f"{option(self.name)} {value!r}: {lesson} expects True or False")
            return value
        where = f"{option(self.name)} {value!r}"
        if self.type is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise InputError(f"{where}: {lesson} expects a whole number ({self.range_text})")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise InputError(f"{where}: {lesson} expects a finite number ({self.range_text})")
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise InputError(f"{where}: {lesson} expects {self.range_text}")
        return value


def _number(x):
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"
