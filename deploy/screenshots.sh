#!/usr/bin/env bash
# Screenshots of the rendered report, English and Chinese, with headless Chromium: the screen at 1280 and
# 800 px wide, and A4 print (PDF; its pages as PNG when pdftoppm from poppler-utils is installed).
# The report is the renderers' rich fixture, written by the test `preview_files_are_written`.
#   deploy/screenshots.sh [OUT_DIR]      (default target/screenshots)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/screenshots}
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$chrome" ]; then
  echo "screenshots: no chromium, chromium-browser or google-chrome on PATH" >&2
  exit 1
fi
cargo test -q -p plantmeter-common --features render --lib preview_files_are_written >/dev/null
mkdir -p "$out"
# A profile of its own, so that a Chromium already running (or a stale lock) does not stop it.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --run-all-compositor-stages-before-draw
  --user-data-dir="$profile")
for lang in en zh; do
  html="file://$PWD/target/render-preview/report_$lang.html"
  for w in 1280 800; do
    "$chrome" "${flags[@]}" --window-size="$w,7200" --screenshot="$out/report_${lang}_${w}px.png" "$html" 2>/dev/null
  done
  "$chrome" "${flags[@]}" --no-pdf-header-footer --print-to-pdf="$out/report_${lang}_a4.pdf" "$html" 2>/dev/null
  if command -v pdftoppm >/dev/null; then
    pdftoppm -r 60 -png "$out/report_${lang}_a4.pdf" "$out/report_${lang}_a4_page"
  fi
done
ls -1 "$out"
