#!/usr/bin/env bash
# Render a workbook the way a reader sees it: LibreOffice prints every sheet to PDF (each
# sheet one page wide, as the lessons set it), then each page becomes a PNG.
#   bash scripts/render.sh workbooks/conv.xlsx out/   -> out/conv.pdf, out/conv-1.png, ...
set -euo pipefail
book=${1:?usage: render.sh BOOK.xlsx OUTDIR [DPI]}
out=${2:?usage: render.sh BOOK.xlsx OUTDIR [DPI]}
dpi=${3:-110}
mkdir -p "$out"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
soffice --headless "-env:UserInstallation=file://$profile" --convert-to pdf --outdir "$out" "$book" >/dev/null
stem=$(basename "${book%.*}")
pdftoppm -png -r "$dpi" "$out/$stem.pdf" "$out/$stem"
ls "$out"/"$stem"*.png
