#!/usr/bin/env bash
# The main job: build every lesson workbook into workbooks/ and check each one against torch
# with every spreadsheet engine installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/xlnet build
.venv/bin/xlnet check workbooks/*.xlsx --engine all
