#!/usr/bin/env bash
# The size limits the architecture keeps (make lint runs this): no file of
# core/src over 600 lines, and the Python binding (py/: Rust, Python and
# stubs together) at most 3,000 lines, so behaviour stays in core.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
while read -r lines file; do
  if [ "$file" != total ] && [ "$lines" -gt 600 ]; then
    echo "check-sizes: $file has $lines lines (at most 600 in core/src)"; status=1
  fi
done < <(find core/src -name '*.rs' -print0 | xargs -0 wc -l)
py_lines=$(cat py/src/*.rs py/python/libregistry/*.py py/python/libregistry/*.pyi | wc -l)
if [ "$py_lines" -gt 3000 ]; then
  echo "check-sizes: py/ has $py_lines lines (at most 3,000)"; status=1
fi
[ "$status" = 0 ] && echo "check-sizes: largest core file $(find core/src -name '*.rs' -print0 | xargs -0 wc -l | grep -v ' total$' | sort -n | tail -1 | awk '{print $2, $1}') lines; py/ $py_lines lines"
exit "$status"
