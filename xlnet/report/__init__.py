"""Check results: one row per block and one per exercise, as a text table or JSON, and the exit code."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
import math
from dataclasses import asdict, dataclass, field


@dataclass
class ExerciseResult:
    """One exercise block, graded.

    Attributes:
        tensor: the block's name.
        title: its name in the report.
        cells: how many cells the learner had to fill (the worked cell included).
        right: how many agree with torch.
        empty: how many are still empty.
        first_cell: the first cell (row by row) that is wrong or empty, '' when all are right.
        expected: torch's value there.
        found: what the cell holds (a number, an error, ``empty``).
        formula: the learner's formula there ('' when none).
        hint: what the mistake looks like, when it can be told apart.
        worked: how many of its cells were given worked (one per tile); they earn nothing.
        points: what the exercise is worth in the gradebook.
    """

    tensor: str
    title: str
    cells: int
    right: int
    empty: int
    first_cell: str = ""
    expected: float | None = None
    found: str = ""
    formula: str = ""
    hint: str = ""
    worked: int = 0
    points: float = 1.0

    @property
    def done(self) -> bool:
        return self.right == self.cells

    def to_dict(self):
        """As ``--json`` gives it: ``found`` the cell as text, ``found_value`` its number (or null)."""
        try:
            value = float(self.found)
        except ValueError:
            value = None
        if value is not None and not math.isfinite(value):
            value = None
        return dict(asdict(self), found_value=value, done=self.done)

    def text(self):
        """Two lines at most: the count and the first wrong cell, then the hint."""
        head = f"exercise {self.tensor}: {self.right} of {self.cells} cells right"
        if self.done:
            return head + " - done"
        if not self.first_cell:
            return head + f"; {self.found}" + (f"\n      hint: {self.hint}" if self.hint else "")
        if self.empty:
            head += f", {self.empty} empty"
        expected = "-" if self.expected is None else f"{self.expected:.6g}"
        head += f"; first to fix {self.first_cell}: expected {expected}, found {self.found}"
        if self.formula:
            head += f" ({self.formula[:80]})"
        return head + (f"\n      hint: {self.hint}" if self.hint else "")


@dataclass
class BlockResult:
    """The check of one op output.

    Attributes:
        title: human name of the block.
        op: the torch op it was checked against.
        tensor: the output tensor (and defined name).
        status: pass, fail, values (cells that should compute hold typed values), skip (an
            input holds errors) or e2e (composite: end-to-end only).
        max_abs, max_rel: largest absolute and relative differences with torch.
        worst_cell: address of the cell furthest outside tolerance.
        message: what that cell holds against torch, when failing.
        e2e_pass, e2e_max_abs: the end-to-end comparison (torch from the raw inputs only).
    """

    title: str
    op: str
    tensor: str
    status: str
    max_abs: float
    max_rel: float
    worst_cell: str = ""
    message: str = ""
    e2e_pass: bool = True
    e2e_max_abs: float = 0.0


@dataclass
class Report:
    """The check of one workbook by one engine."""

    path: str
    engine: str
    device: str
    blocks: list = field(default_factory=list)
    sentinel: str = ""  # "ok" once a recalculation here is proved; "as saved" when the engine reads saved values
    notes: list = field(default_factory=list)
    spec: str = ""
    started: str = ""
    exercises: list = field(default_factory=list)  # exercises.ExerciseResult.to_dict() of each exercise block
    problems: list = field(default_factory=list)  # what fails the book outside any block (a formula no block checks)
    perturbed: dict = field(default_factory=dict)  # the recheck with inputs moved: seed, cells, tensors

    @property
    def passed(self) -> bool:
        """True when every block passes, the end-to-end pass agrees, and nothing else failed."""
        return not self.problems and all(b.status in ("pass", "e2e") and b.e2e_pass for b in self.blocks)

    def to_dict(self) -> dict[str, Any]:
        """The report as a record of ``--json`` (``report.schema``, version VERSION): every
        difference a number or null, the infinite ones named in the block's ``infinite``."""
        from .schema import VERSION

        data = {"version": VERSION, **asdict(self), "passed": self.passed, "error": None}
        for block in data["blocks"]:
            block["infinite"] = []
            for key in _DIFFERENCES:
                if not math.isfinite(block[key]):
                    if math.isinf(block[key]):
                        block["infinite"].append(key)
                    block[key] = None
        data["exercises"] = [dict(e, found_value=e.get("found_value")) for e in data["exercises"]]
        return data

    @classmethod
    def from_dict(cls, data):
        """The report ``to_dict`` gave (as sent by ``xlnet serve``)."""
        def number(block, key):
            return math.inf if key in block.get("infinite", ()) else math.nan if block[key] is None else block[key]

        blocks = [BlockResult(**{k: number(b, k) if k in _DIFFERENCES else v for k, v in b.items() if k != "infinite"})
                  for b in data["blocks"]]
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "blocks"}
        return cls(blocks=blocks, **fields)

    @staticmethod
    def error_record(path, error):
        """The record of a file that could not be checked: the shape of every record, no blocks."""
        from .schema import VERSION

        return {"version": VERSION, "path": str(path), "passed": False, "error": error, "engine": "", "device": "",
                "blocks": [], "sentinel": "", "notes": [], "spec": "", "started": "", "exercises": [], "problems": [],
                "perturbed": {}}

    def text(self) -> str:
        """A table: one line per block, then a summary line."""
        engine = f"{self.engine}, {self.started}" if self.started else self.engine
        proof = {"ok": "recalculated: sentinel ok",
                 "as saved": "not recalculated here: values as last saved"
                 + ("" if self.spec else ", sentinel ok")}.get(self.sentinel, "sentinel not read")
        lines = [f"{self.path}  (engine {engine}, device {self.device}, {proof}"
                 + (f", spec {self.spec})" if self.spec else ")")]
        if self.perturbed:
            lines.append(f"  rechecked with {self.perturbed['cells']} inputs moved in {len(self.perturbed['tensors'])} "
                         f"blocks (seed {self.perturbed['seed']})")
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  PROBLEM: {problem}" for problem in self.problems]
        if self.exercises:  # a learner reads first what is done and what to fix next
            done = sum(e["done"] for e in self.exercises)
            lines.append(f"  exercises: {done} of {len(self.exercises)} done")
            lines += [f"    {exercise_text(e)}" for e in self.exercises]
            lines.append("  every block, checked against torch:")
        header = f"  {'block':<44} {'op':<20} {'max abs':>9} {'max rel':>9}  {'result':<6} {'e2e':<4}  worst cell"
        lines.append(header)
        for b in self.blocks:
            result = b.status.upper() if b.status in ("fail", "values") else b.status
            e2e = "pass" if b.e2e_pass else "FAIL"
            detail = (b.worst_cell if b.status in ("fail", "values") or (b.max_abs or 0) > 0 else "") + (
                f"  {b.message}" if b.message else "")
            lines.append(f"  {b.title[:44]:<44} {b.op:<20} {_num(b.max_abs):>9} {_num(b.max_rel):>9}  "
                         f"{result:<6} {e2e:<4}  {detail}")
        counts = {s: sum(b.status == s for b in self.blocks) for s in ("pass", "fail", "values", "skip", "e2e")}
        e2e_failed = sum(not b.e2e_pass for b in self.blocks)
        lines.append(f"  {len(self.blocks) - counts['e2e']} blocks: {counts['pass']} pass, {counts['fail']} fail, "
                     + (f"{counts['values']} typed values, " if counts["values"] else "")
                     + f"{counts['skip']} skipped; end-to-end ({counts['e2e']} composite views): "
                     + ("pass" if not e2e_failed else f"{e2e_failed} differ") + "; "
                     + ("OK" if self.passed else "MISMATCH"))
        return "\n".join(lines)

    def _repr_html_(self):
        """The report as an HTML table, as a Jupyter notebook shows it (every text escaped)."""
        from html import escape

        colour = {"pass": "#d8f0d8", "e2e": "#e8f0f8", "fail": "#f8d0d0", "values": "#f8e0c0", "skip": "#eeeeee"}
        head = (f"<p><b>{escape(str(self.path))}</b> — engine {escape(self.engine)}, device {escape(self.device)}: "
                f"<b>{'OK' if self.passed else 'MISMATCH'}</b></p>")
        notes = "".join(f"<p>note: {escape(n)}</p>" for n in self.notes)
        notes += "".join(f"<p><b>problem</b>: {escape(p)}</p>" for p in self.problems)
        rows = "".join(
            f"<tr style=\"background:{colour.get(b.status, '#ffffff')}\"><td>{escape(b.title)}</td>"
            f"<td>{escape(b.op)}</td><td>{_num(b.max_abs)}</td><td>{_num(b.max_rel)}</td>"
            f"<td>{escape(b.status)}</td><td>{'pass' if b.e2e_pass else 'FAIL'}</td>"
            f"<td>{escape(b.worst_cell)}</td><td>{escape(b.message)}</td></tr>" for b in self.blocks)
        return (head + notes + "<table><tr><th>block</th><th>op</th><th>max abs</th><th>max rel</th><th>result</th>"
                "<th>e2e</th><th>worst cell</th><th></th></tr>" + rows + "</table>")


_DIFFERENCES = ("max_abs", "max_rel", "e2e_max_abs")


def exercise_text(data):
    """One exercise's lines, from its ``to_dict``."""
    return ExerciseResult(**{k: v for k, v in data.items() if k not in ("done", "found_value")}).text()


def _num(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.1e}"


def exit_code(reports: Iterable[Report]) -> int:
    """0 when every report passes, 1 when any block mismatches."""
    return 0 if all(r.passed for r in reports) else 1


def to_json(reports):
    """Several reports as a JSON list."""
    return json.dumps([r.to_dict() for r in reports], indent=2)
