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
``conv2d``, a single row or column is a vector, a single cell a number; a list of ranges stacks
them along the first dimension (two 3x3 kernels: ``[2, 1, 3, 3]``). A range may say more::

    x = { range = "pool!B2:M13", step = 2 }          # every other row and column
    p = { range = "xent!B2:E11", transpose = true }  # classes down a column, one sample a column
    f = { range = "map!B2:D4", shape = [9] }         # any shape of as many cells, read row by row
    r = { range = "ratings!B2:K9", blank = "mask" }  # blank cells masked (or blank = 0, as Excel sees it)
    s = { range = "titanic!C2:C20", text = true }    # words
    eps = 1e-8                                       # a number the sheet types inside its formulas

``op = "expr"`` checks a formula over named ranges (``xlnet.ops.expression``):
``expr = "-sum(y * ln(p))"``. A defined name scoped to one sheet is ``momentum!lr``. Every
mistake is one line naming the spec's line and the range, and every mistake of a spec is
reported at once.
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


class _Source:
    """One input or output of a block as the spec gives it: cells (ranges, read with a step,
    transposed, shaped, with blanks and words as said) or a literal number."""

    def __init__(self, ranges=(), shape=None, transpose=False, step=(1, 1), blank=None, text=False, value=None,
                 label=None):
        self.ranges, self.shape, self.transpose, self.step = list(ranges), shape, transpose, tuple(step)
        self.blank, self.text, self.value, self.label = blank, text, value, label

    @property
    def ident(self):
        if self.value is not None:
            return None
        return (tuple(str(r) for r in self.ranges), self.step, self.transpose, self.blank, self.text)

    def picked(self):
        """(rows, columns) of the cells one range gives, as they lie on the sheet (every
        step-th row and column)."""
        rows, cols = self.ranges[0].shape
        return ((rows - 1) // self.step[0] + 1, (cols - 1) // self.step[1] + 1)

    def cells(self):
        """(rows, columns) of the cells one range gives, as read (transposed when asked)."""
        rows, cols = self.picked()
        return (cols, rows) if self.transpose else (rows, cols)

    def count(self):
        return len(self.value) if self.value is not None else len(self.ranges) * math.prod(self.picked())

    def natural(self):
        if self.value is not None:
            return () if len(self.value) == 1 else (len(self.value),)
        rows, cols = self.cells()
        return (len(self.ranges), rows, cols) if len(self.ranges) > 1 else (rows, cols)

    def where(self):
        return ", ".join(str(r) for r in self.ranges) if self.value is None else f"the number(s) {self.value}"


_BLOCK_KEYS = {"op", "out", "outputs", "title", "rtol", "atol", "rows"}


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
            if text in self.sheets.names:
                found = self.sheets.names[text]
            elif refs.is_reference(text) and _scoped(text) in self.sheets.names:  # momentum!lr
                found = self.sheets.names[_scoped(text)]
            elif refs.is_reference(text):
                found = refs.parse(text)
            else:
                scoped = sorted(n for n in self.sheets.names if n.endswith("!" + text))
                self.fail(f"{key} = {text!r}: the workbook has no defined name {text!r} and [ranges] does not name it "
                          + (f"(a name scoped to one sheet is written {scoped[0]})" if scoped else
                             "(a range needs its sheet: conv!B2:I9)"), key, block)
        except SpecError:
            raise
        except InputError as exc:
            self.fail(f"{key}: {exc}", key, block)
        if found.sheet not in self.sheets.extent:
            self.fail(f"{key} = {text!r}: the workbook has no sheet {found.sheet!r} "
                      f"(it has {', '.join(map(repr, self.sheets.extent))})", key, block)
        rows, cols = self.sheets.extent[found.sheet]
        if (found.max_row > rows or found.max_col > cols) and hasattr(self.sheets, "reach"):
            rows, cols = self.sheets.reach(found.sheet)
        if found.max_row > rows or found.max_col > cols:
            self.fail(f"{key} = {text!r}: {found} reaches past the cells sheet {found.sheet!r} uses "
                      f"({refs.Range(found.sheet, 1, 1, rows, cols)})", key, block)
        return found

    def _source(self, value, key, block):
        """A _Source for one input or output of a block."""
        if isinstance(value, str) and value.strip() in self.named:
            return self.named[value.strip()]
        if _is_number(value) or (isinstance(value, list) and value and all(_is_number(v) for v in value)):
            numbers = [float(v) for v in (value if isinstance(value, list) else [value])]
            if not all(math.isfinite(v) for v in numbers):
                self.fail(f"{key}: a number should be finite, got {value!r}", key, block)
            return _Source(value=numbers)
        options = {}
        if isinstance(value, dict):
            allowed = {"range", "ranges", "shape", "transpose", "step", "blank", "text"}
            unknown = set(value) - allowed
            if unknown or ("range" in value) == ("ranges" in value):
                self.fail(f"{key} should be {{ range = \"...\" }} or {{ ranges = [...] }}, with optional "
                          f"shape, transpose, step, blank and text" + (f" (not {sorted(unknown)[0]})" if unknown else ""),
                          key, block)
            options = {k: v for k, v in value.items() if k not in ("range", "ranges")}
            value = value.get("range", value.get("ranges"))
        items = value if isinstance(value, list) else [value]
        if not items:
            self.fail(f"{key} lists no range", key, block)
        ranges = [self._range(item, key, block) for item in items]
        step = self._step(options.get("step", 1), key, block)
        ranges = [_picked(r, step) for r in ranges]
        if len({r.shape for r in ranges}) != 1:
            self.fail(f"{key}: the stacked ranges differ in size ({', '.join(str(r) for r in ranges)})", key, block)
        shape = options.get("shape")
        if shape is not None and not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool)
                                                                      and 0 < d <= 10**6 for d in shape)):
            self.fail(f"{key}: shape should be a list of positive whole numbers, got {shape!r}", key, block)
        transpose = options.get("transpose", False)
        if not isinstance(transpose, bool):
            self.fail(f"{key}: transpose should be true or false, got {transpose!r}", key, block)
        blank = options.get("blank", "error")
        blanks = {"mask": "nan", 0: "zero", "error": None}
        if isinstance(blank, bool) or blank not in blanks:
            self.fail(f"{key}: blank should be \"mask\" (left out, as the masked ops do), 0 (as Excel reads a "
                      f"blank) or \"error\", got {blank!r}", key, block)
        text = options.get("text", False)
        if not isinstance(text, bool):
            self.fail(f"{key}: text should be true or false, got {text!r}", key, block)
        return _Source(ranges, shape, transpose, step, blanks[blank], text)

    def _step(self, step, key, block):
        steps = step if isinstance(step, list) else [step, step]
        if len(steps) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 10**6
                                      for s in steps):
            self.fail(f"{key}: step should be a whole number of cells (2: every other row and column) or "
                      f"[rows, columns], got {step!r}", key, block)
        return tuple(steps)

    def _adapt(self, src, rank, key, block, what):
        """The tensor shape for a source: explicit, else the natural one brought to ``rank``."""
        count = src.count()
        if src.shape is not None:
            if math.prod(src.shape) != count:
                self.fail(f"{key}: shape {src.shape} has {math.prod(src.shape)} elements, "
                          f"{src.where()} {count}", key, block)
            return tuple(src.shape)
        natural = src.natural()
        single = src.value is not None or (len(src.ranges) == 1 and min(src.cells()) == 1)
        if rank is None:  # the op takes any shape: a cell is a number, a row or column a vector
            if single:
                return () if count == 1 else (count,)
            return natural
        if rank == len(natural):
            return natural
        if rank == 0 and count == 1:
            return ()
        if rank == 1 and single:
            return (count,)
        if src.value is not None:
            self.fail(f"{key}: {what} wants {rank} dimension(s); write the number(s) in cells", key, block)
        if rank > len(natural):
            return (natural[0],) + (1,) * (rank - len(natural)) + natural[1:] if len(src.ranges) > 1 else \
                (1,) * (rank - 2) + natural
        self.fail(f"{key}: {what} wants {rank} dimension(s); {src.where()} "
                  f"is {'x'.join(map(str, natural))}: give its shape, as {{ range = \"...\", shape = [...] }}",
                  key, block)

    def _tensor(self, src, shape, role, key, block):
        """The name of the tensor over a source's cells in ``shape`` (one per cells and shape),
        created or found."""
        ident = src.ident
        found = self.by_ranges.get(ident, []) if ident is not None else []
        name = next((n for n in found if tuple(self.tensors[n]["shape"]) == tuple(shape)), None)
        if role == "output" and found and name is None:
            other = found[0]
            self.fail(f"{key}: {src.where()} is read before it is written, as shape {self.tensors[other]['shape']}; "
                      "list the blocks in the order they compute", key, block)
        if name is None:
            label = src.label or key
            name = f"b{block + 1}_{label}" if block is not None and src.label is None else label
            while name in self.tensors:
                name += "_"
            if src.value is not None:
                info = {"shape": list(shape), "role": "hyper", "tiles": [], "value": src.value,
                        "title": f"{key} = {', '.join(f'{v:g}' for v in src.value)}"}
            else:
                tiles = [str(r) for r in src.ranges]
                info = {"shape": list(shape), "role": role, "tiles": tiles, "title": ", ".join(tiles)}
                rows, cols = src.picked()
                if len(shape) == 1 and len(src.ranges) == 1 and min(rows, cols) == 1 and not src.transpose:
                    info["orient"] = "row" if rows == 1 else "col"
                if src.transpose or not _fits_tiles(shape, len(src.ranges), (rows, cols)):
                    info["grid"] = [rows, cols]
                if src.transpose:
                    info["by"] = "col"
                if src.step != (1, 1):
                    info["step"] = list(src.step)
                if src.blank:
                    info["blank"] = src.blank
                if src.text:
                    info["text"] = True
            self.tensors[name] = info
            if ident is not None:
                self.by_ranges.setdefault(ident, []).append(name)
            self.tensor_lines[name] = self._line(src.label or key, block)
            return name
        info = self.tensors[name]
        if role == "output":
            if info["role"] == "output":
                self.fail(f"{key}: {src.where()} is already the output of another block", key, block)
            info["role"] = "output"
        return name

    def _outputs_over(self, src):
        """The block outputs over the same cells, read the same way (however their blanks are
        read: an output's blank cells are as its op leaves them)."""
        if src.ident is None:
            return []
        cells = src.ident[:3]
        return [n for ident, names in self.by_ranges.items() if ident[:3] == cells
                for n in names if self.tensors[n]["role"] == "output"]

    def _carried(self, block, argnames, k):
        """``rows = "fit!B4:C32"``: the parameters of every step, one row each, each row computed
        from the row above; the block reads p from all rows but the last and writes all rows but
        the first (out)."""
        if "p" not in argnames or "p" in block or "out" in block:
            self.fail("rows = the parameters, a row per step, stands for p and out: give it to an update op "
                      "(sgd_update, rmsprop_update, adam_update, optimizer_step) instead of p and out", "rows", k)
        if not isinstance(block["rows"], str):
            self.fail("rows should be a range such as fit!B4:C32", "rows", k)
        whole = self._range(block["rows"], "rows", k)
        if whole.shape[0] < 2:
            self.fail(f"rows = {whole} is one row; a run needs a starting row and a row per step", "rows", k)
        block = {key: value for key, value in block.items() if key != "rows"}
        block["p"] = str(refs.Range(whole.sheet, whole.min_row, whole.min_col, whole.max_row - 1, whole.max_col))
        block["out"] = str(refs.Range(whole.sheet, whole.min_row + 1, whole.min_col, whole.max_row, whole.max_col))
        return block

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
        problems = []
        for key, value in named.items():
            try:
                if not _NAME.match(key):
                    self.fail(f"range name {key!r} should be letters, digits and _", key)
                source = self._source(value, key, None)
                source.label = key
                self.named[key] = source
            except SpecError as exc:
                problems.append(str(exc))
        blocks = data.get("block", [])
        if not isinstance(blocks, list) or not blocks:
            problems.append(f"{self.path}:1: the spec has no [[block]]: name at least one op and its ranges")
        else:
            for k, block in enumerate(blocks):
                try:
                    self._block(k, block)
                except SpecError as exc:  # every mistake at once, not one a run
                    problems.append(str(exc))
        if problems:
            raise SpecError("\n".join(problems))
        used = {manifest_mod.parse_spec(spec)[0] for entry in self.ops
                for spec in list(entry["inputs"].values()) + list(entry["outputs"].values())}
        self.tensors = {name: info for name, info in self.tensors.items() if name in used}
        manifest = {"version": manifest_mod.VERSION, "lesson": None, "source": "spec",
                    "tensors": self.tensors, "ops": self.ops, "charts": []}
        try:
            manifest_mod.validate(manifest, str(self.path), self.sheets.limits)
        except XlnetError as exc:
            raise SpecError(str(exc)) from None
        return Spec(self.path, manifest, self.block_lines, self.tensor_lines)

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
        expression = name == "expr"
        if expression:  # a formula: the block names each range it reads
            argnames = tuple(key for key in block if key not in _BLOCK_KEYS | {"expr"})
        else:
            argnames = tuple(op.inputs) + tuple(op.optional)
        if "rows" in block and "rows" not in argnames:  # a run down the rows: each row's parameters make the next's
            block = self._carried(block, argnames, k)
        attrs = {key: block[key] for key in block if key in op.attrs and not (key in argnames)}
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
        known = set(argnames) | set(op.attrs) | _BLOCK_KEYS
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

        sources = {arg: self._source(block[arg], arg, k) for arg in argnames if arg in block}
        natural = {arg: src.natural()[-2:] if len(src.natural()) >= 2 else src.natural() for arg, src in sources.items()}
        inputs, shapes, words = {}, {}, []
        for arg, src in sources.items():
            rank = op.rank(arg, natural)
            adapted = self._adapt(src, rank, arg, k, f"op {name} input {arg}")
            found = [n for n in self.by_ranges.get(src.ident, [])] if src.ident is not None else []
            tensor = next((n for n in found if self._input_spec(n, rank) is not None and
                           (src.shape is None or self.tensors[n]["shape"] == list(src.shape))
                           and (rank is not None or self.tensors[n]["shape"] == list(adapted))), None)
            computed = self._outputs_over(src)
            if tensor is None and computed and src.shape is None:  # read as written, so the chain holds
                tensor = computed[0]
            if tensor is None:
                tensor = self._tensor(src, adapted, "input", arg, k if src.label is None else None)
            spec = self._input_spec(tensor, rank)
            if spec is None:
                self.fail(f"{arg}: {src.where()} has shape {self.tensors[tensor]['shape']}, but op {name} "
                          f"wants {rank} dimension(s) here", arg, k)
            inputs[arg] = spec
            shapes[arg] = tuple(manifest_mod._sliced(self.tensors[tensor]["shape"], manifest_mod.parse_spec(spec)[1], where))
            if self.tensors[tensor].get("text"):
                words.append([arg] + list(shapes[arg]))
        for group in op.same_shape:  # a row or column beside a [n, 1] block is read as [n, 1] too
            given = [a for a in group if a in shapes]
            anchor = next((a for a in given if len(shapes[a]) > 1), None)
            for arg in given:
                src = sources[arg]
                if anchor is None or arg == anchor or shapes[arg] == shapes[anchor] or src.shape is not None \
                        or src.value is not None or len(src.ranges) != 1 or min(src.cells()) != 1 \
                        or src.count() != math.prod(shapes[anchor]):
                    continue
                sources[arg] = _Source(src.ranges, list(shapes[anchor]), src.transpose, src.step, src.blank,
                                       src.text, label=src.label)
                fitted = next((n for n in self.by_ranges.get(src.ident, [])
                               if self.tensors[n]["shape"] == list(shapes[anchor])), None)
                inputs[arg] = fitted or self._tensor(sources[arg], shapes[anchor], "input", arg,
                                                     k if src.label is None else None)
                shapes[arg] = tuple(shapes[anchor])
        if expression:
            at["words"] = words
            attrs["words"] = words
        mismatch = op.mismatch(shapes)
        if mismatch:
            self.fail(f"shape mismatch: {mismatch} ({', '.join(f'{a} is {sources[a].where()}' for a in shapes)}); "
                      "give each the same cells, or a shape", "op", k)
        try:
            rule = op.shape(shapes, at)
        except XlnetError as exc:
            self.fail(f"op {name}: {exc}", "expr" if expression else "op", k)
        except Exception as exc:  # a rule meeting shapes it cannot combine
            self.fail(f"op {name} cannot take inputs of shapes "
                      f"{', '.join(f'{a} {list(s)}' for a, s in shapes.items())} ({type(exc).__name__})", "op", k)
        out_names = {}
        for key, value in outputs.items():
            line_key = "out" if key == "out" else key
            src = self._source(value, line_key, k)
            if src.value is not None:
                self.fail(f"{line_key}: an output is the cells the sheet computes, not a number", line_key, k)
            want = rule.get(key) if isinstance(rule, dict) else (rule if key == "out" else None)
            adapted = self._adapt(src, len(want) if want is not None else None, line_key, k, f"op {name} output")
            if want is not None and tuple(adapted) != tuple(want):
                self.fail(f"shape mismatch: op {name} makes {list(want)} from these inputs, but "
                          f"{src.where()} holds {'x'.join(map(str, src.natural()))} cells", line_key, k)
            if op.leaves_blank and src.blank is None:  # the masked cells are blank by design
                src = _Source(src.ranges, src.shape, src.transpose, src.step, "nan", src.text, label=src.label)
            out_names[key] = self._tensor(src, adapted, "output", src.label or key, k if src.label is None else None)
        entry = {"op": name, "inputs": inputs, "outputs": out_names,
                 "title": str(block.get("title") or f"{name} -> {self.tensors[out_names[next(iter(out_names))]]['title']}")}
        if attrs:
            entry["attrs"] = {a: at[a] for a in attrs}
        if tol:
            entry["tol"] = {key: float(v) for key, v in tol.items()}
        self.ops.append(entry)
        self.block_lines.append(self.headers[k] if k < len(self.headers) else 1)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scoped(text):
    """``momentum!lr`` as the survey names a defined name scoped to one sheet."""
    sheet, _, name = text.strip().rpartition("!")
    if len(sheet) > 1 and sheet[0] == sheet[-1] == "'":
        sheet = sheet[1:-1].replace("''", "'")
    return f"{refs.quote_sheet(sheet)}!{name}"


def _picked(found, step):
    """The range trimmed to the last row and column a step reaches."""
    rows, cols = found.shape
    return refs.Range(found.sheet, found.min_row, found.min_col,
                      found.min_row + (rows - 1) // step[0] * step[0], found.min_col + (cols - 1) // step[1] * step[1])


def _fits_tiles(shape, count, cells):
    """True when the manifest's plain rule (a tile per leading index, each the shape's last two
    dimensions; a row or column for a vector) reads these cells as this shape."""
    if len(shape) == 0:
        return count == 1 and cells == (1, 1)
    if len(shape) == 1:
        return count == 1 and min(cells) == 1 and max(cells) == shape[0]
    return count == math.prod(shape[:-2]) and tuple(shape[-2:]) == tuple(cells)
