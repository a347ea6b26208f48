"""The house: packages that show the architecture, each importing only the layers below it, and
a workbook file opened once for a check."""

import ast
import traceback
import zipfile

import pytest

from conftest import ROOT, check

# lowest first: a module may import its own package and any package on an earlier line
LAYERS = [["errors", "limits", "atomic", "progress"], ["ops"], ["manifest"], ["workbook"], ["engines"], ["sheet"],
          ["report"], ["checking"], ["lessons"],
          ["api", "cli", "serve", "watch", "pytest_plugin", "udfs", "udf_book", "docs_pages", "__init__", "__main__"]]
RANK = {name: k for k, names in enumerate(LAYERS) for name in names}


def _imports(path, module, is_package):
    """(line, imported module) of every xlnet import in a file, function-level ones included."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            if base.startswith("xlnet"):
                for alias in node.names:
                    yield node.lineno, f"{base}.{alias.name}" if base == "xlnet" else base
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("xlnet"))


def _top(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_imports_only_the_layers_below_it():
    upward, unplaced = [], []
    for path in sorted((ROOT / "xlnet").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        mine = _top(module) if module != "xlnet" else "__init__"
        if mine not in RANK:
            unplaced.append(module)
        for line, target in _imports(path, module, is_package):
            theirs = _top(target)
            if theirs != mine and RANK.get(theirs, -1) > RANK.get(mine, -1):
                upward.append(f"{module}:{line} imports {target}")
    assert not unplaced, f"modules in no layer: {unplaced}"
    assert not upward, "imports that climb back up a layer:\n" + "\n".join(upward)


@pytest.mark.engine("libreoffice")
def test_a_check_opens_each_workbook_package_once(built, monkeypatch):
    opened = []
    real = zipfile.ZipFile.__init__

    def counting(self, file, *args, **kwargs):
        name = str(getattr(file, "name", file))
        if name.endswith((".xlsx", ".xlsm")) and any("/xlnet/" in f.filename for f in traceback.extract_stack()[:-1]):
            opened.append(name)
        real(self, file, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "__init__", counting)
    [report] = check(built["conv"])
    assert report.passed, report.text()
    # the user's file once (its values and formulas come from that opening), the recalculated copy once
    assert len(opened) <= 3, opened
    assert opened.count(str(built["conv"])) == 1, opened
