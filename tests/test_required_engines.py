"""A suite cannot come out green by skipping: with CI (or XLNET_REQUIRE_ENGINES) set, a test
whose engine is missing fails; elsewhere it is skipped, and says why."""

import os
import subprocess
import sys

from conftest import ROOT

NODE = "tests/test_recalc.py::test_cached_engine_passes_once_a_real_engine_has_saved_the_file"


def _pytest_without_engines(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "XLNET_REQUIRE_ENGINES")}
    clean.update(env, PATH="/nonexistent")  # no soffice, no ssconvert
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", NODE],
                          cwd=ROOT, env=clean, capture_output=True, text=True, timeout=300)


def test_a_missing_engine_fails_when_engines_are_required():
    for env in ({"CI": "true"}, {"XLNET_REQUIRE_ENGINES": "1"}):
        result = _pytest_without_engines(**env)
        assert result.returncode == 1, result.stdout
        assert "libreoffice is not installed, and CI / XLNET_REQUIRE_ENGINES requires every engine" in result.stdout


def test_a_missing_engine_is_a_recorded_skip_elsewhere():
    result = _pytest_without_engines()
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout and "libreoffice is not installed" in result.stdout
