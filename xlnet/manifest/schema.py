"""The manifest's schema: types, bounds and lengths, checked on read before anything is
allocated or run.

The manifest is JSON a user can edit, so it is validated as untrusted input with jsonschema
(the reference implementation of JSON Schema: a declarative schema that reads like the data,
errors that carry the path of the offending field). jsonschema walks the schema for every
value (about 0.15 s for a lesson's manifest), so a manifest is first run through the same
schema compiled to Python by fastjsonschema (a few milliseconds; the code is generated from
this module's constant schema, never from the file); only one it refuses goes to jsonschema,
whose verdict and message are the ones given. The cross-references
(ops reading tensors that exist, shapes the ops make) are checked afterwards by
``manifest.validate``; the total number of cells by ``check`` against the limits it is given.
"""

from __future__ import annotations

import math

from ..errors import ManifestError
from ..limits import MAX_ROWS, given_or_env

MAX_NAME = 255  # a defined name in Excel is at most 255 characters
MAX_TEXT = 2000
MAX_TENSORS = 20_000
MAX_OPS = 20_000
MAX_RANK = 6
MAX_DIM = MAX_ROWS

_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME}
_TEXT = {"type": "string", "maxLength": MAX_TEXT}
_NUMBER = {"type": "number"}
MAX_POINTS = 1000  # what one exercise may be worth in a gradebook
_INDEX = {"type": "integer", "minimum": 0, "maximum": MAX_DIM}

_TENSOR = {
    "type": "object",
    "required": ["shape", "role", "tiles"],
    "properties": {
        "shape": {"type": "array", "maxItems": MAX_RANK, "items": {"type": "integer", "minimum": 1, "maximum": MAX_DIM}},
        "role": {"enum": ["input", "parameter", "hyper", "output"]},
        "tiles": {"type": "array", "maxItems": 100_000, "items": {"type": "string", "minLength": 1, "maxLength": 600}},
        "orient": {"enum": ["row", "col"]},
        "text": {"type": "boolean"},
        "blank": {"enum": ["nan", "error", "zero"]},
        "grid": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 1, "maximum": MAX_DIM}},
        "step": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 1, "maximum": MAX_DIM}},
        "by": {"enum": ["row", "col"]},
        "value": {"type": "array", "maxItems": 1_000_000, "items": _NUMBER},
        "caption": _TEXT,
        "title": _TEXT,
        "sheet": _TEXT,
        "heat": {"type": ["array", "null"], "maxItems": 4},
        "tile_labels": {"type": "array", "maxItems": 100_000, "items": _TEXT},
        "expected_errors": {"type": "array", "maxItems": 1_000_000,
                            "items": {"type": "array", "maxItems": MAX_RANK, "items": _INDEX}},
        "fixed": {"type": "object", "required": ["option", "value"],
                  "properties": {"option": _NAME, "value": _NUMBER}},
        "exercise": {"type": "object", "required": ["instruction"],
                     "properties": {"instruction": _TEXT,
                                    "points": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_POINTS},
                                    "patterns": {"type": "array", "maxItems": 100_000,
                                                 "items": {"type": "string", "maxLength": 8192}}}},
    },
}

