"""The hostile-input corpus: every file is generated here, from a workbook xlnet builds, by code
a reader can audit (no binary blob is checked in).

    python tests/hostile.py OUT      writes the corpus into OUT and lists its cases

Each case is a file (or none) and what to run on it: an ``xlnet`` command line, and what must
come back: the exit code, words of the one-line message, files that must not appear. The
tests in ``test_hostile.py`` run every case and check, besides, that no traceback is printed,
that the input is unchanged (hash before and after) and that peak memory stays bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


@dataclass
class Case:
    """One hostile input and the promise it is held to.

    Attributes:
        name: what the case is.
        args: the xlnet command line (``{dir}`` is the corpus folder).
        words: text the one-line message must contain (case-insensitive).
        exit: the exit code promised (2: bad input; 1: a block differs; 0: handled and correct).
        inputs: files that must be unchanged afterwards.
        absent: paths that must not exist afterwards (nothing written outside --out).
        engine: the engine the case needs (None: none).
        says: text the standard output must contain (case-insensitive), for a check that runs.
    """

    name: str
    args: list
    words: list = field(default_factory=list)
    exit: int = 2
    inputs: list = field(default_factory=list)
    absent: list = field(default_factory=list)
    engine: str = None
    says: list = field(default_factory=list)


# --- zip-level surgery ---------------------------------------------------------------------

def rewrite(src, dst, change):
    """Copy a zip package, passing each entry's bytes through ``change(name, data)`` (None drops it;
    a dict adds entries)."""
    extra = {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = change(item.filename, zin.read(item.filename))
            if isinstance(data, dict):
                extra.update(data)
                continue
            if data is not None:
                zout.writestr(item.filename, data)
        for name, data in extra.items():
            zout.writestr(name, data)
    return dst


def manifest_part(src):
    """The worksheet part holding xlnet's manifest sheet."""
    with zipfile.ZipFile(src) as z:
        workbook = z.read("xl/workbook.xml").decode()
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
    rid = re.search(r'<sheet name="_xlnet"[^>]*r:id="([^"]+)"', workbook).group(1)
    target = re.search(rf'Id="{rid}"[^>]*Target="([^"]+)"|Target="([^"]+)"[^>]*Id="{rid}"', rels)
    return "xl/" + (target.group(1) or target.group(2)).lstrip("/").removeprefix("xl/")


def with_manifest(src, dst, edit):
    """Copy a workbook with its manifest JSON replaced by ``edit(manifest)`` (a dict, or a string
    written as is), as one inline-string chunk."""
    import openpyxl

    book = openpyxl.load_workbook(src, read_only=True)
    rows = [r for r in book["_xlnet"].iter_rows(values_only=True)]
    book.close()
    count = int(rows[2][1])
    manifest = json.loads("".join(rows[4 + i][0] for i in range(count)))
    new = edit(manifest)
    text = new if isinstance(new, str) else json.dumps(new)
    chunks = [text[j:j + 30000] for j in range(0, len(text), 30000)]
    return with_manifest_sheet(src, dst, [(3, 2, len(chunks)), *((5 + i, 1, c) for i, c in enumerate(chunks))],
                               drop_rows_from=4)


def with_manifest_sheet(src, dst, cells, drop_rows_from=None):
    """Copy a workbook with cells of the manifest sheet set: (row, col, value) from 1; a value is a
    number, a text, or ("f", formula, cached)."""
    part = manifest_part(src)

    def xml_cell(r, c, v):
        ref = f"{chr(64 + c)}{r}"
        if isinstance(v, tuple):
            return f'<c r="{ref}"><f>{v[1]}</f><v>{v[2]}</v></c>'
        if isinstance(v, str):
            text = v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'
        return f'<c r="{ref}"><v>{v}</v></c>'

    def change(name, data):
        if name != part:
            return data
        text = data.decode()
        rows = dict((int(m.group(1)), m.group(0)) for m in re.finditer(r'<row r="(\d+)".*?</row>', text, re.S))
        if drop_rows_from is not None:
            rows = {r: x for r, x in rows.items() if r < drop_rows_from}
        by_row = {}
        for r, c, v in cells:
            by_row.setdefault(r, {})[c] = v
        for r, values in by_row.items():
            old = rows.get(r, f'<row r="{r}"></row>')
            for c, v in values.items():
                ref = f"{chr(64 + c)}{r}"
                old = re.sub(rf'<c r="{ref}"[^>]*?(/>|>.*?</c>)', "", old, flags=re.S)
                old = old.replace("</row>", xml_cell(r, c, v) + "</row>")
            rows[r] = old
        body = "".join(rows[r] for r in sorted(rows))
        return re.sub(r"<sheetData>.*</sheetData>|<sheetData/>", lambda _: f"<sheetData>{body}</sheetData>", text,
                      flags=re.S).encode()

    return rewrite(src, dst, change)


