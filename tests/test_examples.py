"""The examples run as documented."""

import subprocess
import sys

import pytest

from conftest import ROOT, needs_libreoffice

pytestmark = pytest.mark.slow  # processes and engines started per case


@needs_libreoffice
def test_custom_conv_example(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "custom_conv.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout and (tmp_path / "conv.xlsx").is_file()


@needs_libreoffice
def test_tune_learning_rate_example(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "tune_learning_rate.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout and "to 0.3" in result.stdout


@needs_libreoffice
def test_movie_ratings_example(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "movie_ratings.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout and (tmp_path / "ratings.csv").is_file() and (tmp_path / "embeddings.xlsx").is_file()
