"""A spec: the blocks of a hand-made workbook, named in TOML, turned into an xlnet manifest.

A spec names ranges (A1 references, defined names, or names given under ``[ranges]``) and
the op that relates them, with the op names and attributes of the manifest (``xlnet.ops``)::

    [ranges]
    image = "conv!B2:I9"

    [[block]]
    op = "conv2d"
    x = "image"
    weight = "conv!K2:M4"
    relu = true
    out = "conv!B12:G17"

Each range is read as the op's torch reference wants it: a 3x3 kernel is ``[1, 1, 3, 3]`` for
``conv2d``, a row of biases a vector; a list of ranges stacks them along the first dimension
(two 3x3 kernels: ``[2, 1, 3, 3]``); ``{ range = "...", shape = [...] }`` says it outright.
Every mistake is one line naming the spec's line and the range.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .. import manifest as manifest_mod, ops
from ..workbook import refs
from ..errors import InputError, XlnetError
from .tolerance import LOOSEST

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SpecError(InputError):
    """A spec that does not describe the workbook."""


@dataclass
class Spec:
    """A loaded spec: the manifest it makes and where each block came from."""

    path: Path
    manifest: dict
    block_lines: list
    tensor_lines: dict


def path_beside(book):
    """The spec that goes with a workbook: ``book.xlnet.toml`` beside ``book.xlsx``."""
    book = Path(book)
    return book.with_name(book.stem + ".xlnet.toml")


def exists_beside(book):
    """True when the workbook has a spec beside it (False when its name cannot even exist)."""
    try:
        return path_beside(book).is_file()
    except OSError:  # the spec's longer name is past what the file system allows
        return False


def load(spec_path, sheets):
    """Read a spec and build the manifest it describes for the given workbook.

    Args:
        spec_path: the TOML file.
        sheets: a Sheets of the workbook it describes.

    Returns:
        A Spec.
    """
    spec_path = Path(spec_path)
    text = _read(spec_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise SpecError(f"{spec_path}:{line.group(1) if line else 1}: not valid TOML ({str(exc).split(' (at')[0]})") from None
    except RecursionError:
        raise SpecError(f"{spec_path}: its arrays or tables nest too deeply to be a spec") from None
    return _Builder(spec_path, text, sheets).build(data)


MAX_SPEC_BYTES = 1 << 20  # a spec names ranges and blocks: a few kilobytes


def _read(path):
    """A spec's text: a regular file of at most MAX_SPEC_BYTES, in UTF-8 (never a pipe or a
    device, which could block or never end)."""
    try:
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK)) as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SpecError(f"{path}: not a regular file (a device, pipe or folder); expected a spec (TOML)")
            data = fh.read(MAX_SPEC_BYTES + 1)
    except SpecError:
        raise
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: over {MAX_SPEC_BYTES // 1024} KB; a spec names ranges and blocks in a few kilobytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text; expected a spec (TOML)") from None


class _Builder:
    def __init__(self, path, text, sheets):
        self.path, self.lines, self.sheets = path, text.splitlines(), sheets
        self.tensors, self.named, self.by_ranges = {}, {}, {}
        self.tensor_lines, self.ops, self.block_lines = {}, [], []
        self.headers = [i + 1 for i, line in enumerate(self.lines) if re.match(r"^\s*\[\[\s*block\s*\]\]", line)]

    # ---- where things are, for messages ----

    def _line(self, key, block=None):
        start, stop = 0, len(self.lines)
        if block is not None and block < len(self.headers):
            start = self.headers[block] - 1
            stop = self.headers[block + 1] - 1 if block + 1 < len(self.headers) else len(self.lines)
        for i in range(start, stop):
            if re.match(rf"^\s*{re.escape(key)}\s*=", self.lines[i]):
                return i + 1
        return start + 1

    def fail(self, what, key=None, block=None):
        line = self._line(key, block) if key else (self.headers[block] if block is not None and block < len(self.headers) else 1)
        prefix = f"{self.path}:{line}: " + (f"block {block + 1}: " if block is not None else "")
        raise SpecError(prefix + what)

    # ---- ranges ----

    def _range(self, text, key, block):
        if not isinstance(text, str) or not text.strip():
            self.fail(f"{key} should be a range such as conv!B2:I9, a defined name or a name from [ranges]", key, block)
        text = text.strip()
        try:
            if refs.is_reference(text):
                found = refs.parse(text)
            elif text in self.sheets.names:
                found = self.sheets.names[text]
            else:
                self.fail(f"{key} = {text!r}: the workbook has no defined name {text!r} and [ranges] does not name it "
                          f"(a range needs its sheet: conv!B2:I9)", key, block)
        except SpecError:
            raise
        except InputError as exc:
            self.fail(f"{key}: {exc}", key, block)
        if found.sheet not in self.sheets.extent:
            self.fail(f"{key} = {text!r}: the workbook has no sheet {found.sheet!r} "
                      f"(it has {', '.join(map(repr, self.sheets.extent))})", key, block)
        rows, cols = self.sheets.extent[found.sheet]
        if found.max_row > rows or found.max_col > cols:
            self.fail(f"{key} = {text!r}: {found} reaches past the cells sheet {found.sheet!r} uses "
                      f"({refs.Range(found.sheet, 1, 1, rows, cols)})", key, block)
        return found

    def _source(self, value, key, block):
        """(ranges, explicit shape or None) for one input or output of a block."""
        shape = None
        if isinstance(value, dict):
            unknown = set(value) - {"range", "ranges", "shape"}
            if unknown or ("range" in value) == ("ranges" in value):
                self.fail(f"{key} should be {{ range = \"...\" }} or {{ ranges = [...] }}, with an optional shape",
                          key, block)
            shape = value.get("shape")
            if shape is not None and not (isinstance(shape, list) and all(isinstance(d, int) and 0 < d <= 10**6
                                                                          for d in shape)):
                self.fail(f"{key}: shape should be a list of positive whole numbers, got {shape!r}", key, block)
            value = value.get("range", value.get("ranges"))
        items = value if isinstance(value, list) else [value]
        if not items:
            self.fail(f"{key} lists no range", key, block)
        ranges = [self._range(item, key, block) for item in items]
        if len({r.shape for r in ranges}) != 1:
            self.fail(f"{key}: the stacked ranges differ in size ({', '.join(str(r) for r in ranges)})", key, block)
        return ranges, shape

    @staticmethod
    def _natural(ranges):
        rows, cols = ranges[0].shape
        return (len(ranges), rows, cols) if len(ranges) > 1 else (rows, cols)

    def _adapt(self, ranges, shape, rank, key, block, what):
        """The tensor shape for ranges: explicit, else the natural one brought to ``rank``."""
        rows, cols = ranges[0].shape
        count = len(ranges) * rows * cols
        if shape is not None:
            if math.prod(shape) != count:
                self.fail(f"{key}: shape {shape} has {math.prod(shape)} elements, the range {count}", key, block)
            tile = tuple(shape[-2:]) if len(shape) >= 2 else None
            if (tile is not None and tile != (rows, cols)) or (len(shape) < 2 and len(ranges) != 1) or (
                    len(shape) == 1 and min(rows, cols) != 1):
                self.fail(f"{key}: shape {shape} does not fit {len(ranges)} range(s) of {rows}x{cols} cells",
                          key, block)
            return tuple(shape)
        natural = self._natural(ranges)
        if rank is None or rank == len(natural):
            return natural
        if rank == 0 and count == 1:
            return ()
        if rank == 1 and len(ranges) == 1 and min(rows, cols) == 1:
            return (count,)
        if rank > len(natural):
            return (natural[0],) + (1,) * (rank - len(natural)) + natural[1:] if len(ranges) > 1 else \
                (1,) * (rank - 2) + natural
        self.fail(f"{key}: {what} wants {rank} dimension(s); {', '.join(str(r) for r in ranges)} "
                  f"is {'x'.join(map(str, natural))}: give its shape, as {{ range = \"...\", shape = [...] }}",
                  key, block)

    def _tensor(self, ranges, shape, role, key, block):
        """The name of the tensor over ``ranges`` (one per set of ranges), created or found."""
        ident = tuple(str(r) for r in ranges)
        name = self.by_ranges.get(ident)
        if name is None:
            name = f"b{block + 1}_{key}" if block is not None else key
            while name in self.tensors:
                name += "_"
            info = {"shape": list(shape), "role": role, "tiles": list(ident), "title": ", ".join(ident)}
            if len(shape) == 1:
                info["orient"] = "row" if ranges[0].shape[0] == 1 else "col"
            if len(shape) <= 1 and len(ranges) != 1:
                self.fail(f"{key}: {len(ranges)} ranges cannot make shape {list(shape)}", key, block)
            self.tensors[name] = info
            self.by_ranges[ident] = name
            self.tensor_lines[name] = self._line(key, block)
            return name
        info = self.tensors[name]
        if role == "output":
            if info["role"] == "output":
                self.fail(f"{key}: {', '.join(ident)} is already the output of another block", key, block)
            if tuple(info["shape"]) != tuple(shape):
                self.fail(f"{key}: {', '.join(ident)} is read before it is written, as shape {info['shape']}; "
                          "list the blocks in the order they compute", key, block)
            info["role"] = "output"
        return name

    def _input_spec(self, name, rank):
        """``name`` or ``name[0]`` when the tensor has leading 1s the op does not want."""
        shape = self.tensors[name]["shape"]
        if rank is None or rank == len(shape):
            return name
        extra = len(shape) - rank
        if extra > 0 and all(d == 1 for d in shape[:extra]):
            return f"{name}[{','.join('0' * extra)}]"
        return None

    # ---- the whole spec ----

    def build(self, data):
        if not isinstance(data, dict):
            self.fail("a spec is a TOML table")
        unknown = set(data) - {"ranges", "block", "title"}
        if unknown:
            self.fail(f"unknown section {sorted(unknown)[0]!r}: a spec has [ranges] and [[block]] entries",
                      sorted(unknown)[0])
        named = data.get("ranges", {})
        if not isinstance(named, dict):
            self.fail("[ranges] should be a table of name = range", "ranges")
        for key, value in named.items():
            if not _NAME.match(key):
                self.fail(f"range name {key!r} should be letters, digits and _", key)
            ranges, shape = self._source(value, key, None)
            self.named[key] = (ranges, shape)
        blocks = data.get("block", [])
        if not isinstance(blocks, list) or not blocks:
            self.fail("the spec has no [[block]]: name at least one op and its ranges")
        for k, block in enumerate(blocks):
            self._block(k, block)
        manifest = {"version": manifest_mod.VERSION, "lesson": None, "source": "spec",
                    "tensors": self.tensors, "ops": self.ops, "charts": []}
        try:
            manifest_mod.validate(manifest, str(self.path), self.sheets.limits)
        except XlnetError as exc:
            raise SpecError(str(exc)) from None
        return Spec(self.path, manifest, self.block_lines, self.tensor_lines)

    def _resolve_named(self, value):
        if isinstance(value, str) and value.strip() in self.named:
            ranges, shape = self.named[value.strip()]
            return ranges, shape, value.strip()
        return None

    def _block(self, k, block):
        if not isinstance(block, dict):
            self.fail("a [[block]] is a table", block=k)
        name = block.get("op")
        if name not in ops.REGISTRY:
            close = [n for n in ops.REGISTRY if name and (n.startswith(str(name)[:4]) or str(name) in n)]
            self.fail(f"unknown op {name!r}" + (f" (did you mean {', '.join(close[:3])}?)" if close else
                                              "; `xlnet list --ops` shows them"), "op", k)
        op = ops.REGISTRY[name]
        if op.trajectory:
            self.fail(f"op {name} runs a whole lesson sheet; a spec block is one op", "op", k)
        argnames = tuple(op.inputs) + tuple(op.optional)
        attrs = {key: block[key] for key in block if key in op.attrs}
        outputs = {"out": block["out"]} if "out" in block else {}
        extra_out = block.get("outputs", {})
        if not isinstance(extra_out, dict):
            self.fail("outputs should be a table: { m = \"...\", v = \"...\" }", "outputs", k)
        outputs.update(extra_out)
        if not outputs:
            self.fail(f"op {name} needs out = the range its cells compute", "op", k)
        tol = {key: block[key] for key in ("rtol", "atol") if key in block}
        for key, value in tol.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= LOOSEST[key]:
                self.fail(f"{key} should be a number from 0 to {LOOSEST[key]:g}, got {value!r}", key, k)
        known = set(argnames) | set(op.attrs) | {"op", "out", "outputs", "title", "rtol", "atol"}
        unknown = [key for key in block if key not in known]
        if unknown:
            self.fail(f"op {name} has no input or attribute {unknown[0]!r}; it takes "
                      f"{', '.join(argnames)}" + (f" and {', '.join(op.attrs)}" if op.attrs else ""), unknown[0], k)
        where = f"{self.path}:{self._line('op', k)}: block {k + 1}"
        try:
            at = op.resolve_attrs(attrs, where)
            op.check_inputs([a for a in argnames if a in block], at, where)
        except XlnetError as exc:
            raise SpecError(str(exc)) from None

        sources = {}
        for arg in argnames:
            if arg in block:
                named = self._resolve_named(block[arg])
                sources[arg] = named or self._source(block[arg], arg, k) + (None,)
        natural = {arg: self._natural(r) for arg, (r, _, _) in sources.items()}
        inputs, shapes = {}, {}
        for arg, (ranges, shape, label) in sources.items():
            rank = op.rank(arg, natural)
            ident = tuple(str(r) for r in ranges)
            tensor = self.by_ranges.get(ident)
            if tensor is not None and shape is not None and list(shape) != self.tensors[tensor]["shape"]:
                self.fail(f"{arg}: shape {list(shape)} is given, but {', '.join(ident)} already has shape "
                          f"{self.tensors[tensor]['shape']} (line {self.tensor_lines.get(tensor, 1)}); one range has "
                          "one shape", arg, k)
            if tensor is None:
                adapted = self._adapt(ranges, shape, rank, arg, k, f"op {name} input {arg}")
                tensor = self._tensor(ranges, adapted, "input", label or arg, k if label is None else None)
            spec = self._input_spec(tensor, rank)
            if spec is None:
                self.fail(f"{arg}: {', '.join(ident)} has shape {self.tensors[tensor]['shape']}, but op {name} "
                          f"wants {rank} dimension(s) here", arg, k)
            inputs[arg] = spec
            shapes[arg] = tuple(manifest_mod._sliced(self.tensors[tensor]["shape"], manifest_mod.parse_spec(spec)[1], where))
        try:
            rule = op.shape(shapes, at)
        except Exception as exc:  # a rule meeting shapes it cannot combine
            self.fail(f"op {name} cannot take inputs of shapes "
                      f"{', '.join(f'{a} {list(s)}' for a, s in shapes.items())} ({type(exc).__name__})", "op", k)
        out_names = {}
        for key, value in outputs.items():
            named = self._resolve_named(value)
            ranges, shape, label = named or self._source(value, "out" if key == "out" else key, k) + (None,)
            want = rule.get(key) if isinstance(rule, dict) else (rule if key == "out" else None)
            adapted = self._adapt(ranges, shape, len(want) if want is not None else None, "out" if key == "out" else key,
                                  k, f"op {name} output")
            if want is not None and tuple(adapted) != tuple(want):
                self.fail(f"shape mismatch: op {name} makes {list(want)} from these inputs, but "
                          f"{', '.join(str(r) for r in ranges)} holds {'x'.join(map(str, self._natural(ranges)))} cells",
                          "out" if key == "out" else key, k)
            out_names[key] = self._tensor(ranges, adapted, "output", label or key, k if label is None else None)
        entry = {"op": name, "inputs": inputs, "outputs": out_names,
                 "title": str(block.get("title") or f"{name} -> {self.tensors[out_names[next(iter(out_names))]]['title']}")}
        if at:
            entry["attrs"] = {a: at[a] for a in attrs}
        if tol:
            entry["tol"] = {key: float(v) for key, v in tol.items()}
        self.ops.append(entry)
        self.block_lines.append(self.headers[k] if k < len(self.headers) else 1)
