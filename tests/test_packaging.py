"""What a package index would hold: the sdist carries the whole test suite with its helpers and
the workbooks the tests compare builds with, and the metadata states the license."""

import shutil
import subprocess
import sys
import tarfile

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    out = tmp_path_factory.mktemp("sdist")
    # a clean copy: setuptools would otherwise reuse the file list of an earlier build (egg-info)
    tree = tmp_path_factory.mktemp("tree") / "xlnet"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".git", ".venv", "*.egg-info", "build", "__pycache__",
                                                              ".hypothesis", ".pytest_cache", "out"))
    subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"],
                   cwd=tree, check=True, capture_output=True, timeout=300)
    [archive] = out.glob("xlnet-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        info = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("/PKG-INFO"))).read().decode()
    return names, info


def test_the_sdist_runs_its_tests(sdist):
    names, _ = sdist
    wanted = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("*.py")}
    wanted |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "workbooks").glob("*.xlsx")}
    wanted |= {"pyproject.toml", "LICENSE", "README.md", "scripts/setup.sh", "scripts/test.sh",
               "xlnet/lessons/conv_weights.json", "xlnet/lessons/attention_weights.json"}
    assert wanted <= names, sorted(wanted - names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_the_metadata_states_the_license(sdist):
    _, info = sdist
    assert "License-Expression: MIT" in info and "License-File: LICENSE" in info
