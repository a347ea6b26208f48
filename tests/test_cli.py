"""The command line: every command works and is documented (the command reference in docs/)."""

import json
import re

import pytest

import xlnet
from xlnet.cli import _parser, main
from conftest import ROOT, needs_libreoffice


def commands():
    sub = next(a for a in _parser()._actions if a.dest == "command")
    return list(sub.choices)


def test_every_command_is_documented():
    reference = (ROOT / "docs" / "commands.md").read_text()
    for command in commands():
        assert re.search(rf"xlnet {command}\b", reference), f"`xlnet {command}` is not in docs/commands.md"


def test_list_shows_lessons_and_options(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "conv" in out and "--kernel-size" in out


@needs_libreoffice
def test_check_json_and_exit_codes(built, copy_of, capsys):
    assert main(["check", str(built["conv"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["passed"] is True and data[0]["engine"] == "libreoffice"
    assert all(b["status"] in ("pass", "e2e") for b in data[0]["blocks"])

    import openpyxl
    from conftest import tensor_cell
    path = copy_of("conv")
    sheet, cell = tensor_cell(path, "pool_out", 0)
    book = openpyxl.load_workbook(path)
    book[sheet][cell] = "=42"
    book.save(path)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and f"{sheet}!{cell}" in out and "MISMATCH" in out


def test_build_writes_into_out(tmp_path, capsys):
    assert main(["build", "conv", "--out", str(tmp_path), "--filters1", "3"]) == 0
    assert (tmp_path / "conv.xlsx").is_file()
    assert "wrote" in capsys.readouterr().out


def test_plot_writes_pngs_in_the_sheet_colours(built, tmp_path, capsys):
    assert main(["plot", str(built["conv"]), "--out", str(tmp_path)]) == 0
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert "conv-conv1_out.png" in pngs and "conv-probabilities.png" in pngs
    # the heat map holds the sheet's own colour scale: both ends of it appear in the picture
    import matplotlib.image
    import numpy as np
    import xlnet
    heat = xlnet.load(built["conv"]).manifest["tensors"]["image"]["heat"]
    pixels = matplotlib.image.imread(tmp_path / "conv-image.png")[..., :3].reshape(-1, 3)
    for colour in (heat[0], heat[-1]):
        rgb = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
        assert (np.abs(pixels - rgb).max(axis=1) < 2 / 255).sum() > 50, colour


def test_module_entry_point():
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "xlnet", "list"], capture_output=True, text=True)
    assert result.returncode == 0 and "conv" in result.stdout


def test_the_command_line_names_its_flags_where_the_api_names_its_parameters(built, capsys):
    with pytest.raises(xlnet.InputError) as info:
        xlnet.build(["conv"], out=built["conv"].parent / "never", kernel_size=0)
    assert str(info.value).startswith("kernel_size 0:")
    assert main(["build", "conv", "--kernel-size", "0", "--out", str(built["conv"].parent / "never")]) == 2
    assert capsys.readouterr().err.startswith("xlnet: error: --kernel-size 0:")


@needs_libreoffice
def test_check_with_every_engine_installed(built, capsys):
    from xlnet import engines
    assert main(["check", str(built["conv"]), "--engine", "all", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["engine"] for r in reports] == engines.installed() and all(r["passed"] for r in reports)


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"xlnet {xlnet.__version__}\n"


@needs_libreoffice
@pytest.mark.slow
def test_a_reader_that_stops_reading_is_no_error(built):
    # `xlnet check book.xlsx | true`: the pipe is closed before anything is printed
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "xlnet", "check", str(built["conv"])], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, err  # the check passed: so says the exit code
    assert err == "", err


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    import os
    import stat
    old = os.umask(umask)
    try:
        [path] = xlnet.build(["softmax"], out=tmp_path)
        assert stat.S_IMODE(path.stat().st_mode) == mode
        path.chmod(0o640)  # a file written again keeps the permissions it was given
        xlnet.build(["softmax"], out=tmp_path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_list_ops_says_each_whole_description_without_markup(capsys):
    from xlnet import ops
    assert main(["list", "--ops"]) == 0
    out = capsys.readouterr().out
    assert "``" not in out
    words = " ".join(out.split())
    for op in ops.REGISTRY.values():
        if not op.trajectory:
            doc = " ".join((type(op).__doc__ or "").replace("``", "").split())
            assert doc in words, op.name  # every word of it, none cut off


@needs_libreoffice
def test_a_folder_stands_for_the_workbooks_in_it(built, tmp_path):
    import shutil

    from conftest import check
    class_folder = tmp_path / "class"
    class_folder.mkdir()
    for lesson in ("softmax", "conv"):
        shutil.copyfile(built[lesson], class_folder / f"{lesson}.xlsx")
    (class_folder / "~$conv.xlsx").write_bytes(b"an Excel lock file")
    (class_folder / "notes.txt").write_text("not a workbook")
    reports = check(class_folder)
    assert [r.path.rsplit("/", 1)[-1] for r in reports] == ["conv.xlsx", "softmax.xlsx"]
    assert all(r.passed for r in reports)


def test_a_book_shows_itself_in_a_line(built):
    book = xlnet.load(built["backprop"])
    assert len(repr(book)) < 200 and "backprop.xlsx" in repr(book)
    tensor = next(iter(book.tensors.values()))
    assert len(repr(tensor)) < 5000  # the values (numpy shortens them), not every cell's address
    opened = xlnet.open(built["conv"], engine="cached")
    assert repr(opened).startswith("<OpenedBook conv.xlsx (cached, as saved): sheets start, conv") and len(repr(opened)) < 300
