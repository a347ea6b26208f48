"""A teacher's gradebook: each file's exercises scored (points per exercise, partial credit
for the fraction of the learner's cells that are right), as a CSV row per file or as a
Gradescope autograder ``results.json``.

An exercise is ``done`` (every cell right), ``not started`` (every cell left to the learner is
empty), ``incomplete`` (no filled cell is wrong, some are empty, or it waits on an earlier
exercise) or ``wrong`` (a filled cell is wrong). The worked cells earn nothing: they were given.
A book that fails outside its exercises (a formula no block checks, typed values where
formulas belong) scores 0: what it shows was not computed by what it holds. A book without
exercises is one test worth one point: it passes or it does not. A file that could not be
checked is its own row, scored 0, with the reason.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

STATES = ("done", "incomplete", "wrong", "not started")


@dataclass
class Scored:
    """One exercise (or a whole book without exercises) of one file, scored."""

    name: str
    title: str
    points: float
    score: float
    state: str
    feedback: str = ""


@dataclass
class FileGrade:
    """One file: its scored exercises, or why it could not be checked."""

    path: str
    items: list = field(default_factory=list)
    error: str = ""
    problem: str = ""

    @property
    def score(self):
        return 0.0 if self.error or self.problem else round(sum(i.score for i in self.items), 4)

    @property
    def max_score(self):
        return round(sum(i.points for i in self.items), 4) if self.items else 0.0


def exercise_state(e):
    """done, incomplete, wrong or not started, from an exercise's ``to_dict``."""
    worked = e.get("worked", 0)
    if e["done"]:
        return "done"
    to_fill = e["cells"] - worked
    if e["empty"] >= to_fill:
        return "not started"
    filled_wrong = e["cells"] - e["right"] - e["empty"]
    if e.get("found") == "not graded yet" or filled_wrong <= 0:
        return "incomplete"
    return "wrong"


def exercise_score(e):
    """The points an exercise earns: all of them when done, else the fraction of the learner's
    cells (the worked ones left out) that are right; nothing while it waits on another."""
    points = float(e.get("points", 1))
    if e["done"]:
        return points
    if e.get("found") == "not graded yet":
        return 0.0
    worked = e.get("worked", 0)
    to_fill = max(1, e["cells"] - worked)
    return round(points * max(0, e["right"] - worked) / to_fill, 4)


def grade_file(graded):
    """A FileGrade from a grading.Graded (every engine's report: an exercise scores its lowest)."""
    from . import exercise_text

    grade = FileGrade(graded.path, error=graded.error)
    if graded.error or not graded.reports:
        return grade
    reports = graded.reports
    problems = [p for r in reports for p in r.problems]
    if problems:
        grade.problem = problems[0]
    if not any(r.exercises for r in reports):
        passed = all(r.passed for r in reports)
        first = next((b for r in reports for b in r.blocks
                      if b.status in ("fail", "values", "skip") or not b.e2e_pass), None)
        feedback = "every block agrees with torch" if passed else (
            f"{first.title}: {first.worst_cell} {first.message}".strip() if first else "the check failed")
        grade.items.append(Scored("workbook", "the whole workbook", 1.0, 1.0 if passed else 0.0,
                                  "done" if passed else "wrong", feedback))
        return grade
    for k, e in enumerate(reports[0].exercises):
        versions = [r.exercises[k] for r in reports if len(r.exercises) > k]
        worst = min(versions, key=exercise_score)
        grade.items.append(Scored(e["tensor"], e["title"], float(e.get("points", 1)), exercise_score(worst),
                                  exercise_state(worst), exercise_text(worst)))
    return grade


def _number(x):
    return f"{x:g}"


def to_csv(graded):
    """One row per file: file, score, max_score, a column per exercise (its score), the
    state of each, and what to fix first (or why the file could not be checked)."""
    grades = [grade_file(g) for g in graded]
    names = []
    for g in grades:
        for item in g.items:
            if item.name not in names:
                names.append(item.name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "score", "max_score"] + names + [f"{n} state" for n in names] + ["result", "to fix first"])
    for g in grades:
        items = {i.name: i for i in g.items}
        scores = [_number(items[n].score) if n in items else "" for n in names]
        states = [items[n].state if n in items else "" for n in names]
        if g.error:
            result, fix = "error", g.error
        elif g.problem:
            result, fix = "refused", g.problem
        else:
            open_items = [i for i in g.items if i.state != "done"]
            result = "done" if not open_items else open_items[0].state
            fix = open_items[0].feedback.splitlines()[0] if open_items else ""
        writer.writerow([g.path, _number(g.score), _number(g.max_score)] + scores + states + [result, fix])
    return out.getvalue().rstrip("\n")


def to_gradescope(graded):
    """Gradescope's autograder ``results.json``: the total, and one test per exercise (per file
    when several are graded) with its score, maximum, state and feedback (the first cell to fix
    and the hint)."""
    grades = [grade_file(g) for g in graded]
    several = len(grades) > 1
    tests, lines = [], []
    for g in grades:
        prefix = f"{g.path}: " if several else ""
        if g.error:
            tests.append({"name": f"{prefix}workbook", "score": 0, "max_score": 0, "status": "failed",
                          "output": f"could not be checked: {g.error}", "visibility": "visible"})
            lines.append(f"{g.path}: could not be checked: {g.error}")
            continue
        if g.problem:
            lines.append(f"{g.path}: scored 0: {g.problem}")
        for item in g.items:
            score = 0 if g.problem else item.score
            tests.append({"name": f"{prefix}{item.title} ({item.name})", "score": score, "max_score": item.points,
                          "status": "passed" if item.state == "done" and not g.problem else "failed",
                          "output": f"{item.state}: {item.feedback}" if item.feedback else item.state,
                          "visibility": "visible"})
        lines.append(f"{g.path}: {_number(g.score)} of {_number(g.max_score)}")
    result = {"score": round(sum(g.score for g in grades), 4), "output": "\n".join(lines), "tests": tests}
    return json.dumps(result, indent=2)