_SPECS = {"type": "object", "maxProperties": 100_000,
          "propertyNames": {"maxLength": 64},
          "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 400}}

_OP = {
    "type": "object",
    "required": ["op", "inputs", "outputs"],
    "properties": {
        "op": _NAME,
        "inputs": _SPECS,
        "outputs": dict(_SPECS, minProperties=1),
        "attrs": {"type": "object", "maxProperties": 64, "propertyNames": {"maxLength": 64},
                  "additionalProperties": {"type": ["number", "string", "boolean", "null", "array"],
                                           "maxLength": MAX_TEXT, "maxItems": 100_000}},
        "tol": {"type": "object", "additionalProperties": False,
                "properties": {"rtol": {"type": "number", "minimum": 0}, "atol": {"type": "number", "minimum": 0}}},
        "composite": {"type": "boolean"},
        "title": _TEXT,
    },
}

_CHART = {
    "type": "object",
    "required": ["name", "kind", "series"],
    "properties": {
        "name": _NAME,
        "kind": {"enum": ["bar", "line", "scatter"]},
        "series": {"type": "array", "minItems": 1, "maxItems": 100,
                   "items": {"type": "object", "required": ["tensor"],
                             "properties": {"tensor": _NAME, "row": _INDEX, "label": _TEXT, "x": _NAME,
                                            "col": _INDEX, "x_col": _INDEX, "start": _INDEX,
                                            "line": {"type": "boolean"}}}},
        "categories": {"type": "array", "maxItems": 100_000, "items": _TEXT},
        "title": _TEXT, "x_label": _TEXT, "y_label": _TEXT,
        "y_log": {"type": "boolean"},
    },
}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["version", "tensors", "ops"],
    "properties": {
        "version": {"type": "integer"},
        "lesson": {"type": ["string", "null"], "maxLength": MAX_NAME},
        "source": {"type": "string", "maxLength": MAX_NAME},
        "settings": {"type": "object", "maxProperties": 200},
        "tensors": {"type": "object", "maxProperties": MAX_TENSORS,
                    "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_.]*$", "maxLength": MAX_NAME},
                    "additionalProperties": _TENSOR},
        "ops": {"type": "array", "maxItems": MAX_OPS, "items": _OP},
        "charts": {"type": "array", "maxItems": 1000, "items": _CHART},
    },
}

_VALIDATOR = []
_FAST = []


def _fast():
    """The schema compiled by fastjsonschema (its keywords here mean the same in draft 7, the
    newest draft fastjsonschema compiles), or None where it is not installed."""
    if not _FAST:
        try:
            import fastjsonschema
            _FAST.append(fastjsonschema.compile(dict(SCHEMA, **{"$schema": "http://json-schema.org/draft-07/schema#"})))
        except ImportError:
            _FAST.append(None)
    return _FAST[0]


def _valid_fast(manifest):
    fast = _fast()
    if fast is None:
        return False
    import fastjsonschema
    try:
        fast(manifest)
    except fastjsonschema.JsonSchemaException:
        return False
    except (RecursionError, TypeError, ValueError):
        return False
    return True


def _validator():
    if not _VALIDATOR:
        import jsonschema
        cls = jsonschema.validators.validator_for(SCHEMA)
        cls.check_schema(SCHEMA)
        _VALIDATOR.append(cls(SCHEMA))
    return _VALIDATOR[0]


def _field(path):
    """``tensors.w1.shape[0]`` from a jsonschema error path."""
    text = "manifest"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{str(part)[:60]}"
    return text


def check(manifest, where, limits=None):
    """Raise ManifestError, naming the field, unless the manifest fits the schema and the cell
    limit.

    Args:
        manifest: the decoded JSON.
        where: the file, for messages.
        limits: the limits.Limits whose cell limit applies (default: the environment's).
    """
    import jsonschema

    bounds = given_or_env(limits)
    error = None if _valid_fast(manifest) else jsonschema.exceptions.best_match(_validator().iter_errors(manifest))
    if error is not None:
        message = " ".join(error.message.split())
        if len(message) > 160:  # the message quotes the whole value: say the rule instead
            message = f"breaks the rule {error.validator} = {str(error.validator_value)[:60]}"
        raise ManifestError(f"{where}: {_field(error.absolute_path)}: {message}")
    total = 0
    for name, info in manifest["tensors"].items():
        cells = math.prod(info["shape"])
        total += cells
        if cells > bounds.cells or total > bounds.cells:
            raise ManifestError(f"{where}: manifest.tensors.{name[:60]}.shape: {info['shape']} makes the manifest "
                                f"declare {total:,} cells in all, over the limit of {bounds.cells:,}")
