#!/usr/bin/env bash
# Runs one server integration script with the test Python: $DG_TEST_PYTHON,
# else the project venv (build/venv, made by scripts/test.sh), else python3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${DG_TEST_PYTHON:-}"
if [ -z "$py" ] && [ -x "$here/../../build/venv/bin/python" ]; then py="$here/../../build/venv/bin/python"; fi
py="${py:-python3}"
if ! "$py" -c "import requests, segmind" 2>/dev/null; then
  echo "server tests need a Python with 'requests' and 'segmind' (tests/requirements.txt); set DG_TEST_PYTHON" >&2
  exit 1
fi
export DAGUERRE_BIN="${DAGUERRE_BIN:-daguerre}"
exec "$py" "$here/$1"
