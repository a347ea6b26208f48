"""The hostile-input corpus (``tests/hostile.py``), run as a user would run it.

Every case runs ``xlnet`` in a child process with a private TMPDIR and is held to the promise:
its exit code; for exit 2, exactly one line on stderr naming what was wrong; no traceback;
its input files unchanged (SHA-256 before and after); nothing written where it must not be;
peak memory (the process or any engine it started) under PEAK_MB; and, after the whole run,
the private TMPDIR empty. The API's and the UDFs' cases run in this process.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import xlnet
from xlnet import engines, udfs
from xlnet.errors import InputError, XlnetError
import hostile
from conftest import ROOT, require_engine

pytestmark = pytest.mark.slow  # processes and engines started per case

PEAK_MB = 2000  # torch's import alone is about 500 MB; the 1 GiB zip bomb once peaked at 5.2 GB
TALLY = {}

# The child's own high-water mark (VmHWM: this process's memory since its exec, not the pytest
# process it was forked from) and its children's (the engine's) largest.
_RUN = ("import re, resource, sys\n"
        "from xlnet.cli import main\n"
        "try:\n"
        "    code = main(sys.argv[2:])\n"
        "finally:\n"
        "    own = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "    peak = max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "    open(sys.argv[1], 'w').write(str(peak // 1024))\n"
        "sys.exit(code)\n")


@pytest.fixture(scope="module")
def corpus(built, tmp_path_factory):
    """Generate the corpus, run every CLI case (two at a time), return (cases, results, tmpdir)."""
    require_engine("libreoffice")
    root = tmp_path_factory.mktemp("hostile")
    with tempfile.TemporaryDirectory() as tmp:
        saved = root / "conv-saved.xlsx"
        shutil.copyfile(engines.recalc([built["conv"]], "libreoffice", tmp)[0], saved)
    folder = root / "corpus"
    folder.mkdir()
    cases = hostile.make(folder, built["conv"], built["softmax"], saved)
    private = root / "tmp"
    private.mkdir()

    def run(case):
        hashes = {p: hostile.sha(p) for p in case.inputs}
        peak_file = root / f"peak-{id(case)}"
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", _RUN, str(peak_file), *case.args], capture_output=True,
                              text=True, timeout=900, cwd=ROOT, env=dict(os.environ, TMPDIR=str(private)))
        peak = int(peak_file.read_text()) if peak_file.exists() else None
        return dict(code=proc.returncode, out=proc.stdout, err=proc.stderr, peak=peak,
                    changed=[p for p, h in hashes.items() if hostile.sha(p) != h],
                    present=[p for p in case.absent if os.path.lexists(p)], seconds=time.monotonic() - started)

    with ThreadPoolExecutor(2) as pool:
        results = dict(zip((c.name for c in cases), pool.map(run, cases)))
    return cases, results, private


def _held(case, result):
    """The list of promises a case broke (empty: held)."""
    broken = []
    if result["code"] != case.exit:
        broken.append(f"exit {result['code']}, promised {case.exit}")
    if "Traceback" in result["err"] or "Traceback" in result["out"]:
        broken.append("a traceback")
    if case.exit == 2:
        lines = result["err"].strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("xlnet: error: "):
            broken.append(f"{len(lines)} lines on stderr")
        missing = [w for w in case.words if w.lower() not in result["err"].lower()]
        if missing:
            broken.append(f"the message lacks {missing}")
    unsaid = [w for w in case.says if w.lower() not in result["out"].lower()]
    if unsaid:
        broken.append(f"the output lacks {unsaid}")
    if result["changed"]:
        broken.append(f"inputs changed: {result['changed']}")
    if result["present"]:
        broken.append(f"written where it must not be: {result['present']}")
    if result["peak"] is None or result["peak"] > PEAK_MB:
        broken.append(f"peak memory {result['peak']} MB")
    return broken


def test_the_corpus_has_at_least_fifty_cases_and_every_one_holds(corpus):
    cases, results, private = corpus
    assert len(cases) >= 50
    broken = {c.name: _held(c, results[c.name]) for c in cases}
    broken = {k: (v, results[k]["err"][-300:]) for k, v in broken.items() if v}
    peak = max(r["peak"] or 0 for r in results.values())
    TALLY["cli"] = (len(cases), len(cases) - len(broken), peak)
    print(f"\nhostile corpus (CLI): {len(cases)} cases, {len(cases) - len(broken)} held, peak memory {peak} MB")
    assert not broken, json.dumps(broken, indent=1)
    assert list(private.iterdir()) == [], "temporary files left behind"


def test_the_zip_bomb_is_refused_before_anything_inflates(corpus):
    cases, results, _ = corpus
    [bomb] = [c for c in cases if c.name.startswith("zip bomb")]
    result = results[bomb.name]
    assert Path(bomb.inputs[0]).stat().st_size < 3_000_000
    assert "inflates" in result["err"] and result["peak"] < 150, result  # no engine, no torch: about 50 MB


def test_an_escaping_chart_name_writes_inside_the_output_folder(corpus):
    cases, results, _ = corpus
    [case] = [c for c in cases if c.name.startswith("plot: a chart named")]
    written = [line.split("wrote ", 1)[1] for line in results[case.name]["out"].splitlines()]
    out = Path(case.args[case.args.index("--out") + 1]).resolve()
    assert written and all(Path(p).resolve().parent == out for p in written), written


def test_pasted_values_are_reported_as_typed_values(corpus):
    cases, results, _ = corpus
    [case] = [c for c in cases if c.name.startswith("every formula pasted")]
    assert "VALUES" in results[case.name]["out"] and "typed values, not formulas" in results[case.name]["out"]


def test_a_deleted_op_is_still_checked_when_graded_by_the_reference(corpus):
    cases, results, _ = corpus
    [case] = [c for c in cases if c.name.startswith("manifest: broken block") and "--reference" in c.name]
    out = results[case.name]["out"]
    assert "FAIL" in out and "checked by the manifest of conv.xlsx" in out, out


def test_a_loosened_tolerance_is_clamped(corpus):
    cases, results, _ = corpus
    [case] = [c for c in cases if "1e300" in c.name and "clamped" in c.name]
    assert "FAIL" in results[case.name]["out"], results[case.name]["out"]


@pytest.mark.parametrize("name", ["../../../../ESCAPED", "/etc/passwd", "a\0b", "x" * 10_000, "..", "", "ü/" * 5000,
                                  "C:\\Windows\\x", "con", "-rf"])
def test_plot_file_names_are_safe_and_stay_inside_the_folder(tmp_path, name):
    from xlnet.report import plots
    file_name = plots.file_name("book", name)
    assert "/" not in file_name and "\\" not in file_name and "\0" not in file_name
    assert len(file_name.encode()) <= 255 and not file_name.startswith((".", "-")) and file_name.endswith(".png")
    assert (tmp_path / file_name).resolve().parent == tmp_path.resolve()
    (tmp_path / file_name).write_bytes(b"")  # the file system takes it
    assert plots.file_name("book", "conv1_out") == "book-conv1_out.png"  # plain names stay as they are


# ---- the API, in this process --------------------------------------------------------------

def _api_cases(tmp_path, built):
    text = tmp_path / "text.xlsx"
    text.write_text("not a workbook")
    spec = tmp_path / "s.xlnet.toml"
    spec.write_text('[[block]]\nop = "relu"\nx = "Sheet!A1:B2"\nout = "Sheet!Z1:Z9"\n')
    plain = tmp_path / "plain.xlsx"
    import openpyxl
    book = openpyxl.Workbook()
    book.active.title = "Sheet"
    book.active["A1"] = 1
    book.save(plain)
    return [
        ("load: not a workbook", lambda: xlnet.load(text), "not a workbook"),
        ("open: not a workbook", lambda: xlnet.open(text, engine="cached"), "not a workbook"),
        ("open: a whole sheet", lambda: xlnet.open(plain, engine="cached")["Sheet!A1:XFD1048576"], "cells"),
        ("open: a range past the grid", lambda: xlnet.open(plain, engine="cached")["Sheet!A1:ZZZZ1"], "not a range"),
        ("open: a number as a range", lambda: xlnet.open(plain, engine="cached")[42], "a range is a text"),
        ("spec: shapes that do not fit", lambda: xlnet.check(plain, engine="cached", spec=spec), "s.xlnet.toml"),
        ("check: no file", lambda: xlnet.check([], engine="cached"), "no workbook"),
        ("check: timeout as text", lambda: xlnet.check(built["conv"], timeout="soon"), "timeout should be"),
        ("build: option NaN", lambda: xlnet.build(["conv"], out=tmp_path / "b", dropout_p=math.nan), "finite"),
        ("build: seed as text", lambda: xlnet.build(["conv"], out=tmp_path / "b", seed="one"), "seed 'one'"),
        ("open: None", lambda: xlnet.open(None), "not NoneType"),
        ("load: None", lambda: xlnet.load(None), "not NoneType"),
        ("check: None", lambda: xlnet.check(None), "not NoneType"),
        ("check: perturb as text", lambda: xlnet.check(built["conv"], perturb="yes"), "perturb should be"),
        ("check: a negative perturbation seed", lambda: xlnet.check(built["conv"], seed=-1), "perturb-seed"),
    ]


def test_api_cases_raise_one_clear_error(tmp_path, built):
    cases = _api_cases(tmp_path, built)
    held = 0
    for name, call, words in cases:
        with pytest.raises(XlnetError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and words in message, (name, message)
        assert " --" not in message or "XLNET_" in message, (name, message)  # parameters, not flags (a limit says every way to raise it)
        held += 1
    assert not (tmp_path / "b").exists()
    TALLY["api"] = (len(cases), held)


_HUGE = np.zeros((1001, 1000))

UDF_CASES = [
    ("None", lambda: udfs.XLNET_RELU(None), "empty"),
    ("text", lambda: udfs.XLNET_RELU([["a", 1]]), "text 'a'"),
    ("an error value", lambda: udfs.XLNET_RELU([["#DIV/0!", 1]]), "#DIV/0!"),
    ("ragged rows", lambda: udfs.XLNET_RELU([[1, 2], [3]]), "rectangular"),
    ("NaN in a list", lambda: udfs.XLNET_RELU([[1.0, math.nan]]), "not a finite number"),
    ("NaN in an array", lambda: udfs.XLNET_RELU(np.array([[1.0, math.nan]])), "not a finite number"),
    ("inf", lambda: udfs.XLNET_RELU([[math.inf]]), "not a finite number"),
    ("a bool", lambda: udfs.XLNET_RELU([[True]]), "bool"),
    ("three dimensions", lambda: udfs.XLNET_RELU([[[1]]]), "2-D"),
    ("a huge array", lambda: udfs.XLNET_RELU(_HUGE), "at most 1,000,000"),
    ("a huge list", lambda: udfs.XLNET_MATMUL(_HUGE.tolist(), [[1.0]]), "at most 1,000,000"),
    ("NaN temperature", lambda: udfs.XLNET_SOFTMAX([[1.0, 2.0]], 1, math.nan), "finite"),
    ("zero temperature", lambda: udfs.XLNET_SOFTMAX([[1.0, 2.0]], 1, 0), "positive"),
    ("NaN learning rate", lambda: udfs.XLNET_SGD_TRAJECTORY([[1.0], [2.0]], [[2.0], [4.0]], 0, 0, math.nan), "finite"),
    ("NaN stride", lambda: udfs.XLNET_CONV2D([[1.0, 2.0], [3.0, 4.0]], [[1.0]], math.nan), "finite"),
    ("a text stride", lambda: udfs.XLNET_CONV2D([[1.0, 2.0], [3.0, 4.0]], [[1.0]], "two"), "stride"),
    ("a kernel larger than the image", lambda: udfs.XLNET_CONV2D([[1.0]], [[1.0, 2.0], [3.0, 4.0]]), "larger"),
]


@pytest.mark.parametrize("name, call, words", UDF_CASES, ids=[c[0] for c in UDF_CASES])
def test_udfs_answer_bad_arguments_with_one_line(name, call, words):
    started = time.monotonic()
    result = call()
    assert isinstance(result, str) and result.startswith("xlnet: ") and "\n" not in result, result
    assert words in result, result
    assert "Traceback" not in result
    assert time.monotonic() - started < 5  # refused before any per-cell work
    TALLY.setdefault("udf", set()).add(name)
