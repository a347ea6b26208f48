"""The pytest plugin, run as a user runs it: ``pytest --xlnet PATHS`` in a fresh process, the
plugin found through its ``pytest11`` entry point."""

import subprocess
import tempfile
import sys
import xml.etree.ElementTree as ET

import pytest

import handmade
import xlnet.engines
import hostile
from conftest import needs_libreoffice

pytestmark = pytest.mark.slow  # a pytest in a child process per test

TEST_WITH_FIXTURE = '''
import torch
import torch.nn.functional as F


def test_softmax_rows(xlnet_open):
    book = xlnet_open("xent.xlsx")
    torch.testing.assert_close(book["xent!A14:E17"], F.softmax(book["xent!A2:E5"], dim=1))


def test_the_same_book_is_opened_once(xlnet_open):
    assert xlnet_open("xent.xlsx") is xlnet_open("xent.xlsx")
'''


def run_pytest(folder, *args):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                          cwd=folder, capture_output=True, text=True, timeout=600)


@needs_libreoffice
def test_workbooks_become_one_test_per_block_with_junit_xml(tmp_path):
    good = tmp_path / "good"
    bad = tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    handmade.conv_book(good)
    handmade.cross_entropy_book(bad, log="LOG")
    plain = good / "no_spec.xlsx"
    handmade.collab_book(tmp_path)[0].rename(plain)  # no spec beside it: not collected
    (good / "test_tensors.py").write_text(TEST_WITH_FIXTURE.replace("xent.xlsx", "bad/xent.xlsx"))
    result = run_pytest(tmp_path, "--xlnet", "good", "bad", "--junitxml", str(tmp_path / "junit.xml"))
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "2 failed, 7 passed" in out, out  # per-row and mean cross-entropy; a "workbook" item per book
    assert "xent!A2" in out and "torch" in out  # the worst cell, its value and torch's
    cases = ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
    names = {(c.get("classname"), c.get("name")): c.find("failure") is not None for c in cases}
    assert names[("good.conv.xlsx", "conv + ReLU")] is False
    assert names[("bad.xent.xlsx", "cross-entropy per row")] is True
    assert not any("no_spec" in c for c, _ in names)


@needs_libreoffice
def test_the_plugin_holds_exactly_the_verdicts_of_the_command_line(built, tmp_path):
    import json
    import shutil

    books = tmp_path / "books"
    books.mkdir()
    with tempfile.TemporaryDirectory() as work:
        saved = books / "good.xlsx"
        shutil.copyfile(xlnet.engines.recalc([built["conv"]], "libreoffice", work)[0], saved)
    hostile.forge(saved, books / "comment.xlsx", "comment")  # pasted values beside <!--<f>...</f>-->
    hostile.forge(saved, books / "constants.xlsx", "value")  # =<its value>
    hostile.with_manifest(saved, books / "no-ops.xlsx", lambda m: dict(m, ops=[]))  # nothing to check
    result = run_pytest(tmp_path, "--xlnet", "books", "-rf")
    failing = {line.split("::")[0].split("/")[-1] for line in result.stdout.splitlines() if line.startswith("FAILED")}
    verdicts = {}
    for book in sorted(books.iterdir()):
        cli = subprocess.run([sys.executable, "-m", "xlnet", "check", str(book), "--json"], capture_output=True,
                             text=True, cwd=tmp_path)
        verdicts[book.name] = cli.returncode
    assert verdicts == {"comment.xlsx": 1, "constants.xlsx": 1, "good.xlsx": 0, "no-ops.xlsx": 2}, verdicts
    assert failing == {name for name, code in verdicts.items() if code}, result.stdout
    assert "no-ops.xlsx::workbook" in result.stdout and "does not compute" in result.stdout, result.stdout


@needs_libreoffice
def test_without_the_flag_nothing_is_collected(tmp_path):
    handmade.conv_book(tmp_path)
    result = run_pytest(tmp_path, ".")
    assert "no tests ran" in result.stdout, result.stdout


