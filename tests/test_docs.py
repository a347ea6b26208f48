"""The documentation site: it builds with MkDocs in strict mode (a broken link fails it), the
pages written from the code are up to date, every command and option is in the command
reference, and the code samples run."""

import re
import subprocess
import sys

import mkdocs  # noqa: F401  (with the test extras: a missing MkDocs fails here, it is not skipped)

import xlnet
from xlnet import docs_pages, lessons
from xlnet.cli import _parser
from conftest import ROOT, needs_libreoffice

import handmade


def _samples(text):
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_site_builds_strict(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("commands", "spec", "ops", "json", "reliability", "architecture", "measurements"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page


def test_the_pages_written_from_the_code_are_up_to_date():
    for name, page in docs_pages.PAGES.items():
        assert (ROOT / "docs" / name).read_text() == page(), f"docs/{name} is stale: python -m xlnet.docs_pages"


def test_every_command_option_and_lesson_option_is_in_the_command_reference():
    doc = (ROOT / "docs" / "commands.md").read_text()
    sub = next(a for a in _parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        assert re.search(rf"xlnet {name}\b", doc), f"`xlnet {name}` is not in docs/commands.md"
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in ("-h", "--help") or not flag.startswith("--") or flag in doc, (name, flag)
    for options in lessons.all_options().values():
        for opt in options:
            assert opt.flag in doc, opt.flag


def test_every_op_is_in_the_ops_page():
    from xlnet import ops
    page = (ROOT / "docs" / "ops.md").read_text()
    for op in ops.REGISTRY.values():
        assert op.trajectory or f"## `{op.name}`" in page, op.name


@needs_libreoffice
def test_the_spec_pages_python_sample_runs(tmp_path, monkeypatch):
    [sample] = [s for s in _samples((ROOT / "docs" / "spec.md").read_text()) if s.startswith("import")]
    handmade.conv_book(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(sample, "docs/spec.md", "exec"), {})


@needs_libreoffice
def test_the_readmes_pytest_sample_runs(monkeypatch):
    [sample] = [s for s in _samples((ROOT / "README.md").read_text()) if "def test_my_sheet_matches_torch" in s]
    monkeypatch.chdir(ROOT)
    scope = {}
    exec(compile(sample, "README.md", "exec"), scope)
    scope["test_my_sheet_matches_torch"]()
    assert xlnet  # the sample's own import
