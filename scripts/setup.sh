#!/usr/bin/env bash
# Set up a fresh machine: the spreadsheet engines (LibreOffice Calc with its Python bindings, for
# a warm LibreOffice; Gnumeric; the Carlito font) and a virtual environment in .venv with xlnet, torch (the
# CPU build, or the CUDA build where an NVIDIA GPU is; XLNET_TORCH=cpu|cuda chooses) and the test tools.
# Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v soffice >/dev/null 2>&1 || need+=(libreoffice-calc)
command -v ssconvert >/dev/null 2>&1 || need+=(gnumeric)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
/usr/bin/python3 -c "import uno" >/dev/null 2>&1 || need+=(python3-uno)
# Carlito has Calibri's widths: LibreOffice then lays a book out as Excel does (the legibility
# test compares LibreOffice's rendering with the widths xlnet measures)
fc-list 2>/dev/null | grep -q Carlito || need+=(fonts-crosextra-carlito)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ] && ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
  # Debian and Ubuntu ship venv's pip bootstrap apart, in python3-venv
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing python3-venv with apt-get ($PYTHON -m venv needs it)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch 2.13.0, its build chosen, not left to whatever pip finds first (on Linux PyPI's own wheel
# is the CUDA build, several GB): XLNET_TORCH=cpu or cuda; by default the CUDA build where an
# NVIDIA GPU answers (the check then runs torch on it), else the CPU build.
want=${XLNET_TORCH:-auto}
if [ "$want" = auto ]; then
  if nvidia-smi -L >/dev/null 2>&1; then want=cuda; else want=cpu; fi
fi
case "$want" in cpu|cuda) ;; *) echo "XLNET_TORCH=$want: expected cpu or cuda" >&2; exit 2 ;; esac
have=$(.venv/bin/python -c "import torch; print('cuda' if torch.version.cuda else 'cpu')" 2>/dev/null || echo none)
if [ "$have" != "$want" ]; then
  echo "installing torch 2.13.0, the $want build (XLNET_TORCH=cpu|cuda chooses)"
  [ "$have" = none ] || .venv/bin/python -m pip uninstall -q -y torch
  if [ "$want" = cpu ]; then
    .venv/bin/python -m pip install -q "torch==2.13.0" --extra-index-url https://download.pytorch.org/whl/cpu
  else
    .venv/bin/python -m pip install -q "torch==2.13.0"
  fi
fi
.venv/bin/python -m pip install -q -e ".[test]"