def test_a_bad_spec_is_one_failing_item_with_its_line(tmp_path):
    _, spec = handmade.conv_book(tmp_path)
    spec.write_text(spec.read_text().replace('op = "conv2d"', 'op = "convolve"'))
    result = run_pytest(tmp_path, "--xlnet", ".", "--xlnet-engine", "cached")
    assert result.returncode == 1
    assert "conv.xlnet.toml:7: block 1: unknown op 'convolve'" in result.stdout
    assert "Traceback" not in result.stdout


# pytest in a child process; its own high-water mark (VmHWM) and its children's are written out
_PEAK = ("import re, resource, sys, pytest\n"
         "try:\n"
         "    code = pytest.main(sys.argv[2:])\n"
         "finally:\n"
         "    own = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
         "    peak = max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
         "    open(sys.argv[1], 'w').write(str(peak // 1024))\n"
         "sys.exit(code)\n")


def test_a_workbook_part_that_inflates_to_a_gigabyte_is_one_failing_item_in_bounded_memory(built, tmp_path):
    folder = tmp_path / "books"
    folder.mkdir()
    bomb = hostile.zip_bomb(built["conv"], folder / "conv.xlsx", part="xl/workbook.xml")
    assert bomb.stat().st_size < 4_000_000  # a few MB on disk, a GiB once inflated
    peak_file = tmp_path / "peak"
    result = subprocess.run([sys.executable, "-c", _PEAK, str(peak_file), "-p", "no:cacheprovider", "-q",
                             "--xlnet", "books"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 failed" in out and "passed" not in out, out
    assert "conv.xlsx: inflates to 1,07" in out and "zip bomb" in out, out
    peak = int(peak_file.read_text())
    assert peak < 400, f"peak memory {peak} MB"


@needs_libreoffice
def test_a_class_graded_by_the_original_as_the_command_line_does(tmp_path):
    """``--xlnet-reference``: every copy is graded by the handed-out book's manifest, as ``xlnet
    check --reference`` grades it: a copy whose own manifest lost the exercise's op is still
    graded on it, and pasted values fail."""
    from test_exercises import fill

    [original] = xlnet.build(["embeddings"], out=tmp_path / "handed-out", exercise="dot_pred")
    books = tmp_path / "class"
    books.mkdir()
    fill(original, books / "done.xlsx", "dot_pred")
    fill(original, books / "wrong.xlsx", "dot_pred", "dollar")
    hostile.with_manifest(books / "done.xlsx", books / "forged.xlsx",
                          lambda m: dict(m, ops=[e for e in m["ops"] if e["outputs"].get("out") != "dot_pred"]))
    with tempfile.TemporaryDirectory() as work:  # the learner's saved book, values cached
        saved = xlnet.engines.recalc([books / "done.xlsx"], "libreoffice", work)[0]
        hostile.forge(saved, books / "pasted.xlsx", "value")
    result = run_pytest(tmp_path, "--xlnet", "class", "--xlnet-reference", str(original), "-rf")
    failing = {line.split("::")[0].split("/")[-1] for line in result.stdout.splitlines() if line.startswith("FAILED")}
    verdicts = {}
    for book in sorted(books.iterdir()):
        cli = subprocess.run([sys.executable, "-m", "xlnet", "check", str(book), "--reference", str(original)],
                             capture_output=True, text=True, cwd=tmp_path)
        verdicts[book.name] = cli.returncode
    assert verdicts["done.xlsx"] == 0 and verdicts["wrong.xlsx"] == 1 and verdicts["pasted.xlsx"] == 1, verdicts
    assert verdicts["forged.xlsx"] == 0, verdicts  # graded on the original's manifest: its cells are right
    assert failing == {name for name, code in verdicts.items() if code}, result.stdout
    assert "handed-out" not in result.stdout  # the original itself is not a submission
