"""``cached``: no engine at all. The values are read as the file was last saved, which proves the
formulas agree with torch, not that anything recalculated them (the report says so)."""

from __future__ import annotations

from .base import Engine


class Cached(Engine):
    name = "cached"
    recalculates = False

    def available(self):
        return True

    def recalc(self, copies, out, timeout):
        return list(copies)


ENGINE = Cached()
