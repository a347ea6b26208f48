"""A user's type checker sees xlnet's public API typed (PEP 561: the package ships py.typed):
a correct script passes mypy --strict, and a wrong one is told where it is wrong."""

import os
import subprocess
import sys

import mypy  # noqa: F401  (with the test extras: a missing mypy fails here, it is not skipped)

from conftest import ROOT

CONFIG = """[mypy]
strict = True
follow_imports = silent
[mypy-torch.*,numpy.*,matplotlib.*,sklearn.*,scipy.*,openpyxl.*,xlsxwriter.*,formulas.*,xlwings.*,mpmath.*,jsonschema.*,fastjsonschema.*,defusedxml.*,tomli.*]
follow_imports = skip
ignore_missing_imports = True
"""

RIGHT = """from pathlib import Path

import xlnet


def grade(folder: Path) -> bool:
    paths: list[Path] = xlnet.build(["conv"], out=folder, progress=lambda k, name: None)
    reports = xlnet.check(paths, engine="libreoffice")
    book = xlnet.open(paths[0])
    names: list[str] = book.sheetnames
    return all(r.passed for r in reports) and xlnet.exit_code(reports) == 0 and bool(names)
"""

WRONG = """from pathlib import Path

import xlnet


def grade(folder: Path) -> None:
    count: int = xlnet.build(["conv"], out=folder)
    xlnet.check(folder, engine=3)
"""


def _mypy(tmp_path, source):
    (tmp_path / "mypy.ini").write_text(CONFIG)
    (tmp_path / "user.py").write_text(source)
    env = dict(os.environ, MYPYPATH=str(ROOT))  # the checkout, as an editable install leaves it
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir",
                           str(tmp_path / "cache"), "user.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_package_is_marked_typed():
    assert (ROOT / "xlnet" / "py.typed").is_file()


def test_a_correct_script_passes_mypy_strict(tmp_path):
    result = _mypy(tmp_path, RIGHT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_script_is_told_where(tmp_path):
    result = _mypy(tmp_path, WRONG)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'has type "list[Path]", variable has type "int"' in result.stdout
    assert 'Argument "engine" to "check" has incompatible type "int"; expected "str"' in result.stdout
