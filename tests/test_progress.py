"""A long run says how far it is on a terminal, and nothing more anywhere else; --quiet gives a
row per file."""

import io

import xlnet
from xlnet.cli import main
from xlnet.progress import Progress
from conftest import check, needs_libreoffice


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_progress_line_on_a_terminal_is_written_over_and_cleared():
    out = _Terminal()
    with Progress("checked", 3, stream=out) as progress:
        progress(0)
        progress(1, "a.xlsx")
        progress(2, "b.xlsx")
    assert out.getvalue() == ("\r\x1b[Kchecked 0/3\r\x1b[Kchecked 1/3: a.xlsx\r\x1b[Kchecked 2/3: b.xlsx"
                              "\r\x1b[K")


def test_nothing_is_written_when_not_a_terminal_or_quiet():
    piped = io.StringIO()
    with Progress("checked", 3, stream=piped) as progress:
        progress(1, "a.xlsx")
    quiet = _Terminal()
    with Progress("checked", 3, stream=quiet, enabled=False) as progress:
        progress(1, "a.xlsx")
    assert piped.getvalue() == "" and quiet.getvalue() == ""


@needs_libreoffice
def test_check_reports_each_book_as_it_is_done(built):
    seen = []
    books = [built["softmax"], built["conv"]]
    check(books, engine="libreoffice", progress=lambda k, path: seen.append((k, path)))
    assert seen == [(1, str(books[0])), (2, str(books[1]))]


def test_build_reports_each_lesson_before_it_is_built(tmp_path):
    seen = []
    xlnet.build(["conv", "softmax"], out=tmp_path, progress=lambda k, name: seen.append((k, name)))
    assert seen == [(1, "conv"), (2, "softmax")]


@needs_libreoffice
def test_quiet_check_prints_a_row_per_file_and_the_total(built, capsys):
    assert main(["check", str(built["softmax"]), str(built["conv"]), "--quiet"]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["file", "blocks", "passed"] and len(lines) == 4
    assert lines[-1] == "2 workbooks: 2 pass, 0 mismatch, 0 could not be checked"
    assert err == ""  # not a terminal: no progress line


def test_quiet_build_prints_nothing(tmp_path, capsys):
    assert main(["build", "softmax", "--out", str(tmp_path), "--quiet"]) == 0
    assert capsys.readouterr() == ("", "") and (tmp_path / "softmax.xlsx").exists()