def entity_bomb(root):
    return ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
            '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
            f'<{root} xmlns="{_MAIN}">&lol3;</{root}>').encode()


def external_entity(root):
    return ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/hostname">'
            '<!ENTITY remote SYSTEM "http://127.0.0.1:9/xlnet-xxe">]>'
            f'<{root} xmlns="{_MAIN}">&xxe;&remote;</{root}>').encode()


def zip_bomb(src, dst, gigabytes=1.0, part="xl/sharedStrings.xml"):
    """A workbook whose ``part`` (the shared strings, or the workbook part) inflates to
    ``gigabytes`` of repeated markup, stored in about a megabyte."""
    shutil.copyfile(src, dst)
    size = int(gigabytes * (1 << 30))
    block, close = ((b"<si><t>" + b"A" * 65536 + b"</t></si>", b"</sst>") if part.endswith("sharedStrings.xml")
                    else (b"<!--" + b"A" * 65536 + b"-->", b"</workbook>"))
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename == part:
                info = zipfile.ZipInfo(item.filename, date_time=item.date_time)
                info.compress_type = zipfile.ZIP_DEFLATED
                with zout.open(info, "w", force_zip64=True) as fh:
                    fh.write(zin.read(item.filename).replace(close, b""))
                    for _ in range(size // len(block)):
                        fh.write(block)
                    fh.write(close)
            else:
                zout.writestr(item, zin.read(item.filename))
    return dst


def defined_name(src, dst, name, target):
    """Copy a workbook with one defined name pointing elsewhere (or added twice)."""
    def change(part, data):
        if part != "xl/workbook.xml":
            return data
        text = data.decode()
        new = f'<definedName name="{name}">{target}</definedName>'
        return re.sub(rf'<definedName[^>]*\bname="{name}"[^>]*>[^<]*</definedName>', lambda _: new, text).encode()
    return rewrite(src, dst, change)


def sha(path):
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


# --- the corpus ----------------------------------------------------------------------------

def make(folder, conv, softmax, saved_conv):
    """Write the corpus into ``folder`` and return its cases.

    Args:
        folder: an empty folder.
        conv, softmax: workbooks fresh from ``xlnet build``.
        saved_conv: the conv workbook as saved by LibreOffice after a recalculation (its cached
            values are true, so ``--engine cached`` checks it).
    """
    import openpyxl
    import xlnet

    d = Path(folder)
    cases = []

    def case(name, args, words=(), exit=2, inputs=(), absent=(), engine=None, says=()):
        cases.append(Case(name, [str(a) for a in args], list(words), exit, [str(p) for p in inputs],
                          [str(p) for p in absent], engine, list(says)))

    def check(name, path, words=(), engine="cached", exit=2, extra=(), says=()):
        args = ["check", path, "--engine", engine, *extra]
        case(name, args, words, exit, inputs=[path], engine=None if engine == "cached" else engine, says=says)

    good = d / "good.xlsx"
    shutil.copyfile(saved_conv, good)
    data = Path(saved_conv).read_bytes()

    # files that are not workbooks
    (d / "text.xlsx").write_text("hello, not a spreadsheet")
    check("not a zip", d / "text.xlsx", ["text.xlsx", "not a workbook"])
    (d / "empty.xlsx").write_bytes(b"")
    check("empty file", d / "empty.xlsx", ["empty.xlsx", "not a workbook"])
    for fraction in (0.1, 0.5, 0.9, 0.999):
        path = d / f"truncated-{int(fraction * 1000)}.xlsx"
        path.write_bytes(data[: int(len(data) * fraction)])
        check(f"truncated at {fraction:.1%}", path, [path.name])
    (d / "a folder.xlsx").mkdir()
    check("a directory holding no workbook", d / "a folder.xlsx", ["a folder with no workbook"])
    check("a missing file", d / "missing.xlsx", ["no such file"])
    os.symlink(d / "nowhere.xlsx", d / "dangling.xlsx")
    check("a dangling symlink", d / "dangling.xlsx", ["no such file"])
    os.mkfifo(d / "pipe.xlsx")
    check("a named pipe", d / "pipe.xlsx", ["not a regular file"])
    os.symlink(good, d / "link.xlsx")
    check("a symlink to a good workbook (checked)", d / "link.xlsx", [], exit=0)
    unicode_path = d / "my böök ✓ with spaces.xlsx"
    shutil.copyfile(saved_conv, unicode_path)
    check("a path with spaces and unicode (checked)", unicode_path, [], exit=0)
    long_path = d / ("l" * 250 + ".xlsx")
    shutil.copyfile(conv, long_path)
    check("a 255-character file name through LibreOffice (checked)", long_path, [], engine="libreoffice", exit=0)

    import handmade
    plain_copy = d / "macro-book.xlsx"
    shutil.copyfile(conv, plain_copy)
    xlsm, _ = handmade.as_xlsm(plain_copy)
    check("an .xlsm carrying a VBA project (checked; the profile disables macros)", xlsm, [], engine="libreoffice",
          exit=0)

    # packages that inflate or declare too much
    zip_bomb(conv, d / "zipbomb.xlsx", 1.0)
    check("zip bomb: 1 GiB of shared strings in about 1 MB", d / "zipbomb.xlsx", ["zip bomb"], engine="libreoffice")
    for part, root in (("xl/sharedStrings.xml", "sst"), ("xl/worksheets/sheet1.xml", "worksheet"),
                       ("xl/workbook.xml", "workbook")):
        short = part.split("/")[-1].split(".")[0]
        path = rewrite(conv, d / f"entities-{short}.xlsx", lambda n, b, p=part, r=root: entity_bomb(r) if n == p else b)
        check(f"XML entity bomb in {part}", path, [path.name])
        path = rewrite(conv, d / f"xxe-{short}.xlsx", lambda n, b, p=part, r=root: external_entity(r) if n == p else b)
        check(f"external entities (XXE) in {part}", path, [path.name])
    many = d / "many-parts.xlsx"
    rewrite(conv, many, lambda n, b: {f"junk/{i}.bin": b"" for i in range(12000)} if n == "docProps/app.xml" else b)
    check("12,000 zip entries", many, ["entries"])

    # the manifest sheet tampered with
    def tamper(name, edit, words, exit=2, source=conv, extra=(), file=None, engine="cached", says=()):
        path = with_manifest(source, d / (file or f"manifest-{len(cases)}.xlsx"), edit)
        check(f"manifest: {name}", path, words, exit=exit, extra=extra, engine=engine, says=says)

    tamper("invalid JSON", lambda m: '{"version": 1, "tensors": ', ["not valid JSON"])
    tamper("nested 100,000 deep", lambda m: "[" * 100000 + "]" * 100000, ["nests too deeply"])
    tamper("a billion-element shape", lambda m: _set(m, "tensors.image.shape", [1000, 1000, 1000]),
           ["manifest.tensors.image.shape"])
    tamper("a negative shape", lambda m: _set(m, "tensors.image.shape", [-3, 8]), ["manifest.tensors.image.shape[0]"])
    tamper("a bool in a shape", lambda m: _set(m, "tensors.image.shape", [True, 8]), ["manifest.tensors.image.shape[0]"])
    tamper("a tensor that is an int", lambda m: _set(m, "tensors.image", 7), ["manifest.tensors.image"])
    tamper("inputs as a list", lambda m: _set(m, "ops.0.inputs", ["image"]), ["manifest.ops[0].inputs"])
    tamper("a missing role", lambda m: _drop(m, "tensors.image.role"), ["manifest.tensors.image", "role"])
    tamper("an unknown op", lambda m: _set(m, "ops.0.op", "rm_rf"), ["rm_rf"])
    tamper("a 3-part slice", lambda m: _first_input(m, lambda s: s.split("[")[0] + "[0,0:2:1]"), ["not of the form"])
    tamper("stride as text", lambda m: _attr(m, "stride", "two"), ["stride"])
    tamper("stride 0", lambda m: _attr(m, "stride", 0), ["stride"])
    tamper("tolerance as text", lambda m: _set(m, "ops.0.tol", {"rtol": "loose"}), ["manifest.ops[0].tol.rtol"])
    tamper("a 10,000-character unicode tensor name", lambda m: _rename(m, "image", "ü" * 10000),
           ["manifest.tensors"])
    tamper("an empty op list", lambda m: _set(m, "ops", []), ["manifest.ops", "not the one lesson conv builds"],
           source=saved_conv)
    tamper("a chart named ../../ESCAPED (refused: not the lesson's manifest)",
           lambda m: _set(m, "charts.0.name", "x/../../../../ESCAPED"), ["not the one lesson conv builds"],
           source=saved_conv, file="manifest-escape.xlsx")
    tamper("a chart drawing an unknown tensor", lambda m: _set(m, "charts.0.series.0.tensor", "nothing"),
           ["unknown tensor nothing"])
    tamper("a tile pointing at a missing sheet", lambda m: _set(m, "tensors.image.tiles", ["gone!A1:H8"]),
           ["missing sheet"])
    tamper("a tile of the wrong size", lambda m: _set(m, "tensors.image.tiles", ["conv!A1:B2"]), ["expected 8x8"])
    tamper("a whole-column tile", lambda m: _set(m, "tensors.image.tiles", ["conv!A:A"]), ["not a range"])
    tamper("a tile past the grid", lambda m: _set(m, "tensors.image.tiles", ["conv!A1:ZZZZ99999999"]), ["not a range"])
    for name, value in (("10^12", 1e12), ("10^308", 1e308), ("text", "many")):
        path = with_manifest_sheet(conv, d / f"chunks-{name.replace('^', '')}.xlsx", [(3, 2, value)])
        check(f"manifest: chunk count {name}", path, ["_xlnet!B3"])
    rows = with_manifest_sheet(conv, d / "million-rows.xlsx", [(r, 1, "x") for r in range(5, 200005)])
    check("manifest sheet with 200,000 extra rows", rows, ["not valid JSON"])

    # the proof forged
    path = with_manifest_sheet(saved_conv, d / "sentinel-constant.xlsx", [(2, 2, 42)])
    check("sentinel replaced by the constant 42", path, ["sentinel", "typed value"])
    path = with_manifest_sheet(saved_conv, d / "sentinel-formula.xlsx", [(2, 2, ("f", "0", 42))])
    check("sentinel formula =0 with a cached 42", path, ["sentinel", "=0"])
    path = with_manifest_sheet(conv, d / "sentinel-formula-lo.xlsx", [(2, 2, ("f", "0", 42))])
    check("sentinel formula =0 under LibreOffice", path, ["sentinel"], engine="libreoffice")
    pasted = d / "pasted-values.xlsx"
    book = openpyxl.load_workbook(saved_conv, data_only=True)
    book["_xlnet"]["B2"] = "=6*7"
    book.save(pasted)
    check("every formula pasted as its value", pasted, [], engine="libreoffice", exit=1)
    broken = _broken(conv, d / "broken.xlsx")
    tamper("tolerance loosened to 1e300 on a broken block", lambda m: _set_all(m, "tol", {"rtol": 1e300, "atol": 1e300}),
           ["not the one lesson conv builds", "tol"], source=broken, engine="libreoffice")
    tamper("tolerance loosened to 1e300 on a broken block of a book recording no lesson (clamped)",
           lambda m: _set_all(_set(m, "lesson", None), "tol", {"rtol": 1e300, "atol": 1e300}), [], exit=1,
           source=broken, engine="libreoffice", says=["FAIL"])
    tamper("broken block's op deleted, graded by --reference", lambda m: _drop_op(m, "conv1_out"), [], exit=1,
           source=broken, extra=["--reference", str(conv)], engine="libreoffice")
    tamper("broken block's op deleted from its own manifest", lambda m: _drop_op(m, "conv1_out"),
           ["not the one lesson conv builds", "manifest.ops"], source=broken, engine="libreoffice")

    # forged passes: values that do not compute, dressed up as formulas
    for how, words in (("comment", ["VALUES"]), ("foreign", ["VALUES"]), ("value", ["read none of the block"]),
                       ("hidden", ["read none of the block"])):
        path = forge(saved_conv, d / f"forged-{how}.xlsx", how)
        check(f"forged: every formula {FORGERIES[how]}", path, [], engine="libreoffice", exit=1, says=words)
        check(f"forged, with the reference: every formula {FORGERIES[how]}", path, [], engine="libreoffice", exit=1,
              extra=["--reference", conv], says=["MISMATCH"])
    path = forge(saved_conv, d / "forged-comment-cached.xlsx", "comment")
    check("forged under --engine cached: every formula a comment", path, [], exit=1, says=["VALUES"])
    path = with_manifest_sheet(saved_conv, d / "sentinel-commented.xlsx", [(2, 2, 42)])
    rewrite(path, d / "sentinel-commented-f.xlsx", lambda n, b: b.replace(b'<c r="B2"><v>42</v></c>',
            b'<c r="B2"><!--<f>6*7</f>--><v>42</v></c>') if n == manifest_part(path) else b)
    check("forged sentinel: a typed 42 beside a commented <f>6*7</f>", d / "sentinel-commented-f.xlsx",
          ["sentinel", "typed value"])
    pasted_self = d / "pasted-own-reference.xlsx"
    shutil.copyfile(pasted, pasted_self)
    check("forged: a pasted book given as its own --reference", pasted_self, [], engine="libreoffice", exit=1,
          extra=["--reference", pasted_self, "--perturb-seed", "7"], says=["right on the inputs as saved, wrong once"])

    # forged exercises, graded by the handed-out book (as the README says) and without it
    handout = d / "handout"
    [exercise] = xlnet.build(["conv"], out=handout, exercise="all")
    answers = {name: t for name, t in xlnet.load(conv).tensors.items()}
    for how, says in (("pasted", ["0 of 3 done"]), ("constant", ["0 of 3 done"]), ("hidden", ["0 of 3 done"]),
                      ("far", ["0 of 3 done"]), ("zeroed", ["0 of 3 done"]), ("zeroed-read", ["0 of 3 done"])):
        path = forge_exercises(exercise, answers, d / f"exercise-{how}.xlsx", how)
        check(f"forged exercises ({how}), graded by the handed-out book", path, [], engine="libreoffice", exit=1,
              extra=["--reference", exercise], says=says)
        if how in ("pasted", "constant"):
            check(f"forged exercises ({how}), checked by their own manifest", path, [], engine="libreoffice", exit=1,
                  says=says)
    relabelled = with_manifest(exercise, d / "exercise-relabelled.xlsx", _relabel_exercises)
    check("forged exercises: the exercise blocks relabelled as inputs in the hidden sheet", relabelled,
          ["not the one lesson conv builds"], engine="libreoffice")

    # cells of the workbook
    def cells(name, changes, words, engine="cached"):
        path = d / f"cells-{len(cases)}.xlsx"
        book = openpyxl.load_workbook(saved_conv)
        for (sheet, cell), value in changes.items():
            book[sheet][cell] = value
        book.save(path)
        check(name, path, words, engine=engine)

    pixel = xlnet.load(conv).tensors["image"].address(9)
    where = tuple(pixel.split("!"))
    cells("text in an input cell", {where: "dark"}, [pixel, "text"])
    cells("an error value in an input cell", {where: "#DIV/0!"}, [pixel, "#DIV/0!"])
    cells("a blank input cell", {where: None}, [pixel, "blank"])
    cells("an input reading another workbook", {where: "='[1]Sheet1'!A1"}, ["another workbook"])
    path = d / "deleted-sheet.xlsx"
    book = openpyxl.load_workbook(saved_conv)
    del book["conv"]
    book.save(path)
    check("a deleted sheet", path, ["conv"])
    path = defined_name(saved_conv, d / "name-elsewhere.xlsx", "image", "conv!$A$1:$B$2")
    check("a defined name pointing elsewhere", path, ["name-elsewhere.xlsx: tensor image", "expected 8x8"])
    path = defined_name(saved_conv, d / "name-twice.xlsx", "image", "conv!$C$3:$J$10")
    path2 = d / "name-duplicate.xlsx"
    rewrite(path, path2, lambda n, b: b.replace(b"</definedNames>", b'<definedName name="image">conv!$A$1:$H$8</definedName></definedNames>')
            if n == "xl/workbook.xml" else b)
    check("a duplicate defined name", path2, ["defined name image is defined twice"])

    # bounded by the file, not by what it claims
    far = d / "far-cell.xlsx"
    rewrite(saved_conv, far, lambda n, b: b.replace(b"</sheetData>", b'<row r="1048576"><c r="XFD1048576"><v>1</v></c>'
                                                     b"</row></sheetData>") if n == "xl/worksheets/sheet1.xml" else b)
    for engine in ("cached", "libreoffice", "gnumeric"):
        check(f"one cell typed at XFD1048576, {engine} (checked)", far, [], engine=engine, exit=0, says=["OK"])
    case("one cell typed at XFD1048576: --jobs 2 beside a good book (checked)", ["check", far, good, "--jobs", "2"],
         [], exit=0, inputs=[far, good], engine="libreoffice", says=["far-cell.xlsx", "good.xlsx"])
    rows = d / "rows-below-the-blocks.xlsx"
    body = b"".join(b'<row r="%d"><c r="A%d"><v>1</v></c></row>' % (r, r) for r in range(1000, 1_001_000))
    rewrite(saved_conv, rows, lambda n, b: b.replace(b"</sheetData>", body + b"</sheetData>")
            if n == "xl/worksheets/sheet1.xml" else b)
    check("a million rows below the blocks (checked)", rows, [], exit=0, says=["OK"])
    zero = d / "zero.xlnet.toml"
    os.symlink("/dev/zero", zero)
    plain_book = d / "plain-for-spec.xlsx"
    book = openpyxl.Workbook()
    book.active["A1"] = 1
    book.save(plain_book)
    case("a spec that is /dev/zero", ["check", plain_book, "--spec", zero], ["not a regular file"], inputs=[plain_book])
    os.mkfifo(d / "fifo.xlnet.toml")
    case("a spec that is a named pipe", ["check", plain_book, "--spec", d / "fifo.xlnet.toml"], ["not a regular file"])
    (d / "deep.xlnet.toml").write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    case("a spec nested 100,000 deep", ["check", plain_book, "--spec", d / "deep.xlnet.toml"], ["nest too deeply"])
    (d / "huge.xlnet.toml").write_text("# " + "x" * 2_000_000 + "\n")
    case("a spec of 2 MB", ["check", plain_book, "--spec", d / "huge.xlnet.toml"], ["over 1024 KB"])

    # no data lost
    kept = d / "served-workbook.xlsx"
    shutil.copyfile(conv, kept)
    case("serve --socket names a workbook (kept)", ["serve", "--socket", kept], ["not a socket"], inputs=[kept])
    case("watch --count 0", ["watch", good, "--count", "0"], ["--count"])
    case("watch --count -1", ["watch", good, "--count", "-1"], ["--count"])
    os.mkfifo(d / "out-fifo.xlsx")
    case("annotate -o a named pipe", ["annotate", plain_book, "--spec", d / "bad.xlnet.toml", "-o", d / "out-fifo.xlsx"],
         ["not a regular file"])

    # plot and build
    out = d / "plots"
    case("plot: a chart named ../../ESCAPED stays inside --out",
         ["plot", d / "manifest-escape.xlsx", "--out", out, "--charts-only"], [], exit=0,
         absent=[d.parent / "ESCAPED.png", d / "ESCAPED.png", Path("/ESCAPED.png")])
    case("plot: --out is a file", ["plot", good, "--out", d / "text.xlsx"], ["is a file"])
    case("plot: --out under a file", ["plot", good, "--out", d / "text.xlsx" / "sub"], ["text.xlsx"])
    case("build: --out is an existing file", ["build", "conv", "--out", d / "text.xlsx"], ["is a file"])
    case("build: --out under a file", ["build", "conv", "--out", d / "text.xlsx" / "sub"], ["cannot be created"])
    case("build: --out on a read-only file system", ["build", "conv", "--out", "/proc/xlnet-out"], ["/proc/xlnet-out"])
    for option, value, words in (
            ("--kernel-size", "0", ["--kernel-size 0", "1 <= kernel_size <= 9"]),
            ("--stride", "-1", ["--stride -1"]),
            ("--padding", "1000", ["--padding 1000", "padding <= 4"]),
            ("--filters1", "100000", ["--filters1 100000"]),
            ("--size", "0", ["--size 0"]),
            ("--dropout-p", "1", ["--dropout-p 1.0", "dropout_p < 1"]),
            ("--dropout-p", "nan", ["--dropout-p nan", "finite"]),
            ("--lr", "inf", ["--lr inf", "finite"]),
            ("--lr", "0", ["--lr 0.0", "0 < lr"]),
            ("--temperature", "inf", ["--temperature inf"]),
            ("--temperature", "-1", ["--temperature -1.0"]),
            ("--noise", "nan", ["--noise nan"]),
            ("--beta2", "1", ["--beta2 1.0"]),
            ("--epochs", "1e9", ["--epochs", "invalid int"]),
            ("--epochs", "100000000", ["--epochs 100000000"]),
            ("--seed", "-1", ["--seed -1"]),
            ("--seed", "99999999999999999999", ["--seed"]),
            ("--points", "0", ["--points 0"]),
            ("--users", "1", ["--users 1"]),
            ("--classes", "-5", ["--classes -5"])):
        target = d / f"build-{len(cases)}"
        case(f"build: {option} {value}", ["build", "--out", target, option, value], words, absent=[target])
    case("check: --timeout 0", ["check", good, "--timeout", "0"], ["--timeout"])
    case("check: --timeout -5", ["check", good, "--timeout", "-5"], ["--timeout"])
    case("check: --max-ratio nan", ["check", good, "--max-ratio", "nan"], ["ratio"])
    case("check: unknown engine", ["check", good, "--engine", "notepad"], ["invalid choice"])
    case("check: --device tpu", ["check", good, "--device", "tpu"], ["invalid choice"])
    case("check: --reference is not a workbook", ["check", good, "--reference", d / "text.xlsx"], ["not a workbook"])
    (d / "bad.xlnet.toml").write_text("[[block]\nop = 'relu'\n")
    plain = d / "plain.xlsx"
    book = openpyxl.Workbook()
    book.active["A1"] = 1
    book.save(plain)
    case("check: a spec that is not TOML", ["check", plain, "--spec", d / "bad.xlnet.toml"], ["bad.xlnet.toml"],
         inputs=[plain, d / "bad.xlnet.toml"])
    return cases


FORGERIES = {"comment": "pasted as its value beside an XML comment spelling <f>...</f>",
             "foreign": "pasted as its value under an <f> of a foreign namespace",
             "value": "written as =<its value>",
             "hidden": "reading a hidden sheet of constants"}
_FORMULA_CELL = re.compile(r'<c r="([A-Z]+)([0-9]+)"([^>]*)><f( [^>]*)?>(.*?)</f><v>([^<]*)</v></c>', re.S)


def forge(src, dst, how):
    """A copy of a recalculated book whose every formula cell (but the sentinel) is forged ``how``
    (see FORGERIES), its cached value kept."""
    from xlnet.workbook import hidden_sheet, package

    with package.open_package(src) as opened:
        parts = {part: name for name, part in opened.sheet_parts.items() if name != "_xlnet"}
    order = {part: k for k, part in enumerate(sorted(parts))}
    answers = {}

    def cell(part, m):
        letters, row, attrs, text, value = m.group(1), m.group(2), m.group(3), m.group(5), m.group(6)
        if 't="' in attrs and 't="n"' not in attrs:
            return m.group(0)
        if how == "comment":
            return f'<c r="{letters}{row}"{attrs}><!--<f>{text}</f>--><v>{value}</v></c>'
        if how == "foreign":
            return f'<c r="{letters}{row}"{attrs}><x:f xmlns:x="urn:forged">{text}</x:f><v>{value}</v></c>'
        if how == "value":
            return f'<c r="{letters}{row}"{attrs}><f>{value}</f><v>{value}</v></c>'
        col = sum((ord(ch) - 64) * 26 ** k for k, ch in enumerate(reversed(letters)))
        at = (int(row) - 1, col - 1 + 200 * order[part])
        answers[at] = float(value)
        from openpyxl.utils.cell import get_column_letter
        return f'<c r="{letters}{row}"{attrs}><f>answers!{get_column_letter(at[1] + 1)}{at[0] + 1}</f><v>{value}</v></c>'

    def change(name, data):
        if name not in parts:
            return data
        return _FORMULA_CELL.sub(lambda m: cell(name, m), data.decode()).encode()

    if how != "hidden":
        return rewrite(src, dst, change)
    middle = Path(str(dst) + ".tmp.xlsx")
    rewrite(src, middle, change)
    hidden_sheet.add_sheet(middle, dst, "answers", answers)
    middle.unlink()
    return dst


def forge_exercises(src, answers, dst, how):
    """A copy of an exercise book whose exercise cells hold torch's answers without computing
    them: ``pasted`` values, ``constant`` formulas (=6.7639), ``hidden`` (=torch!C17 on a hidden
    sheet of answers), ``far`` (=AZ40, the answers typed far away), ``zeroed`` (the image set to
    0 and every cell =0), ``zeroed-read`` (the same, each cell =0*its first input cell)."""
    import openpyxl
    import xlnet

    manifest = xlnet.load(src).manifest
    tensors = xlnet.load(src).tensors
    book = openpyxl.load_workbook(src)
    if how == "hidden":
        torch_sheet = book.create_sheet("torch")
        torch_sheet.sheet_state = "hidden"
    image = tensors["image"]
    if how.startswith("zeroed"):
        for sheet, r, c in image.coords:
            book[sheet].cell(r, c, 0.0)
    k_far = 0
    for name, info in manifest["tensors"].items():
        if "exercise" not in info:
            continue
        values = answers[name].values.ravel()
        for k, (sheet, r, c) in enumerate(tensors[name].coords):
            value = float(values[k])
            target = book[sheet].cell(r, c)
            if how == "pasted":
                target.value = value
            elif how == "constant":
                target.value = f"={value!r}"
            elif how == "hidden":
                torch_sheet.cell(r, c, value)
                target.value = f"=torch!{target.coordinate}"
            elif how == "far":
                k_far += 1
                far = book[sheet].cell(200 + k_far, 52, value)
                target.value = f"={far.coordinate}"
            elif how == "zeroed":
                target.value = "=0"
            else:
                first = image.cells[0].split("!")[1]
                target.value = f"=0*{first}"
    book.save(dst)
    return dst


def _relabel_exercises(m):
    names = [n for n, info in m["tensors"].items() if "exercise" in info]
    for name in names:
        m["tensors"][name]["role"] = "input"
        del m["tensors"][name]["exercise"]
    m["ops"] = [e for e in m["ops"] if not set(e["outputs"].values()) & set(names)]
    return m


def _broken(src, dst):
    """A copy whose first conv-layer cell adds 1 (a wrong formula), as LibreOffice would save it."""
    import openpyxl

    book = openpyxl.load_workbook(src)
    ws = book["conv"]
    for row in ws.iter_rows():
        for cell in row:
            if isinstance(cell.value, str) and cell.value.startswith("=MAX(0,"):
                cell.value = cell.value.replace("=MAX(0,", "=1+MAX(0,", 1)
                book.save(dst)
                return dst
    raise AssertionError("no conv cell found")


def _path(m, dotted):
    keys = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    node = m
    for k in keys[:-1]:
        node = node[k]
    return node, keys[-1]


def _set(m, dotted, value):
    node, key = _path(m, dotted)
    node[key] = value
    return m


def _drop(m, dotted):
    node, key = _path(m, dotted)
    del node[key]
    return m


def _set_all(m, key, value):
    for entry in m["ops"]:
        entry[key] = value
    return m


def _attr(m, name, value):
    entry = next(e for e in m["ops"] if name in e.get("attrs", {}))
    entry["attrs"][name] = value
    return m


def _first_input(m, change):
    entry = m["ops"][0]
    arg = next(iter(entry["inputs"]))
    entry["inputs"][arg] = change(entry["inputs"][arg])
    return m


def _rename(m, old, new):
    m["tensors"][new] = m["tensors"].pop(old)
    return m


def _drop_op(m, output):
    before = len(m["ops"])
    m["ops"] = [e for e in m["ops"] if output not in e["outputs"].values()]
    assert len(m["ops"]) < before, output
    return m


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import tempfile
    import xlnet
    from xlnet import engines

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=False)
    built = {p.stem: p for p in xlnet.build(["conv", "softmax"], out=out / "built")}
    with tempfile.TemporaryDirectory() as tmp:
        saved = engines.recalc([built["conv"]], "libreoffice", tmp)[0]
        shutil.copyfile(saved, out / "built" / "conv-saved.xlsx")
    corpus = out / "corpus"
    corpus.mkdir()
    for c in make(corpus, built["conv"], built["softmax"], out / "built" / "conv-saved.xlsx"):
        print(f"{c.name}: xlnet {' '.join(c.args)} -> exit {c.exit}")
