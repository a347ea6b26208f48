"""The JSON Schema of ``xlnet check --json``: a list of records, one per book checked (and per
file that could not be checked, with ``--jobs``), every record of one shape and carrying the
schema's version. ``xlnet list --report-schema`` prints it.

Types never mix: a difference is a number, or null when there is none to give (nothing compared,
or a difference that is not finite: then its name is in the block's ``infinite``); what an
exercise cell holds is text (``found``) and, when it is a number, that number (``found_value``).
Version 1 is the first versioned form; a change that removes or retypes a field makes a new
version.
"""

from __future__ import annotations

VERSION = 1

_DIFFERENCE = {"type": ["number", "null"]}
_TEXT = {"type": "string"}

_BLOCK = {
    "type": "object",
    "required": ["title", "op", "tensor", "status", "max_abs", "max_rel", "worst_cell", "message", "e2e_pass",
                 "e2e_max_abs", "infinite"],
    "additionalProperties": False,
    "properties": {
        "title": _TEXT, "op": _TEXT, "tensor": _TEXT,
        "status": {"enum": ["pass", "fail", "values", "skip", "e2e"]},
        "max_abs": _DIFFERENCE, "max_rel": _DIFFERENCE, "e2e_max_abs": _DIFFERENCE,
        "infinite": {"type": "array", "items": {"enum": ["max_abs", "max_rel", "e2e_max_abs"]}, "uniqueItems": True},
        "worst_cell": _TEXT, "message": _TEXT, "e2e_pass": {"type": "boolean"},
    },
}

_EXERCISE = {
    "type": "object",
    "required": ["tensor", "title", "cells", "right", "empty", "first_cell", "expected", "found", "found_value",
                 "formula", "hint", "worked", "points", "done"],
    "additionalProperties": False,
    "properties": {
        "tensor": _TEXT, "title": _TEXT,
        "cells": {"type": "integer", "minimum": 0}, "right": {"type": "integer", "minimum": 0},
        "empty": {"type": "integer", "minimum": 0}, "worked": {"type": "integer", "minimum": 0},
        "first_cell": _TEXT, "expected": {"type": ["number", "null"]}, "found": _TEXT,
        "found_value": {"type": ["number", "null"]}, "formula": _TEXT, "hint": _TEXT,
        "points": {"type": "number", "exclusiveMinimum": 0}, "done": {"type": "boolean"},
    },
}

RECORD = {
    "type": "object",
    "required": ["version", "path", "passed", "error", "engine", "device", "blocks", "sentinel", "notes", "spec",
                 "started", "exercises", "problems", "perturbed"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": VERSION},
        "path": _TEXT,
        "passed": {"type": "boolean"},
        "error": {"type": ["string", "null"], "description": "why the file could not be checked (then no blocks)"},
        "engine": _TEXT, "device": _TEXT, "sentinel": _TEXT, "spec": _TEXT, "started": _TEXT,
        "blocks": {"type": "array", "items": _BLOCK},
        "notes": {"type": "array", "items": _TEXT},
        "problems": {"type": "array", "items": _TEXT},
        "exercises": {"type": "array", "items": _EXERCISE},
        "perturbed": {"type": "object", "properties": {"seed": {"type": "integer"}, "cells": {"type": "integer"},
                                                       "tensors": {"type": "array", "items": _TEXT}}},
    },
}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": f"xlnet check --json, version {VERSION}",
    "description": "One record per book checked, or per file that could not be checked (error set, no blocks).",
    "type": "array",
    "items": RECORD,
}
