#!/usr/bin/env bash
# 200 concurrent submitters + pollers: no job lost, duplicated or charged twice.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "${DG_TEST_PYTHON:-python3}" "$here/server/test_load.py"
